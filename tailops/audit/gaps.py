"""Gap detection: before appending, a writer holds the log's end against its head.

Why it exists: the chain never heals itself. A writer whose view of the file is stale
(its first write, another process wrote, the file shrank or was replaced) compares the
file's tail (its last complete record, across rotated files) with the head and with its
own last record. On any mismatch (tail behind the head, a different record at the head's
seq, head missing or unreadable, a partial or unrecognised last line) :func:`reconcile`
returns the fields of a **gap record** naming what is missing, numbered after the highest
seq ever recorded; the writer appends it before the entry.

What it must never do: drop or rewrite a partial line (it is evidence: :func:`terminate`
only appends the newline it lacks), reuse a seq, or report a mismatch as no gap.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailops.audit.files import CHUNK, log_files
from tailops.audit.records import GAP_KIND, GENESIS, ChainRecord, HeadRecord, HeadState, parse_record
from tailops.auth import local_user

__all__ = ["Tip", "reconcile", "terminate"]

log = logging.getLogger("tailops.audit")

# How many records back from the tail a writer looks for the head's record when
# the head lags (a writer stopped between appending and updating the head).
_LAG_SCAN = 256


@dataclass
class Tip:
    """A writer's view of the log's end: what the next record links to and is numbered after."""

    ino: int  # live file inode and size this view was taken at
    size: int
    hash: str
    seq: int
    gaps: int


def reconcile(
    path: Path, fd: int, size: int, ino: int, head: HeadState, witness: Tip | None
) -> tuple[Tip, dict[str, Any] | None, list[Path | None]]:
    """Compare the end of the log at ``path`` (live file ``fd`` of ``size`` bytes, inode ``ino``)
    with ``head``: the tip to continue from, and a gap record's fields when they disagree (then
    the tip's seq is the highest seq ever recorded), and the files whose cut last line needs a newline
    (also without a gap: a record that lost only its newline is terminated, never appended to).

    ``witness`` is this writer's own last record: a second head that no
    other process can edit, so a log cut back while this process runs is
    caught even if the head file was rewritten to match.
    """
    known = head if isinstance(head, HeadRecord) else None
    source = "head"
    if witness is not None and (known is None or witness.seq >= known.seq):
        known = HeadRecord(witness.seq, witness.hash, max(witness.gaps, known.gaps if known else 0))
        source = "writer"
    end = _read_end(path, fd, size, known.seq if known else None)
    tail = end.records[0] if end.records else None
    tail_seq, tail_hash = (tail.seq, tail.hash) if tail else (0, GENESIS)
    reasons: list[str] = []
    missing: tuple[int | None, int | None] = (None, None)
    top = tail_seq
    head_lost = isinstance(head, str) and (tail is not None or end.evidence is not None or head == "unreadable")
    if known is not None:
        later = [r for r in end.records if r.seq > known.seq]
        gaps = known.gaps + sum(r.is_gap for r in later)
        top = max(known.seq, tail_seq)
        if tail_seq < known.seq:
            reasons.append("truncated")
            missing = (tail_seq + 1, known.seq)
        elif known.seq > 0 and not _links_to_head(end.records, known):
            reasons.append("replaced")
            missing = (known.seq, known.seq)
        elif later:
            log.warning(
                "audit head lagged behind the log (a writer stopped between its append and its head update)",
                extra={"path": str(path), "head_seq": known.seq, "tail_seq": tail_seq},
            )
    else:
        gaps = 0
        if head_lost:
            missing = (tail_seq + 1, None)
    if head_lost:  # whoever removed the head may have cut entries after it: count gaps afresh
        reasons.append(f"head_{head}")
        if missing[0] is None:
            missing = (tail_seq + 1, None)
        gaps = max(gaps, _count_gap_records(path))
    if end.evidence is not None:
        reasons.append("partial_line")
    tip = Tip(ino, size, tail_hash, top, gaps)
    if not reasons:
        return tip, None, end.unterminated
    fields: dict[str, Any] = {
        "kind": GAP_KIND,
        "reasons": reasons,
        "missing_from": missing[0],
        "missing_to": missing[1],
        "head_seq": known.seq if known else None,
        "head_hash": known.hash if known else None,
        "head_from": source if known else None,
        "tail_seq": tail_seq,
        "tail_hash": tail_hash,
        "partial_bytes": len(end.evidence) if end.evidence is not None else 0,
        "partial_sha256": hashlib.sha256(end.evidence).hexdigest() if end.evidence is not None else None,
        "partial_cut": bool(end.unterminated),
        "detected_by": {"pid": os.getpid(), "user": local_user()},
    }
    return tip, fields, end.unterminated


def _reverse_pieces(fd: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of ``fd`` split at newlines, newest first.

    The first piece is what follows the last newline (``b""`` when the data
    ends with one); the last piece is the first line.
    """
    pos = size
    carry = b""
    chunk = 4096  # the tail record is usually in the last few KiB: start small, grow
    while pos > 0:
        step = min(chunk, pos)
        chunk = min(chunk * 4, CHUNK)
        pos -= step
        parts = (os.pread(fd, step, pos) + carry).split(b"\n")
        carry = parts[0]
        yield from reversed(parts[1:])
    yield carry


@dataclass
class _End:
    """The end of the log as a writer sees it before appending."""

    records: list[ChainRecord]  # newest first, from the tail back to the head's seq (or a bound)
    evidence: bytes | None  # the lines after the last record that are not records, joined by newlines
    unterminated: list[Path | None]  # files of that evidence that end without a newline (None: the live file)


def _read_end(path: Path, fd: int, size: int, head_seq: int | None) -> _End:
    """Scan back from the end of the live file (then rotated files, newest first).

    Collect the lines after the last record that are not records (a cut
    line, unrecognised lines; possibly in a rotated file when the live file
    is gone) as evidence, then records until one at or below ``head_seq``
    (just the tail when the head is unknown), at most ``_LAG_SCAN`` of them.
    """
    records: list[ChainRecord] = []
    junk: list[bytes] = []  # newest first
    unterminated: list[Path | None] = []

    def scan(pieces: Iterator[bytes], where: Path | None) -> bool:
        """True once enough records are found."""
        cut = next(pieces)  # after the file's last newline
        if cut and not records:
            unterminated.append(where)
            # A piece that parses is a whole record whose newline alone was cut (a cut
            # anywhere inside a line leaves no JSON object): it stays a record, as the
            # verifier reads it once terminated. Anything else is evidence.
            rec = parse_record(cut)
            if rec is None:
                junk.append(cut)
            else:
                records.append(rec)
                if head_seq is None or rec.seq <= head_seq:
                    return True
        for piece in pieces:
            rec = parse_record(piece)
            if rec is None:
                if not records:
                    junk.append(piece)
                continue
            records.append(rec)
            if head_seq is None or rec.seq <= head_seq or len(records) >= _LAG_SCAN:
                return True
        return False

    done = scan(_reverse_pieces(fd, size), None) if size > 0 else False
    for older in reversed(log_files(path)) if not done else ():
        if older == path:
            continue
        with open(older, "rb") as fh:
            older_size = os.fstat(fh.fileno()).st_size
            if older_size and scan(_reverse_pieces(fh.fileno(), older_size), older):
                break
    evidence = b"\n".join(reversed(junk)) if junk else None
    return _End(records, evidence, unterminated)


def _count_gap_records(path: Path) -> int:
    """Gap records in every file (only when the head that counts them is gone)."""
    count = 0
    marker = f'"kind":"{GAP_KIND}"'.encode()
    for f in log_files(path):
        for raw in f.read_bytes().split(b"\n"):
            if marker in raw:
                rec = parse_record(raw)
                count += rec is not None and rec.is_gap
    return count


def terminate(path: Path) -> None:
    """End a rotated file's cut last line with a newline (appending only: the line stays as it was)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _links_to_head(records: list[ChainRecord], head: HeadRecord) -> bool:
    """The head's record is among ``records`` (newest first) and each later one links to it."""
    for i, rec in enumerate(records):
        if rec.seq == head.seq:
            return rec.hash == head.hash and all(records[j].prev == records[j + 1].hash for j in range(i))
    return False
