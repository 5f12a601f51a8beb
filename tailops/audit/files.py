"""Audit files: where the log's files lie, how they are read, and the lock readers share.

Why it exists: the live file ``audit.jsonl``, its rotated files ``audit.jsonl.1``, ``.2``,
… (oldest first), the ``.head`` and ``.lock`` beside them: the writer, verification, the
alarm view, ``tailops audit tail`` and backups all find them the same way here.

What it must never do: write, rename or delete anything (the writer alone appends), or
read while a writer holds the lock when a consistent view is needed (:func:`shared_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tailops.audit.records import HeadState, parse_head
from tailops.errors import AuditError

__all__ = ["CHUNK", "file_size", "load_head", "log_files", "parse_for_display", "shared_lock", "sidecar", "tail"]

CHUNK = 64 * 1024


def sidecar(path: Path, suffix: str) -> Path:
    """The file beside the log at ``path`` named ``<name>.<suffix>`` (head, lock, a rotated number)."""
    return path.with_name(f"{path.name}.{suffix}")


def log_files(path: Path) -> list[Path]:
    """Every file of the log at ``path``, oldest first (rotated files, then the live one)."""
    numbered: list[tuple[int, Path]] = []
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)")
    try:
        entries = list(path.parent.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AuditError(f"cannot list the audit directory {path.parent}: {exc.strerror}.") from exc
    for p in entries:
        m = pattern.fullmatch(p.name)
        if m:
            numbered.append((int(m.group(1)), p))
    files = [p for _, p in sorted(numbered)]
    if path.exists():
        files.append(path)
    return files


def load_head(path: Path) -> HeadState:
    """The head file beside ``path``, or why there is none to trust."""
    try:
        raw = sidecar(path, "head").read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    return parse_head(raw) or "unreadable"


def file_size(path: Path) -> int:
    """The size of a log file, 0 when it was rotated away meanwhile."""
    try:
        return path.stat().st_size
    except FileNotFoundError:  # rotated away meanwhile
        return 0
    except OSError as exc:
        raise AuditError(f"cannot read the audit log file {path}: {exc.strerror}.") from exc


@contextlib.contextmanager
def shared_lock(path: Path) -> Iterator[None]:
    """Hold writers off (shared ``flock``) while reading; no lock file means no writer yet."""
    try:
        lock_fd = os.open(sidecar(path, "lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield
        return
    except OSError as exc:
        raise AuditError(f"cannot open the audit lock file next to {path}: {exc.strerror}.") from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(lock_fd)


# -- verification -------------------------------------------------------------------


def tail(path: Path, n: int) -> list[bytes]:
    """The last ``n`` lines (raw bytes, oldest first) across rotated files."""
    out: list[bytes] = []
    for f in reversed(log_files(path)):
        if len(out) >= n:
            break
        try:
            with open(f, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                out = _last_lines(fh.fileno(), size, n - len(out)) + out
        except OSError as exc:
            raise AuditError(f"cannot read the audit log file {f}: {exc.strerror}.") from exc
    return out[-n:] if n > 0 else []


def _last_lines(fd: int, size: int, n: int) -> list[bytes]:
    if n <= 0 or size == 0:
        return []
    buf = b""
    pos = size
    while pos > 0 and buf.count(b"\n") <= n:
        step = min(CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
    lines = [x for x in buf.split(b"\n") if x]
    if pos > 0:
        lines = lines[1:]  # the first piece may be a partial line
    return lines[-n:]


def parse_for_display(raw: bytes) -> dict[str, Any]:
    """A line as a mapping to show, also when it is not valid JSON (never raises)."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:200].decode("utf-8", "replace")}
    return rec if isinstance(rec, dict) else {"unreadable": str(rec)[:200]}
