"""Benchmark rows and timing helpers for ``make bench``.

Each ``tests/bench/bench_*.py`` module exposes ``run() -> list[Row]``. A row is
one figure; when a baseline was measured in the same run, ``ratio`` is
value/baseline and ``target`` states the goal (e.g. ``ratio <= 1.3``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Row", "percentile", "summarize_ms", "timed"]


@dataclass
class Row:
    group: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str | None = None
    ok: bool | None = None
    note: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summarize_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "p50": statistics.median(ms),
        "p99": percentile(ms, 99),
        "mean": statistics.fmean(ms),
        "n": float(len(ms)),
    }


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out
