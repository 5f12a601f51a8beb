"""Template mining of error and warning lines with drain3.

Why it exists: "connect to 10.0.0.7:5432 failed after 31 ms" and "... after
12 ms" are one recurring error. Variable parts (times, ids, addresses, hex,
numbers) are masked in one regex pass, then drain3 groups the lines into
templates, kept within ``max_clusters`` (least recently used dropped).
:class:`Templates` keeps the counters per template (bounded: beyond twice
``max_clusters`` the least frequent are pruned) and which ones a signature or
stack-trace finding already explains.

What it must never do: import drain3 before the first analysis (server start-up
stays light), or let drain3 run its own per-kind masking (one pass here is
several times cheaper).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from tailops.monitor.log_analysis.evidence import Group, clip
from tailops.monitor.log_analysis.models import TemplateStat

if TYPE_CHECKING:
    from drain3 import TemplateMiner

__all__ = ["Templates", "mask", "new_miner"]

Level = Literal["error", "warning"]


def new_miner(max_clusters: int) -> TemplateMiner:
    # drain3 (and jsonpickle, cachetools) load on the first analysis, not at start-up.
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    cfg = TemplateMinerConfig()
    cfg.drain_sim_th = 0.5
    cfg.drain_depth = 4
    cfg.drain_max_clusters = max_clusters
    cfg.parametrize_numeric_tokens = True
    cfg.masking_instructions = []  # masked by mask (one pass) before drain3 sees the text
    return TemplateMiner(config=cfg)


# Variable parts of a message, masked in one pass (drain3's own masker runs one regex per kind).
_MASK = re.compile(
    r"(?P<TS>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b)"
    r"|(?P<ID>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<IP>\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b)"
    r"|(?P<HEX>\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{12,}\b)"
    r"|(?P<NUM>(?<![A-Za-z])[-+]?\d+(?:\.\d+)?(?![A-Za-z]))"
)


def mask(text: str) -> str:
    return _MASK.sub(lambda m: f"<{m.lastgroup}>", text)


class Templates:
    """The mined templates of one analysis and their counters."""

    def __init__(self, max_clusters: int) -> None:
        self.max_clusters = max_clusters
        self._miner = new_miner(max_clusters)
        self.groups: dict[int, Group] = {}
        self.severity: dict[int, Level] = {}
        self.text: dict[int, str] = {}
        self.covered: set[int] = set()  # templates already explained by a signature or trace finding

    def mine(self, body: str) -> int:
        """The template id of ``body`` (drain3 learns it; nothing is counted)."""
        result = self._miner.add_log_message(mask(body[:2000]))
        cid = int(result["cluster_id"])
        self.text[cid] = str(result["template_mined"])
        return cid

    def count(self, cid: int, severity: Level, no: int, ts: str | None, body: str) -> bool:
        """Count one occurrence; True when older templates were pruned (ids cached elsewhere may be gone)."""
        pruned = False
        group = self.groups.get(cid)
        if group is None:
            if len(self.groups) >= 2 * self.max_clusters:
                self._prune()
                pruned = True
            group = self.groups[cid] = Group()
        group.hit(no, ts, body, 1)
        if self.severity.get(cid) != "error":
            self.severity[cid] = severity
        return pruned

    def _prune(self) -> None:
        keep = sorted(self.groups, key=lambda c: self.groups[c].count, reverse=True)
        for cid in keep[self.max_clusters :]:
            self.groups.pop(cid, None)
            self.text.pop(cid, None)
            self.severity.pop(cid, None)
            self.covered.discard(cid)

    def unexplained_errors(self) -> Iterator[tuple[int, Group, str]]:
        """Error templates no signature or trace finding covers, most frequent first."""
        for cid, group in sorted(self.groups.items(), key=lambda kv: kv[1].count, reverse=True):
            if cid in self.covered or self.severity.get(cid) != "error":
                continue
            yield cid, group, self.text.get(cid, "")

    def stats(self, limit: int, line_chars: int) -> list[TemplateStat]:
        """The top ``limit`` templates, errors first, then by count and recency."""
        rows = sorted(
            self.groups.items(),
            key=lambda kv: (self.severity.get(kv[0]) == "error", kv[1].count, kv[1].last_line),
            reverse=True,
        )
        return [
            TemplateStat(
                template=clip(self.text.get(cid, ""), line_chars),
                severity=self.severity.get(cid),
                count=group.count,
                first_seen=group.first_ts,
                last_seen=group.last_ts,
                example=next(iter(group.evidence(line_chars)), None),
            )
            for cid, group in rows[:limit]
        ]
