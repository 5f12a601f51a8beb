"""Placement: where an executor runs each host of a run, and what it sends there.

Why: a plan must stand for *where* its hosts run as much as for *what* runs —
a host checked through execution node ``dc2`` and then applied from this
machine (or another node) was never reviewed there. An executor that runs
hosts in more than one place (:class:`~tailops.changes.executors.sharded.ShardedExecutor`)
says so with a :class:`Placement`: the shard map (node → hosts), its digest and
the ``bundle_sha256`` of the job sent to each node. The engine stores it in the
plan (it is part of the plan id, so the approval binds to it), recomputes it at
apply and refuses when :func:`placement_changes` names a difference.

An executor that runs every host on this machine has no placement (``None``):
no-node plans keep exactly the content (and ids) they had before placements
existed. For comparison, ``None`` means "every planned host runs here".

It must never decide policy (the engine marks a plan stale) or run anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from tailops.models import Model

__all__ = ["LOCAL", "PlacedShard", "Placement", "placement_changes"]

LOCAL = "local"
"""Name of the shard this machine runs itself (a node may not be called so)."""


class PlacedShard(Model):
    """The hosts one place runs and, for a node, the fingerprint of the job sent to it."""

    node: str = Field(description="Execution node name, or 'local' for this machine.")
    hosts: list[str] = Field(description="Inventory hosts this place runs (sorted).")
    bundle_sha256: str | None = Field(
        None, description="SHA-256 of the job bundle sent to the node (all but run id and check flags)."
    )


class Placement(Model):
    """Where a run's hosts run (the shard map) and what each node was sent."""

    shard_digest: str = Field(description="SHA-256 of the shard map (node -> sorted hosts).")
    shards: list[PlacedShard]

    def hosts_by_node(self) -> dict[str, list[str]]:
        return {s.node: list(s.hosts) for s in self.shards}

    def bundles(self) -> dict[str, str]:
        """Node -> bundle_sha256 (nodes only; the local shard sends no bundle)."""
        return {s.node: s.bundle_sha256 for s in self.shards if s.bundle_sha256 is not None}

    def canonical(self) -> dict[str, object]:
        """What a plan id covers: the digest and, per node in map order, hosts and bundle hash."""
        return {
            "shard_digest": self.shard_digest,
            "shards": [[s.node, sorted(s.hosts), s.bundle_sha256] for s in self.shards],
        }


def _where(placement: Placement | None, planned_hosts: Sequence[str]) -> dict[str, str]:
    if placement is None:
        return dict.fromkeys(planned_hosts, LOCAL)
    return {host: shard.node for shard in placement.shards for host in shard.hosts}


def _place_name(node: str | None) -> str:
    if node is None:
        return "nowhere (not selected)"
    return "this machine" if node == LOCAL else f"node {node}"


def _hosts_text(hosts: list[str]) -> str:
    return ", ".join(hosts[:8]) + (f" and {len(hosts) - 8} more" if len(hosts) > 8 else "")


def placement_changes(planned: Placement | None, now: Placement | None, planned_hosts: Sequence[str]) -> list[str]:
    """What differs between the plan's placement and the one computed now, in words; [] if none.

    Names each move ("a1, a2 moved from node dc2 to this machine") and each node
    whose job would differ from the one planned (same hosts, other bundle).
    ``planned_hosts`` are the plan's hosts (what ``None`` places on this machine).
    """
    before, after = _where(planned, planned_hosts), _where(now, planned_hosts)
    moves: dict[tuple[str | None, str | None], list[str]] = {}
    for host in sorted(set(before) | set(after)):
        old, new = before.get(host), after.get(host)
        if old != new:
            moves.setdefault((old, new), []).append(host)
    out = [
        f"{_hosts_text(hosts)} moved from {_place_name(old)} to {_place_name(new)}"
        for (old, new), hosts in sorted(moves.items(), key=lambda kv: kv[1][0])
    ]
    if out:
        return out
    old_bundles = planned.bundles() if planned is not None else {}
    new_bundles = now.bundles() if now is not None else {}
    for node in sorted(set(old_bundles) | set(new_bundles)):
        was, will = old_bundles.get(node), new_bundles.get(node)
        if was != will:
            out.append(
                f"the job for node {node} differs from the one planned (bundle {str(will)[:12]}, "
                f"plan {str(was)[:12]}): the node's settings, forks or the run environment changed"
            )
    return out
