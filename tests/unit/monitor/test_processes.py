"""Top processes from the real machine (psutil), no mocks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psutil
import pytest

from tailops.monitor import processes


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def test_top_processes_finds_a_busy_process_and_reports_the_window() -> None:
    """The busy loop's reported CPU % matches the CPU time it really used in the window.

    Not an absolute share: on a loaded machine the loop gets far less than a core. What
    must hold is that cpu_percent x window lies between the CPU time the loop used inside
    the window (at least what it used between prime() and the scan) and what it used over
    the whole test, and that it ranks above an idle process.
    """
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        watched = psutil.Process(busy.pid)
        cpu_start = _cpu_s(watched)
        t0 = time.monotonic()
        processes.prime()
        primed = time.monotonic()
        cpu_primed = _cpu_s(watched)
        # A window long against the time a scan takes (prime's is the measure), so that the
        # bounds below are tight enough to catch a wrong window or a wrong percentage.
        wait_until = primed + max(1.0, 6 * (primed - t0))
        deadline = primed + 60
        while (cpu_before_scan := _cpu_s(watched)) - cpu_primed < 0.3 or time.monotonic() < wait_until:
            assert time.monotonic() < deadline, "the busy loop got < 0.3 s of CPU in 60 s"
            time.sleep(0.05)
        scan_start = time.monotonic()
        top = processes.top_processes(100_000, "cpu", max_age=0)
        scanned = time.monotonic()
        cpu_end = _cpu_s(watched)
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()
    window = top.cpu_window_s
    # The scan's window runs from the end of prime() to the start of the scan.
    assert window is not None and scan_start - primed - 0.01 <= window <= scanned - t0 + 0.01
    pids = [p.pid for p in top.processes]
    assert busy.pid in pids and idle.pid in pids and pids.index(busy.pid) < pids.index(idle.pid)
    me = next(p for p in top.processes if p.pid == busy.pid)
    assert me.cpu_percent is not None
    # psutil's window for this process starts inside prime() and ends inside the scan.
    slack = (primed - t0) + (scanned - scan_start) + 0.01
    tick = 0.03  # cpu_times granularity (clock ticks) and rounding of the reported figures
    reported_min = me.cpu_percent / 100 * window
    reported_max = me.cpu_percent / 100 * (window + slack)
    assert reported_max >= cpu_before_scan - cpu_primed - tick, (me.cpu_percent, window, cpu_before_scan - cpu_primed)
    assert reported_min <= cpu_end - cpu_start + tick, (me.cpu_percent, window, cpu_end - cpu_start)
    assert me.cmdline is not None and "while True" in me.cmdline
    assert top.total is not None and top.total > 5


def test_top_processes_by_memory_is_sorted_and_limited() -> None:
    top = processes.top_processes(3, "memory", max_age=0)
    rss = [p.rss or 0 for p in top.processes]
    assert len(rss) == 3 and rss == sorted(rss, reverse=True)


def test_vanishing_processes_are_skipped_not_errors() -> None:
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            subprocess.run(["true"], check=False)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(20):
            processes.top_processes(500, "cpu", max_age=0)
    finally:
        stop.set()
        thread.join()


def test_long_command_lines_are_cut() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "x" * 500])
    try:
        time.sleep(0.2)
        top = processes.top_processes(2000, "memory", max_age=0)
    finally:
        proc.kill()
        proc.wait()
    row = next(p for p in top.processes if p.pid == proc.pid)
    assert row.cmdline is not None and len(row.cmdline) <= processes.CMDLINE_MAX


def test_a_burst_of_callers_shares_one_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    scans = 0
    real = processes._scan

    def counting() -> processes._Scan:
        nonlocal scans
        scans += 1
        time.sleep(0.05)  # a slow walk of /proc: the others must wait for it, not start their own
        return real()

    monkeypatch.setattr(processes, "_scan", counting)
    processes.top_processes(1, "cpu", max_age=0)
    assert scans == 1
    results: list[processes.TopProcesses] = []
    threads = [
        threading.Thread(target=lambda: results.append(processes.top_processes(5, "memory", max_age=5)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert scans == 1 and len(results) == 8
    assert all(r.sample_age_s >= 0 for r in results)
    time.sleep(0.05)
    processes.top_processes(5, "memory", max_age=0.01)  # older than max_age: a new scan
    assert scans == 2
