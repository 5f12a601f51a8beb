"""What the audit tests share: writing entries, reading lines and records back, and damaging a log
the ways a hostile process or a crash would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tailops.audit import AuditLog, log_files, verify


def write_entries(log: AuditLog, n: int, start: int = 0, **extra: Any) -> None:
    for i in range(start, start + n):
        log.record({"kind": "tool", "tool": f"t{i}", "args": {"i": i}, **extra})


def file_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def tamper(path: Path, kind: str) -> None:
    lines = file_lines(path)
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


def records_of(path: Path) -> list[dict[str, Any]]:
    out = []
    for f in log_files(path):
        for raw in file_lines(f):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and "seq" in rec:
                out.append(rec)
    return out


def all_lines(path: Path) -> list[bytes]:
    return [raw for f in log_files(path) for raw in file_lines(f)]


def head_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".head").read_bytes())
    return data


def cut_records(path: Path, n: int) -> None:
    """Remove the last ``n`` lines of the log, newest file first (files emptied, not deleted)."""
    for f in reversed(log_files(path)):
        lines = file_lines(f)
        take = min(n, len(lines))
        keep = lines[: len(lines) - take]
        f.write_bytes(b"".join(x + b"\n" for x in keep))
        n -= take
        if n == 0:
            return


def damage(path: Path, kind: str) -> None:
    head = path.with_name(path.name + ".head")
    if kind == "cut_3":
        cut_records(path, 3)
    elif kind == "cut_into_rotated":
        cut_records(path, len(file_lines(path)) + 2)
    elif kind == "empty_live":
        path.write_bytes(b"")
    elif kind == "delete_live":
        path.unlink()
    elif kind == "head_deleted":
        head.unlink()
    elif kind == "head_garbage":
        head.write_bytes(b"{not a head")
    elif kind == "last_replaced":
        lines = file_lines(path)
        lines[-1] = lines[-1].replace(b'"t39"', b'"tX"')
        path.write_bytes(b"\n".join(lines) + b"\n")
    else:
        raise AssertionError(kind)


def rotated_log(path: Path) -> AuditLog:
    log = AuditLog(path, rotate_bytes=1500)
    write_entries(log, 40)
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


CHILD_WRITER = """
import sys
from pathlib import Path
from tailops.audit import AuditLog
log = AuditLog(Path(sys.argv[1]), rotate_bytes=int(sys.argv[3]))
for i in range(int(sys.argv[2])):
    log.record({"kind": "cli", "command": "child", "args": {"i": i, "pid": sys.argv[4]}})
"""
