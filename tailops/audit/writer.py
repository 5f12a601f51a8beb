"""The audit writer: append-only JSON lines, each carrying the SHA-256 of the line before.

Why it exists: every tool call and every CLI command that changes state is recorded with
who, what, arguments (secrets redacted), the decision, the real outcome and the plan/run
ids; an edit, deletion, reordering or truncation then breaks the chain and
:func:`tailops.audit.verification.verify` names it. Mutating and denied calls are fsynced
before the call returns.

Layout in the audit directory (``audit.path``, default DATA_DIR/audit/):

- ``audit.jsonl``      the live file; ``audit.jsonl.1``, ``.2``, … rotated files,
  oldest first (rotation never renames an old file again);
- ``audit.jsonl.lock`` ``flock`` target: every append holds it exclusively
  around "check the tail, append", so the server and CLI commands in other
  processes keep one valid chain; threads of one process also take a lock;
- ``audit.jsonl.head`` ``{"seq", "hash", "gaps"}``: the sequence number and hash
  of the newest line and how many gap records the log holds, so lines cut off
  the end are detected too, and ``/health`` can raise the alarm cheaply.

Each line is ``{"seq": N, "ts": ..., <entry>, "prev": <sha256 of line N-1>}``;
the hash covers the exact bytes of the line without its newline. The first
line of a new file links to the last line of the previous file.

The chain never heals itself: a writer whose view of the file is stale first holds the
log's end against the head (:mod:`tailops.audit.gaps`) and, on any mismatch, writes a
hash-linked **gap record** (``"kind": "audit_gap"``) before its entry, logs an ERROR and
counts it in the head. A current view costs nothing extra per append (the same ``stat``
as before); the head is re-read only when the log changed under the writer.

This module must never write an unredacted entry, rewrite an existing line,
delete a log file or a partial line, or continue a broken chain silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from tailops.audit.files import log_files, parse_for_display, sidecar, tail
from tailops.audit.gaps import Tip, reconcile, terminate
from tailops.audit.records import GAP_KIND, RESERVED, HeadState, encode, parse_head, timestamp
from tailops.audit.status import AuditStatus, read_status
from tailops.audit.verification import VerifyReport, verify
from tailops.auth import local_user
from tailops.errors import AuditError
from tailops.redact import redact

__all__ = ["AuditLog", "record_cli"]

log = logging.getLogger("tailops.audit")

_HEAD_BYTES = 128  # fixed size: each update overwrites the whole record in one pwrite
_HEAD_READ = 4096  # a head longer than this is not one of ours: unreadable


class AuditLog:
    """Appends hash-chained entries; safe across threads and processes."""

    def __init__(self, path: Path, *, rotate_bytes: int = 50 * 1024 * 1024) -> None:
        self.path = path
        self._path_s = os.fspath(path)  # os.stat on a str skips Path's conversion on every append
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._lock_path = sidecar(path, "lock")
        self._head_path_s = os.fspath(sidecar(path, "head"))
        self._head_ino = -1
        self._lock_fd: int | None = None
        self._head_fd: int | None = None
        self._fd: int | None = None
        self._fd_ino = -1
        self._tip: Tip | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise AuditError(f"cannot create the audit directory {path.parent}: {exc.strerror}.") from exc

    # -- writing ------------------------------------------------------------------
    def record(self, entry: dict[str, Any], *, sync: bool = False) -> str:
        """Append one entry (redacted); return its line hash. ``sync`` fsyncs before returning."""
        body = {k: v for k, v in redact(entry).items() if k not in RESERVED}
        if body.get("kind") == GAP_KIND:
            raise ValueError(f"entry kind {GAP_KIND!r} is reserved for the log's own gap records")
        ts = timestamp()
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
            st = os.stat(self._path_s)
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

    def _head_now(self) -> HeadState:
        """The head as the path names it now, read through this writer's fd while the path
        still names the same file (no open/close per stale view); reopened otherwise."""
        try:
            st = os.stat(self._head_path_s)
        except FileNotFoundError:
            st = None
        if self._head_fd is not None and (st is None or st.st_ino != self._head_ino):
            os.close(self._head_fd)  # deleted or replaced: the next head write creates the path again
            self._head_fd = None
        if st is None:
            return "missing"
        if self._head_fd is None:
            try:
                self._head_fd = os.open(self._head_path_s, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                return "missing"
            except OSError:
                return "unreadable"
            self._head_ino = os.fstat(self._head_fd).st_ino
        return parse_head(os.pread(self._head_fd, _HEAD_READ, 0)) or "unreadable"

    def _rotate(self) -> tuple[int, int]:
        rotated = [p for p in log_files(self.path) if p != self.path]
        numbers = [int(p.name.rsplit(".", 1)[1]) for p in rotated]
        target = sidecar(self.path, str(max(numbers, default=0) + 1))
        os.rename(self.path, target)
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return self._open_live()

    def _append(self, body: dict[str, Any], ts: str, sync: bool) -> str:
        fd, size = self._open_live()
        tip = self._tip
        gap: dict[str, Any] | None = None
        unterminated: list[Path | None] = []
        stale = tip is None or tip.ino != self._fd_ino or tip.size != size
        if tip is None or stale:
            # Another process wrote, the file changed under us, or this is our first write.
            # (Otherwise the head is not re-read: this writer rewrites it from its own last
            # record on every append, so an edit of the head alone, the log untouched, loses
            # nothing and is overwritten with the truth; a writer starting fresh, or any
            # change to the log, compares them.)
            self._tip = None
            tip, gap, unterminated = reconcile(self.path, fd, size, self._fd_ino, self._head_now(), tip)
        lines: list[bytes] = []
        prev, seq = tip.hash, tip.seq
        if gap is not None:
            lines.append(encode({"seq": seq + 1, "ts": ts, **gap, "prev": prev}))
            prev, seq = hashlib.sha256(lines[0]).hexdigest(), seq + 1
        line = encode({"seq": seq + 1, "ts": ts, **body, "prev": prev})
        lines.append(line)
        seq += 1
        data = b"\n".join(lines) + b"\n"
        # Terminate a cut line (evidence, or a whole record that lost its newline) so
        # every file stays line-based and nothing is ever appended onto it.
        for where in unterminated:
            if where is None:
                data = b"\n" + data
            else:
                terminate(where)
        if gap is not None:
            sync = True  # a gap is rare and must survive a crash
        elif not unterminated and size > 0 and size + len(data) > self.rotate_bytes:
            fd, size = self._rotate()  # never while a partial line waits to be terminated
        self._write(fd, size, data, sync)
        digest = hashlib.sha256(line).hexdigest()
        gaps = tip.gaps + (gap is not None)
        self._tip = Tip(self._fd_ino, size + len(data), digest, seq, gaps)
        self._write_head(seq, digest, gaps, sync, fresh=gap is not None)
        if gap is not None:
            log.error(
                "audit log gap: the log's end did not match its head; recorded a gap and continued after it",
                extra={
                    "path": str(self.path),
                    "gap_seq": seq - 1,
                    **{k: gap[k] for k in ("reasons", "missing_from", "missing_to", "head_seq", "tail_seq")},
                    "partial_bytes": gap["partial_bytes"],
                    "gaps_recorded": gaps,
                },
            )
        return digest

    def _write(self, fd: int, size: int, data: bytes, sync: bool) -> None:
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, "short write (disk full?)")
            if sync:
                os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # never leave a partial line of ours behind
            self._tip = None
            raise

    def _write_head(self, seq: int, digest: str, gaps: int, sync: bool, *, fresh: bool) -> None:
        """Overwrite the head in place; ``fresh`` (a new file, or after a gap) also cuts anything past it."""
        if self._head_fd is None:
            self._head_fd = os.open(self._head_path_s, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            self._head_ino = os.fstat(self._head_fd).st_ino
            fresh = True
        data = json.dumps({"seq": seq, "hash": digest, "gaps": gaps}, separators=(",", ":")).encode()
        os.pwrite(self._head_fd, data.ljust(_HEAD_BYTES - 1) + b"\n", 0)
        if fresh:
            os.ftruncate(self._head_fd, _HEAD_BYTES)
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

    def status(self) -> AuditStatus:
        """The cheap alarm view for /health and /metrics (see :func:`read_status`)."""
        return read_status(self.path)

    def tail(self, n: int) -> list[dict[str, Any]]:
        return [parse_for_display(line) for line in tail(self.path, n)]


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
