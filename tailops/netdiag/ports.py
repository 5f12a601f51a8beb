"""``test_port_connectivity``: TCP connect to one or many ports of a checked address.

Why this module exists: "is the port open?" answered with a real TCP
handshake to the address the target policy checked, each with its own
timeout, a bounded number of ports per call and a bounded number of connects
in flight, on the event loop (no worker threads, no shell, no nc).

What it must never do: connect anywhere but the checked address, send any
payload, or keep a connection open after the handshake.
"""

from __future__ import annotations

import errno
import time
from typing import Literal

import anyio
from pydantic import Field

from tailops.errors import InvalidInput
from tailops.models import ListResult, Model
from tailops.netdiag.context import NetDiag

__all__ = ["MAX_PORTS", "PortResult", "PortScan", "check_ports"]

MAX_PORTS = 100
_PARALLEL = 16

PortState = Literal["open", "closed", "filtered", "unreachable", "error"]


class PortResult(Model):
    port: int | None = None
    state: PortState | None = Field(
        None,
        description="open (handshake done), closed (refused), filtered (no answer in time), unreachable.",
    )
    open: bool | None = None
    connect_ms: float | None = None
    error: str | None = None


class PortScan(ListResult):
    target: str
    address: str
    ports: list[PortResult]
    open_count: int
    timeout_s: float
    resolve_ms: float = 0.0


async def _probe(address: str, port: int, timeout_s: float) -> PortResult:
    started = time.perf_counter()
    try:
        with anyio.fail_after(timeout_s):
            stream = await anyio.connect_tcp(address, port)
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        await stream.aclose()
        return PortResult(port=port, state="open", open=True, connect_ms=elapsed)
    except TimeoutError:
        return PortResult(port=port, state="filtered", open=False, error=f"no answer within {timeout_s:g} s")
    except ConnectionRefusedError:
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return PortResult(port=port, state="closed", open=False, connect_ms=elapsed, error="connection refused")
    except OSError as exc:
        code = exc.errno
        # anyio raises OSError("All connection attempts failed") carrying the first cause.
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else None
        if code is None and cause is not None:
            code = cause.errno
        if code == errno.ECONNREFUSED:
            return PortResult(port=port, state="closed", open=False, error="connection refused")
        if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return PortResult(port=port, state="unreachable", open=False, error=errno.errorcode[code])
        return PortResult(port=port, state="error", open=False, error=errno.errorcode.get(code or 0, "OSError"))


async def check_ports(nd: NetDiag, target: str, ports: list[int], *, timeout_s: float) -> PortScan:
    if not ports:
        raise InvalidInput("give at least one port (1-65535).")
    if len(ports) > MAX_PORTS:
        raise InvalidInput(f"at most {MAX_PORTS} ports per call; got {len(ports)}.")
    bad = [p for p in ports if not 1 <= p <= 65535]
    if bad:
        raise InvalidInput(f"port {bad[0]} is out of range; ports are 1-65535.")
    unique = list(dict.fromkeys(ports))
    checked = await nd.check(target, "port")
    address = str(checked.address)
    results: dict[int, PortResult] = {}
    gate = anyio.CapacityLimiter(_PARALLEL)

    async def one(port: int) -> None:
        async with gate:
            results[port] = await _probe(address, port, timeout_s)

    async with nd.slot(), anyio.create_task_group() as tg:
        for port in unique:
            tg.start_soon(one, port)
    ordered = [results[p] for p in unique]
    return PortScan(
        target=checked.host,
        address=address,
        ports=ordered,
        open_count=sum(1 for r in ordered if r.open),
        timeout_s=timeout_s,
        total=len(ordered),
        resolve_ms=checked.resolve_ms,
    )
