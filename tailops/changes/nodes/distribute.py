"""Run every shard of a run (nodes and this machine) at once, merged into one result.

Why: the change engine wants one :class:`~tailops.changes.models.RunResult`
per run, whatever ran where, plus the record of where each host ran and what
was sent (a plan keeps both; apply re-sends the same bundles to the same shard
map). Shards run concurrently; the local shard goes through
:func:`tailops.changes.ansible.job.run_playbook` exactly as before.

Progress: ``on_event(event, node)`` receives every shard's events in one
stream, renumbered so ``counter`` keeps increasing across shards; the shards'
own ``run_end`` events are folded into one at the end. ``cancel`` reaches
every shard (the local one directly, nodes through ``cancel <id>``).

It must never return a result that lacks a host of the map: a shard that
failed to start at all ends its hosts ``unreachable`` (``interrupted: ...``)
and the run ``failed``, while the other shards' results are kept.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from tailops.changes.ansible.job import run_playbook
from tailops.changes.models import RunEvent, RunRequest, RunResult, RunStatus
from tailops.changes.nodes.bundle import build_bundle
from tailops.changes.nodes.remote import NodeRun, interrupted_hosts, run_on_node
from tailops.changes.nodes.shards import LOCAL, ShardMap
from tailops.changes.nodes.transport import verify_node
from tailops.config import NodeSettings
from tailops.errors import ConfigError, StalePlan, TailopsError

__all__ = ["ShardOutcome", "ShardedRun", "run_sharded"]

_RANK: dict[str, int] = {"successful": 0, "failed": 1, "timeout": 2, "canceled": 3}


@dataclass(frozen=True)
class ShardOutcome:
    """Where a shard ran and what it was sent (``bundle_sha256`` is None for the local shard)."""

    node: str
    hosts: tuple[str, ...]
    ident: str
    status: RunStatus
    bundle_sha256: str | None
    stream_sha256: str | None
    error: str | None


@dataclass(frozen=True)
class ShardedRun:
    """The merged result and, per shard, where it ran. ``shard_digest`` = the map's digest."""

    result: RunResult
    shards: tuple[ShardOutcome, ...]
    shard_digest: str

    def bundles(self) -> dict[str, str]:
        """Node name -> bundle_sha256 (what a plan records and apply must match)."""
        return {s.node: s.bundle_sha256 for s in self.shards if s.bundle_sha256 is not None}


def shard_ident(ident: str, node: str) -> str:
    return f"{ident}.{node}"


async def run_sharded(
    req: RunRequest,
    shard_map: ShardMap,
    nodes: Sequence[NodeSettings],
    *,
    ident: str,
    expect_bundles: Mapping[str, str] | None = None,
    on_event: Callable[[RunEvent, str], Awaitable[None] | None] | None = None,
    cancel: anyio.Event | None = None,
) -> ShardedRun:
    """Run ``req`` over ``shard_map``; each shard's ident is ``<ident>.<node>``.

    ``expect_bundles`` (apply): node -> the plan's bundle_sha256; a node whose
    bundle differs raises :class:`~tailops.errors.StalePlan` before anything
    runs anywhere. ``req.limit`` is ignored here (the map already applied it);
    each shard runs with its own hosts as the limit. A node that cannot be
    reached or runs other ansible-core/ansible-runner versions refuses the
    whole run before anything starts (:class:`~tailops.errors.Unavailable`,
    :class:`~tailops.errors.ConfigError`).
    """
    by_name = {n.name: n for n in nodes}
    missing = [s.node for s in shard_map.shards if s.node != LOCAL and s.node not in by_name]
    if missing:
        raise ConfigError(f"The shard map names nodes that are not configured: {', '.join(missing)}.")
    # Every node must run the controller's versions before anything runs anywhere.
    for shard in shard_map.shards:
        if shard.node != LOCAL:
            await anyio.to_thread.run_sync(verify_node, by_name[shard.node])
    if expect_bundles is not None:
        planned = {s.node for s in shard_map.shards if s.node != LOCAL}
        if set(expect_bundles) != planned:
            raise StalePlan(
                f"The plan ran on nodes {sorted(expect_bundles)}, the shard map now names {sorted(planned)}.",
                hint="Plan again.",
            )
        # Check every bundle before anything runs anywhere.
        for shard in shard_map.shards:
            if shard.node == LOCAL:
                continue
            sid = shard_ident(ident, shard.node)
            build = functools.partial(build_bundle, req, ident=sid, hosts=list(shard.hosts))
            bundle = await anyio.to_thread.run_sync(build)
            if bundle.bundle_sha256 != expect_bundles[shard.node]:
                raise StalePlan(
                    f"The job for node {shard.node} is not the one planned: playbook, roles, inventory, "
                    "parameters or hosts changed.",
                    hint="Plan again.",
                )
    counter = 0
    lock = anyio.Lock()

    def relay(node: str) -> Callable[[RunEvent], Awaitable[None]]:
        async def handle(event: RunEvent) -> None:
            nonlocal counter
            if event.kind == "run_end" or on_event is None:
                return
            async with lock:
                counter += 1
                out = on_event(event.model_copy(update={"counter": counter}), node)
                if inspect.isawaitable(out):
                    await out

        return handle

    started_at = datetime.now(UTC)
    outcomes: dict[str, ShardOutcome] = {}
    results: dict[str, RunResult] = {}

    async def run_shard(node: str, hosts: tuple[str, ...]) -> None:
        sid = shard_ident(ident, node)
        try:
            if node == LOCAL:
                local_req = dataclasses.replace(req, limit=",".join(hosts), ident=sid)
                result = await run_playbook(local_req, on_event=relay(node), cancel=cancel)
                results[node] = result
                outcomes[node] = ShardOutcome(node, hosts, sid, result.status, None, None, None)
                return
            run: NodeRun = await run_on_node(
                req,
                by_name[node],
                hosts,
                ident=sid,
                expect_bundle_sha256=(expect_bundles or {}).get(node),
                verify=False,
                on_event=relay(node),
                cancel=cancel,
            )
            results[node] = run.result
            outcomes[node] = ShardOutcome(
                node, hosts, sid, run.result.status, run.bundle_sha256, run.stream_sha256, run.error
            )
        except TailopsError as exc:
            why = f"{node}: {exc.public_message()}"
            now = datetime.now(UTC)
            results[node] = RunResult(
                ident=sid,
                mode=req.mode,
                status="failed",
                hosts=interrupted_hosts(hosts, {}, why),
                started_at=now,
                finished_at=now,
                duration_s=0.0,
            )
            outcomes[node] = ShardOutcome(node, hosts, sid, "failed", None, None, why)

    async with anyio.create_task_group() as tg:
        for shard in shard_map.shards:
            tg.start_soon(run_shard, shard.node, shard.hosts)
    finished_at = datetime.now(UTC)
    ordered = [results[s.node] for s in shard_map.shards]
    status: RunStatus = max((r.status for r in ordered), key=lambda s: _RANK[s])
    hosts = {name: host for r in ordered for name, host in r.hosts.items()}
    rcs = [r.rc for r in ordered if r.rc is not None]
    merged = RunResult(
        ident=ident,
        mode=req.mode,
        status=status,
        rc=max(rcs) if rcs else None,
        hosts=hosts,
        started_at=started_at,
        finished_at=finished_at,
        duration_s=(finished_at - started_at).total_seconds(),
        warnings=[w for r in ordered for w in r.warnings],
        artifact_dir=None,
    )
    if on_event is not None:
        out = on_event(RunEvent(kind="run_end", counter=counter + 1, run_status=status, created=finished_at), "")
        if inspect.isawaitable(out):
            await out
    return ShardedRun(
        result=merged,
        shards=tuple(outcomes[s.node] for s in shard_map.shards),
        shard_digest=shard_map.digest(),
    )
