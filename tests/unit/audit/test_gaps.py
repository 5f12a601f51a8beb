"""The chain never heals: truncation, cut lines, lost heads (issue 13).

Each damage below is followed by an append, as a running server or the next CLI
command would do. Before the fix the append re-read the shortened tail, reused its
sequence numbers, rewrote the head, and verify said OK again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tailops.audit import AuditLog, log_files, verify
from tailops.audit.status import read_status
from tests.unit.audit.logs import (
    CHILD_WRITER,
    DAMAGES,
    all_lines,
    cut_records,
    damage,
    file_lines,
    head_of,
    records_of,
    rotated_log,
    write_entries,
)


def test_a_crash_leftover_partial_line_is_kept_as_evidence_and_recorded_as_a_gap(log: AuditLog) -> None:
    write_entries(log, 3)
    log.close()
    cut = b'{"seq":4,"ts":"2026-01-01T00:00:00'  # the write that never finished
    with open(log.path, "ab") as fh:
        fh.write(cut)
    report = verify(log.path)
    assert report.problem is not None and report.problem.kind == "truncated" and report.problem.line == 4
    write_entries(AuditLog(log.path), 1, start=3)
    lines = file_lines(log.path)
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


@pytest.mark.parametrize(
    ("kind", "writer"),
    [(k, w) for k in sorted(DAMAGES) for w in ("same", "new") if not (w == "same" and k.startswith("head_"))],
)
def test_damage_then_append_stays_reported_as_a_gap(tmp_path: Path, kind: str, writer: str) -> None:
    path = tmp_path / "audit.jsonl"
    log = rotated_log(path)
    before = {json.loads(x)["seq"]: x for x in all_lines(path)}
    damage(path, kind)
    assert not verify(path).ok  # the damage itself was always found
    appender = log if writer == "same" else AuditLog(path, rotate_bytes=1500)  # the server, or a CLI command
    appender.record({"kind": "tool", "tool": "after"})
    report = verify(path)
    assert not report.ok, "the chain healed itself"
    assert [p.kind for p in report.problems] == ["gap"], [p.describe() for p in report.problems]
    [gap] = report.gaps
    assert list(gap.reasons) == DAMAGES[kind] and gap.chained
    recs = records_of(path)
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
    lines = all_lines(path)
    assert entry["prev"] == hashlib.sha256(lines[-2]).hexdigest()
    assert head_of(path)["seq"] == 42 and head_of(path)["gaps"] == 1
    # More appends never heal it, and never invent another gap.
    write_entries(AuditLog(path, rotate_bytes=1500), 3, start=100)
    write_entries(log, 2, start=200)
    again = verify(path)
    assert [p.kind for p in again.problems] == ["gap"]
    assert [(g.seq, g.reasons, g.detected) for g in again.gaps] == [(41, gap.reasons, gap.detected)]
    seqs = [r["seq"] for r in records_of(path)]
    assert seqs == sorted(set(seqs))  # strictly increasing: nothing reused


def test_a_head_rewound_to_match_a_cut_log_is_caught_by_the_running_writer(tmp_path: Path) -> None:
    """The server remembers its own last record: cutting the log and rewriting the head to
    match is still a gap while it runs (a stopped server cannot witness; see docs)."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    write_entries(log, 10)
    cut_records(path, 4)
    last = file_lines(path)[-1]
    head = path.with_name("audit.jsonl.head")
    head.write_bytes(json.dumps({"seq": 6, "hash": hashlib.sha256(last).hexdigest()}).encode())
    assert verify(path).ok  # a consistent rewrite of log and head is what a hash chain cannot see
    log.record({"kind": "tool", "tool": "after"})
    report = verify(path)
    assert not report.ok and [g.reasons for g in report.gaps] == [("truncated",)]
    assert (report.gaps[0].missing_from, report.gaps[0].missing_to) == (7, 10)
    assert json.loads(file_lines(path)[-2])["head_from"] == "writer"


def test_head_damage_under_a_running_writer_is_never_silent(tmp_path: Path) -> None:
    """A writer whose view of the log is current does not re-read the head per append (that
    would cost every call a syscall): it rewrites the head from its own last record. An
    edited head, the log untouched, is thus restored to the truth (nothing was lost); a
    deleted head keeps failing verify and /health until the next writer that starts fresh
    records it as a gap."""
    path = tmp_path / "audit.jsonl"
    log = rotated_log(path)
    head = path.with_name("audit.jsonl.head")
    head.write_bytes(b"{not a head")
    log.record({"kind": "tool", "tool": "after"})
    assert verify(path).ok and head_of(path)["seq"] == 41
    head.unlink()
    log.record({"kind": "tool", "tool": "after 2"})
    report = verify(path)
    assert report.problem is not None and report.problem.kind == "truncated" and "missing" in report.problem.detail
    assert read_status(path).head == "missing" and not read_status(path).ok
    AuditLog(path, rotate_bytes=1500).record({"kind": "cli", "command": "token revoke"})
    log.record({"kind": "tool", "tool": "after 3"})
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap"] and report.gaps[0].reasons == ("head_missing",)
    assert report.gaps[0].seq == 43 and head_of(path) == {"seq": 45, "hash": report.head, "gaps": 1}


def test_unrecognised_lines_appended_are_kept_as_evidence(log: AuditLog) -> None:
    write_entries(log, 3)
    with open(log.path, "ab") as fh:
        fh.write(b'junk\n\n{"seq": 99}\n')  # complete lines, but not records
    log.record({"kind": "tool", "tool": "after"})
    lines = file_lines(log.path)
    assert lines[3:6] == [b"junk", b"", b'{"seq": 99}']
    gap = json.loads(lines[6])
    assert gap["reasons"] == ["partial_line"] and gap["partial_cut"] is False
    assert gap["partial_sha256"] == hashlib.sha256(b'junk\n\n{"seq": 99}').hexdigest()
    assert gap["seq"] == 4 and gap["prev"] == hashlib.sha256(lines[2]).hexdigest()
    report = verify(log.path)
    assert [p.kind for p in report.problems] == ["gap"] and report.gaps[0].evidence_ok


def test_a_head_left_behind_by_a_stopped_writer_is_no_gap(log: AuditLog) -> None:
    """A writer killed between its append and its head update leaves the head one record
    behind: the record the head names is still there and linked, nothing is missing."""
    write_entries(log, 5)
    head = log.path.with_name("audit.jsonl.head")
    stale = head.read_bytes()
    other = AuditLog(log.path)
    other.record({"kind": "tool", "tool": "killed before its head update"})
    head.write_bytes(stale)
    assert verify(log.path).ok  # a head behind an intact chain proves nothing was cut
    write_entries(log, 2, start=10)
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
    assert not any(b"audit_gap" in x for x in all_lines(path))
    status = read_status(path)
    assert status.ok and status.gaps == 0 and status.seq == 3000


def test_the_gap_alarm_is_logged_as_an_error_without_the_cut_bytes(
    log: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    write_entries(log, 2)
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
    log = rotated_log(path)
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
    recs = records_of(path)
    assert recs[-1]["tool"] == "after" and recs[-1]["seq"] == 42
    assert recs[-1]["prev"] == hashlib.sha256(all_lines(path)[-2]).hexdigest()
    log.close()


def test_processes_racing_after_a_cut_record_exactly_one_gap(tmp_path: Path) -> None:
    """The first writer after the cut records the gap; the others see a consistent end."""
    path = tmp_path / "audit.jsonl"
    here = AuditLog(path, rotate_bytes=20_000)
    write_entries(here, 30)
    cut_records(path, 5)
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(path), "100", "20000", str(n)]) for n in range(2)
    ]
    for i in range(100):
        here.record({"kind": "tool", "tool": "local", "args": {"i": i}})
    for p in procs:
        assert p.wait(timeout=120) == 0
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap"], [p.describe() for p in report.problems]
    assert (report.gaps[0].missing_from, report.gaps[0].missing_to) == (26, 30) and report.gaps[0].seq == 31
    assert report.entries == 25 + 1 + 300 and head_of(path)["gaps"] == 1


@pytest.mark.parametrize("same_writer", [True, False])
def test_a_cut_at_a_rotated_files_last_newline_keeps_that_record_and_gaps_the_rest(
    tmp_path: Path, same_writer: bool
) -> None:
    """Found by the hypothesis test above: the live file deleted and the newest rotated file
    cut exactly at its last newline. The writer used to keep that whole record as "evidence"
    and chain past it, while verify (once the line was terminated) read it as a record: every
    later verify reported the evidence as deleted. Now both read it as the record it is."""
    path = tmp_path / "audit.jsonl"
    log = rotated_log(path)
    *rotated, live = log_files(path)
    newest = rotated[-1]
    kept = file_lines(newest)
    newest.write_bytes(newest.read_bytes()[:-1])  # only the newline goes
    live.unlink()
    appender = log if same_writer else AuditLog(path, rotate_bytes=1500)
    appender.record({"kind": "tool", "tool": "after"})
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap"], [p.describe() for p in report.problems]
    [gap] = report.gaps
    last_kept = json.loads(kept[-1])
    assert gap.evidence_ok and gap.chained and gap.seq == 41
    recs = records_of(path)
    assert [r["seq"] for r in recs if r["seq"] == last_kept["seq"]] == [last_kept["seq"]]
    gap_rec = next(r for r in recs if r["kind"] == "audit_gap")
    assert gap_rec["tail_seq"] == last_kept["seq"] and gap_rec["missing_from"] == last_kept["seq"] + 1
    assert gap_rec["partial_bytes"] == 0 and "partial_line" not in gap_rec["reasons"]
    assert file_lines(newest) == kept  # the record is intact and terminated
    log.close()


def test_a_cut_newline_alone_is_terminated_before_the_next_entry(tmp_path: Path) -> None:
    """Only the live file's final newline cut, nothing lost: the next writer ends that line
    before appending (never writes onto it), and the chain verifies with every entry."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, rotate_bytes=1_000_000)
    write_entries(log, 5)
    log.close()
    path.write_bytes(path.read_bytes()[:-1])
    later = AuditLog(path, rotate_bytes=1_000_000)
    later.record({"kind": "tool", "tool": "after"})
    report = verify(path)
    assert report.ok, [p.describe() for p in report.problems]
    assert [r["seq"] for r in records_of(path)] == [1, 2, 3, 4, 5, 6]
    later.close()
