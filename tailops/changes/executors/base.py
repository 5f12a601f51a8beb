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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

from tailops.changes.models import RunEvent, RunRequest, RunResult

__all__ = ["EventSink", "Executor"]

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
