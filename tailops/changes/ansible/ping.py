"""The read-only ad-hoc ``ping`` over an inventory: :func:`run_adhoc_ping` (``tailops inventory check``).

Why: before a plan, an operator wants to know which inventory hosts Ansible can reach
at all, the way a playbook run would reach them — the same environment policy, private
run dir and scrubbing as :func:`~tailops.changes.ansible.job.run_playbook`, with
Ansible's ``ping`` module, which changes nothing on a host.

It must never run any module but ``ansible.builtin.ping``, let the host pattern read as
an option, or keep the run's events (a ping's results are its return value).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tailops.changes.ansible.artifacts import make_run_dirs, prune, scrub
from tailops.changes.ansible.environment import build_env
from tailops.changes.ansible.events import MAX_MSG_CHARS
from tailops.changes.ansible.invoke import run_runner, write_runner_inputs
from tailops.changes.ansible.processes import kill_workers
from tailops.changes.models import RunMode, RunRequest
from tailops.errors import RunnerError
from tailops.redact import redact_text

__all__ = ["run_adhoc_ping"]

_PING_EVENTS = {"runner_on_ok": "ok", "runner_on_unreachable": "unreachable", "runner_on_failed": "failed"}


def run_adhoc_ping(
    inventory: Path,
    artifacts_root: Path,
    *,
    pattern: str = "all",
    forks: int = 5,
    timeout: timedelta = timedelta(minutes=5),
    extra_env: Mapping[str, str] | None = None,
    keep_artifacts: int = 50,
    on_host: Callable[[str, str, str | None], None] | None = None,
) -> dict[str, tuple[str, str | None]]:
    """``ansible PATTERN -m ansible.builtin.ping`` (read-only: it changes nothing on a host)
    with the same environment policy and artifact handling as a playbook run. Blocking:
    call from a worker thread. Returns host → (``ok`` | ``unreachable`` | ``failed``,
    message); ``on_host`` gets each host's answer as it arrives (progress). Hosts that
    did not answer before ``timeout`` are missing from the result."""
    req = RunRequest(  # only what build_env reads matters for an ad-hoc run
        playbook=inventory,
        inventory=inventory,
        mode=RunMode.CHECK,
        artifacts_root=artifacts_root,
        limit=pattern,
        forks=forks,
        timeout=timeout,
        extra_env=dict(extra_env or {}),
        keep_artifacts=keep_artifacts,
        ident=f"ping-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
    )
    ident = str(req.ident)
    if not pattern or pattern.startswith("-"):
        # The pattern is the last argv word of `ansible`: never let it read as an option.
        raise RunnerError(f"host pattern {pattern[:80]!r} is not allowed.")
    if not (inventory.is_absolute() and artifacts_root.is_absolute()):
        raise RunnerError("the inventory and artifacts paths must be absolute.")
    if not inventory.exists():
        raise RunnerError(
            f"Inventory {inventory} does not exist.",
            hint="Set changes.inventory to an existing inventory file or directory.",
        )
    dirs = make_run_dirs(artifacts_root, ident)
    env = build_env(req, ansible_cfg=dirs.ansible_cfg)
    write_runner_inputs(dirs.private)
    results: dict[str, tuple[str, str | None]] = {}
    deadline = time.monotonic() + timeout.total_seconds()
    killed: list[bool] = []

    def on_event(raw: dict[str, Any]) -> bool:
        status = _PING_EVENTS.get(str(raw.get("event")))
        data = raw.get("event_data") or {}
        host = data.get("host")
        if status is not None and isinstance(host, str):
            res = data.get("res") or {}
            msg = None
            if status != "ok":
                # A connection that fails inside the module run (docker exec into a stopped
                # container) says why only on the module's stderr.
                parts = [str(res.get("msg") or "no message"), str(res.get("module_stderr") or "").strip()]
                msg = redact_text(": ".join(p for p in parts if p))[:MAX_MSG_CHARS]
            results[host] = (status, msg)
            if on_host is not None:
                on_host(host, status, msg)
        return False  # events are not kept: a ping's results are the return value

    def should_stop() -> bool:
        if time.monotonic() < deadline:
            return False
        if not killed:
            killed.append(True)
            kill_workers(dirs.artifact_dir)
        return True

    try:
        run_runner(
            dirs.private,
            ident=ident,
            env=env,
            what="ping the inventory",
            event_handler=on_event,
            cancel_callback=should_stop,
            module="ansible.builtin.ping",
            host_pattern=pattern,
            inventory=str(inventory),
            forks=forks,
        )
    finally:
        scrub(dirs.private, dirs.artifact_dir)
        prune(artifacts_root, keep_artifacts)
    return results
