"""The audit writer: the hash chain, redaction, rotation, concurrency across threads and processes,
durability and failures."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tailops.audit import GAP_KIND, AuditLog, log_files, record_cli, tail, verify
from tailops.audit.records import GENESIS
from tailops.errors import AuditError
from tests.unit.audit.logs import (
    CHILD_WRITER,
    file_lines,
    head_of,
    write_entries,
)

JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlX2J5dGVz"


def test_chain_links_each_line_to_the_previous_bytes(log: AuditLog) -> None:
    write_entries(log, 5)
    lines = file_lines(log.path)
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
    write_entries(log, 3)
    log.close()
    again = AuditLog(log.path)
    write_entries(again, 2, start=3)
    assert verify(log.path).entries == 5


def test_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, rotate_bytes=1500)
    write_entries(log, 40)
    files = log_files(path)
    assert len(files) >= 3
    assert files[0].name == "audit.jsonl.1" and files[-1] == path
    assert [f.name for f in files[:-1]] == [f"audit.jsonl.{i}" for i in range(1, len(files))]
    assert all(f.stat().st_size <= 1500 for f in files)
    # The first line of each file links to the last line of the one before.
    for older, newer in itertools.pairwise(files):
        first = json.loads(file_lines(newer)[0])
        assert first["prev"] == hashlib.sha256(file_lines(older)[-1]).hexdigest()
    report = verify(path)
    assert report.ok and report.entries == 40 and report.files == files
    # tail reads across file boundaries
    last = [json.loads(x)["seq"] for x in tail(path, 25)]
    assert last == list(range(16, 41))


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
    lines = file_lines(log.path)
    assert len(lines) == 1200
    assert all(json.loads(x)["kind"] == "tool" for x in lines)
    report = verify(log.path)
    assert report.ok and report.entries == 1200


def test_processes_and_threads_keep_one_valid_chain_with_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    rotate = 20_000
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(path), "300", str(rotate), str(n)]) for n in range(3)
    ]
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
    assert not report.gaps and head_of(path)["gaps"] == 0  # no false gaps from interleaved writers
    assert report.entries == 3 * 300 + 2 * 150
    assert len(report.files) > 2  # rotation happened while several processes wrote
    seqs = [json.loads(x)["seq"] for f in report.files for x in file_lines(f)]
    assert seqs == list(range(1, 1201))


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
    write_entries(log, 1)
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


def test_entries_cannot_pose_as_gap_records(log: AuditLog) -> None:
    with pytest.raises(ValueError, match="reserved"):
        log.record({"kind": GAP_KIND, "missing_from": 1})
    assert not log.path.exists() or log.path.read_bytes() == b""
