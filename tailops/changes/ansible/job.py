"""One playbook run with ansible-runner: :func:`run_playbook`.

Why: the planner and the local executor must run playbooks the same way every time —
absolute paths, the controlled environment (:mod:`~tailops.changes.ansible.environment`),
a private 0700 run dir (:mod:`~tailops.changes.ansible.artifacts`), results per host and
per task with unified diffs (:mod:`~tailops.changes.ansible.events`), progress as it
happens (:mod:`~tailops.changes.ansible.relay`), cancellation and a timeout
(:mod:`~tailops.changes.ansible.processes`), and errors from our own hierarchy. A typed
:class:`~tailops.changes.models.RunRequest` goes in, a
:class:`~tailops.changes.models.RunResult` comes out, with
:class:`~tailops.changes.models.RunEvent` progress.

Cancel and timeout both go through ansible-runner's ``cancel_callback`` (polled every
:data:`~tailops.changes.ansible.invoke.POLL_S`) and kill the whole ``ansible-playbook``
tree, workers included. Container env values (which ``reveal_container_env`` keeps
behind ``container:admin``) are hidden in every event before it is parsed or stored, and
in ``stdout`` (:mod:`~tailops.changes.ansible.envmask`): plans and runs are readable
with ``readonly``.

It must never: run a request with a relative path, an option-like limit or an unsafe
ident; put the limit or extravars where Ansible could read them as options; keep an
unredacted event in the artifacts; treat an unreachable host as an exception; or let a
parsing bug kill a run (the event is logged and kept out).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from tailops.changes.ansible.artifacts import make_run_dirs, prune, scrub, write_private
from tailops.changes.ansible.environment import build_env
from tailops.changes.ansible.envmask import EnvMasker
from tailops.changes.ansible.events import EventParser, TaskInfo
from tailops.changes.ansible.invoke import run_runner, write_runner_inputs
from tailops.changes.ansible.processes import kill_workers
from tailops.changes.ansible.relay import EventRelay
from tailops.changes.models import RunEvent, RunMode, RunRequest, RunResult, RunStatus
from tailops.errors import RunnerError
from tailops.redact import redact

__all__ = ["check_request", "command_line", "run_playbook"]

log = logging.getLogger("tailops.changes.ansible.job")

_IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
# ansible-runner's final status words; anything else (e.g. "error") is a failed run.
_STATUSES: dict[str, RunStatus] = {s: s for s in ("successful", "failed", "canceled", "timeout")}


def check_request(req: RunRequest) -> str:
    for label, path in (
        ("playbook", req.playbook),
        ("inventory", req.inventory),
        ("artifacts_root", req.artifacts_root),
    ):
        if not path.is_absolute():
            raise RunnerError(f"The {label} path {path} is relative.", hint="Pass an absolute path.")
    if not req.playbook.is_file():
        raise RunnerError(
            f"Playbook {req.playbook} does not exist or is not a file.",
            hint="Run `tailops playbooks verify` and check the catalog directory.",
        )
    if not req.inventory.exists():
        raise RunnerError(
            f"Inventory {req.inventory} does not exist.",
            hint="Set changes.inventory to an existing inventory file or directory.",
        )
    if req.roles_path is not None and not req.roles_path.is_absolute():
        raise RunnerError(f"The roles path {req.roles_path} is relative.", hint="Pass an absolute path.")
    if req.forks < 1:
        raise RunnerError(f"forks must be at least 1, not {req.forks}.")
    if req.limit is not None and (not req.limit or req.limit[0] in "-@" or any(c.isspace() for c in req.limit)):
        raise RunnerError(
            f"limit {req.limit[:80]!r} is not a host pattern (empty, starts with '-' or '@', or has whitespace).",
            hint="Pass host and group names, e.g. web1,web2 or 'targets:!db1'.",
        )
    ident = req.ident or f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    if not _IDENT_RE.match(ident):
        raise RunnerError(
            f"Run ident {ident!r} is not allowed.", hint="Use letters, digits, '.', '_' and '-' (at most 80)."
        )
    return ident


def command_line(req: RunRequest) -> str:
    """``--check --diff`` (or ``--diff``) plus the limit as ONE ``--limit=VALUE`` word.

    Never ansible-runner's ``limit=`` (it appends ``--limit`` and the value as two
    words, so a value like ``-e@file`` would be read as an option of its own).
    """
    words = ["--check", "--diff"] if req.mode is RunMode.CHECK else ["--diff"]
    if req.limit is not None:
        words.append(f"--limit={req.limit}")
    return " ".join(shlex.quote(w) for w in words)


class _Job:
    """One run inside the worker thread: prepare, run, scrub, build the result."""

    def __init__(self, req: RunRequest, ident: str, emit: Callable[[RunEvent], None]) -> None:
        self.req = req
        self.ident = ident
        self.emit = emit
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.deadline: float | None = None
        self.timed_out = False
        self.killed = False
        self.artifact_dir: Path | None = None
        self.parser: EventParser | None = None
        self.events_dir: Path | None = None
        self.masker = EnvMasker()

    def _on_event(self, raw: dict[str, Any]) -> bool:
        assert self.parser is not None and self.events_dir is not None
        try:
            raw = self.masker.mask_event(raw)  # container env values never get past this point
            progress = self.parser.feed(raw)
            name = f"{int(raw.get('counter') or 0)}-{raw.get('uuid', 'x')}.json"
            write_private(self.events_dir / name, json.dumps(redact(raw), default=str))
        except Exception:  # a parsing bug must not kill the run; it is logged and the event kept out
            log.exception("runner event %s could not be processed", raw.get("event"))
            return False
        if progress is not None:
            self.emit(progress)
        return False  # we wrote the (redacted) event ourselves

    def _should_stop(self) -> bool:
        """ansible-runner's cancel_callback (polled every ``POLL_S``): cancel or timeout."""
        if not self.stop.is_set():
            if self.deadline is None or time.monotonic() < self.deadline:
                return False
            self.timed_out = True
        if not self.killed:
            self.killed = True
            kill_workers(self.artifact_dir)
        return True

    def _prepared(self, artifact_dir: Path) -> None:
        self.events_dir = artifact_dir / "job_events"
        self.events_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.artifact_dir = artifact_dir
        self.deadline = time.monotonic() + self.req.timeout.total_seconds()

    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            self.finished.set()

    def _run(self) -> RunResult:
        req = self.req
        dirs = make_run_dirs(req.artifacts_root, self.ident)
        env = build_env(req, ansible_cfg=dirs.ansible_cfg)
        write_runner_inputs(dirs.private, req.extravars)
        self.parser = EventParser(req.mode, not_simulated_hint=req.not_simulated_hint, taskinfo=TaskInfo())
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            status, rc = run_runner(
                dirs.private,
                ident=self.ident,
                env=env,
                what=f"run {req.playbook.name}",
                event_handler=self._on_event,
                cancel_callback=self._should_stop,
                on_prepared=self._prepared,
                playbook=str(req.playbook),
                inventory=str(req.inventory),
                forks=req.forks,
                cmdline=command_line(req),
            )
        finally:
            scrub(dirs.private, dirs.artifact_dir, self.masker)
            prune(req.artifacts_root, req.keep_artifacts)
        finished_at = datetime.now(UTC)
        run_status: RunStatus = (
            "timeout" if status == "canceled" and self.timed_out else _STATUSES.get(status, "failed")
        )
        parser = self.parser
        if run_status in ("successful", "failed") and parser.stats is None:
            raise RunnerError(
                f"ansible-playbook did not run {req.playbook.name} (rc={rc}): {parser.error_text()}",
                hint="Fix the playbook or inventory (or the limit) and plan again.",
            )
        result = RunResult(
            ident=self.ident,
            mode=req.mode,
            status=run_status,
            rc=rc,
            hosts=parser.host_results(),
            started_at=started_at,
            finished_at=finished_at,
            duration_s=time.perf_counter() - t0,
            warnings=parser.warnings,
            artifact_dir=str(dirs.artifact_dir) if dirs.artifact_dir.exists() else None,
        )
        self.emit(RunEvent(kind="run_end", run_status=run_status, created=finished_at))
        return result


async def run_playbook(
    req: RunRequest,
    *,
    on_event: Callable[[RunEvent], Awaitable[None] | None] | None = None,
    cancel: anyio.Event | None = None,
) -> RunResult:
    """Run ``req`` with ansible-runner in a worker thread and return per-host results.

    ``on_event`` receives every progress event in order while the run goes on
    (from the event loop, never from the runner thread); all events are
    delivered before this returns. If ``on_event`` raises, the run is canceled
    (fail closed: nothing changes hosts while progress cannot be recorded) and
    the exception is re-raised. Setting ``cancel`` — or cancelling the awaiting
    task — stops Ansible (the process group is killed within about
    ``POLL_S`` seconds); the result then has status ``canceled``. A run past
    ``req.timeout`` ends with status ``timeout``. Unreachable hosts are results.
    Refusals and failures to start raise :class:`~tailops.errors.RunnerError`.
    """
    ident = check_request(req)
    relay = EventRelay[RunResult](on_event)
    job = _Job(req, ident, relay.emit)
    return await relay.run(job.run, stop=job.stop, finished=job.finished, cancel=cancel, finish_timeout_s=60)
