"""Typed inputs and results of one Ansible run (the runner adapter's vocabulary).

Why: the planner, the executor and the tools speak about runs in these types,
never in ansible-runner's kwargs, status strings or raw event dicts. A run is a
:class:`RunRequest` in and a :class:`RunResult` out (per host, per task, with
unified diffs and the tasks check mode could not simulate); progress is a stream
of :class:`RunEvent`.

This module must never import ``ansible_runner`` or start anything: it is pure
data (:mod:`tailops.changes.ansible` is the only room that talks to Ansible).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tailops.models import Model

__all__ = [
    "EventKind",
    "HostResult",
    "HostStatus",
    "RunEvent",
    "RunMode",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "TaskResult",
    "TaskStatus",
]


class RunMode(StrEnum):
    """CHECK = ``--check --diff`` (predict, change nothing); APPLY = ``--diff`` (change)."""

    CHECK = "check"
    APPLY = "apply"


class TaskStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


HostStatus = Literal["ok", "changed", "failed", "unreachable"]
RunStatus = Literal["successful", "failed", "canceled", "timeout"]
EventKind = Literal[
    "playbook_start",
    "play_start",
    "task_start",
    "host_task_start",
    "task_result",
    "item_result",
    "warning",
    "stats",
    "run_end",
]


@dataclass(frozen=True)
class RunRequest:
    """One playbook run. Paths must be absolute (the adapter refuses relative ones).

    ``extravars`` go to a 0600 file in the run's private dir (removed after the run),
    never to the command line. ``extra_env`` is for test hosts only (e.g.
    ``ANSIBLE_HOST_KEY_CHECKING=False``); it is added to the minimal environment
    and may only set ``ANSIBLE_*`` keys. ``not_simulated_hint`` names tasks the
    manifest declares check mode cannot simulate. ``keep_artifacts`` run dirs are
    kept under ``artifacts_root`` (oldest pruned first).
    """

    playbook: Path
    inventory: Path
    mode: RunMode
    artifacts_root: Path
    extravars: Mapping[str, Any] = field(default_factory=dict)
    limit: str | None = None
    forks: int = 20
    timeout: timedelta = timedelta(minutes=30)
    roles_path: Path | None = None
    not_simulated_hint: frozenset[str] = frozenset()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    ident: str | None = None
    keep_artifacts: int = 50


class TaskResult(Model):
    """What one task did (or, in check mode, would do) on one host."""

    host: str = Field(description="Inventory host name.")
    task: str = Field(description="Task name (the action name when the task has none).")
    action: str | None = Field(None, description="Module/action, e.g. ansible.builtin.apt.")
    role: str | None = Field(None, description="Role the task comes from, if any.")
    status: TaskStatus = Field(description="ok, changed, skipped, failed or unreachable.")
    changed: bool = Field(False, description="True when the task changed (would change) the host.")
    diff: str | None = Field(None, description="Unified diff text of what changed (would change).")
    msg: str | None = Field(None, description="Module message (secrets redacted).")
    not_simulated: bool = Field(
        False, description="Check mode could not simulate this task: its real effect is unknown until apply."
    )
    ignored: bool = Field(False, description="Failed, but the task has ignore_errors (the host goes on).")
    duration_s: float | None = Field(None, description="Seconds the task took on this host.")


class HostResult(Model):
    host: str
    status: HostStatus
    tasks: list[TaskResult] = Field(default_factory=list)
    counts: dict[str, int] = Field(
        default_factory=dict,
        description="Ansible's play recap for the host: ok, changed, failed, unreachable, skipped, rescued, ignored.",
    )

    @property
    def changed_tasks(self) -> list[str]:
        return [t.task for t in self.tasks if t.changed]


class RunResult(Model):
    ident: str
    mode: RunMode
    status: RunStatus = Field(description="successful, failed (a host failed), canceled or timeout.")
    rc: int | None = Field(None, description="ansible-playbook exit code (None if it never ran).")
    hosts: dict[str, HostResult] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime
    duration_s: float
    warnings: list[str] = Field(default_factory=list, description="Ansible warnings and deprecations (redacted).")
    artifact_dir: str | None = Field(
        None, description="This run's scrubbed artifacts (redacted job events, stdout, status, rc)."
    )

    def changed_tasks(self) -> dict[str, list[str]]:
        """Host -> names of tasks that changed (would change), in run order."""
        return {name: host.changed_tasks for name, host in self.hosts.items()}

    def task(self, host: str, task: str) -> TaskResult:
        """The (first) result of ``task`` on ``host``; KeyError if there is none."""
        for result in self.hosts[host].tasks:
            if result.task == task:
                return result
        raise KeyError(f"no result for task {task!r} on host {host!r}")

    @property
    def not_simulated(self) -> list[TaskResult]:
        return [t for h in self.hosts.values() for t in h.tasks if t.not_simulated]


class RunEvent(Model):
    """One progress event, delivered to ``on_event`` in the order Ansible produced it."""

    kind: EventKind
    counter: int = Field(0, description="Position in the run's event stream (increasing).")
    host: str | None = None
    task: str | None = None
    play: str | None = None
    action: str | None = None
    status: TaskStatus | None = Field(None, description="For task_result / item_result events.")
    changed: bool = False
    msg: str | None = None
    diff: str | None = None
    not_simulated: bool = False
    run_status: RunStatus | None = Field(None, description="For the final run_end event.")
    created: datetime | None = None
