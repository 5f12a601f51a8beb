"""``tailops audit verify``: walk the whole chain and name every break and every gap.

Why it exists: the log is only tamper-evident if something checks it. :func:`verify`
follows every file oldest to newest and reports a line *edited* after it was written,
entries *deleted* or *reordered*, the log *truncated* (a cut line, or entries cut off the
end that the head still records), and every gap record a writer left, forever.

What it must never do: write, repair or skip anything (a gap never stops failing
verification), follow the chain past its first break as if it held, or read while a
writer appends (writers are held off with a shared ``flock``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tailops.audit.files import load_head, log_files, shared_lock, sidecar
from tailops.audit.records import GENESIS, ChainRecord, HeadRecord, HeadState, parse_record
from tailops.errors import AuditError

__all__ = ["AuditGap", "AuditProblem", "ProblemKind", "VerifyReport", "verify"]

ProblemKind = Literal["edited", "deleted", "reordered", "truncated", "gap"]


@dataclass(frozen=True)
class AuditProblem:
    file: Path
    line: int
    kind: ProblemKind
    detail: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class AuditGap:
    """A gap record: a writer found the log's end did not match its head."""

    file: Path
    line: int
    seq: int
    detected: str  # the gap record's ts: when the writer found it
    detected_by: str
    reasons: tuple[str, ...]
    missing_from: int | None
    missing_to: int | None
    head_seq: int | None
    tail_seq: int
    partial_bytes: int
    evidence_ok: bool  # the kept partial line still matches the sha256 recorded (or none was kept)
    chained: bool  # the chain up to and including this record verified

    def describe(self) -> str:
        parts: list[str] = []
        for reason in self.reasons:
            if reason == "truncated":
                span = (
                    f"entry {self.missing_from}"
                    if self.missing_from == self.missing_to
                    else f"entries {self.missing_from}-{self.missing_to}"
                )
                parts.append(
                    f"{span} missing (the log ended at entry {self.tail_seq}, the head recorded entry {self.head_seq})"
                )
            elif reason == "replaced":
                parts.append(f"entry {self.missing_from} is not the record the head recorded (edited or replaced)")
            elif reason in ("head_missing", "head_unreadable"):
                state = reason.removeprefix("head_")
                parts.append(f"the head file was {state}: entries after {self.tail_seq} may be missing")
            elif reason == "partial_line":
                parts.append(f"{self.partial_bytes} bytes of a cut or unrecognised line kept as evidence before it")
            else:
                parts.append(reason)
        text = f"gap recorded as entry {self.seq}, detected {self.detected} by {self.detected_by}: " + "; ".join(parts)
        if not self.chained:
            text += " (after a break in the chain: not chain-verified)"
        return text


@dataclass
class VerifyReport:
    entries: int = 0
    files: list[Path] = field(default_factory=list)
    head: str = GENESIS
    problems: list[AuditProblem] = field(default_factory=list)
    gaps: list[AuditGap] = field(default_factory=list)

    @property
    def problem(self) -> AuditProblem | None:
        """The first problem in log order."""
        return self.problems[0] if self.problems else None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Line:
    file: Path
    number: int
    raw: bytes
    complete: bool


def _lines(files: list[Path]) -> Iterator[_Line]:
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:
            raise AuditError(f"cannot read the audit log file {f}: {exc.strerror}.") from exc
        if not data:
            continue
        parts = data.split(b"\n")
        complete_end = parts[-1] == b""
        if complete_end:
            parts.pop()
        for i, raw in enumerate(parts, 1):
            yield _Line(f, i, raw, complete_end or i < len(parts))


def _opt_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _gap_valid(rec: ChainRecord) -> bool:
    d = rec.data
    reasons = d.get("reasons")
    return (
        isinstance(reasons, list)
        and bool(reasons)
        and all(isinstance(r, str) for r in reasons)
        and all(_opt_int(d.get(k)) for k in ("missing_from", "missing_to", "head_seq"))
        and isinstance(d.get("tail_seq"), int)
        and isinstance(d.get("partial_bytes"), int)
        and (d.get("partial_sha256") is None or isinstance(d.get("partial_sha256"), str))
    )


def _gap(ln: _Line, rec: ChainRecord, *, evidence_ok: bool, chained: bool) -> AuditGap:
    d = rec.data
    by = d.get("detected_by")
    who = f"pid {by.get('pid')} ({by.get('user')})" if isinstance(by, dict) else "an unknown writer"
    return AuditGap(
        file=ln.file,
        line=ln.number,
        seq=rec.seq,
        detected=str(d.get("ts", "?")),
        detected_by=who,
        reasons=tuple(str(r) for r in d.get("reasons") or ()),
        missing_from=d.get("missing_from"),
        missing_to=d.get("missing_to"),
        head_seq=d.get("head_seq"),
        tail_seq=d.get("tail_seq", 0),
        partial_bytes=d.get("partial_bytes", 0),
        evidence_ok=evidence_ok,
        chained=chained,
    )


def verify(path: Path) -> VerifyReport:
    """Check the chain of every file of the log at ``path``, oldest to newest.

    Reports every **gap** record (a writer found entries missing or a cut line:
    these never stop failing verification) and the first break in the chain:
    a line *edited* after it was written, entries *deleted*, entries
    *reordered*, or the log *truncated* (a line cut short, or entries cut off
    the end: the head file records a later entry). A gap does not end the
    check: the chain after it must be intact too. A line kept as evidence
    before a gap record must still match the length and SHA-256 the gap
    recorded. The head's gap count must match the gap records found. Writers
    are held off (shared ``flock``) while the files are read.
    """
    with shared_lock(path):
        return _verify(path)


def _verify(path: Path) -> VerifyReport:
    files = log_files(path)
    report = VerifyReport(files=files)
    head = load_head(path)
    known = head if isinstance(head, HeadRecord) else None
    prev_hash = GENESIS
    expected = 1
    prev_line: _Line | None = None
    head_line_hash: str | None = None
    pending: list[_Line] = []  # lines that are not records, waiting for a gap record to account for them
    gap_records = 0
    breaks: list[AuditProblem] = []  # at most one: the chain is not followed past a break
    lines = list(_lines(files))

    def fail(where: _Line, kind: ProblemKind, detail: str) -> None:
        problem = AuditProblem(where.file, where.number, kind, detail)
        report.problems.append(problem)
        breaks.append(problem)

    def found_gap(ln: _Line, rec: ChainRecord, *, evidence_ok: bool, chained: bool) -> None:
        gap = _gap(ln, rec, evidence_ok=evidence_ok, chained=chained)
        report.gaps.append(gap)
        report.problems.append(AuditProblem(ln.file, ln.number, "gap", gap.describe()))

    for index, ln in enumerate(lines):
        rec = parse_record(ln.raw) if ln.complete else None
        if breaks:
            # Past the first break only gap records are listed: every gap is reported.
            if rec is not None and rec.is_gap and _gap_valid(rec):
                found_gap(ln, rec, evidence_ok=False, chained=False)
            continue
        if rec is None:
            pending.append(ln)
            continue
        if rec.is_gap and not _gap_valid(rec):
            fail(ln, "edited", "not a valid gap record")
            continue
        want = rec.data.get("partial_sha256") if rec.is_gap else None
        if isinstance(want, str):
            blob = b"\n".join(x.raw for x in pending)
            size = rec.data["partial_bytes"]
            if not pending:
                fail(ln, "deleted", f"the {size}-byte line this gap record kept as evidence is gone")
            elif hashlib.sha256(blob).hexdigest() != want or len(blob) != size:
                fail(pending[0], "edited", f"not the evidence the gap record at line {ln.number} describes")
            pending = []
        if pending:
            fail(pending[0], *_stray(pending[0]))
        if breaks:
            if rec.is_gap:
                found_gap(ln, rec, evidence_ok=False, chained=False)
            continue
        seq, prev = rec.seq, rec.prev
        if prev == prev_hash:
            if rec.is_gap:
                d = rec.data
                fits = d["tail_seq"] == expected - 1 and d.get("tail_hash") == prev_hash
                if not fits or seq != max(d["head_seq"] or 0, d["tail_seq"]) + 1:
                    fail(ln, "edited", "this gap record's sequence numbers do not fit the chain")
            elif seq != expected:
                fail(ln, "edited", f"its sequence number says {seq}, the chain says {expected}")
        elif seq == expected:
            if prev_line is None:
                fail(ln, "edited", "the first entry does not start the chain")
            else:
                fail(
                    prev_line,
                    "edited",
                    f"its hash no longer matches the link stored in entry {seq} (this line or that link changed)",
                )
        elif seq > expected:
            if any(_seq_at(x) == expected for x in lines[index + 1 :]):
                fail(ln, "reordered", f"entry {seq} appears where entry {expected} belongs")
            else:
                gap = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
                fail(ln, "deleted", f"{gap} missing before this line")
        else:
            fail(ln, "reordered", f"entry {seq} repeated or out of order after entry {expected - 1}")
        if rec.is_gap:
            found_gap(ln, rec, evidence_ok=not breaks, chained=not breaks)
            gap_records += not breaks
        if breaks:
            continue
        prev_hash = rec.hash
        if known is not None and seq == known.seq:
            head_line_hash = prev_hash
        expected = seq + 1
        prev_line = ln
        report.entries += 1
    report.head = prev_hash
    if not breaks and pending:
        fail(pending[0], *_stray(pending[0]))
    if breaks:
        return report
    _check_head(path, report, head, expected - 1, head_line_hash, gap_records, lines, prev_line)
    return report


def _check_head(
    path: Path,
    report: VerifyReport,
    head: HeadState,
    last_seq: int,
    head_line_hash: str | None,
    gap_records: int,
    lines: list[_Line],
    prev_line: _Line | None,
) -> None:
    """The end of an intact chain against the head: nothing cut off, the gap count true."""
    files = report.files
    name = sidecar(path, "head").name
    end = _Line(files[-1] if files else path, (prev_line.number + 1) if prev_line else 1, b"", True)

    def fail(where: _Line, kind: ProblemKind, detail: str) -> None:
        report.problems.append(AuditProblem(where.file, where.number, kind, detail))

    if head == "missing":
        if last_seq > 0:
            fail(end, "truncated", f"the head file {name} is missing; cannot prove no entries were cut off the end")
        return
    if head == "unreadable":
        fail(end, "edited", f"the head file {name} is not valid")
        return
    if head.seq > last_seq:
        what = "the log is empty" if last_seq == 0 else f"the log ends at entry {last_seq}"
        fail(end, "truncated", f"{what} but the head records entry {head.seq}: entries were cut off")
        return
    if head.seq > 0 and head_line_hash != head.hash:
        where = next((x for x in lines if _seq_at(x) == head.seq), prev_line or end)
        fail(where, "edited", "this entry no longer matches the hash recorded in the head file")
        return
    if head.gaps != gap_records:
        fail(
            end,
            "edited",
            f"the head file {name} counts {head.gaps} gap record(s) but the log holds {gap_records}:"
            " a gap record was removed or the head was edited",
        )


def _stray(line: _Line) -> tuple[ProblemKind, str]:
    """Why a line that is not a record, and that no gap record accounts for, breaks the chain."""
    if line.complete:
        return "edited", "not a valid audit record (JSON with seq and prev expected)"
    return "truncated", "the line is cut short (no newline): the file was truncated"


def _seq_at(line: _Line) -> int | None:
    rec = parse_record(line.raw)
    return rec.seq if rec is not None else None
