"""Top processes by CPU or memory.

CPU % of a process needs two readings. psutil keeps the Process objects that
``process_iter`` returned and compares with the previous scan, so each scan
reports CPU use *since the previous scan* (the server primes one scan at start).
The window is reported, never hidden. Processes that exit or deny access during
the scan are skipped or shown with ``null`` fields, never an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psutil
from pydantic import Field

from tailops.models import ListResult, Model

__all__ = ["ProcessInfo", "TopProcesses", "prime", "process_info", "top_processes"]

CMDLINE_MAX = 200
SCAN_MAX_AGE_S = 1.0
_ATTRS = [
    "pid",
    "name",
    "username",
    "cpu_percent",
    "memory_info",
    "memory_percent",
    "cmdline",
    "status",
    "create_time",
    "num_threads",
]
_scan_lock = threading.Lock()
_last_scan: list[float] = [0.0]


class ProcessInfo(Model):
    pid: int | None = None
    name: str | None = None
    user: str | None = None
    cpu_percent: float | None = Field(None, description="% of one CPU since the previous scan.")
    rss: int | None = Field(None, description="Resident memory in bytes.")
    memory_percent: float | None = None
    status: str | None = None
    threads: int | None = None
    started: float | None = Field(None, description="Start time, Unix seconds.")
    cmdline: str | None = Field(None, description=f"Command line, cut at {CMDLINE_MAX} characters.")


class TopProcesses(ListResult):
    processes: list[ProcessInfo]
    sort_by: Literal["cpu", "memory"]
    cpu_window_s: float | None = Field(description="Seconds covered by cpu_percent (since the previous scan).")
    sample_age_s: float = Field(0.0, description=f"Age of the scan (scans are shared for up to {SCAN_MAX_AGE_S:g} s).")
    skipped: int = Field(0, description="Processes that exited during the scan.")


def prime() -> None:
    """One scan so that the first real request has a CPU window."""
    with _scan_lock:
        for _ in psutil.process_iter(["cpu_percent"]):
            pass
        _last_scan[0] = time.monotonic()
        _last[0] = None


def _cmdline(parts: list[str] | None) -> str | None:
    if not parts:
        return None
    text = " ".join(parts)
    return text if len(text) <= CMDLINE_MAX else text[: CMDLINE_MAX - 1] + "…"


def process_info(info: Mapping[str, Any]) -> ProcessInfo:
    """One psutil ``Process.info`` (the attributes in ``_ATTRS``; None where access was denied) → ProcessInfo."""
    mem = info.get("memory_info")
    return ProcessInfo(
        pid=info["pid"],
        name=info.get("name"),
        user=info.get("username"),
        cpu_percent=round(info["cpu_percent"], 1) if info.get("cpu_percent") is not None else None,
        rss=mem.rss if mem is not None else None,
        memory_percent=round(info["memory_percent"], 2) if info.get("memory_percent") is not None else None,
        status=info.get("status"),
        threads=info.get("num_threads"),
        started=info.get("create_time"),
        cmdline=_cmdline(info.get("cmdline")),
    )


@dataclass(frozen=True)
class _Scan:
    rows: tuple[ProcessInfo, ...]
    window: float | None
    skipped: int
    at: float  # time.monotonic()


_last: list[_Scan | None] = [None]


def _scan() -> _Scan:
    rows: list[ProcessInfo] = []
    skipped = 0
    now = time.monotonic()
    window = now - _last_scan[0] if _last_scan[0] else None
    for proc in psutil.process_iter(_ATTRS, ad_value=None):
        try:
            info = proc.info
        except psutil.Error:
            skipped += 1
            continue
        rows.append(process_info(info))
    _last_scan[0] = now
    return _Scan(tuple(rows), window, skipped, now)


def top_processes(limit: int, sort_by: Literal["cpu", "memory"], *, max_age: float = SCAN_MAX_AGE_S) -> TopProcesses:
    """The top ``limit`` processes. Callers within ``max_age`` seconds of a scan share it
    (one scan at a time: concurrent callers wait for it instead of scanning again), so a
    burst of requests costs one walk of /proc, not one each."""
    with _scan_lock:
        scan = _last[0]
        if scan is None or time.monotonic() - scan.at > max_age:
            scan = _last[0] = _scan()
    rows = list(scan.rows)
    if sort_by == "cpu":
        rows.sort(key=lambda p: (p.cpu_percent or 0.0, p.rss or 0), reverse=True)
    else:
        rows.sort(key=lambda p: p.rss or 0, reverse=True)
    total = len(rows)
    shown = rows[:limit]
    return TopProcesses(
        processes=shown,
        sort_by=sort_by,
        cpu_window_s=round(scan.window, 2) if scan.window is not None else None,
        sample_age_s=round(time.monotonic() - scan.at, 2),
        skipped=scan.skipped,
        total=total,
    )
