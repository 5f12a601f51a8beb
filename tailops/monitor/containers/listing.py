"""The container list: ``GET /containers/json`` plus what only inspect knows, fast.

Why it exists: ``get_container_list`` must answer in tens of milliseconds for
dozens of containers. It makes one list call, then fetches the facts the list
lacks (restart count, start time, exit code, OOM kill) with concurrent inspects
served from the event-driven :class:`~tailops.monitor.containers.inspect_cache.InspectCache`,
and one image list for registry digests. :func:`summary_from` is the pure
parser of one row, for recorded-data tests.

What it must never do: make N sequential engine calls, pass a filter the engine
does not know (it would silently ignore it), or fail the whole list because one
inspect failed (that row just lacks the inspect facts).
"""

from __future__ import annotations

from typing import Any

from tailops.errors import InvalidInput
from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.models import ContainerList, ContainerSummary
from tailops.monitor.containers.values import engine_time, health_from_status, ports_from_list, short_id

__all__ = ["CONTAINER_FILTERS", "image_digests", "list_containers", "summary_from"]

# Filters the engine understands for GET /containers/json (API 1.41).
CONTAINER_FILTERS = frozenset(
    {
        "ancestor",
        "before",
        "expose",
        "exited",
        "health",
        "id",
        "isolation",
        "is-task",
        "label",
        "name",
        "network",
        "publish",
        "since",
        "status",
        "volume",
    }
)


def image_digests(images: list[dict[str, Any]]) -> dict[str, str]:
    """Image id → its first registry digest (repo@sha256:…), from ``GET /images/json``."""
    digests: dict[str, str] = {}
    for img in images:
        repo_digests = [d for d in img.get("RepoDigests") or [] if not d.startswith("<none>")]
        if repo_digests:
            digests[img["Id"]] = repo_digests[0]
    return digests


def summary_from(row: dict[str, Any], inspected: dict[str, Any], digests: dict[str, str]) -> ContainerSummary:
    """One list row, completed by its inspect result (``{}`` when that failed)."""
    names = [n.lstrip("/") for n in row.get("Names") or []]
    st = inspected.get("State") or {}
    state = row.get("State")
    ended = state in ("exited", "dead")
    return ContainerSummary(
        name=names[0] if names else None,
        id=short_id(row.get("Id")),
        image=row.get("Image"),
        image_id=row.get("ImageID"),
        image_digest=digests.get(row.get("ImageID") or ""),
        state=state,
        health=health_from_status(row.get("Status")),
        status=row.get("Status"),
        exit_code=st.get("ExitCode") if ended and st else None,
        oom_killed=st.get("OOMKilled") if st else None,
        restart_count=inspected.get("RestartCount"),
        ports=ports_from_list(row.get("Ports")),
        created=engine_time(row.get("Created")),
        started=engine_time(st.get("StartedAt")),
        labels=row.get("Labels") or {},
    )


def list_containers(
    engine: DockerEngine, *, all: bool, filters: dict[str, str | list[str]] | None, limit: int
) -> ContainerList:
    """One list call, then the per-container facts the list lacks via concurrent inspects."""
    flt: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if key not in CONTAINER_FILTERS:
            raise InvalidInput(f"unknown container filter {key!r}; use one of: {', '.join(sorted(CONTAINER_FILTERS))}.")
        flt[key] = value
    api = engine.api()
    rows: list[dict[str, Any]] = engine.call("list containers", api.containers, all=all, filters=flt or None)
    total = len(rows)
    rows = rows[:limit]
    ids = [r["Id"] for r in rows]
    timeout = engine.settings.timeout.total_seconds()
    cache = engine.inspect_cache
    cache.ensure_watching()

    def inspect(cid: str) -> dict[str, Any]:
        cached = cache.get(cid)
        if cached is not None:
            return cached
        ticket = cache.ticket(cid)
        data: dict[str, Any] = api.inspect_container(cid)
        cache.store(cid, data, ticket)
        return data

    details = engine.fan_out("inspect container", inspect, ids, timeout=timeout)
    digests = image_digests(engine.call("list images", api.images)) if rows else {}
    out = [
        summary_from(row, info if isinstance(info, dict) else {}, digests)
        for row, info in zip(rows, details, strict=True)
    ]
    truncated = total > len(out)
    return ContainerList(
        containers=out,
        total=total,
        truncated=truncated,
        truncation=f"limit {limit} reached; raise limit or add filters" if truncated else None,
    )
