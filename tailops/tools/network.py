"""Network status tools (group ``network``): interfaces, traffic, sockets."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tailops.errors import InvalidInput
from tailops.monitor.network import (
    STATUSES,
    Connections,
    ConnKind,
    NetworkIo,
    NetworkStatus,
    active_connections,
    network_status,
)
from tailops.tools.registry import ToolCall, tool


@tool(group="network", list_field="interfaces", title="Network interfaces")
def get_network_status(
    call: ToolCall,
    include_down: Annotated[bool, Field(description="Also list interfaces that are down.")] = True,
) -> NetworkStatus:
    """Network interfaces: addresses, up/down, speed, MTU, MAC and traffic counters."""
    return network_status(include_down=include_down)


@tool(group="network", list_field="interfaces", title="Network I/O")
def get_network_io_counters(call: ToolCall) -> NetworkIo:
    """Bytes/packets/errors in and out, total and per interface, with rates since the previous call."""
    return call.rt.net_io.sample()


@tool(group="network", list_field="connections", title="Active connections")
def get_active_connections(
    call: ToolCall,
    kind: Annotated[ConnKind, Field(description="Socket kind: inet, inet4, inet6, tcp, udp, unix, all…")] = "inet",
    status: Annotated[
        str | None, Field(description="Only this TCP state, e.g. LISTEN or ESTABLISHED.", max_length=16)
    ] = None,
    limit: Annotated[int, Field(ge=1, le=2000, description="Most connections returned (1-2000).")] = 100,
) -> Connections:
    """Open sockets with local/remote address, state and owning process (where permitted)."""
    if status is not None and status.upper() not in STATUSES:
        raise InvalidInput(f"unknown connection status {status!r}; use one of: {', '.join(STATUSES)}.")
    return active_connections(kind, status, limit)
