"""Audit log: the hash chain, every kind of tampering, rotation, concurrency, redaction."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailops.audit import GAP_KIND, AuditLog, AuditStatus, log_files, record_cli, tail, verify
from tailops.audit.records import GENESIS
from tailops.audit.status import read_status
from tailops.config import Settings
from tailops.errors import AuditError
from tests.servers import http_server

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlX2J5dGVz"


def _write(log: AuditLog, n: int, start: int = 0, **extra: Any) -> None:
    for i in range(start, start + n):
        log.record({"kind": "tool", "tool": f"t{i}", "args": {"i": i}, **extra})


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit" / "audit.jsonl")


def test_chain_links_each_line_to_the_previous_bytes(log: AuditLog) -> None:
    _write(log, 5)
    lines = _lines(log.path)
    assert len(lines) == 5
    records = [json.loads(x) for x in lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev"] == GENESIS
    for before, rec in zip(lines, records[1:], strict=False):
        assert rec["prev"] == hashlib.sha256(before).hexdigest()
    assert all(r["ts"].endswith("Z") for r in records)
    report = verify(log.path)
    assert report.ok and report.entries == 5
    assert report.head == hashlib.sha256(lines[-1]).hexdigest()
    assert oct(log.path.stat().st_mode & 0o777) == "0o600"


def test_secrets_are_redacted_before_they_reach_the_file(log: AuditLog) -> None:
    log.record({"args": {"password": "hunter2", "note": f"use {JWT}", "db_password": "pw2"}, "seq": 99})
    text = log.path.read_text()
    for secret in ("hunter2", JWT, "pw2"):
        assert secret not in text
    assert json.loads(text)["seq"] == 1  # reserved keys cannot be forged by an entry


def test_a_new_instance_continues_the_chain(log: AuditLog) -> None:
    _write(log, 3)
    log.close()
    again = AuditLog(log.path)
    _write(again, 2, start=3)
    assert verify(log.path).entries == 5


# -- tampering -------------------------------------------------------------------------


def _tamper(path: Path, kind: str) -> None:
    lines = _lines(path)
    if kind == "edit_middle":
        lines[2] = lines[2].replace(b'"t2"', b'"tX"')
    elif kind == "edit_first":
        lines[0] = lines[0].replace(b'"t0"', b'"tX"')
    elif kind == "edit_last":
        lines[-1] = lines[-1].replace(b'"t5"', b'"tX"')
    elif kind == "edit_seq":
        rec = json.loads(lines[3])
        rec["seq"] = 40
        lines[3] = json.dumps(rec, separators=(",", ":")).encode()
    elif kind == "not_json":
        lines[1] = b"garbage"
    elif kind == "delete_middle":
        del lines[2]
    elif kind == "delete_first":
        del lines[0]
    elif kind == "delete_two":
        del lines[2:4]
    elif kind == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    elif kind == "duplicate":
        lines.insert(3, lines[2])
    elif kind == "delete_last":
        del lines[-1]
    elif kind == "cut_mid_line":
        data = b"\n".join(lines) + b"\n"
        path.write_bytes(data[: len(data) - 20])
        return
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize(
    ("kind", "expected", "line"),
    [
        ("edit_middle", "edited", 3),
        ("edit_first", "edited", 1),
        ("edit_last", "edited", 6),
        ("edit_seq", "edited", 4),
        ("not_json", "edited", 2),
        ("delete_middle", "deleted", 3),
        ("delete_first", "deleted", 1),
        ("delete_two", "deleted", 3),
        ("swap", "reordered", 2),
        ("duplicate", "reordered", 4),
        ("delete_last", "truncated", 6),
        ("cut_mid_line", "truncated", 6),
    ],
)
def test_verify_names_the_first_broken_line(log: AuditLog, kind: str, expected: str, line: int) -> None:
    _write(log, 6)
    assert verify(log.path).ok
    _tamper(log.path, kind)
    report = verify(log.path)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.kind == expected, report.problem.describe()
    assert report.problem.file == log.path
    assert report.problem.line == line, report.problem.describe()


def test_missing_or_corrupt_head_file_fails_verification(log: AuditLog) -> None:
    _write(log, 3)
    head = log.path.with_name("audit.jsonl.head")
    saved = head.read_bytes()
    head.write_bytes(b"{nonsense")
    assert verify(log.path).problem is not None
    head.unlink()
    report = verify(log.path)
    assert report.problem is not None and report.problem.kind == "truncated"
    head.write_bytes(saved)
    assert verify(log.path).ok


def test_emptied_log_is_truncation(log: AuditLog) -> None:
    _write(log, 3)
    log.path.write_bytes(b"")
    report = verify(log.path)
    assert report.problem is not None and report.problem.kind == "truncated"


def test_empty_log_verifies(tmp_path: Path) -> None:
    report = verify(tmp_path / "none" / "audit.jsonl")
    assert report.ok and report.entries == 0


def test_a_crash_leftover_partial_line_is_kept_as_evidence_and_recorded_as_a_gap(log: AuditLog) -> None:
    _write(log, 3)
    log.close()
    cut = b'{"seq":4,"ts":"2026-01-01T00:00:00'  # the write that never finished
    with open(log.path, "ab") as fh:
        fh.write(cut)
    report = verify(log.path)
    assert report.problem is not None and report.problem.kind == "truncated" and report.problem.line == 4
    _write(AuditLog(log.path), 1, start=3)
    lines = _lines(log.path)
    assert lines[3] == cut  # kept, terminated by a newline, never dropped
    gap, entry = json.loads(lines[4]), json.loads(lines[5])
    assert gap["kind"] == "audit_gap" and gap["reasons"] == ["partial_line"]
    assert gap["partial_bytes"] == len(cut) and gap["partial_sha256"] == hashlib.sha256(cut).hexdigest()
    assert gap["partial_cut"] is True
    assert gap["prev"] == hashlib.sha256(lines[2]).hexdigest()  # linked to the last complete record
    assert entry["tool"] == "t3" and entry["prev"] == hashlib.sha256(lines[4]).hexdigest()
    report = verify(log.path)
    assert not report.ok and [p.kind for p in report.problems] == ["gap"]
    assert report.gaps[0].evidence_ok and report.gaps[0].line == 5
    assert "34 bytes of a cut or unrecognised line kept as evidence" in report.problems[0].detail


# -- rotation -------------------------------------------------------------------------


def test_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, rotate_bytes=1500)
    _write(log, 40)
    files = log_files(path)
    assert len(files) >= 3
    assert files[0].name == "audit.jsonl.1" and files[-1] == path
    assert [f.name for f in files[:-1]] == [f"audit.jsonl.{i}" for i in range(1, len(files))]
    assert all(f.stat().st_size <= 1500 for f in files)
    # The first line of each file links to the last line of the one before.
    for older, newer in itertools.pairwise(files):
        first = json.loads(_lines(newer)[0])
        assert first["prev"] == hashlib.sha256(_lines(older)[-1]).hexdigest()
    report = verify(path)
    assert report.ok and report.entries == 40 and report.files == files
    # tail reads across file boundaries
    last = [json.loads(x)["seq"] for x in tail(path, 25)]
    assert last == list(range(16, 41))


def test_tampering_across_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(AuditLog(path, rotate_bytes=1500), 40)
    files = log_files(path)
    # A whole rotated file removed: entries missing.
    saved = files[1].read_bytes()
    files[1].unlink()
    report = verify(path)
    assert report.problem is not None and report.problem.kind == "deleted"
    assert report.problem.file == files[2] and report.problem.line == 1
    files[1].write_bytes(saved)
    assert verify(path).ok
    # Two rotated files swapped: out of order.
    a, b = files[0].read_bytes(), files[1].read_bytes()
    files[0].write_bytes(b)
    files[1].write_bytes(a)
    report = verify(path)
    assert report.problem is not None and report.problem.kind == "reordered"
    assert report.problem.file == files[0]


# -- concurrency ---------------------------------------------------------------------


def test_threads_never_interleave_or_break_the_chain(log: AuditLog) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(150):
                log.record({"kind": "tool", "tool": f"w{n}", "args": {"i": i, "pad": "x" * (i % 50)}}, sync=i % 50 == 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    lines = _lines(log.path)
    assert len(lines) == 1200
    assert all(json.loads(x)["kind"] == "tool" for x in lines)
    report = verify(log.path)
    assert report.ok and report.entries == 1200


_CHILD = """
import sys
from pathlib import Path
from tailops.audit import AuditLog
log = AuditLog(Path(sys.argv[1]), rotate_bytes=int(sys.argv[3]))
for i in range(int(sys.argv[2])):
    log.record({"kind": "cli", "command": "child", "args": {"i": i, "pid": sys.argv[4]}})
"""


def test_processes_and_threads_keep_one_valid_chain_with_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    rotate = 20_000
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(path), "300", str(rotate), str(n)]) for n in range(3)]
    here = AuditLog(path, rotate_bytes=rotate)

    def local() -> None:
        for i in range(150):
            here.record({"kind": "tool", "tool": "local", "args": {"i": i}})

    threads = [threading.Thread(target=local) for _ in range(2)]
    for t in threads:
        t.start()
    for p in procs:
        assert p.wait(timeout=120) == 0
    for t in threads:
        t.join(timeout=60)
    report = verify(path)
    assert report.ok, report.problem and report.problem.describe()
    assert not report.gaps and _head(path)["gaps"] == 0  # no false gaps from interleaved writers
    assert report.entries == 3 * 300 + 2 * 150
    assert len(report.files) > 2  # rotation happened while several processes wrote
    seqs = [json.loads(x)["seq"] for f in report.files for x in _lines(f)]
    assert seqs == list(range(1, 1201))


# -- durability and failures -----------------------------------------------------------


def test_sync_records_are_fsynced(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)  # the same module object tailops.audit uses
    log.record({"kind": "tool"})
    assert calls == []
    log.record({"kind": "tool"}, sync=True)
    assert len(calls) >= 1


def test_unwritable_log_raises_audit_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    _write(log, 1)
    path.rename(tmp_path / "moved.jsonl")
    path.mkdir()  # the live file is now a directory: every write must fail loudly
    with pytest.raises(AuditError, match="cannot write the audit log"):
        log.record({"kind": "tool"})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AuditError, match="cannot create"):
        AuditLog(blocker / "audit.jsonl")


def test_record_cli_names_the_local_user(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    record_cli(path, "token revoke", {"jti": "abc"}, outcome="ok", newly_revoked=True)
    rec = json.loads(path.read_text())
    assert rec["kind"] == "cli" and rec["command"] == "token revoke"
    assert rec["principal"]["transport"] == "cli" and rec["principal"]["sub"].startswith("local:")
    assert rec["newly_revoked"] is True and rec["outcome"] == "ok"


def test_tail_returns_the_newest_lines_in_order(log: AuditLog) -> None:
    assert tail(log.path, 5) == []
    _write(log, 10)
    assert [json.loads(x)["seq"] for x in tail(log.path, 3)] == [8, 9, 10]
    assert len(tail(log.path, 100)) == 10
    assert [e["seq"] for e in log.tail(2)] == [9, 10]


# -- the chain never heals: truncation, cut lines, lost heads (issue 13) ----------------
#
# Each damage below is followed by an append, as a running server or the next CLI
# command would do. Before the fix the append re-read the shortened tail, reused its
# sequence numbers, rewrote the head, and verify said OK again.


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    for f in log_files(path):
        for raw in _lines(f):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and "seq" in rec:
                out.append(rec)
    return out


def _all_lines(path: Path) -> list[bytes]:
    return [raw for f in log_files(path) for raw in _lines(f)]


def _head(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".head").read_bytes())
    return data


def _cut_records(path: Path, n: int) -> None:
    """Remove the last ``n`` lines of the log, newest file first (files emptied, not deleted)."""
    for f in reversed(log_files(path)):
        lines = _lines(f)
        take = min(n, len(lines))
        keep = lines[: len(lines) - take]
        f.write_bytes(b"".join(x + b"\n" for x in keep))
        n -= take
        if n == 0:
            return


def _damage(path: Path, kind: str) -> None:
    head = path.with_name(path.name + ".head")
    if kind == "cut_3":
        _cut_records(path, 3)
    elif kind == "cut_into_rotated":
        _cut_records(path, len(_lines(path)) + 2)
    elif kind == "empty_live":
        path.write_bytes(b"")
    elif kind == "delete_live":
        path.unlink()
    elif kind == "head_deleted":
        head.unlink()
    elif kind == "head_garbage":
        head.write_bytes(b"{not a head")
    elif kind == "last_replaced":
        lines = _lines(path)
        lines[-1] = lines[-1].replace(b'"t39"', b'"tX"')
        path.write_bytes(b"\n".join(lines) + b"\n")
    else:
        raise AssertionError(kind)


def _rotated_log(path: Path) -> AuditLog:
    log = AuditLog(path, rotate_bytes=1500)
    _write(log, 40)
    assert len(log_files(path)) >= 3 and verify(path).ok
    return log


DAMAGES = {
    "cut_3": ["truncated"],
    "cut_into_rotated": ["truncated"],
    "empty_live": ["truncated"],
    "delete_live": ["truncated"],
    "head_deleted": ["head_missing"],
    "head_garbage": ["head_unreadable"],
    "last_replaced": ["replaced"],
}


@pytest.mark.parametrize(
    ("kind", "writer"),
    [(k, w) for k in sorted(DAMAGES) for w in ("same", "new") if not (w == "same" and k.startswith("head_"))],
)
def test_damage_then_append_stays_reported_as_a_gap(tmp_path: Path, kind: str, writer: str) -> None:
    path = tmp_path / "audit.jsonl"
    log = _rotated_log(path)
    before = {json.loads(x)["seq"]: x for x in _all_lines(path)}
    _damage(path, kind)
    assert not verify(path).ok  # the damage itself was always found
    appender = log if writer == "same" else AuditLog(path, rotate_bytes=1500)  # the server, or a CLI command
    appender.record({"kind": "tool", "tool": "after"})
    report = verify(path)
    assert not report.ok, "the chain healed itself"
    assert [p.kind for p in report.problems] == ["gap"], [p.describe() for p in report.problems]
    [gap] = report.gaps
    assert list(gap.reasons) == DAMAGES[kind] and gap.chained
    recs = _records(path)
    survivors = [r for r in recs if r.get("kind") == "tool" and r["tool"] != "after"]
    tail_seq = survivors[-1]["seq"]
    gap_rec, entry = recs[-2], recs[-1]
    # The gap: linked to the last record that survived, numbered after the highest seq ever
    # recorded (40: sequence numbers are never reused), and it names what is missing.
    assert gap_rec["kind"] == "audit_gap" and gap_rec["seq"] == 41 and gap_rec["tail_seq"] == tail_seq
    assert gap_rec["prev"] == hashlib.sha256(before[tail_seq]).hexdigest() or kind == "last_replaced"
    if kind in ("cut_3", "cut_into_rotated", "empty_live", "delete_live"):
        assert (gap_rec["missing_from"], gap_rec["missing_to"]) == (tail_seq + 1, 40)
        assert f"entries {tail_seq + 1}-40 missing" in report.problems[0].detail
    elif kind == "last_replaced":
        assert (gap_rec["missing_from"], gap_rec["missing_to"]) == (40, 40)
    else:
        assert gap_rec["missing_from"] == 41 and gap_rec["missing_to"] is None
    # The new entry is there, right after the gap and linked to it.
    assert entry["tool"] == "after" and entry["seq"] == 42
    lines = _all_lines(path)
    assert entry["prev"] == hashlib.sha256(lines[-2]).hexdigest()
    assert _head(path)["seq"] == 42 and _head(path)["gaps"] == 1
    # More appends never heal it, and never invent another gap.
    _write(AuditLog(path, rotate_bytes=1500), 3, start=100)
    _write(log, 2, start=200)
    again = verify(path)
    assert [p.kind for p in again.problems] == ["gap"]
    assert [(g.seq, g.reasons, g.detected) for g in again.gaps] == [(41, gap.reasons, gap.detected)]
    seqs = [r["seq"] for r in _records(path)]
    assert seqs == sorted(set(seqs))  # strictly increasing: nothing reused


def test_a_head_rewound_to_match_a_cut_log_is_caught_by_the_running_writer(tmp_path: Path) -> None:
    """The server remembers its own last record: cutting the log and rewriting the head to
    match is still a gap while it runs (a stopped server cannot witness; see docs)."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    _write(log, 10)
    _cut_records(path, 4)
    last = _lines(path)[-1]
    head = path.with_name("audit.jsonl.head")
    head.write_bytes(json.dumps({"seq": 6, "hash": hashlib.sha256(last).hexdigest()}).encode())
    assert verify(path).ok  # a consistent rewrite of log and head is what a hash chain cannot see
    log.record({"kind": "tool", "tool": "after"})
    report = verify(path)
    assert not report.ok and [g.reasons for g in report.gaps] == [("truncated",)]
    assert (report.gaps[0].missing_from, report.gaps[0].missing_to) == (7, 10)
    assert json.loads(_lines(path)[-2])["head_from"] == "writer"


def test_head_damage_under_a_running_writer_is_never_silent(tmp_path: Path) -> None:
    """A writer whose view of the log is current does not re-read the head per append (that
    would cost every call a syscall): it rewrites the head from its own last record. An
    edited head, the log untouched, is thus restored to the truth (nothing was lost); a
    deleted head keeps failing verify and /health until the next writer that starts fresh
    records it as a gap."""
    path = tmp_path / "audit.jsonl"
    log = _rotated_log(path)
    head = path.with_name("audit.jsonl.head")
    head.write_bytes(b"{not a head")
    log.record({"kind": "tool", "tool": "after"})
    assert verify(path).ok and _head(path)["seq"] == 41
    head.unlink()
    log.record({"kind": "tool", "tool": "after 2"})
    report = verify(path)
    assert report.problem is not None and report.problem.kind == "truncated" and "missing" in report.problem.detail
    assert read_status(path).head == "missing" and not read_status(path).ok
    AuditLog(path, rotate_bytes=1500).record({"kind": "cli", "command": "token revoke"})
    log.record({"kind": "tool", "tool": "after 3"})
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap"] and report.gaps[0].reasons == ("head_missing",)
    assert report.gaps[0].seq == 43 and _head(path) == {"seq": 45, "hash": report.head, "gaps": 1}


def test_unrecognised_lines_appended_are_kept_as_evidence(log: AuditLog) -> None:
    _write(log, 3)
    with open(log.path, "ab") as fh:
        fh.write(b'junk\n\n{"seq": 99}\n')  # complete lines, but not records
    log.record({"kind": "tool", "tool": "after"})
    lines = _lines(log.path)
    assert lines[3:6] == [b"junk", b"", b'{"seq": 99}']
    gap = json.loads(lines[6])
    assert gap["reasons"] == ["partial_line"] and gap["partial_cut"] is False
    assert gap["partial_sha256"] == hashlib.sha256(b'junk\n\n{"seq": 99}').hexdigest()
    assert gap["seq"] == 4 and gap["prev"] == hashlib.sha256(lines[2]).hexdigest()
    report = verify(log.path)
    assert [p.kind for p in report.problems] == ["gap"] and report.gaps[0].evidence_ok


@pytest.mark.parametrize("how", ["edit", "delete", "extend"])
def test_evidence_kept_before_a_gap_cannot_be_changed_unnoticed(log: AuditLog, how: str) -> None:
    _write(log, 3)
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq":4,"ts":"cut here')
    _write(log, 2, start=3)
    lines = _lines(log.path)
    assert verify(log.path).gaps[0].evidence_ok
    if how == "edit":
        lines[3] = lines[3].replace(b"cut", b"CUT")
    elif how == "delete":
        del lines[3]
    else:
        lines.insert(3, b"more junk")
    log.path.write_bytes(b"\n".join(lines) + b"\n")
    report = verify(log.path)
    breaks = [p for p in report.problems if p.kind != "gap"]
    assert len(breaks) == 1 and report.gaps, [p.describe() for p in report.problems]
    if how == "delete":
        assert breaks[0].kind == "deleted" and breaks[0].line == 4  # the gap record names what is gone
    else:
        assert breaks[0].kind == "edited" and breaks[0].line == 4


@pytest.mark.parametrize("how", ["delete_gap", "edit_gap", "rechain_without_gap", "head_count"])
def test_removing_or_editing_a_gap_record_is_detected(log: AuditLog, how: str) -> None:
    _write(log, 6)
    _cut_records(log.path, 2)
    _write(log, 3, start=10)
    lines = _lines(log.path)
    gap_at = next(i for i, x in enumerate(lines) if b"audit_gap" in x)
    head = log.path.with_name("audit.jsonl.head")
    if how == "delete_gap":
        del lines[gap_at]
    elif how == "edit_gap":
        lines[gap_at] = lines[gap_at].replace(b'"missing_from":5', b'"missing_from":6')
    elif how == "rechain_without_gap":
        # Drop the gap and forge a consistent chain and head after it, gap count left as it was.
        del lines[gap_at]
        prev = hashlib.sha256(lines[gap_at - 1]).hexdigest()
        for i in range(gap_at, len(lines)):
            rec = json.loads(lines[i])
            rec["seq"], rec["prev"] = i + 1, prev
            lines[i] = json.dumps(rec, separators=(",", ":")).encode()
            prev = hashlib.sha256(lines[i]).hexdigest()
        data = _head(log.path)
        head.write_bytes(json.dumps({"seq": len(lines), "hash": prev, "gaps": data["gaps"]}).encode())
    else:
        data = _head(log.path)
        head.write_bytes(json.dumps({**data, "gaps": 0}).encode())
    if how != "head_count":
        log.path.write_bytes(b"\n".join(lines) + b"\n")
    report = verify(log.path)
    assert not report.ok
    kinds = [p.kind for p in report.problems]
    if how == "delete_gap":
        assert kinds == ["deleted"]
    elif how == "edit_gap":
        assert kinds == ["gap", "edited"] and report.problems[1].line == gap_at + 1
    else:
        assert kinds[-1] == "edited" and "counts" in report.problems[-1].detail


def test_an_edit_after_a_gap_is_still_found_and_every_gap_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    _write(log, 8)
    _cut_records(path, 3)
    _write(log, 4, start=10)  # gap 1 (entries 6-8)
    _cut_records(path, 2)
    _write(log, 4, start=20)  # gap 2
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap", "gap"]
    assert [(g.missing_from, g.missing_to) for g in report.gaps] == [(6, 8), (12, 13)]
    assert report.gaps[0].seq == 9 and report.gaps[1].seq == 14
    assert all(g.detected.endswith("Z") and g.chained for g in report.gaps)
    assert _head(path)["gaps"] == 2
    lines = _lines(path)
    lines[-2] = lines[-2].replace(b'"t22"', b'"tX"')  # an edit after both gaps
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap", "gap", "edited"]
    assert report.problems[-1].line == len(lines) - 1
    # A break before a gap does not hide it.
    lines[0] = lines[0].replace(b'"t0"', b'"tX"')
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = verify(path)
    assert [p.kind for p in report.problems] == ["edited", "gap", "gap"]
    assert not any(g.chained for g in report.gaps)


def test_a_head_left_behind_by_a_stopped_writer_is_no_gap(log: AuditLog) -> None:
    """A writer killed between its append and its head update leaves the head one record
    behind: the record the head names is still there and linked, nothing is missing."""
    _write(log, 5)
    head = log.path.with_name("audit.jsonl.head")
    stale = head.read_bytes()
    other = AuditLog(log.path)
    other.record({"kind": "tool", "tool": "killed before its head update"})
    head.write_bytes(stale)
    assert verify(log.path).ok  # a head behind an intact chain proves nothing was cut
    _write(log, 2, start=10)
    report = verify(log.path)
    assert report.ok and report.entries == 8 and not report.gaps


def test_a_long_normal_log_has_no_gaps(tmp_path: Path) -> None:
    """No false alarms: many writers (instances), rotation, reopening, thousands of records."""
    path = tmp_path / "audit.jsonl"
    writers = [AuditLog(path, rotate_bytes=20_000) for _ in range(3)]
    for i in range(3000):
        writers[i % 7 % 3].record({"kind": "tool", "tool": "t", "args": {"i": i}}, sync=i % 500 == 0)
        if i % 1000 == 999:
            writers[0].close()
    report = verify(path)
    assert report.ok and report.entries == 3000 and not report.gaps and len(report.files) > 5
    assert not any(b"audit_gap" in x for x in _all_lines(path))
    status = read_status(path)
    assert status.ok and status.gaps == 0 and status.seq == 3000


def test_read_status_is_the_cheap_alarm(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    assert read_status(path) == AuditStatus(0, "empty")
    log = AuditLog(path)
    _write(log, 4)
    assert read_status(path).ok and read_status(path).seq == 4
    _cut_records(path, 1)
    _write(log, 1, start=9)
    status = read_status(path)
    assert not status.ok and status.gaps == 1 and "1 gap record(s)" in status.describe()
    head = path.with_name("audit.jsonl.head")
    head.write_bytes(b"garbage")
    assert read_status(path).head == "unreadable" and not read_status(path).ok
    head.unlink()
    assert read_status(path).head == "missing" and not read_status(path).ok


def test_entries_cannot_pose_as_gap_records(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="reserved"):
        log.record({"kind": GAP_KIND, "missing_from": 1})
    assert not log.path.exists() or log.path.read_bytes() == b""


def test_the_gap_alarm_is_logged_as_an_error_without_the_cut_bytes(
    log: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    _write(log, 2)
    cut = b'{"seq":3,"args":{"note":"secret-ish words'
    with open(log.path, "ab") as fh:
        fh.write(cut)
    with caplog.at_level("ERROR", logger="tailops.audit"):
        log.record({"kind": "tool"})
    [rec] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "audit log gap" in rec.getMessage()
    assert rec.__dict__["reasons"] == ["partial_line"] and rec.__dict__["partial_bytes"] == len(cut)
    assert "secret-ish" not in json.dumps({k: str(v) for k, v in rec.__dict__.items()})


# A cut anywhere (any byte, any file, the rotated ones included), then one append: verify
# fails with a gap forever, the new entry is there and linked, and the chain after the gap
# checks out (the cut line, if any, is kept as evidence that still matches).
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(min_value=0.0, max_value=0.999), same_writer=st.booleans())
def test_a_cut_at_any_byte_is_a_gap_forever(tmp_path: Path, cut: float, same_writer: bool) -> None:
    path = tmp_path / f"c{os.urandom(4).hex()}" / "audit.jsonl"
    log = _rotated_log(path)
    files = log_files(path)
    total = sum(f.stat().st_size for f in files)
    offset = int(total * cut)
    for f in files:
        size = f.stat().st_size
        if offset < size:
            with open(f, "r+b") as fh:
                fh.truncate(offset)
            offset = 0
            for later in files[files.index(f) + 1 :]:
                later.unlink()
            break
        offset -= size
    appender = log if same_writer else AuditLog(path, rotate_bytes=1500)
    appender.record({"kind": "tool", "tool": "after"})
    report = verify(path)
    assert not report.ok
    assert [p.kind for p in report.problems] == ["gap"], [p.describe() for p in report.problems]
    [gap] = report.gaps
    assert gap.evidence_ok and gap.chained and gap.seq == 41
    recs = _records(path)
    assert recs[-1]["tool"] == "after" and recs[-1]["seq"] == 42
    assert recs[-1]["prev"] == hashlib.sha256(_all_lines(path)[-2]).hexdigest()
    log.close()


# -- the alarm: /health and /metrics of a real server -----------------------------------


def _gauge(text: str, name: str) -> float:
    [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_health_and_metrics_raise_the_audit_alarm(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with http_server(settings) as srv:
        admin = {"Authorization": f"Bearer {srv.mint('ops', 'admin')}"}

        def refused_request() -> None:  # audited by the server's own writer
            r = httpx2.get(f"{srv.base_url}/mcp", headers={"Authorization": "Bearer not-a-token"}, timeout=10)
            assert r.status_code == 401

        for _ in range(4):
            refused_request()
        health = httpx2.get(f"{srv.base_url}/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["checks"]["audit"]["status"] == "ok"
        metrics = httpx2.get(f"{srv.base_url}/metrics", headers=admin, timeout=10).text
        assert _gauge(metrics, "tailops_audit_gaps") == 0
        _cut_records(settings.audit_path, 2)  # a plain truncate under the running server
        refused_request()
        health = httpx2.get(f"{srv.base_url}/health", timeout=10)
        # Degraded but serving (200, like Docker down): the log still records everything,
        # and no restart can bring the lost entries back.
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded" and body["checks"]["audit"]["status"] == "failed"
        assert "1 gap record(s)" in body["checks"]["audit"]["detail"]
        assert body["checks"]["store"]["status"] == "ok"
        metrics = httpx2.get(f"{srv.base_url}/metrics", headers=admin, timeout=10).text
        assert _gauge(metrics, "tailops_audit_gaps") == 1
        # The head vanishing is an alarm at once, before the next append turns it into a gap.
        settings.audit_path.with_name("audit.jsonl.head").unlink()
        assert httpx2.get(f"{srv.base_url}/health", timeout=10).json()["checks"]["audit"]["status"] == "failed"
        metrics = httpx2.get(f"{srv.base_url}/metrics", headers=admin, timeout=10).text
        assert _gauge(metrics, "tailops_audit_gaps") >= 1
    report = verify(settings.audit_path)
    assert [g.reasons for g in report.gaps][:1] == [("truncated",)]


def test_processes_racing_after_a_cut_record_exactly_one_gap(tmp_path: Path) -> None:
    """The first writer after the cut records the gap; the others see a consistent end."""
    path = tmp_path / "audit.jsonl"
    here = AuditLog(path, rotate_bytes=20_000)
    _write(here, 30)
    _cut_records(path, 5)
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(path), "100", "20000", str(n)]) for n in range(2)]
    for i in range(100):
        here.record({"kind": "tool", "tool": "local", "args": {"i": i}})
    for p in procs:
        assert p.wait(timeout=120) == 0
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap"], [p.describe() for p in report.problems]
    assert (report.gaps[0].missing_from, report.gaps[0].missing_to) == (26, 30) and report.gaps[0].seq == 31
    assert report.entries == 25 + 1 + 300 and _head(path)["gaps"] == 1
