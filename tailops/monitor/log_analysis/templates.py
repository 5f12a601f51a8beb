"""Template mining of error and warning lines with drain3.

Why it exists: "connect to 10.0.0.7:5432 failed after 31 ms" and "... after
12 ms" are one recurring error. Variable parts (times, ids, addresses, hex,
numbers) are masked in one regex pass, then drain3 groups the lines into
templates, kept within ``max_clusters`` (least recently used dropped).

What it must never do: import drain3 before the first analysis (server start-up
stays light), or let drain3 run its own per-kind masking (one pass here is
several times cheaper).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drain3 import TemplateMiner

__all__ = ["mask", "new_miner"]


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
