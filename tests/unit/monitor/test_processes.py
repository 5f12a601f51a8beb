"""Top processes from the real machine (psutil), no mocks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from tailops.monitor import processes


def test_top_processes_finds_a_busy_process_and_reports_the_window() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        processes.prime()
        time.sleep(0.5)
        top = processes.top_processes(5, "cpu", max_age=0)
    finally:
        busy.kill()
        busy.wait()
    assert top.cpu_window_s is not None and top.cpu_window_s >= 0.4
    pids = [p.pid for p in top.processes]
    assert busy.pid in pids
    me = next(p for p in top.processes if p.pid == busy.pid)
    assert me.cpu_percent is not None and me.cpu_percent > 20
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
