"""Everything one running server instance owns, built from one Settings.

The runtime is built before the MCP server and passed to every tool through
:class:`~tailops.tools.registry.ToolCall`; there are no module-level globals,
so tests can run several servers (different configs) in one process.
``start()``/``stop()`` run in the HTTP lifespan or around the stdio loop.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from tailops.audit import AuditLog
from tailops.auth.principals import PrincipalResolver
from tailops.auth.ratelimit import AuthFailureLimiter, RateLimiter
from tailops.auth.scopes import Authorizer
from tailops.config import Settings
from tailops.metrics import Metrics
from tailops.monitor import processes
from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.network import IoRateTracker
from tailops.monitor.sampler import Sampler
from tailops.monitor.system import collect_disks
from tailops.store import Store

if TYPE_CHECKING:
    from tailops.principal import Principal
    from tailops.server.protocol import ClientLogLevels
    from tailops.tools.registry import ToolSpec

__all__ = ["Runtime"]

log = logging.getLogger("tailops.runtime")
T = TypeVar("T")


class Runtime:
    def __init__(self, config: Settings, *, config_path: Path | None = None) -> None:
        self.config = config
        # The YAML file the config came from (file tools must never read it).
        self.config_path = config_path
        self.started_at = time.monotonic()
        data_dir = config.server.data_dir
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(data_dir, 0o700)
        self.store = Store(config.db_path)
        self.audit = AuditLog(config.audit_path, rotate_bytes=config.audit.rotate_bytes)
        self.metrics = Metrics()
        self.principals = PrincipalResolver(config)
        self.authorizer = Authorizer()
        self.rate_limiter = RateLimiter(config.auth.rate_limit_per_minute, config.auth.rate_limit_burst)
        self.auth_failures = AuthFailureLimiter(config.auth.auth_failures_per_minute)
        self.sampler = Sampler(slow_probe=collect_disks)
        self.net_io = IoRateTracker()
        self.docker = DockerEngine(config.docker)
        self._limiter: anyio.CapacityLimiter | None = None
        # Per-connection client log level (logging/setLevel); set by tailops.server.protocol.
        self.client_log_levels: ClientLogLevels | None = None
        # Change engine: this process's instance id (written on run rows) and the cancel
        # events of the runs it is applying now (cancel_run sets them).
        self.instance_id = uuid.uuid4().hex
        self.active_runs: dict[str, anyio.Event] = {}
        self._started = False

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._recover_runs()
        self.sampler.start()
        processes.prime()

    def _recover_runs(self) -> None:
        """Runs left 'running' by a server that is gone become 'interrupted' (never a silent gap)."""
        from tailops.changes.plans import mark_interrupted
        from tailops.errors import TailopsError

        try:
            marked = mark_interrupted(self.store, self.instance_id)
        except TailopsError:
            log.exception("could not mark interrupted runs")
            return
        if not marked:
            return
        from tailops.changes.runner import kill_leftover_processes

        for run_id in marked:
            row = self.store.query_one("SELECT runner_ident FROM runs WHERE id = ?", (run_id,))
            killed = kill_leftover_processes(self.config.artifacts_dir.absolute(), row["runner_ident"]) if row else 0
            log.warning(
                "run interrupted by a previous server stop",
                extra={"run_id": run_id, "leftover_processes_killed": killed},
            )

    def stop(self) -> None:
        self.sampler.stop()
        self.docker.close()
        self.store.close()
        self.audit.close()
        self._started = False

    # -- worker pool ------------------------------------------------------------
    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.config.server.workers)
        return self._limiter

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in the bounded worker pool (never on the event loop)."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.limiter)

    # -- audit --------------------------------------------------------------------
    async def audit_tool_call(
        self,
        *,
        spec: ToolSpec,
        principal: Principal,
        arguments: dict[str, Any],
        decision: str,
        reason: str | None,
        outcome: str,
        error: str | None,
        duration: float,
        meta: dict[str, Any],
        phase: str = "end",
    ) -> None:
        """Write one tool-call record; raise AuditError if it cannot be written.

        Denied and mutating (non-read-only) calls are fsynced, off the event
        loop; the rest are plain appends. ``phase="start"`` is the record a
        mutating call writes before its body runs (no start record, no call).
        """
        entry: dict[str, Any] = {
            "kind": "tool",
            "tool": spec.name,
            "phase": phase,
            "principal": principal.audit_view(),
            "args": arguments,
            "decision": decision,
            "reason": reason,
            "outcome": outcome,
            "error": error,
            "ms": round(duration * 1000, 3),
        }
        if meta:
            entry.update(meta)
        if decision == "denied" or not spec.read_only:
            await anyio.to_thread.run_sync(functools.partial(self.audit.record, entry, sync=True))
        else:
            self.audit.record(entry)
