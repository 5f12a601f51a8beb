"""The local executor: ansible-runner on this controller.

A thin door to the Ansible adapter (:mod:`tailops.changes.ansible`, the only room
that imports ansible_runner): checks and real runs go through :func:`run_playbook`, and a
crashed server's leftover ``ansible-playbook`` processes are found by their run's
artifact dir (never by name) and stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio

from tailops.changes.executors.base import EventSink
from tailops.changes.models import RunMode, RunRequest, RunResult

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Runs playbooks with ansible-runner in a worker thread of this process."""

    name = "local"

    def __init__(self, artifacts_root: Path) -> None:
        self.artifacts_root = artifacts_root.absolute()

    async def check(self, request: RunRequest) -> RunResult:
        from tailops.changes.ansible.job import run_playbook

        return await run_playbook(replace(request, mode=RunMode.CHECK))

    async def run(
        self,
        request: RunRequest,
        *,
        on_event: EventSink | None = None,
        cancel: anyio.Event | None = None,
    ) -> RunResult:
        from tailops.changes.ansible.job import run_playbook

        return await run_playbook(replace(request, mode=RunMode.APPLY), on_event=on_event, cancel=cancel)

    def recover(self, request_ident: str) -> int:
        from tailops.changes.ansible.processes import kill_leftover_processes

        return kill_leftover_processes(self.artifacts_root, request_ident)
