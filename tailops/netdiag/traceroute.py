"""``traceroute``: ICMP echo with rising TTL, on the event loop, through icmplib sockets.

Why this module exists: icmplib's own ``traceroute()`` blocks a thread for up
to ``max_hops * count * timeout`` seconds and cannot be cancelled. Here each
probe is sent with icmplib's packet code and the answer awaited with
``loop.sock_recvfrom`` (we need the hop's source address, which icmplib's
async socket drops), so a traceroute holds no worker thread, honours an
overall deadline and returns the hops found so far when it runs out.

What it must never do: probe an address the target policy did not check, or
run past its deadline. It needs raw ICMP sockets (root or CAP_NET_RAW): an
unprivileged datagram socket never sees the routers' "time exceeded" replies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import statistics
import time
from typing import Any

import anyio
import icmplib
from icmplib.utils import unique_identifier
from pydantic import Field

from tailops.errors import Unavailable
from tailops.models import Model
from tailops.netdiag.context import NetDiag
from tailops.netdiag.ping import icmp_error

__all__ = ["Hop", "TracerouteResult", "traceroute"]

# ICMP types: (echo reply, time exceeded, destination unreachable) per IP version.
_TYPES = {4: (0, 11, 3), 6: (129, 3, 1)}
_MAX_SECONDS = 60.0


class Hop(Model):
    ttl: int
    address: str | None = Field(None, description="Who answered at this distance (null: no answer).")
    rtts_ms: list[float] = Field(default_factory=list)
    avg_rtt_ms: float | None = None
    lost: int = Field(0, description="Probes at this TTL without an answer.")


class TracerouteResult(Model):
    target: str
    address: str
    hops: list[Hop]
    reached: bool = Field(description="True when the target itself answered.")
    completed: bool = Field(description="False when the overall deadline cut the trace short.")
    resolve_ms: float = 0.0


async def _receive(loop: asyncio.AbstractEventLoop, sock: Any, request: Any, timeout_s: float) -> Any | None:
    """The reply matching ``request`` (id + sequence), or None after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        with anyio.move_on_after(remaining):
            packet, addr = await loop.sock_recvfrom(sock.sock, 2048)
            reply = sock._parse_reply(packet=packet, source=addr[0], current_time=time.time())
            if reply is not None and reply.id == request.id and reply.sequence == request.sequence:
                return reply
            continue
        return None


async def traceroute(nd: NetDiag, target: str, *, max_hops: int, count: int, timeout_s: float) -> TracerouteResult:
    checked = await nd.check(target, "traceroute")
    ip = checked.address
    if not nd.icmp_privileged():
        raise Unavailable(
            "traceroute needs raw ICMP sockets (root or CAP_NET_RAW); network.icmp_mode is unprivileged.",
            hint="Use ping_host for reachability, or run the server with CAP_NET_RAW.",
        )
    echo_reply, time_exceeded, unreachable = _TYPES[ip.version]
    sock_cls = icmplib.ICMPv6Socket if isinstance(ip, ipaddress.IPv6Address) else icmplib.ICMPv4Socket
    loop = asyncio.get_running_loop()
    ident = unique_identifier()
    hops: list[Hop] = []
    reached = False
    completed = False
    budget = min(_MAX_SECONDS, max_hops * count * timeout_s + 1.0)
    async with nd.slot():
        try:
            sock = sock_cls(None, True)
        except icmplib.ICMPLibError as exc:
            raise icmp_error(exc, True) from exc
        try:
            sock.blocking = False
            sequence = 0
            with anyio.move_on_after(budget):
                for ttl in range(1, max_hops + 1):
                    rtts: list[float] = []
                    source: str | None = None
                    stop = False
                    for _ in range(count):
                        request = icmplib.ICMPRequest(destination=str(ip), id=ident, sequence=sequence, ttl=ttl)
                        sequence = (sequence + 1) & 0xFFFF
                        try:
                            sock.send(request)
                        except icmplib.ICMPLibError as exc:
                            raise icmp_error(exc, True) from exc
                        reply = await _receive(loop, sock, request, timeout_s)
                        if reply is None:
                            continue
                        rtts.append(round((reply.time - request.time) * 1000, 3))
                        source = reply.source
                        if reply.type == echo_reply:
                            reached = True
                        elif reply.type == unreachable:
                            stop = True
                            reached = source == str(ip)
                        elif reply.type != time_exceeded:
                            stop = True
                    hops.append(
                        Hop(
                            ttl=ttl,
                            address=source,
                            rtts_ms=rtts,
                            avg_rtt_ms=round(statistics.fmean(rtts), 3) if rtts else None,
                            lost=count - len(rtts),
                        )
                    )
                    if reached or stop:
                        break
                completed = True
        finally:
            sock.close()
    return TracerouteResult(
        target=checked.host,
        address=str(ip),
        hops=hops,
        reached=reached,
        completed=completed,
        resolve_ms=checked.resolve_ms,
    )
