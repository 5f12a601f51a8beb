"""The engine's networks: ``GET /networks`` plus concurrent inspects → :class:`NetworkList`.

Why it exists: "can these two containers reach each other?" needs each
network's subnets, gateways and members, which only a network inspect has.
:func:`network_summary` is the pure parser of one network, for recorded-data
tests.

What it must never do: create, connect or remove a network, or fail the whole
list because one inspect failed (that network just lacks its members).
"""

from __future__ import annotations

from typing import Any

from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.models import NetworkList, NetworkSummary
from tailops.monitor.containers.values import engine_time, short_id

__all__ = ["list_networks", "network_summary"]


def network_summary(row: dict[str, Any], inspected: dict[str, Any] | None) -> NetworkSummary:
    """One list row, completed by its inspect result (None when that failed)."""
    full = inspected if inspected is not None else row
    configs = (full.get("IPAM") or {}).get("Config") or []
    members = full.get("Containers") if inspected is not None else None
    return NetworkSummary(
        name=row.get("Name"),
        id=short_id(row.get("Id")),
        driver=row.get("Driver"),
        scope=row.get("Scope"),
        internal=row.get("Internal"),
        attachable=row.get("Attachable"),
        subnets=[c["Subnet"] for c in configs if c.get("Subnet")],
        gateways=[c["Gateway"] for c in configs if c.get("Gateway")],
        containers=sorted(m.get("Name", "") for m in members.values()) if members is not None else None,
        created=engine_time(row.get("Created")),
    )


def list_networks(engine: DockerEngine, *, limit: int) -> NetworkList:
    api = engine.api()
    rows: list[dict[str, Any]] = engine.call("list networks", api.networks)
    rows.sort(key=lambda r: r.get("Name") or "")
    shown = rows[:limit]
    details = engine.fan_out(
        "inspect network",
        api.inspect_network,
        [r["Id"] for r in shown],
        timeout=engine.settings.timeout.total_seconds(),
    )
    out = [
        network_summary(row, info if isinstance(info, dict) else None) for row, info in zip(shown, details, strict=True)
    ]
    truncated = len(rows) > len(out)
    return NetworkList(
        networks=out,
        total=len(rows),
        truncated=truncated,
        truncation=f"limit {limit} reached; raise limit" if truncated else None,
    )
