"""Tamper-evident audit log: append-only JSON lines, each carrying the SHA-256
of the previous line, so an edit, deletion, reordering or truncation breaks
the chain and :func:`verify` names it.

Every tool call and every CLI command that changes state is recorded with who,
what, arguments (secrets redacted), the decision, the real outcome and the
plan/run ids. Mutating and denied calls are fsynced before the call returns.

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

The chain never heals itself. Before appending, a writer whose cached view of
the file is stale (its first write, another process wrote, the file shrank or
was replaced) compares the file's tail (its last complete record, across
rotated files) with the head and with its own last record. On any mismatch (tail behind the head, a
different record at the head's seq, head missing or unreadable, a partial or
unrecognised last line) it first writes a hash-linked **gap record**
(``"kind": "audit_gap"``) naming what is missing, linked to the last valid
record and numbered after the highest seq ever recorded (seqs are never
reused), logs an ERROR and counts it in the head. A partial line is kept as
evidence (terminated with a newline; its length and SHA-256 are in the gap
record), never dropped. :func:`verify` reports every gap record, forever.
A current view costs nothing extra per append (the same ``stat`` as before);
the head is re-read only when the log changed under the writer.

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
    "GAP_KIND",
    "GENESIS",
    "AuditGap",
    "AuditLog",
    "AuditProblem",
    "AuditStatus",
    "HeadRecord",
    "ProblemKind",
    "VerifyReport",
    "log_files",
    "read_status",
    "record_cli",
    "tail",
    "verify",
]

log = logging.getLogger("tailops.audit")

GENESIS = "0" * 64
GAP_KIND = "audit_gap"
_RESERVED = ("seq", "ts", "prev")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEAD_BYTES = 128  # fixed size: each update overwrites the whole record in one pwrite
_HEAD_READ = 4096  # a head longer than this is not one of ours: unreadable
_CHUNK = 64 * 1024
# How many records back from the tail a writer looks for the head's record when
# the head lags (a writer stopped between appending and updating the head).
_LAG_SCAN = 256

ProblemKind = Literal["edited", "deleted", "reordered", "truncated", "gap"]


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


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), default=_json_default, ensure_ascii=False).encode()


# -- records and the head ----------------------------------------------------------


@dataclass(frozen=True)
class _Rec:
    """One parsed chain record: what the writer and verify need of a line."""

    seq: int
    prev: str
    hash: str
    data: dict[str, Any]

    @property
    def is_gap(self) -> bool:
        return self.data.get("kind") == GAP_KIND


def _record(raw: bytes) -> _Rec | None:
    """The record on ``raw``, or None when it is not one (JSON object with int seq and hex prev)."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    seq, prev = rec.get("seq"), rec.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None
    if not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        return None
    return _Rec(seq, prev, hashlib.sha256(raw).hexdigest(), rec)


@dataclass(frozen=True)
class HeadRecord:
    """``audit.jsonl.head``: the newest line's seq and hash, and the log's gap count."""

    seq: int
    hash: str
    gaps: int


HeadState = HeadRecord | Literal["missing", "unreadable"]


def _parse_head(raw: bytes) -> HeadRecord | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    seq, digest, gaps = data.get("seq"), data.get("hash"), data.get("gaps", 0)  # no "gaps": written before gaps existed
    if not isinstance(seq, int) or not isinstance(gaps, int) or isinstance(seq, bool) or isinstance(gaps, bool):
        return None
    if seq < 0 or gaps < 0:
        return None
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        return None
    return HeadRecord(seq, digest, gaps)


def _load_head(path: Path) -> HeadState:
    try:
        raw = _sidecar(path, "head").read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    return _parse_head(raw) or "unreadable"


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
        chunk = min(chunk * 4, _CHUNK)
        pos -= step
        parts = (os.pread(fd, step, pos) + carry).split(b"\n")
        carry = parts[0]
        yield from reversed(parts[1:])
    yield carry


@dataclass
class _End:
    """The end of the log as a writer sees it before appending."""

    records: list[_Rec]  # newest first, from the tail back to the head's seq (or a bound)
    evidence: bytes | None  # the lines after the last record that are not records, joined by newlines
    unterminated: list[Path | None]  # files of that evidence that end without a newline (None: the live file)


def _read_end(path: Path, fd: int, size: int, head_seq: int | None) -> _End:
    """Scan back from the end of the live file (then rotated files, newest first).

    Collect the lines after the last record that are not records (a cut
    line, unrecognised lines; possibly in a rotated file when the live file
    is gone) as evidence, then records until one at or below ``head_seq``
    (just the tail when the head is unknown), at most ``_LAG_SCAN`` of them.
    """
    records: list[_Rec] = []
    junk: list[bytes] = []  # newest first
    unterminated: list[Path | None] = []

    def scan(pieces: Iterator[bytes], where: Path | None) -> bool:
        """True once enough records are found."""
        cut = next(pieces)  # after the file's last newline: never a record, even if it parses
        if cut and not records:
            junk.append(cut)
            unterminated.append(where)
        for piece in pieces:
            rec = _record(piece)
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
                rec = _record(raw)
                count += rec is not None and rec.is_gap
    return count


@dataclass
class _Tip:
    ino: int  # live file inode and size this view was taken at
    size: int
    hash: str
    seq: int
    gaps: int


class AuditLog:
    """Appends hash-chained entries; safe across threads and processes."""

    def __init__(self, path: Path, *, rotate_bytes: int = 50 * 1024 * 1024) -> None:
        self.path = path
        self._path_s = os.fspath(path)  # os.stat on a str skips Path's conversion on every append
        self.rotate_bytes = rotate_bytes
        self._lock = threading.Lock()
        self._lock_path = _sidecar(path, "lock")
        self._head_path_s = os.fspath(_sidecar(path, "head"))
        self._head_ino = -1
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
        if body.get("kind") == GAP_KIND:
            raise ValueError(f"entry kind {GAP_KIND!r} is reserved for the log's own gap records")
        ts = _now()
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
        return _parse_head(os.pread(self._head_fd, _HEAD_READ, 0)) or "unreadable"

    def _reconcile(
        self, fd: int, size: int, witness: _Tip | None
    ) -> tuple[_Tip, dict[str, Any] | None, list[Path | None]]:
        """Compare the file's end with the head: the tip to continue from, and a gap record's
        fields when they disagree (then the tip's seq is the highest seq ever recorded).

        ``witness`` is this writer's own last record: a second head that no
        other process can edit, so a log cut back while this process runs is
        caught even if the head file was rewritten to match.
        """
        head = self._head_now()
        known = head if isinstance(head, HeadRecord) else None
        source = "head"
        if witness is not None and (known is None or witness.seq >= known.seq):
            known = HeadRecord(witness.seq, witness.hash, max(witness.gaps, known.gaps if known else 0))
            source = "writer"
        end = _read_end(self.path, fd, size, known.seq if known else None)
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
                    extra={"path": str(self.path), "head_seq": known.seq, "tail_seq": tail_seq},
                )
        else:
            gaps = 0
            if head_lost:
                missing = (tail_seq + 1, None)
        if head_lost:  # whoever removed the head may have cut entries after it: count gaps afresh
            reasons.append(f"head_{head}")
            if missing[0] is None:
                missing = (tail_seq + 1, None)
            gaps = max(gaps, _count_gap_records(self.path))
        if end.evidence is not None:
            reasons.append("partial_line")
        tip = _Tip(self._fd_ino, size, tail_hash, top, gaps)
        if not reasons:
            return tip, None, []
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
            tip, gap, unterminated = self._reconcile(fd, size, tip)
        lines: list[bytes] = []
        prev, seq = tip.hash, tip.seq
        if gap is not None:
            lines.append(_dumps({"seq": seq + 1, "ts": ts, **gap, "prev": prev}))
            prev, seq = hashlib.sha256(lines[0]).hexdigest(), seq + 1
        line = _dumps({"seq": seq + 1, "ts": ts, **body, "prev": prev})
        lines.append(line)
        seq += 1
        data = b"\n".join(lines) + b"\n"
        if gap is not None:
            # Terminate a cut line (kept as evidence) so every file stays line-based.
            for where in unterminated:
                if where is None:
                    data = b"\n" + data
                else:
                    _terminate(where)
            sync = True  # a gap is rare and must survive a crash
        elif size > 0 and size + len(data) > self.rotate_bytes:
            fd, size = self._rotate()  # never while a partial line waits to be terminated
        self._write(fd, size, data, sync)
        digest = hashlib.sha256(line).hexdigest()
        gaps = tip.gaps + (gap is not None)
        self._tip = _Tip(self._fd_ino, size + len(data), digest, seq, gaps)
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
        return [_parse_for_display(line) for line in tail(self.path, n)]


def _terminate(path: Path) -> None:
    """End a rotated file's cut last line with a newline (appending only: the line stays as it was)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _links_to_head(records: list[_Rec], head: HeadRecord) -> bool:
    """The head's record is among ``records`` (newest first) and each later one links to it."""
    for i, rec in enumerate(records):
        if rec.seq == head.seq:
            return rec.hash == head.hash and all(records[j].prev == records[j + 1].hash for j in range(i))
    return False


# -- the alarm view ----------------------------------------------------------------


@dataclass(frozen=True)
class AuditStatus:
    """What /health and /metrics show without walking the chain."""

    gaps: int
    head: Literal["ok", "missing", "unreadable", "empty"]
    seq: int = 0

    @property
    def ok(self) -> bool:
        return self.alarms == 0

    @property
    def alarms(self) -> int:
        """Gap records, plus one while the head is missing or unreadable (the next append records it)."""
        return self.gaps + (self.head in ("missing", "unreadable"))

    def describe(self) -> str:
        if self.head == "missing":
            return "the audit head file is missing while the log has entries: entries may have been cut off"
        if self.head == "unreadable":
            return "the audit head file is unreadable: entries may have been cut off"
        if self.gaps:
            return (
                f"{self.gaps} gap record(s) in the audit log (entries lost: truncation or a crash-cut line); "
                "run `tailops audit verify`"
            )
        return "empty" if self.head == "empty" else f"head at entry {self.seq}, no gaps"


def read_status(path: Path) -> AuditStatus:
    """Read the head (128 bytes), never the log: cheap enough for every /health and scrape.

    A missing or unreadable head counts as an alarm once the log holds data.
    Truncation not yet followed by an append shows only in :func:`verify`
    (the next append records it as a gap).
    """
    head = _load_head(path)
    if head == "unreadable":
        # A writer's 128-byte pwrite may be caught halfway: read once more between appends.
        with _shared_lock(path):
            head = _load_head(path)
    if isinstance(head, HeadRecord):
        return AuditStatus(head.gaps, "ok", head.seq)
    if head == "missing" and not any(_size(f) for f in log_files(path)):
        return AuditStatus(0, "empty")
    return AuditStatus(0, head)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # rotated away meanwhile
        return 0
    except OSError as exc:
        raise AuditError(f"cannot read the audit log file {path}: {exc.strerror}.") from exc


@contextlib.contextmanager
def _shared_lock(path: Path) -> Iterator[None]:
    """Hold writers off (shared ``flock``) while reading; no lock file means no writer yet."""
    try:
        lock_fd = os.open(_sidecar(path, "lock"), os.O_RDONLY | os.O_CLOEXEC)
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


@dataclass(frozen=True)
class AuditProblem:
    file: Path
    line: int
    kind: ProblemKind
    detail: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class AuditGap:
    """A gap record: a writer found the log's end did not match its head."""

    file: Path
    line: int
    seq: int
    detected: str  # the gap record's ts: when the writer found it
    detected_by: str
    reasons: tuple[str, ...]
    missing_from: int | None
    missing_to: int | None
    head_seq: int | None
    tail_seq: int
    partial_bytes: int
    evidence_ok: bool  # the kept partial line still matches the sha256 recorded (or none was kept)
    chained: bool  # the chain up to and including this record verified

    def describe(self) -> str:
        parts: list[str] = []
        for reason in self.reasons:
            if reason == "truncated":
                span = (
                    f"entry {self.missing_from}"
                    if self.missing_from == self.missing_to
                    else f"entries {self.missing_from}-{self.missing_to}"
                )
                parts.append(
                    f"{span} missing (the log ended at entry {self.tail_seq}, the head recorded entry {self.head_seq})"
                )
            elif reason == "replaced":
                parts.append(f"entry {self.missing_from} is not the record the head recorded (edited or replaced)")
            elif reason in ("head_missing", "head_unreadable"):
                state = reason.removeprefix("head_")
                parts.append(f"the head file was {state}: entries after {self.tail_seq} may be missing")
            elif reason == "partial_line":
                parts.append(f"{self.partial_bytes} bytes of a cut or unrecognised line kept as evidence before it")
            else:
                parts.append(reason)
        text = f"gap recorded as entry {self.seq}, detected {self.detected} by {self.detected_by}: " + "; ".join(parts)
        if not self.chained:
            text += " (after a break in the chain: not chain-verified)"
        return text


@dataclass
class VerifyReport:
    entries: int = 0
    files: list[Path] = field(default_factory=list)
    head: str = GENESIS
    problems: list[AuditProblem] = field(default_factory=list)
    gaps: list[AuditGap] = field(default_factory=list)

    @property
    def problem(self) -> AuditProblem | None:
        """The first problem in log order."""
        return self.problems[0] if self.problems else None

    @property
    def ok(self) -> bool:
        return not self.problems


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


def _opt_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _gap_valid(rec: _Rec) -> bool:
    d = rec.data
    reasons = d.get("reasons")
    return (
        isinstance(reasons, list)
        and bool(reasons)
        and all(isinstance(r, str) for r in reasons)
        and all(_opt_int(d.get(k)) for k in ("missing_from", "missing_to", "head_seq"))
        and isinstance(d.get("tail_seq"), int)
        and isinstance(d.get("partial_bytes"), int)
        and (d.get("partial_sha256") is None or isinstance(d.get("partial_sha256"), str))
    )


def _gap(ln: _Line, rec: _Rec, *, evidence_ok: bool, chained: bool) -> AuditGap:
    d = rec.data
    by = d.get("detected_by")
    who = f"pid {by.get('pid')} ({by.get('user')})" if isinstance(by, dict) else "an unknown writer"
    return AuditGap(
        file=ln.file,
        line=ln.number,
        seq=rec.seq,
        detected=str(d.get("ts", "?")),
        detected_by=who,
        reasons=tuple(str(r) for r in d.get("reasons") or ()),
        missing_from=d.get("missing_from"),
        missing_to=d.get("missing_to"),
        head_seq=d.get("head_seq"),
        tail_seq=d.get("tail_seq", 0),
        partial_bytes=d.get("partial_bytes", 0),
        evidence_ok=evidence_ok,
        chained=chained,
    )


def verify(path: Path) -> VerifyReport:
    """Check the chain of every file of the log at ``path``, oldest to newest.

    Reports every **gap** record (a writer found entries missing or a cut line:
    these never stop failing verification) and the first break in the chain:
    a line *edited* after it was written, entries *deleted*, entries
    *reordered*, or the log *truncated* (a line cut short, or entries cut off
    the end: the head file records a later entry). A gap does not end the
    check: the chain after it must be intact too. A line kept as evidence
    before a gap record must still match the length and SHA-256 the gap
    recorded. The head's gap count must match the gap records found. Writers
    are held off (shared ``flock``) while the files are read.
    """
    with _shared_lock(path):
        return _verify(path)


def _verify(path: Path) -> VerifyReport:
    files = log_files(path)
    report = VerifyReport(files=files)
    head = _load_head(path)
    known = head if isinstance(head, HeadRecord) else None
    prev_hash = GENESIS
    expected = 1
    prev_line: _Line | None = None
    head_line_hash: str | None = None
    pending: list[_Line] = []  # lines that are not records, waiting for a gap record to account for them
    gap_records = 0
    breaks: list[AuditProblem] = []  # at most one: the chain is not followed past a break
    lines = list(_lines(files))

    def fail(where: _Line, kind: ProblemKind, detail: str) -> None:
        problem = AuditProblem(where.file, where.number, kind, detail)
        report.problems.append(problem)
        breaks.append(problem)

    def found_gap(ln: _Line, rec: _Rec, *, evidence_ok: bool, chained: bool) -> None:
        gap = _gap(ln, rec, evidence_ok=evidence_ok, chained=chained)
        report.gaps.append(gap)
        report.problems.append(AuditProblem(ln.file, ln.number, "gap", gap.describe()))

    for index, ln in enumerate(lines):
        rec = _record(ln.raw) if ln.complete else None
        if breaks:
            # Past the first break only gap records are listed: every gap is reported.
            if rec is not None and rec.is_gap and _gap_valid(rec):
                found_gap(ln, rec, evidence_ok=False, chained=False)
            continue
        if rec is None:
            pending.append(ln)
            continue
        if rec.is_gap and not _gap_valid(rec):
            fail(ln, "edited", "not a valid gap record")
            continue
        want = rec.data.get("partial_sha256") if rec.is_gap else None
        if isinstance(want, str):
            blob = b"\n".join(x.raw for x in pending)
            size = rec.data["partial_bytes"]
            if not pending:
                fail(ln, "deleted", f"the {size}-byte line this gap record kept as evidence is gone")
            elif hashlib.sha256(blob).hexdigest() != want or len(blob) != size:
                fail(pending[0], "edited", f"not the evidence the gap record at line {ln.number} describes")
            pending = []
        if pending:
            first = pending[0]
            if first.complete:
                fail(first, "edited", "not a valid audit record (JSON with seq and prev expected)")
            else:
                fail(first, "truncated", "the line is cut short (no newline): the file was truncated")
        if breaks:
            if rec.is_gap:
                found_gap(ln, rec, evidence_ok=False, chained=False)
            continue
        seq, prev = rec.seq, rec.prev
        if prev == prev_hash:
            if rec.is_gap:
                d = rec.data
                fits = d["tail_seq"] == expected - 1 and d.get("tail_hash") == prev_hash
                if not fits or seq != max(d["head_seq"] or 0, d["tail_seq"]) + 1:
                    fail(ln, "edited", "this gap record's sequence numbers do not fit the chain")
            elif seq != expected:
                fail(ln, "edited", f"its sequence number says {seq}, the chain says {expected}")
        elif seq == expected:
            if prev_line is None:
                fail(ln, "edited", "the first entry does not start the chain")
            else:
                fail(
                    prev_line,
                    "edited",
                    f"its hash no longer matches the link stored in entry {seq} (this line or that link changed)",
                )
        elif seq > expected:
            if any(_seq_at(x) == expected for x in lines[index + 1 :]):
                fail(ln, "reordered", f"entry {seq} appears where entry {expected} belongs")
            else:
                gap = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
                fail(ln, "deleted", f"{gap} missing before this line")
        else:
            fail(ln, "reordered", f"entry {seq} repeated or out of order after entry {expected - 1}")
        if rec.is_gap:
            found_gap(ln, rec, evidence_ok=not breaks, chained=not breaks)
            gap_records += not breaks
        if breaks:
            continue
        prev_hash = rec.hash
        if known is not None and seq == known.seq:
            head_line_hash = prev_hash
        expected = seq + 1
        prev_line = ln
        report.entries += 1
    report.head = prev_hash
    if not breaks and pending:
        first = pending[0]
        if first.complete:
            fail(first, "edited", "not a valid audit record (JSON with seq and prev expected)")
        else:
            fail(first, "truncated", "the line is cut short (no newline): the file was truncated")
    if breaks:
        return report
    _check_head(path, report, head, expected - 1, head_line_hash, gap_records, lines, prev_line)
    return report


def _check_head(
    path: Path,
    report: VerifyReport,
    head: HeadState,
    last_seq: int,
    head_line_hash: str | None,
    gap_records: int,
    lines: list[_Line],
    prev_line: _Line | None,
) -> None:
    """The end of an intact chain against the head: nothing cut off, the gap count true."""
    files = report.files
    name = _sidecar(path, "head").name
    end = _Line(files[-1] if files else path, (prev_line.number + 1) if prev_line else 1, b"", True)

    def fail(where: _Line, kind: ProblemKind, detail: str) -> None:
        report.problems.append(AuditProblem(where.file, where.number, kind, detail))

    if head == "missing":
        if last_seq > 0:
            fail(end, "truncated", f"the head file {name} is missing; cannot prove no entries were cut off the end")
        return
    if head == "unreadable":
        fail(end, "edited", f"the head file {name} is not valid")
        return
    if head.seq > last_seq:
        what = "the log is empty" if last_seq == 0 else f"the log ends at entry {last_seq}"
        fail(end, "truncated", f"{what} but the head records entry {head.seq}: entries were cut off")
        return
    if head.seq > 0 and head_line_hash != head.hash:
        where = next((x for x in lines if _seq_at(x) == head.seq), prev_line or end)
        fail(where, "edited", "this entry no longer matches the hash recorded in the head file")
        return
    if head.gaps != gap_records:
        fail(
            end,
            "edited",
            f"the head file {name} counts {head.gaps} gap record(s) but the log holds {gap_records}:"
            " a gap record was removed or the head was edited",
        )


def _seq_at(line: _Line) -> int | None:
    rec = _record(line.raw)
    return rec.seq if rec is not None else None


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
