"""Host monitoring tools (group ``system``): status, processes, health."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tailops.health import HealthReport, health_report
from tailops.monitor.processes import TopProcesses, top_processes
from tailops.monitor.system import SystemStatus, system_status
from tailops.tools.registry import ToolCall, tool


@tool(group="system", title="System status")
def get_system_status(
    call: ToolCall,
    per_cpu: Annotated[bool, Field(description="Include busy % per logical CPU.")] = False,
) -> SystemStatus:
    """Host CPU %, load, memory, swap, disk use per mount, uptime, OS and kernel."""
    return system_status(call.rt.sampler, per_cpu=per_cpu)


@tool(group="system", list_field="processes", title="Top processes")
def get_top_processes(
    call: ToolCall,
    limit: Annotated[int, Field(ge=1, le=500, description="How many processes (1-500).")] = 10,
    sort_by: Annotated[Literal["cpu", "memory"], Field(description="Rank by cpu or memory (RSS).")] = "cpu",
) -> TopProcesses:
    """Top processes by CPU or memory: pid, name, user, cpu %, rss, status, command line."""
    return top_processes(limit, sort_by)


@tool(group="system", title="Health check")
def health_check(call: ToolCall) -> HealthReport:
    """Server health: version, uptime, and whether the store and Docker engine answer."""
    return health_report(call.rt)
