"""Audit log: the hash chain, every kind of tampering, rotation, concurrency, redaction."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tailops.audit import GENESIS, AuditLog, log_files, record_cli, tail, verify
from tailops.errors import AuditError

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
