"""The executor interface: check run, real run, cancel, events.

Why an interface: the lifecycle (plan → approve → apply) must hold whatever runs
the playbook — Ansible on this controller, a remote execution node, AWX. The
engine builds one typed request per run and hands it to an executor; it never
looks at how the executor gets Ansible to run it.

Contract every executor keeps:

- ``check`` runs ``--check --diff`` only; it never changes a host.
- ``run`` changes hosts exactly as the request says; ``on_event`` gets every
  progress event in order while it runs (if delivery raises, the executor stops
  the run: nothing changes hosts while its progress cannot be kept); setting
  ``cancel`` stops it, and the result's status is then ``canceled``.
- A host that cannot be reached (or whose executor is lost mid-run) is a
  result (``unreachable``), never an exception or a silent gap.
- Refusals and failures to start raise :class:`~tailops.errors.RunnerError`.
- ``recover`` stops what a previous, crashed process left running for a run.

What an executor must never do: decide policy (approvals, scopes, staleness),
write plan or run records, or let a library exception escape.

Placement (optional, :class:`PlacingExecutor`): an executor that runs hosts in
more than one place (execution nodes) also says *where* — :meth:`~PlacingExecutor.place`
gives the :class:`~tailops.changes.executors.placement.Placement` of a request
(shard map + what each node is sent) without running anything, and
:meth:`~PlacingExecutor.check_at` / :meth:`~PlacingExecutor.run_at` run exactly
that placement or refuse (:class:`~tailops.errors.StalePlan`). The engine only
calls the module functions :func:`place`, :func:`check_at` and :func:`run_at`,
which treat every other executor as placing all hosts here (``None``), so an
executor that never heard of placement keeps working unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

from tailops.changes.executors.placement import LOCAL, Placement
from tailops.changes.models import RunEvent, RunRequest, RunResult
from tailops.errors import StalePlan

__all__ = ["EventSink", "Executor", "PlacingExecutor", "check_at", "place", "run_at"]

EventSink = Callable[[RunEvent], Awaitable[None] | None]


@runtime_checkable
class Executor(Protocol):
    """Runs catalog playbooks for the change engine (see the module docstring)."""

    name: str

    async def check(self, request: RunRequest) -> RunResult:
        """A check run (``--check --diff``) of ``request``: what would change, per host and task."""
        ...

    async def run(
        self,
        request: RunRequest,
        *,
        on_event: EventSink | None = None,
        cancel: anyio.Event | None = None,
    ) -> RunResult:
        """The real run of ``request``, streaming events; ``cancel`` stops it."""
        ...

    def recover(self, request_ident: str) -> int:
        """Stop what a crashed process left running for the run ``request_ident``; how many were stopped."""
        ...


@runtime_checkable
class PlacingExecutor(Executor, Protocol):
    """An executor that runs hosts in more than one place and records where (see the module docstring)."""

    async def place(self, request: RunRequest) -> Placement:
        """Where ``request``'s hosts would run and what each place would be sent; runs nothing."""
        ...

    async def check_at(self, request: RunRequest, placement: Placement | None) -> RunResult:
        """A check run of ``request`` exactly as ``placement`` says (StalePlan if it cannot be)."""
        ...

    async def run_at(
        self,
        request: RunRequest,
        placement: Placement | None,
        *,
        on_event: EventSink | None = None,
        cancel: anyio.Event | None = None,
    ) -> RunResult:
        """The real run of ``request`` exactly as ``placement`` says (StalePlan if it cannot be)."""
        ...


async def place(executor: Executor, request: RunRequest) -> Placement | None:
    """The executor's placement of ``request``; None for an executor that runs every host here."""
    if isinstance(executor, PlacingExecutor):
        return await executor.place(request)
    return None


def _refuse_nodes(executor: Executor, placement: Placement | None) -> None:
    if placement is not None and any(s.node != LOCAL for s in placement.shards):
        raise StalePlan(
            f"The {executor.name} executor runs every host on this machine, but this run was placed on "
            f"execution nodes ({', '.join(sorted(placement.bundles()))}).",
            hint="Plan again.",
        )


async def check_at(executor: Executor, request: RunRequest, placement: Placement | None) -> RunResult:
    """A check run of ``request`` placed as ``placement`` (None: every host here)."""
    if isinstance(executor, PlacingExecutor):
        return await executor.check_at(request, placement)
    _refuse_nodes(executor, placement)
    return await executor.check(request)


async def run_at(
    executor: Executor,
    request: RunRequest,
    placement: Placement | None,
    *,
    on_event: EventSink | None = None,
    cancel: anyio.Event | None = None,
) -> RunResult:
    """The real run of ``request`` placed as ``placement`` (None: every host here)."""
    if isinstance(executor, PlacingExecutor):
        return await executor.run_at(request, placement, on_event=on_event, cancel=cancel)
    _refuse_nodes(executor, placement)
    return await executor.run(request, on_event=on_event, cancel=cancel)
