"""Tamper-evident audit log: append-only JSON lines, each carrying the SHA-256
of the previous line, so an edit, deletion or reordering breaks the chain.

Every tool call and every CLI command that changes state is recorded with who,
what, arguments (secrets redacted), the decision, the real outcome and the
plan/run ids. Mutating and denied calls are fsynced before the call returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from tailops.errors import AuditError
from tailops.redact import redact

__all__ = ["GENESIS", "AuditLog"]

GENESIS = "0" * 64


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._prev = self._last_hash()
        except OSError as exc:
            raise AuditError(f"cannot open the audit log at {path}: {exc.strerror}.") from exc

    def _last_hash(self) -> str:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return GENESIS
        with self.path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            back = min(size, 1 << 20)
            fh.seek(size - back)
            tail = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return hashlib.sha256(tail).hexdigest()

    def record(self, entry: dict[str, Any], *, sync: bool = False) -> str:
        """Append one entry; return its line hash."""
        body = redact(entry)
        with self._lock:
            line = json.dumps(
                {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", **body, "prev": self._prev},
                separators=(",", ":"),
                sort_keys=False,
                default=str,
                ensure_ascii=False,
            ).encode()
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line + b"\n")
                    if sync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditError(f"cannot write the audit log at {self.path}: {exc.strerror}.") from exc
            self._prev = hashlib.sha256(line).hexdigest()
            return self._prev
