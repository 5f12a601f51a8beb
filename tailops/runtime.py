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
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from tailops.audit import AuditLog
from tailops.auth.principals import PrincipalResolver
from tailops.auth.ratelimit import AuthFailureLimiter, RateLimiter
from tailops.changes.drift import DriftChecker, DriftScheduler
from tailops.changes.engine import ChangeEngine
from tailops.config import Settings
from tailops.metrics import Metrics
from tailops.monitor import processes
from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.network import IoRateTracker
from tailops.monitor.sampler import Sampler
from tailops.monitor.system import collect_disks
from tailops.notify.worker import Notifier
from tailops.store import Store

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
        self.metrics.watch_audit(self.audit.status)
        self.principals = PrincipalResolver(config)
        self.rate_limiter = RateLimiter(config.auth.rate_limit_per_minute, config.auth.rate_limit_burst)
        self.auth_failures = AuthFailureLimiter(config.auth.auth_failures_per_minute)
        self.sampler = Sampler(slow_probe=collect_disks)
        self.net_io = IoRateTracker()
        self.docker = DockerEngine(config.docker)
        self._limiter: anyio.CapacityLimiter | None = None
        # Per-connection client log level (logging/setLevel); set by tailops.server.protocol.
        # (a tailops.tools.client_log.ClientLogLevels; typed loosely so that the runtime, which
        # the tools build on, never imports the tool layer)
        self.client_log_levels: Any = None
        # The change lifecycle (plan, approve, apply, cancel); this process's instance id is
        # written on the run rows it starts.
        self.instance_id = uuid.uuid4().hex
        # Webhook delivery (tailops/notify): started only when endpoints are configured.
        self.notifier = Notifier(self.store, config, self.metrics)
        self.engine = ChangeEngine(
            config,
            self.store,
            self.audit,
            instance_id=self.instance_id,
            run_blocking=self.run_blocking,
            notifier=self.notifier,
        )
        # Scheduled desired-state checks (drift.checks): started only when checks are configured.
        self.drift = DriftChecker(self.engine, self.metrics)
        # The scheduler runs checks on its own thread and event loop: it gets an engine of its own
        # (same store, audit log, executor and notifier) whose worker pool belongs to that loop, so it
        # never shares the server loop's capacity limiter across loops.
        scheduler_engine = ChangeEngine(
            config,
            self.store,
            self.audit,
            executor=self.engine.executor,
            instance_id=self.instance_id,
            notifier=self.notifier,
        )
        self.drift_scheduler = DriftScheduler(DriftChecker(scheduler_engine, self.metrics))
        self._started = False

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._recover_runs()
        self.sampler.start()
        processes.prime()
        if self.config.notifications.endpoints:
            self.notifier.start()
        self.drift_scheduler.start()

    def _recover_runs(self) -> None:
        """Runs left 'running' by a server that is gone become 'interrupted' (never a silent gap)."""
        self.engine.recover()

    def stop(self) -> None:
        self.drift_scheduler.stop()
        self.notifier.stop()
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
