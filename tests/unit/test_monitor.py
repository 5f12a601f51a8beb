"""Read-path facts against the real machine (psutil), no mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from tailops.monitor import processes
from tailops.monitor.network import IoRateTracker, active_connections, network_status
from tailops.monitor.sampler import Sampler
from tailops.monitor.system import PSEUDO_FS, collect_disks, system_status


def test_system_status_reports_real_facts() -> None:
    sampler = Sampler(cpu_interval=0.05, slow_probe=collect_disks)
    sampler.start()
    try:
        time.sleep(0.15)
        st = system_status(sampler, per_cpu=True)
    finally:
        sampler.stop()
    assert st.hostname == socket.gethostname()
    assert st.memory.total == psutil.virtual_memory().total
    assert 0.0 <= st.cpu.percent <= 100.0
    assert st.cpu.per_cpu is not None and len(st.cpu.per_cpu) == psutil.cpu_count()
    assert st.cpu.sample_age_s < 1.0
    assert st.load is not None and st.load.one == st.load.one  # not NaN
    assert st.uptime_s > 0
    assert st.disks, "at least the root filesystem"
    assert all(d.fstype not in PSEUDO_FS or d.mountpoint == "/" for d in st.disks)
    assert len({d.device for d in st.disks}) == len(st.disks)


def test_cpu_percent_comes_from_the_sampler_not_the_request() -> None:
    sampler = Sampler(cpu_interval=10.0)
    sampler.start()
    try:
        t = time.perf_counter()
        for _ in range(50):
            system_status(sampler)
        per_call = (time.perf_counter() - t) / 50
    finally:
        sampler.stop()
    assert per_call < 0.05, "a request must never wait for a CPU sampling window"


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


def test_network_status_lists_loopback() -> None:
    st = network_status()
    lo = next(i for i in st.interfaces if i.name == "lo")
    assert lo.is_up is True
    assert lo.addresses and any(a.address == "127.0.0.1" for a in lo.addresses)
    assert lo.mtu and lo.mtu > 0


def test_io_rates_cover_traffic_between_calls() -> None:
    tracker = IoRateTracker()
    first = tracker.sample()
    assert first.interval_s is None and first.totals.recv_bytes_per_s is None
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    payload = b"x" * 2_000_000
    cli.sendall(payload)
    got = 0
    while got < len(payload):
        got += len(conn.recv(1 << 20))
    for s in (cli, conn, srv):
        s.close()
    # interval_s is rounded to ms: a window of a few ms would make rate x interval
    # off by up to 25 %, so let the window be long enough for the rounding not to matter.
    time.sleep(0.2)
    second = tracker.sample()
    lo = next(i for i in second.interfaces if i.name == "lo")
    assert second.interval_s is not None and second.interval_s > 0
    assert lo.recv_bytes_per_s is not None
    assert lo.recv_bytes_per_s * second.interval_s >= 0.9 * len(payload)


def test_connections_show_a_listening_socket_with_its_process() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    try:
        result = active_connections("tcp", "LISTEN", 2000)
    finally:
        srv.close()
    mine = [c for c in result.connections if c.local == f"127.0.0.1:{port}"]
    assert mine, "our listening socket"
    assert mine[0].pid == os.getpid()
    assert mine[0].process == psutil.Process().name()
    assert mine[0].status == "LISTEN"


def test_connection_limit_marks_truncation() -> None:
    socks = []
    for _ in range(5):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
    try:
        result = active_connections("tcp", "LISTEN", 2)
    finally:
        for s in socks:
            s.close()
    assert len(result.connections) == 2
    assert result.truncated is True and result.total is not None and result.total >= 5
