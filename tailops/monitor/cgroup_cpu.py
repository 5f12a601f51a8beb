"""A container's CPU time read straight from its cgroup, when the engine runs on this host.

Why: the Docker engine hands out stats once per collection tick (1 s), and a CPU %
needs two samples, so a first ``docker stats``-style answer for a container the
server has never sampled takes two ticks (2-3 s for 50 containers). The engine
itself reads the container's CPU time from the cgroup (``cpuacct.usage`` on
cgroup v1, ``usage_usec`` in ``cpu.stat`` on v2). Reading the same counter at the
start and at the end of a one-second window gives the CPU % while a one-shot
engine sample (one tick) brings memory, network and block I/O — one tick instead
of two.

Only the engine's standard layouts (cgroupfs and systemd drivers, v1 and v2) are
looked up, by the container's full 64-hex id, so a counter can never belong to
another container. Whatever is not found (remote or rootless engine, a custom
``--cgroup-parent``, a server inside a container without the host's
``/sys/fs/cgroup``) yields None and the caller falls back to the engine's
two-tick sample. Reading these files changes nothing.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

__all__ = ["DEFAULT_ROOT", "CgroupCpu"]

DEFAULT_ROOT = Path("/sys/fs/cgroup")
_FULL_ID = re.compile(r"^[0-9a-f]{64}$")
# (path below the cgroup root, unit of the counter); {id} is the full container id.
_LAYOUTS: tuple[tuple[str, str], ...] = (
    ("system.slice/docker-{id}.scope/cpu.stat", "usec"),  # v2, systemd driver
    ("docker/{id}/cpu.stat", "usec"),  # v2, cgroupfs driver
    ("cpuacct/docker/{id}/cpuacct.usage", "ns"),  # v1, cgroupfs driver
    ("cpu,cpuacct/docker/{id}/cpuacct.usage", "ns"),
    ("cpuacct/system.slice/docker-{id}.scope/cpuacct.usage", "ns"),  # v1, systemd driver
    ("cpu,cpuacct/system.slice/docker-{id}.scope/cpuacct.usage", "ns"),
)


class CgroupCpu:
    """Reads containers' cumulative CPU time (ns) below ``root``; remembers the layout that matched."""

    def __init__(self, root: Path | None = DEFAULT_ROOT) -> None:
        self.root = root
        self._first = 0  # index into _LAYOUTS tried first (the one that matched last)
        self._lock = threading.Lock()

    def usage_ns(self, container_id: str) -> int | None:
        """Total CPU time of the container in nanoseconds, or None when its cgroup is not readable here."""
        if self.root is None or not _FULL_ID.match(container_id):
            return None
        first = self._first
        order = [first, *(i for i in range(len(_LAYOUTS)) if i != first)]
        for index in order:
            template, unit = _LAYOUTS[index]
            try:
                text = (self.root / template.format(id=container_id)).read_text()
            except OSError:
                continue
            value = _parse(text, unit)
            if value is None:
                continue
            if index != first:
                with self._lock:
                    self._first = index
            return value
        return None


def _parse(text: str, unit: str) -> int | None:
    if unit == "ns":
        first = text.strip().split("\n", 1)[0]
        return int(first) if first.isdigit() else None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) * 1000
    return None
