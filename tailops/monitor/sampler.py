"""Background samplers, so no request ever waits for a measurement window.

CPU percentages need two readings some time apart. Instead of
``cpu_percent(interval=1)`` inside a request (a one-second stall), one daemon
thread reads the counters every ``interval`` seconds and keeps the latest
result. Disk usage is refreshed on its own thread because ``statvfs`` on a
hung network mount can block: a request then still answers from the last good
sample and says how old it is.

The cost is one read of /proc/stat per interval (well under 1 % of a core).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = ["CpuSample", "Sampler"]

log = logging.getLogger("tailops.monitor.sampler")


@dataclass(frozen=True)
class CpuSample:
    """CPU busy % plus memory and swap, read together once per interval.

    Memory and swap ride along because reading them costs more than the rest of
    a status request (/proc/meminfo and /proc/vmstat: ~0.3 ms); a request then
    only copies numbers at most one interval old.
    """

    total: float
    per_cpu: tuple[float, ...]
    taken_at: float  # time.monotonic()
    memory: Any = None  # psutil svmem
    swap: Any = None  # psutil sswap


class Sampler:
    def __init__(
        self,
        *,
        cpu_interval: float = 1.0,
        slow_interval: float = 15.0,
        slow_probe: Callable[[], Any] | None = None,
    ) -> None:
        self._cpu_interval = cpu_interval
        self._slow_interval = slow_interval
        self._slow_probe = slow_probe
        self._cpu: CpuSample | None = None
        self._slow: Any = None
        self._slow_at: float | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Prime psutil's counters so the first real sample covers one interval.
        psutil.cpu_percent(percpu=True)
        psutil.cpu_percent()

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self._sample_cpu()  # immediate value (since priming), so requests never see None
        for target, name in ((self._cpu_loop, "tailops-cpu-sampler"), (self._slow_loop, "tailops-slow-sampler")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()

    def _sample_cpu(self) -> None:
        per_cpu = tuple(psutil.cpu_percent(percpu=True))
        total = round(sum(per_cpu) / len(per_cpu), 1) if per_cpu else 0.0
        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        with self._lock:
            self._cpu = CpuSample(total=total, per_cpu=per_cpu, taken_at=time.monotonic(), memory=memory, swap=swap)

    def _cpu_loop(self) -> None:
        while not self._stop.wait(self._cpu_interval):
            self._sample_cpu()

    def refresh_slow(self) -> Any:
        if self._slow_probe is None:
            return None
        value = self._slow_probe()
        with self._lock:
            self._slow, self._slow_at = value, time.monotonic()
        return value

    def _slow_loop(self) -> None:
        while True:
            try:
                self.refresh_slow()
            except Exception:  # a probe failure must not kill the sampler
                log.debug("slow sampler probe failed", exc_info=True)
            if self._stop.wait(self._slow_interval):
                return

    def cpu(self) -> CpuSample:
        with self._lock:
            sample = self._cpu
        if sample is None:
            # Not started (e.g. a CLI one-shot): psutil compares with the previous call.
            self._sample_cpu()
            with self._lock:
                sample = self._cpu
        assert sample is not None
        return sample

    def slow(self) -> tuple[Any, float | None]:
        """The latest slow sample and its age in seconds (None if never taken)."""
        with self._lock:
            value, at = self._slow, self._slow_at
        if at is None:
            return self.refresh_slow(), 0.0
        return value, time.monotonic() - at
