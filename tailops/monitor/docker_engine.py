"""The one adapter over the Docker SDK for the read path.

Creates the client lazily (the server must start and serve every other tool
when no engine is running), bounds every call with ``docker.timeout``, and
translates docker/requests exceptions into tailops errors where they enter.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import docker
import docker.errors
import requests.exceptions

from tailops.config import DockerSettings
from tailops.errors import Unavailable

__all__ = ["DockerEngine"]


class DockerEngine:
    def __init__(self, settings: DockerSettings) -> None:
        self._settings = settings
        self._client: Any = None
        self._lock = threading.Lock()
        self._ping_cache: tuple[float, str | None] | None = None

    @property
    def where(self) -> str:
        return self._settings.base_url or "the default socket (DOCKER_HOST or /var/run/docker.sock)"

    def client(self) -> Any:
        """The docker.DockerClient, created on first use; Unavailable if the engine is down."""
        with self._lock:
            if self._client is None:
                try:
                    timeout = int(max(1, self._settings.timeout.total_seconds()))
                    if self._settings.base_url:
                        self._client = docker.DockerClient(base_url=self._settings.base_url, timeout=timeout)
                    else:
                        self._client = docker.from_env(timeout=timeout)
                except docker.errors.DockerException as exc:
                    raise Unavailable(
                        f"the Docker engine at {self.where} is not reachable ({_short(exc)}).",
                        hint="Start dockerd or set docker.base_url / DOCKER_HOST; other tools keep working.",
                    ) from exc
            return self._client

    def ping(self) -> None:
        """Raise Unavailable unless the engine answers."""
        try:
            self.client().ping()
        except Unavailable:
            self.reset()
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            self.reset()
            raise Unavailable(
                f"the Docker engine at {self.where} is not answering ({_short(exc)}).",
                hint="Start dockerd or set docker.base_url / DOCKER_HOST; other tools keep working.",
            ) from exc

    def cached_status(self, max_age: float = 5.0) -> str | None:
        """None when the engine answered within ``max_age`` seconds, else the problem."""
        now = time.monotonic()
        cached = self._ping_cache
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        try:
            self.ping()
            problem = None
        except Unavailable as exc:
            problem = exc.message
        self._ping_cache = (now, problem)
        return problem

    def reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a dead client must not raise
                pass

    def close(self) -> None:
        self.reset()


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:200]
