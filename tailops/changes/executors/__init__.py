"""Executors: where a playbook run happens, behind one interface.

The change engine (:mod:`tailops.changes.engine`) decides *what* runs and keeps
the lifecycle's promises (approval, pins, stale checks, run rows, events,
cancellation). An executor only runs a typed :class:`~tailops.changes.models.RunRequest`
— as a check or for real — and streams :class:`~tailops.changes.models.RunEvent`
back. :class:`LocalExecutor` runs ansible-runner on this machine;
:class:`ShardedExecutor` splits a run's hosts between execution nodes
(ansible-runner's streaming protocol over SSH) and this machine and records where
(:class:`Placement`). Other executors (AWX job templates) plug in here without
touching the lifecycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tailops.changes.executors.base import EventSink, Executor, PlacingExecutor, check_at, place, run_at
from tailops.changes.executors.local import LocalExecutor
from tailops.changes.executors.placement import PlacedShard, Placement, placement_changes
from tailops.changes.executors.sharded import ShardedExecutor

if TYPE_CHECKING:
    from tailops.config import Settings

__all__ = [
    "EventSink",
    "Executor",
    "LocalExecutor",
    "PlacedShard",
    "Placement",
    "PlacingExecutor",
    "ShardedExecutor",
    "check_at",
    "default_executor",
    "place",
    "placement_changes",
    "run_at",
]


def default_executor(settings: Settings, artifacts_root: Path | None = None) -> Executor:
    """The executor the configuration asks for: nodes when ``nodes:`` in the config lists any, else local."""
    root = artifacts_root if artifacts_root is not None else settings.artifacts_dir
    if settings.nodes:
        return ShardedExecutor(root, settings.nodes)
    return LocalExecutor(root)
