"""The audit alarm view: what /health and /metrics show without walking the chain.

Why it exists: a scrape or health check must learn of gap records and of a missing or
unreadable head cheaply, on every request; this reads the 128-byte head file, never the
log (a full walk is :func:`tailops.audit.verification.verify`).

What it must never do: read the log's lines, write anything, or call a missing head
healthy once the log holds data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tailops.audit.files import file_size, load_head, log_files, shared_lock
from tailops.audit.records import HeadRecord

__all__ = ["AuditStatus", "read_status"]


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
    head = load_head(path)
    if head == "unreadable":
        # A writer's 128-byte pwrite may be caught halfway: read once more between appends.
        with shared_lock(path):
            head = load_head(path)
    if isinstance(head, HeadRecord):
        return AuditStatus(head.gaps, "ok", head.seq)
    if head == "missing" and not any(file_size(f) for f in log_files(path)):
        return AuditStatus(0, "empty")
    return AuditStatus(0, head)
