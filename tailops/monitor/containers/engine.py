"""The one adapter over the Docker SDK for the read path: the client, calls, fan-out, health.

Why it exists: every Docker call of tailops goes through :meth:`DockerEngine.call`
(or :meth:`DockerEngine.fan_out` for many at once), so the SDK's and requests'
exceptions are translated into tailops errors in exactly one place
(:func:`~tailops.monitor.containers.errors.translate`) and never leak to a
tool. It creates the client lazily (the server must start and serve every other
tool when no engine is running), bounds every call with ``docker.timeout``,
drops the client when the engine stops answering (the next call reconnects),
and answers "is the engine there?" for ``/health`` from a short-lived cache. It owns the one engine event feed
(:attr:`DockerEngine.events`) and the inspect cache that listens to it.

What it must never do: change anything. No container start/stop/remove, no
image pull, no exec: those are catalog playbooks run by the change engine.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import difflib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from tailops.config import DockerSettings
from tailops.errors import NotFound, OperationTimeout, TailopsError, Unavailable
from tailops.monitor.cgroup_cpu import DEFAULT_ROOT as DEFAULT_CGROUP_ROOT
from tailops.monitor.cgroup_cpu import CgroupCpu
from tailops.monitor.containers.errors import HINT_DOWN, engine_exceptions, translate
from tailops.monitor.containers.events import ContainerEvents
from tailops.monitor.containers.inspect_cache import InspectCache

__all__ = ["DockerEngine", "close_matches"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("tailops.docker")


class DockerEngine:
    """The engine connection of one server (or CLI) process; thread-safe, lazily connected."""

    def __init__(self, settings: DockerSettings) -> None:
        self.settings = settings
        self._unix_path = _unix_socket_path(settings.base_url)
        self._client: Any = None
        self._lock = threading.Lock()
        self._ping_cache: tuple[float, str | None] | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # container id -> (monotonic time, cpu total_usage, system_cpu_usage) of the last stats sample,
        # so CPU % can be computed against the previous call (see monitor.containers.stats).
        self.cpu_samples: collections.OrderedDict[str, tuple[float, int, int]] = collections.OrderedDict()
        self.cpu_samples_lock = threading.Lock()
        # Container CPU time from the cgroup files: only meaningful when the engine runs on this host.
        self.cgroup_cpu = CgroupCpu(DEFAULT_CGROUP_ROOT if self._unix_path else None)
        # One follower of GET /events for everyone (inspect cache, resource subscriptions).
        self.events = ContainerEvents(self)
        self.inspect_cache = InspectCache(self.events)

    @property
    def where(self) -> str:
        return self.settings.base_url or "the default socket (DOCKER_HOST or /var/run/docker.sock)"

    # -- client ------------------------------------------------------------------------
    def _check_socket(self) -> None:
        """Unavailable when the engine's unix socket is missing.

        Besides a clearer message, this avoids the SDK's connection attempt, which
        leaks its socket object when connect() fails.
        """
        if self._unix_path is None:
            return
        try:
            mode = os.stat(self._unix_path).st_mode
        except OSError as exc:
            err = Unavailable(
                f"the Docker engine socket {self._unix_path} does not exist ({exc.strerror}).",
                hint=HINT_DOWN,
            )
        else:
            if stat.S_ISSOCK(mode):
                return
            err = Unavailable(f"{self._unix_path} is not a socket, so no Docker engine answers there.", hint=HINT_DOWN)
        self.reset()
        self._ping_cache = (time.monotonic(), err.message)
        raise err

    def client(self) -> Any:
        """The docker.DockerClient, created on first use; Unavailable if the engine is down."""
        self._check_socket()
        with self._lock:
            if self._client is None:
                timeout = int(max(1, round(self.settings.timeout.total_seconds())))
                # One pooled connection per concurrent fan-out call, plus a few for the rest.
                pool = max(self.settings.concurrency, self.settings.stats_concurrency) + 4
                try:
                    import docker  # on first use: the server starts without the SDK

                    if self.settings.base_url:
                        self._client = docker.DockerClient(
                            base_url=self.settings.base_url, timeout=timeout, max_pool_size=pool
                        )
                    else:
                        self._client = docker.from_env(timeout=timeout, max_pool_size=pool)
                except engine_exceptions() as exc:
                    err = translate(exc, what="connecting", where=self.where)
                    self._ping_cache = (time.monotonic(), err.message)
                    raise err from exc
            return self._client

    def api(self) -> Any:
        """The low-level docker.APIClient (one HTTP call per method, no hidden inspects)."""
        return self.client().api

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call; translate its exceptions (and reconnect next time if the engine went away)."""
        self._check_socket()
        try:
            return fn(*args, **kwargs)
        except TailopsError:
            raise
        except engine_exceptions() as exc:
            err = translate(exc, what=what, where=self.where)
            if isinstance(err, Unavailable):
                self.reset()
                # /health should say so at once, not after its cache expires.
                self._ping_cache = (time.monotonic(), err.message)
            raise err from exc

    def fan_out(
        self,
        what: str,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        timeout: float,
        width: int | None = None,
    ) -> list[R | TailopsError]:
        """``fn(item)`` for every item, at most ``docker.concurrency`` (or ``width``) at once, within
        ``timeout`` seconds.

        Returns results in item order; an item whose call failed or did not finish
        in time holds the (translated) error instead. Never raises for one item.
        """
        if not items:
            return []
        own: concurrent.futures.ThreadPoolExecutor | None = None
        if width is not None and width > self.settings.concurrency:
            own = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(width, len(items)), thread_name_prefix="tailops-docker-wide"
            )
        pool = own or self._executor()
        try:
            futures = [pool.submit(self.call, what, fn, item) for item in items]
            _done, not_done = concurrent.futures.wait(futures, timeout=max(0.0, timeout))
        finally:
            if own is not None:
                own.shutdown(wait=False, cancel_futures=True)
        for fut in not_done:
            fut.cancel()
        out: list[R | TailopsError] = []
        for fut in futures:
            if fut in not_done:
                out.append(OperationTimeout(f"{what} did not finish within {timeout:.1f} s."))
                continue
            exc = fut.exception()
            if exc is None:
                out.append(fut.result())
            elif isinstance(exc, TailopsError):
                out.append(exc)
            else:
                raise exc  # a bug in fn, not an engine problem: let the boundary report it
        return out

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.settings.concurrency, thread_name_prefix="tailops-docker"
                )
            return self._pool

    # -- names -------------------------------------------------------------------------
    def container_names(self) -> list[str]:
        rows: list[dict[str, Any]] = self.call("list containers", lambda: self.api().containers(all=True))
        names: list[str] = []
        for row in rows:
            names.extend(n.lstrip("/") for n in row.get("Names") or [])
        return names

    def unknown_container(self, name: str) -> NotFound:
        """NotFound for ``name``, listing the closest existing container names."""
        try:
            names = self.container_names()
        except TailopsError:
            names = []
        near = close_matches(name, names)
        listed = f" Close matches: {', '.join(near)}." if near else " No similar names."
        return NotFound(
            f"no container named or with id {name!r}.{listed}",
            hint="List containers with get_container_list(all=true).",
        )

    # -- health ------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise Unavailable unless the engine answers (within docker.ping_timeout)."""
        api = self.api()
        timeout = max(0.1, self.settings.ping_timeout.total_seconds())

        def _ping() -> None:
            res = api.get(api._url("/_ping"), timeout=timeout)
            res.raise_for_status()

        try:
            self.call("ping", _ping)
        except (Unavailable, OperationTimeout):
            self.reset()
            raise
        except TailopsError as exc:
            self.reset()
            raise Unavailable(f"the Docker engine at {self.where} is not healthy ({exc.message})") from exc

    def cached_status(self, max_age: float = 5.0) -> str | None:
        """None when the engine answered within ``max_age`` seconds, else the problem."""
        now = time.monotonic()
        cached = self._ping_cache
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        try:
            self.ping()
            problem = None
        except TailopsError as exc:
            problem = exc.message
        self._ping_cache = (now, problem)
        return problem

    # -- lifecycle ---------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # closing a dead client must not raise
                client.close()

    def close(self) -> None:
        self.inspect_cache.close()
        self.events.close()
        self.reset()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _unix_socket_path(base_url: str | None) -> str | None:
    """The engine's unix socket path, or None when it is reached another way (tcp, ssh)."""
    url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if url.startswith("unix://"):
        return url.removeprefix("unix://") or None
    if url.startswith("/"):
        return url
    return None


def close_matches(query: str, names: Iterable[str], n: int = 5) -> list[str]:
    """Names containing ``query`` first, then difflib's closest ones (at most ``n``)."""
    pool = sorted(set(names))
    q = query.lower().lstrip("/")
    out = [name for name in pool if q and q in name.lower()]
    out += [m for m in difflib.get_close_matches(q, pool, n=n, cutoff=0.5) if m not in out]
    return out[:n]
