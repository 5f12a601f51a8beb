"""``tailops audit verify``: every kind of tampering is named at the first broken line, and no gap
record or the evidence it kept can be removed or edited unnoticed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tailops.audit import AuditLog, log_files, verify
from tests.unit.audit.logs import (
    cut_records,
    file_lines,
    head_of,
    tamper,
    write_entries,
)


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
    write_entries(log, 6)
    assert verify(log.path).ok
    tamper(log.path, kind)
    report = verify(log.path)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.kind == expected, report.problem.describe()
    assert report.problem.file == log.path
    assert report.problem.line == line, report.problem.describe()


def test_missing_or_corrupt_head_file_fails_verification(log: AuditLog) -> None:
    write_entries(log, 3)
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
    write_entries(log, 3)
    log.path.write_bytes(b"")
    report = verify(log.path)
    assert report.problem is not None and report.problem.kind == "truncated"


def test_empty_log_verifies(tmp_path: Path) -> None:
    report = verify(tmp_path / "none" / "audit.jsonl")
    assert report.ok and report.entries == 0


def test_tampering_across_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_entries(AuditLog(path, rotate_bytes=1500), 40)
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


@pytest.mark.parametrize("how", ["edit", "delete", "extend"])
def test_evidence_kept_before_a_gap_cannot_be_changed_unnoticed(log: AuditLog, how: str) -> None:
    write_entries(log, 3)
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq":4,"ts":"cut here')
    write_entries(log, 2, start=3)
    lines = file_lines(log.path)
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
    write_entries(log, 6)
    cut_records(log.path, 2)
    write_entries(log, 3, start=10)
    lines = file_lines(log.path)
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
        data = head_of(log.path)
        head.write_bytes(json.dumps({"seq": len(lines), "hash": prev, "gaps": data["gaps"]}).encode())
    else:
        data = head_of(log.path)
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
    write_entries(log, 8)
    cut_records(path, 3)
    write_entries(log, 4, start=10)  # gap 1 (entries 6-8)
    cut_records(path, 2)
    write_entries(log, 4, start=20)  # gap 2
    report = verify(path)
    assert [p.kind for p in report.problems] == ["gap", "gap"]
    assert [(g.missing_from, g.missing_to) for g in report.gaps] == [(6, 8), (12, 13)]
    assert report.gaps[0].seq == 9 and report.gaps[1].seq == 14
    assert all(g.detected.endswith("Z") and g.chained for g in report.gaps)
    assert head_of(path)["gaps"] == 2
    lines = file_lines(path)
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
