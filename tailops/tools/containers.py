"""Container tools (group ``containers``): list, inspect, stats, images, networks, logs, log analysis.

All of them only read (scope ``readonly``), except:

* ``reveal_container_env`` shows environment *values*, which often hold
  secrets: it is its own tool with scope ``container:admin`` so the registry
  refuses (and audits the refusal) before any work, and ``inspect_container``
  never reveals them.
* ``manage_container`` is the seed tool name: ``action="logs"`` reads like
  ``get_container_logs``; start/stop/restart change the container, so they
  create a plan of the ``container_state`` catalog playbook (plan → approve →
  apply; the result's ``plan`` field, same shape as ``plan_change``). It is
  declared ``read_only=False`` with scope ``container:write`` (checked by the
  registry), so a read-only server hides it; through ``scope_for`` the registry
  also requires ``readonly`` for ``logs`` and the playbook's own scope for the
  others. A readonly-only token reads logs with ``get_container_logs``.

This module never changes a container, image or network itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from tailops.monitor import containers as mc
from tailops.monitor.log_analysis import LogAnalysis
from tailops.tools.changes import PlanView, plan_for_tool
from tailops.tools.registry import ToolCall, tool

if TYPE_CHECKING:
    from tailops.runtime import Runtime

NameArg = Annotated[
    str, Field(description="Container name or id (a unique id prefix works).", min_length=1, max_length=255)
]
SinceArg = Annotated[
    str | None,
    Field(
        description="Only lines after this: a duration ago (15m, 2h, 1d) or a time (2024-05-01T10:00:00Z).",
        max_length=40,
    ),
]
UntilArg = Annotated[
    str | None,
    Field(
        description="Only lines before this: a duration ago (5m) or a time (2024-05-01T11:00:00Z).",
        max_length=40,
    ),
]
TailArg = Annotated[int, Field(ge=1, le=5000, description="How many of the newest lines (1-5000).")]
GrepArg = Annotated[
    str | None,
    Field(
        description="Only lines containing this text (case-insensitive substring, not a regex); searches the "
        "newest docker.log_max_lines lines.",
        min_length=1,
        max_length=200,
    ),
]


@tool(group="containers", list_field="containers", title="List containers")
def get_container_list(
    call: ToolCall,
    all: Annotated[bool, Field(description="Include stopped containers (default: running only).")] = False,
    filters: Annotated[
        dict[str, str | list[str]] | None,
        Field(
            description='Engine filters, e.g. {"status": "exited", "label": "app=web", "name": "db", '
            '"health": "unhealthy"}.'
        ),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="Most containers returned (1-1000).")] = 100,
) -> mc.ContainerList:
    """Containers: name, id, image (+digest), state, health, status, exit code, restarts, ports, times,
    labels."""
    return mc.list_containers(call.rt.docker, all=all, filters=filters, limit=limit)


@tool(group="containers", title="Inspect container")
def inspect_container(call: ToolCall, name: NameArg) -> mc.ContainerDetails:
    """One container's config, state (incl. OOM kill, health probes), mounts, networks, restart policy,
    resources and environment variable names (values redacted; reveal_container_env shows them)."""
    return mc.inspect_container(call.rt.docker, name, reveal_env=False)


@tool(group="containers", title="Reveal container environment")
def reveal_container_env(call: ToolCall, name: NameArg) -> mc.ContainerDetails:
    """inspect_container with environment values shown (they often hold secrets); needs scope
    container:admin."""
    return mc.inspect_container(call.rt.docker, name, reveal_env=True)


@tool(group="containers", list_field="containers", title="Container stats")
def get_container_stats(
    call: ToolCall,
    name: Annotated[
        str | None,
        Field(description="One container (name or id); omit for all running containers.", max_length=255),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Most containers sampled when name is omitted.")] = 100,
) -> mc.ContainerStatsList:
    """CPU %, memory use/limit, network and block I/O, pids: one-shot samples, all containers concurrently."""
    if name is not None:
        mc.check_name(name)
    return mc.container_stats(call.rt.docker, name=name, limit=limit)


@tool(group="containers", list_field="images", title="List images")
def list_docker_images(
    call: ToolCall,
    dangling: Annotated[
        bool | None, Field(description="true: only untagged images; false: only tagged; omit: both.")
    ] = None,
    reference: Annotated[
        str | None,
        Field(description="Only images matching this reference, e.g. 'nginx' or 'app:1.*'.", max_length=200),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="Most images returned, newest first.")] = 100,
) -> mc.ImageList:
    """Local images: id, tags, digests, size, created, dangling."""
    return mc.list_images(call.rt.docker, dangling=dangling, reference=reference, limit=limit)


@tool(group="containers", list_field="networks", title="Docker networks")
def get_docker_networks(
    call: ToolCall,
    limit: Annotated[int, Field(ge=1, le=500, description="Most networks returned.")] = 100,
) -> mc.NetworkList:
    """Docker networks: driver, scope, subnets, gateways, attached containers."""
    return mc.list_networks(call.rt.docker, limit=limit)


@tool(group="containers", list_field="lines", title="Container logs")
def get_container_logs(
    call: ToolCall,
    *,
    name: NameArg,
    tail: TailArg = 100,
    since: SinceArg = None,
    until: UntilArg = None,
    grep: GrepArg = None,
) -> mc.ContainerLogs:
    """The newest log lines of a container (stdout+stderr, engine timestamps, secrets redacted)."""
    return mc.read_logs(
        call.rt.docker,
        name=name,
        tail=tail,
        since=since,
        until=until,
        grep=grep,
        max_output_bytes=call.rt.config.server.max_output_bytes,
    )


@tool(group="containers", list_field="findings", title="Analyze container logs")
def analyze_container_logs(
    call: ToolCall,
    name: NameArg,
    since: SinceArg = None,
    until: UntilArg = None,
    tail: Annotated[
        int,
        Field(ge=1, le=1_000_000, description="Newest lines to analyze (capped by docker.log_max_lines)."),
    ] = 20_000,
) -> LogAnalysis:
    """Why is a container failing? Ranked findings with evidence and advice: OOM kill, restart loop, exit
    code, health, known errors (refused, DNS, disk full...), folded stack traces, top error templates.

    Detected signatures: connection refused, DNS failure, authentication failure, permission denied, disk
    full, port in use, migration/schema errors, out of memory, TLS errors, missing files/modules, too many
    open files, segfaults, configuration errors, timeouts. Bounded by docker.log_max_lines,
    docker.log_max_bytes and docker.analysis_timeout."""
    return mc.analyze_logs(call.rt.docker, name=name, since=since, until=until, tail=tail)


class ManageContainerResult(mc.ContainerLogs):
    """Logs (action=logs), or for start/stop/restart the plan it created (``lines`` empty)."""

    plan: PlanView | None = Field(
        None, description="start/stop/restart: the container_state plan (approve, then apply_plan)."
    )


_STATES = {"start": "started", "stop": "stopped", "restart": "restarted"}


def _manage_scope(rt: Runtime, args: dict[str, Any]) -> str:
    """start/stop/restart: + container_state's scope"""
    if args.get("action") == "logs":
        return "readonly"
    return rt.engine.playbook_scope("container_state")


@tool(
    group="containers",
    read_only=False,
    destructive=False,
    idempotent=False,
    list_field="lines",
    scope_for=_manage_scope,
    title="Manage container",
)
async def manage_container(
    call: ToolCall,
    *,
    action: Annotated[
        Literal["logs", "start", "stop", "restart"],
        Field(description="logs reads; start/stop/restart create a plan of the container_state playbook."),
    ],
    name: NameArg,
    tail: TailArg = 100,
    since: SinceArg = None,
    until: UntilArg = None,
    grep: GrepArg = None,
) -> ManageContainerResult:
    """Container logs (action=logs), or start/stop/restart through a reviewed plan of the container_state
    playbook."""
    if action != "logs":
        view = await plan_for_tool(call, "container_state", {"name": name, "state": _STATES[action]})
        return ManageContainerResult(container=name, lines=[], scanned=0, plan=view)
    mc.check_name(name)
    logs = await call.rt.run_blocking(
        mc.read_logs,
        call.rt.docker,
        name=name,
        tail=tail,
        since=since,
        until=until,
        grep=grep,
        max_output_bytes=call.rt.config.server.max_output_bytes,
    )
    return ManageContainerResult(**dict(logs))
