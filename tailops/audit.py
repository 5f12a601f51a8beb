"""Tamper-evident audit log: append-only JSON lines, each carrying the SHA-256
of the previous line, so an edit, deletion, reordering or truncation breaks
the chain and :func:`verify` names the first broken line.

Every tool call and every CLI command that changes state is recorded with who,
what, arguments (secrets redacted), the decision, the real outcome and the
plan/run ids. Mutating and denied calls are fsynced before the call returns.

Layout in the audit directory (``audit.path``, default DATA_DIR/audit/):

- ``audit.jsonl``      the live file; ``audit.jsonl.1``, ``.2``, … rotated files,
  oldest first (rotation never renames an old file again);
- ``audit.jsonl.lock`` ``flock`` target: every append holds it exclusively
  around "read the last hash, append", so the server and CLI commands in other
  processes keep one valid chain; threads of one process also take a lock;
- ``audit.jsonl.head`` the sequence number and hash of the newest line, so
  lines cut off the end are detected too.

Each line is ``{"seq": N, "ts": ..., <entry>, "prev": <sha256 of line N-1>}``;
the hash covers the exact bytes of the line without its newline. The first
line of a new file links to the last line of the previous file.

This module must never write an unredacted entry, rewrite an existing line, or
delete a log file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tailops.auth import local_user
from tailops.errors import AuditError
from tailops.redact import redact, redact_text

__all__ = [
    "GENESIS",
    "AuditLog",
    "AuditProblem",
    "ProblemKind",
    "VerifyReport",
    "log_files",
    "record_cli",
    "tail",
    "verify",
]

log = logging.getLogger("tailops.audit")

GENESIS = "0" * 64
_RESERVED = ("seq", "ts", "prev")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEAD_BYTES = 128  # fixed size: each update overwrites the whole record in one pwrite
_CHUNK = 64 * 1024

ProblemKind = Literal["edited", "deleted", "reordered", "truncated"]


def _sidecar(path: Path, suffix: str) -> Path:
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


def _json_default(value: Any) -> str:
    # Anything json cannot encode natively still passes the redactor.
    if isinstance(value, bytes | bytearray):
        return f"[{len(value)} bytes]"
    return redact_text(str(value))


def _last_line(fd: int, size: int) -> bytes:
    """The last complete line (without newline) of the first ``size`` bytes of ``fd``."""
    end = size
    if end == 0:
        return b""
    buf = b""
    pos = end
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        stripped = buf[:-1] if buf.endswith(b"\n") else buf
        cut = stripped.rfind(b"\n")
        if cut >= 0:
            return stripped[cut + 1 :]
    return buf[:-1] if buf.endswith(b"\n") else buf


def _seq_of(line: bytes) -> int:
    try:
        seq = json.loads(line)["seq"]
    except (ValueError, KeyError, TypeError):
        return 0
    return seq if isinstance(seq, int) else 0


@dataclass
class _Tip:
    ino: int
    size: int
    hash: str
    seq: int


class AuditLog:
    """Appends hash-chained entries; safe across threads and processes."""

    def __init__(self, path: Path, *, rotate_bytes: int = 50 * 1024 * 1024) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._lock_path = _sidecar(path, "lock")
        self._head_path = _sidecar(path, "head")
        self._lock_fd: int | None = None
        self._head_fd: int | None = None
        self._fd: int | None = None
        self._fd_ino = -1
        self._tip: _Tip | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise AuditError(f"cannot create the audit directory {path.parent}: {exc.strerror}.") from exc

    # -- writing ------------------------------------------------------------------
    def record(self, entry: dict[str, Any], *, sync: bool = False) -> str:
        """Append one entry (redacted); return its line hash. ``sync`` fsyncs before returning."""
        body = {k: v for k, v in redact(entry).items() if k not in _RESERVED}
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        with self._lock:
            try:
                with self._locked(fcntl.LOCK_EX):
                    return self._append(body, ts, sync)
            except OSError as exc:
                raise AuditError(
                    f"cannot write the audit log at {self.path}: {exc.strerror or exc}.",
                    hint="Check free space and permissions of the audit directory.",
                ) from exc

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, mode)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _open_live(self) -> tuple[int, int]:
        """(fd, size) of the live file, reopened if another writer rotated it."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if self._fd is None or st is None or st.st_ino != self._fd_ino:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            fst = os.fstat(self._fd)
            self._fd_ino = fst.st_ino
            return self._fd, fst.st_size
        return self._fd, st.st_size

    def _current_tip(self, fd: int, size: int) -> _Tip:
        tip = self._tip
        if tip is not None and tip.ino == self._fd_ino and tip.size == size:
            return tip
        # Another process wrote (or this is our first write): read the last line.
        if size > 0:
            last = _last_line(fd, size)
            if os.pread(fd, 1, size - 1) != b"\n":
                # A line cut short by a crash was never a complete record: drop it.
                keep = size - len(last)
                log.warning("audit log ended in a partial line; dropping it", extra={"path": str(self.path)})
                os.ftruncate(fd, keep)
                size = keep
                last = _last_line(fd, size)
            if last:
                return _Tip(self._fd_ino, size, hashlib.sha256(last).hexdigest(), _seq_of(last))
        for older in reversed(log_files(self.path)):
            if older == self.path:
                continue
            with open(older, "rb") as fh:
                last = _last_line(fh.fileno(), os.fstat(fh.fileno()).st_size)
            if last:
                return _Tip(self._fd_ino, size, hashlib.sha256(last).hexdigest(), _seq_of(last))
        return _Tip(self._fd_ino, size, GENESIS, 0)

    def _rotate(self) -> tuple[int, int]:
        rotated = [p for p in log_files(self.path) if p != self.path]
        numbers = [int(p.name.rsplit(".", 1)[1]) for p in rotated]
        target = _sidecar(self.path, str(max(numbers, default=0) + 1))
        os.rename(self.path, target)
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self._open_live()

    def _append(self, body: dict[str, Any], ts: str, sync: bool) -> str:
        fd, size = self._open_live()
        tip = self._current_tip(fd, size)
        size = tip.size
        seq = tip.seq + 1
        line = json.dumps(
            {"seq": seq, "ts": ts, **body, "prev": tip.hash},
            separators=(",", ":"),
            default=_json_default,
            ensure_ascii=False,
        ).encode()
        if size > 0 and size + len(line) + 1 > self.rotate_bytes:
            fd, size = self._rotate()
        data = line + b"\n"
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, "short write (disk full?)")
            if sync:
                os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # never leave a partial line behind
            self._tip = None
            raise
        digest = hashlib.sha256(line).hexdigest()
        self._tip = _Tip(self._fd_ino, size + len(data), digest, seq)
        self._write_head(seq, digest, sync)
        return digest

    def _write_head(self, seq: int, digest: str, sync: bool) -> None:
        if self._head_fd is None:
            self._head_fd = os.open(self._head_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        data = json.dumps({"seq": seq, "hash": digest}, separators=(",", ":")).encode()
        os.pwrite(self._head_fd, data.ljust(_HEAD_BYTES - 1) + b"\n", 0)
        if sync:
            os.fsync(self._head_fd)

    def close(self) -> None:
        with self._lock:
            for fd in (self._fd, self._head_fd, self._lock_fd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._fd = self._head_fd = self._lock_fd = None
            self._tip = None

    def verify(self) -> VerifyReport:
        """Walk the whole chain (see :func:`verify`)."""
        with self._lock:
            return verify(self.path)

    def tail(self, n: int) -> list[dict[str, Any]]:
        return [_parse_for_display(line) for line in tail(self.path, n)]


# -- verification -------------------------------------------------------------------


@dataclass(frozen=True)
class AuditProblem:
    file: Path
    line: int
    kind: ProblemKind
    detail: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    entries: int = 0
    files: list[Path] = field(default_factory=list)
    head: str = GENESIS
    problem: AuditProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _read_head(path: Path) -> tuple[int, str] | None:
    try:
        raw = _sidecar(path, "head").read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        seq, digest = data["seq"], data["hash"]
    except (ValueError, KeyError, TypeError):
        return (-1, "")
    if not isinstance(seq, int) or not isinstance(digest, str):
        return (-1, "")
    return seq, digest


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


def _parse_record(raw: bytes) -> tuple[int, str] | None:
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    seq, prev = rec.get("seq"), rec.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        return None
    return seq, prev


def _seq_at(line: _Line) -> int | None:
    parsed = _parse_record(line.raw)
    return parsed[0] if parsed is not None else None


def verify(path: Path) -> VerifyReport:
    """Check the chain of every file of the log at ``path``, oldest to newest.

    Reports the first problem: a line *edited* after it was written, entries
    *deleted*, entries *reordered*, or the log *truncated* (a line cut short, or
    entries cut off the end: the head file records a later entry). Writers are
    held off (shared ``flock``) while the files are read.
    """
    try:
        lock_fd = os.open(_sidecar(path, "lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return _verify(path)
    except OSError as exc:
        raise AuditError(f"cannot open the audit lock file next to {path}: {exc.strerror}.") from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        return _verify(path)
    finally:
        os.close(lock_fd)


def _verify(path: Path) -> VerifyReport:
    files = log_files(path)
    report = VerifyReport(files=files)
    head = _read_head(path)
    prev_hash = GENESIS
    expected = 1
    prev_line: _Line | None = None
    head_line_hash: str | None = None
    lines = list(_lines(files))

    def fail(where: _Line, kind: ProblemKind, detail: str) -> VerifyReport:
        report.problem = AuditProblem(where.file, where.number, kind, detail)
        return report

    for index, ln in enumerate(lines):
        if not ln.complete:
            return fail(ln, "truncated", "the line is cut short (no newline): the file was truncated")
        parsed = _parse_record(ln.raw)
        if parsed is None:
            return fail(ln, "edited", "not a valid audit record (JSON with seq and prev expected)")
        seq, prev = parsed
        if prev == prev_hash:
            if seq != expected:
                return fail(ln, "edited", f"its sequence number says {seq}, the chain says {expected}")
        elif seq == expected:
            if prev_line is None:
                return fail(ln, "edited", "the first entry does not start the chain")
            return fail(
                prev_line,
                "edited",
                f"its hash no longer matches the link stored in entry {seq} (this line or that link changed)",
            )
        elif seq > expected:
            if any(_seq_at(x) == expected for x in lines[index + 1 :]):
                return fail(ln, "reordered", f"entry {seq} appears where entry {expected} belongs")
            gap = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
            return fail(ln, "deleted", f"{gap} missing before this line")
        else:
            return fail(ln, "reordered", f"entry {seq} repeated or out of order after entry {expected - 1}")
        prev_hash = hashlib.sha256(ln.raw).hexdigest()
        if head is not None and seq == head[0]:
            head_line_hash = prev_hash
        expected = seq + 1
        prev_line = ln
        report.entries += 1
    report.head = prev_hash
    last_seq = expected - 1
    end = _Line(files[-1] if files else path, (prev_line.number + 1) if prev_line else 1, b"", True)
    if head is None:
        if last_seq > 0:
            return fail(
                end,
                "truncated",
                f"the head file {_sidecar(path, 'head').name} is missing; cannot prove no entries were cut off the end",
            )
        return report
    head_seq, head_hash = head
    if head_seq < 0:
        return fail(end, "edited", f"the head file {_sidecar(path, 'head').name} is not valid")
    if head_seq > last_seq:
        what = "the log is empty" if last_seq == 0 else f"the log ends at entry {last_seq}"
        return fail(end, "truncated", f"{what} but the head records entry {head_seq}: entries were cut off")
    if head_seq > 0 and head_line_hash != head_hash:
        where = next((x for x in lines if _seq_at(x) == head_seq), prev_line or end)
        return fail(where, "edited", "this entry no longer matches the hash recorded in the head file")
    return report


# -- reading -----------------------------------------------------------------------


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
        step = min(_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
    lines = [x for x in buf.split(b"\n") if x]
    if pos > 0:
        lines = lines[1:]  # the first piece may be a partial line
    return lines[-n:]


def _parse_for_display(raw: bytes) -> dict[str, Any]:
    try:
        rec = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:200].decode("utf-8", "replace")}
    return rec if isinstance(rec, dict) else {"unreadable": str(rec)[:200]}


# -- CLI commands -------------------------------------------------------------------


def record_cli(
    path: Path,
    command: str,
    args: dict[str, Any],
    *,
    outcome: Literal["ok", "error"],
    error: str | None = None,
    rotate_bytes: int = 50 * 1024 * 1024,
    **facts: Any,
) -> str:
    """Record a state-changing CLI command (fsynced); raise AuditError if it cannot be written."""
    entry: dict[str, Any] = {
        "kind": "cli",
        "command": command,
        "principal": {"sub": f"local:{local_user()}", "transport": "cli", "pid": os.getpid()},
        "args": args,
        "decision": "allowed",
        "outcome": outcome,
        "error": error,
        **facts,
    }
    audit = AuditLog(path, rotate_bytes=rotate_bytes)
    try:
        return audit.record(entry, sync=True)
    finally:
        audit.close()
