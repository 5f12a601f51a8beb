"""The sharded executor: a run's hosts split between execution nodes and this machine.

Why: with execution nodes configured (``nodes:`` in the config), the hosts a node claims run on that
node (ansible-runner's worker stream over SSH, :mod:`tailops.changes.nodes`)
and the rest here, as one run with one result. The change engine must keep
its promises across nodes without knowing about them, so this executor does
what the lifecycle needs through the placement interface
(:mod:`tailops.changes.executors.placement`):

- :meth:`ShardedExecutor.place` computes the shard map for the request's limit
  (``ansible-inventory``, the nodes' claims) and the ``bundle_sha256`` of each
  node's job — without running anything or reaching a node;
- :meth:`check_at` / :meth:`run_at` run exactly a given placement:
  :func:`~tailops.changes.nodes.distribute.run_sharded` over its map, refusing
  (:class:`~tailops.errors.StalePlan`) before anything runs anywhere when a
  bundle built now is not the one placed;
- :meth:`recover` stops what a crashed controller left for a run: the local
  shard's processes (``<ident>.local``) and each node's job (``cancel <ident>.<node>``).

Bad node configuration is refused with a clear :class:`~tailops.errors.ConfigError`:
a node whose claims match no host of the inventory at all. An unreachable
node or one with other ansible versions refuses the run before anything
starts (:func:`run_sharded`).

It must never decide policy (the engine compares placements and marks plans
stale) or write records.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from tailops.changes.executors.base import EventSink
from tailops.changes.executors.placement import LOCAL, PlacedShard, Placement
from tailops.changes.models import RunEvent, RunMode, RunRequest, RunResult
from tailops.config import NodeSettings
from tailops.errors import ConfigError, StalePlan, TailopsError

__all__ = ["ShardedExecutor"]

log = logging.getLogger("tailops.changes.executors.sharded")

_RECOVER_CANCEL_S = 30.0


class ShardedExecutor:
    """Runs each host where the configured nodes' claims put it (see the module docstring)."""

    name = "nodes"

    def __init__(self, artifacts_root: Path, nodes: Sequence[NodeSettings]) -> None:
        if not nodes:
            raise ConfigError("The sharded executor needs at least one execution node (``nodes:`` in the config).")
        self.artifacts_root = artifacts_root.absolute()
        self.nodes = tuple(nodes)

    # -- placement ----------------------------------------------------------------------------------
    async def place(self, request: RunRequest) -> Placement:
        """Where ``request``'s hosts run and the bundle each node would get (blocking parts in a thread)."""
        return await anyio.to_thread.run_sync(self._place, request)

    def _place(self, request: RunRequest) -> Placement:
        from tailops.changes.nodes.bundle import build_bundle
        from tailops.changes.nodes.distribute import shard_ident
        from tailops.changes.nodes.shards import inventory_groups, shard_map

        groups = inventory_groups(request.inventory, request.limit)
        smap = shard_map(groups, self.nodes)
        placed = {s.node for s in smap.shards}
        idle = [n for n in self.nodes if n.name not in placed]
        if idle:
            # Under a limit a node may simply have no host; a node that claims no host at all is a mistake.
            every = inventory_groups(request.inventory) if request.limit else groups
            claimed = {s.node for s in shard_map(every, self.nodes).shards}
            for node in idle:
                if node.name not in claimed:
                    raise ConfigError(
                        f"execution node {node.name} claims {', '.join(node.claims)}, which match no host of "
                        f"the inventory {request.inventory.name} (or every host is claimed by an earlier node).",
                        hint="Fix the node's claims (inventory group names or host patterns) or remove the node.",
                    )
        shards: list[PlacedShard] = []
        for shard in smap.shards:
            digest = None
            if shard.node != LOCAL:
                sid = shard_ident(request.ident or "place", shard.node)
                bundle = build_bundle(request, ident=sid, hosts=list(shard.hosts))
                digest = bundle.bundle_sha256
            shards.append(PlacedShard(node=shard.node, hosts=sorted(shard.hosts), bundle_sha256=digest))
        return Placement(shard_digest=smap.digest(), shards=shards)

    # -- runs ------------------------------------------------------------------------------------------
    async def check(self, request: RunRequest) -> RunResult:
        return await self.check_at(request, await self.place(request))

    async def run(
        self,
        request: RunRequest,
        *,
        on_event: EventSink | None = None,
        cancel: anyio.Event | None = None,
    ) -> RunResult:
        return await self.run_at(request, await self.place(request), on_event=on_event, cancel=cancel)

    async def check_at(self, request: RunRequest, placement: Placement | None) -> RunResult:
        return await self._sharded(dataclasses.replace(request, mode=RunMode.CHECK), placement, None, None)

    async def run_at(
        self,
        request: RunRequest,
        placement: Placement | None,
        *,
        on_event: EventSink | None = None,
        cancel: anyio.Event | None = None,
    ) -> RunResult:
        return await self._sharded(dataclasses.replace(request, mode=RunMode.APPLY), placement, on_event, cancel)

    async def _sharded(
        self,
        request: RunRequest,
        placement: Placement | None,
        on_event: EventSink | None,
        cancel: anyio.Event | None,
    ) -> RunResult:
        from tailops.changes.nodes.distribute import run_sharded
        from tailops.changes.nodes.shards import Shard, ShardMap

        if placement is None:
            raise StalePlan(
                "This run was placed on this machine only, but execution nodes are configured now.",
                hint="Plan again.",
            )
        smap = ShardMap(shards=tuple(Shard(node=s.node, hosts=tuple(s.hosts)) for s in placement.shards))
        if smap.digest() != placement.shard_digest:
            raise StalePlan("The placement's shard map does not match its digest.", hint="Plan again.")
        ident = request.ident or "run"

        async def relay(event: RunEvent, _node: str) -> None:
            if on_event is None:
                return
            out = on_event(event)
            if out is not None:
                await out

        sharded = await run_sharded(
            request,
            smap,
            self.nodes,
            ident=ident,
            expect_bundles=placement.bundles(),
            on_event=relay if on_event is not None else None,
            cancel=cancel,
        )
        return sharded.result

    # -- recovery --------------------------------------------------------------------------------------
    def recover(self, request_ident: str) -> int:
        """Stop the local shard's leftover processes and ask every node to cancel its shard (blocking;
        nodes are asked at once, each bounded by its connect timeout + 30 s)."""
        from concurrent.futures import ThreadPoolExecutor

        from tailops.changes.ansible.processes import kill_leftover_processes
        from tailops.changes.nodes.distribute import shard_ident
        from tailops.changes.nodes.transport import request_cancel

        def ask(node: NodeSettings) -> int:
            try:
                answer = request_cancel(
                    node,
                    shard_ident(request_ident, node.name),
                    timeout_s=node.connect_timeout.total_seconds() + _RECOVER_CANCEL_S,
                )
            except TailopsError as exc:
                log.warning(
                    "could not ask a node to cancel a leftover job",
                    extra={"node": node.name, "ident": request_ident, "error": exc.public_message()},
                )
                return 0
            return 1 if answer == "signalled" else 0

        stopped = kill_leftover_processes(self.artifacts_root, shard_ident(request_ident, LOCAL))
        with ThreadPoolExecutor(max_workers=min(8, len(self.nodes))) as pool:
            return stopped + sum(pool.map(ask, self.nodes))
