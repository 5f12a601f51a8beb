"""Interfaces, traffic rates and connections from the real machine (psutil), no mocks."""

from __future__ import annotations

import os
import socket
import time

import psutil

from tailops.monitor.network import IoRateTracker, active_connections, network_status


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
