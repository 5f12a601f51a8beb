"""ICMP echo (``ping_host``) through icmplib: no shell, no ``ping`` binary.

Why this module exists: ping the *checked* address (never the name again),
with bounded count, interval and timeout, without holding a worker thread
(icmplib's async socket waits on the event loop), inside one probe slot.

What it must never do: send to an address the target policy did not check, or
run longer than ``count * (interval + timeout)`` plus a second.
"""

from __future__ import annotations

import statistics

import anyio
import icmplib
from pydantic import Field

from tailops.errors import OperationTimeout, Unavailable
from tailops.models import Model
from tailops.netdiag.context import NetDiag

__all__ = ["PingResult", "icmp_error", "ping"]


class PingResult(Model):
    target: str = Field(description="The host as given, normalised.")
    address: str = Field(description="The checked address the packets went to.")
    packets_sent: int
    packets_received: int
    packet_loss: float = Field(description="0.0 (none lost) to 1.0 (all lost).")
    is_alive: bool
    min_rtt_ms: float | None = None
    avg_rtt_ms: float | None = None
    max_rtt_ms: float | None = None
    jitter_ms: float | None = None
    rtts_ms: list[float] = Field(default_factory=list)
    privileged: bool = Field(description="Raw ICMP socket (root) rather than an unprivileged datagram socket.")
    resolve_ms: float = 0.0


def icmp_error(exc: icmplib.ICMPLibError, privileged: bool) -> Unavailable:
    """Translate an icmplib failure into our error tree (the caller raises ``from exc``)."""
    if isinstance(exc, icmplib.SocketPermissionError):
        if privileged:
            return Unavailable(
                "raw ICMP sockets need root or CAP_NET_RAW.",
                hint="Set network.icmp_mode: unprivileged (needs net.ipv4.ping_group_range to include the "
                "server's group), or run the server with CAP_NET_RAW.",
            )
        return Unavailable(
            "unprivileged ICMP sockets are not permitted for this user "
            "(net.ipv4.ping_group_range does not include its group).",
            hint="Widen net.ipv4.ping_group_range, or set network.icmp_mode: privileged with CAP_NET_RAW.",
        )
    return Unavailable(f"ICMP probe failed: {exc.__class__.__name__}.")


async def ping(nd: NetDiag, target: str, *, count: int, interval: float, timeout_s: float) -> PingResult:
    checked = await nd.check(target, "ping")
    address = str(checked.address)
    privileged = nd.icmp_privileged()
    deadline = count * (interval + timeout_s) + 1.0
    async with nd.slot():
        try:
            with anyio.fail_after(deadline):
                host = await icmplib.async_ping(
                    address, count=count, interval=interval, timeout=timeout_s, privileged=privileged
                )
        except TimeoutError:
            raise OperationTimeout(f"ping {checked.host} did not finish within {deadline:g} s.") from None
        except icmplib.ICMPLibError as exc:
            raise icmp_error(exc, privileged) from exc
    rtts = [round(r, 3) for r in host.rtts]
    return PingResult(
        target=checked.host,
        address=address,
        packets_sent=host.packets_sent,
        packets_received=host.packets_received,
        packet_loss=round(host.packet_loss, 4),
        is_alive=host.is_alive,
        min_rtt_ms=min(rtts) if rtts else None,
        avg_rtt_ms=round(statistics.fmean(rtts), 3) if rtts else None,
        max_rtt_ms=max(rtts) if rtts else None,
        jitter_ms=round(host.jitter, 3) if len(rtts) > 1 else None,
        rtts_ms=rtts,
        privileged=privileged,
        resolve_ms=checked.resolve_ms,
    )
