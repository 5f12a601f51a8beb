"""Network interfaces, traffic counters (with rates) and sockets, from psutil.

Rates need a previous reading: :class:`IoRateTracker` keeps the last counters
per server and reports bytes/s and packets/s since the previous call (the first
call reports counters only and says so).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import psutil
from pydantic import Field

from tailops.models import ListResult, Model

__all__ = [
    "ConnectionInfo",
    "Connections",
    "InterfaceInfo",
    "IoRateTracker",
    "NetworkIo",
    "NetworkStatus",
    "active_connections",
    "interfaces_from",
    "network_status",
]

_FAMILY = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
_AF_LINK = getattr(psutil, "AF_LINK", None)


class Address(Model):
    family: str
    address: str
    netmask: str | None = None


class InterfaceInfo(Model):
    name: str | None = None
    is_up: bool | None = None
    speed_mbps: int | None = Field(None, description="Link speed; 0 when unknown (virtual links).")
    mtu: int | None = None
    duplex: str | None = None
    mac: str | None = None
    addresses: list[Address] | None = None
    bytes_sent: int | None = None
    bytes_recv: int | None = None
    errin: int | None = None
    errout: int | None = None
    dropin: int | None = None
    dropout: int | None = None


class NetworkStatus(ListResult):
    interfaces: list[InterfaceInfo]


def network_status(*, include_down: bool = True) -> NetworkStatus:
    out = interfaces_from(
        psutil.net_if_addrs(), psutil.net_if_stats(), psutil.net_io_counters(pernic=True), include_down=include_down
    )
    return NetworkStatus(interfaces=out, total=len(out))


def interfaces_from(
    addrs: Mapping[str, Sequence[Any]],
    stats: Mapping[str, Any],
    io: Mapping[str, Any],
    *,
    include_down: bool = True,
) -> list[InterfaceInfo]:
    """psutil's ``net_if_addrs()``, ``net_if_stats()`` and ``net_io_counters(pernic=True)`` → interfaces."""
    out: list[InterfaceInfo] = []
    for name in sorted(set(addrs) | set(stats)):
        st = stats.get(name)
        if not include_down and st is not None and not st.isup:
            continue
        mac = None
        addresses: list[Address] = []
        for a in addrs.get(name, []):
            if _AF_LINK is not None and a.family == _AF_LINK:
                mac = a.address
            elif a.family in _FAMILY:
                addresses.append(Address(family=_FAMILY[a.family], address=a.address, netmask=a.netmask))
        c = io.get(name)
        out.append(
            InterfaceInfo(
                name=name,
                is_up=st.isup if st else None,
                speed_mbps=st.speed if st else None,
                mtu=st.mtu if st else None,
                duplex={2: "full", 1: "half"}.get(int(st.duplex), "unknown") if st else None,
                mac=mac,
                addresses=addresses,
                bytes_sent=c.bytes_sent if c else None,
                bytes_recv=c.bytes_recv if c else None,
                errin=c.errin if c else None,
                errout=c.errout if c else None,
                dropin=c.dropin if c else None,
                dropout=c.dropout if c else None,
            )
        )
    return out


class IoCounters(Model):
    name: str | None = None
    bytes_sent: int | None = None
    bytes_recv: int | None = None
    packets_sent: int | None = None
    packets_recv: int | None = None
    errin: int | None = None
    errout: int | None = None
    dropin: int | None = None
    dropout: int | None = None
    sent_bytes_per_s: float | None = Field(None, description="Since the previous call; null on the first.")
    recv_bytes_per_s: float | None = None
    sent_packets_per_s: float | None = None
    recv_packets_per_s: float | None = None


class NetworkIo(ListResult):
    totals: IoCounters
    interfaces: list[IoCounters]
    interval_s: float | None = Field(description="Seconds since the previous call (rates cover this window).")


class IoRateTracker:
    """Remembers the previous counters so each call can report rates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prev: dict[str, Any] | None = None
        self._prev_at: float | None = None
        self._prev_total: Any = None

    def sample(self) -> NetworkIo:
        now = time.monotonic()
        current = psutil.net_io_counters(pernic=True)
        total = psutil.net_io_counters(pernic=False)
        with self._lock:
            prev, prev_at, prev_total = self._prev, self._prev_at, self._prev_total
            self._prev, self._prev_at, self._prev_total = dict(current), now, total
        interval = (now - prev_at) if prev_at is not None else None

        def row(name: str, c: Any, p: Any) -> IoCounters:
            rate = interval is not None and interval > 0 and p is not None

            def per_s(a: int, b: int) -> float | None:
                # Counters can wrap or reset (interface re-created): no negative rates.
                return round(max(a - b, 0) / interval, 1) if rate and interval else None

            return IoCounters(
                name=name,
                bytes_sent=c.bytes_sent,
                bytes_recv=c.bytes_recv,
                packets_sent=c.packets_sent,
                packets_recv=c.packets_recv,
                errin=c.errin,
                errout=c.errout,
                dropin=c.dropin,
                dropout=c.dropout,
                sent_bytes_per_s=per_s(c.bytes_sent, p.bytes_sent) if p else None,
                recv_bytes_per_s=per_s(c.bytes_recv, p.bytes_recv) if p else None,
                sent_packets_per_s=per_s(c.packets_sent, p.packets_sent) if p else None,
                recv_packets_per_s=per_s(c.packets_recv, p.packets_recv) if p else None,
            )

        rows = [row(name, c, (prev or {}).get(name)) for name, c in sorted(current.items())]
        return NetworkIo(
            totals=row("all", total, prev_total),
            interfaces=rows,
            interval_s=round(interval, 3) if interval is not None else None,
            total=len(rows),
        )


class ConnectionInfo(Model):
    proto: str | None = None
    family: str | None = None
    local: str | None = None
    remote: str | None = None
    status: str | None = None
    pid: int | None = None
    process: str | None = Field(None, description="Process name, where permitted.")


class Connections(ListResult):
    connections: list[ConnectionInfo]
    kind: str


ConnKind = Literal["inet", "inet4", "inet6", "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "all"]

STATUSES = (
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NONE",
)


def _addr(a: object) -> str | None:
    if not a:
        return None
    if isinstance(a, tuple) and len(a) == 2:
        host, port = a
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(a)


def active_connections(kind: ConnKind, status: str | None, limit: int) -> Connections:
    try:
        conns = psutil.net_connections(kind=kind)
    except psutil.AccessDenied:
        conns = [c for p in psutil.process_iter() for c in _proc_conns(p, kind)]
    wanted = status.upper() if status else None
    names: dict[int, str | None] = {}
    rows: list[ConnectionInfo] = []
    matched = 0
    for c in conns:
        if wanted and c.status != wanted:
            continue
        matched += 1
        if len(rows) >= limit:
            continue
        name = None
        if c.pid:
            if c.pid not in names:
                try:
                    names[c.pid] = psutil.Process(c.pid).name()
                except psutil.Error:
                    names[c.pid] = None
            name = names[c.pid]
        rows.append(
            ConnectionInfo(
                proto={socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}.get(c.type, str(c.type)),
                family=_FAMILY.get(c.family, "unix" if c.family == socket.AF_UNIX else str(c.family)),
                local=_addr(c.laddr),
                remote=_addr(c.raddr),
                status=c.status,
                pid=c.pid,
                process=name,
            )
        )
    return Connections(
        connections=rows,
        kind=kind,
        total=matched,
        truncated=matched > len(rows),
        truncation=f"{len(rows)} of {matched} shown; raise limit or filter by status" if matched > len(rows) else None,
    )


def _proc_conns(proc: psutil.Process, kind: str) -> list[Any]:
    try:
        return list(proc.net_connections(kind=kind))
    except psutil.Error:
        return []
