"""Reading a container's log from the engine, bounded: one streamed request, a deadline, a watchdog.

Why it exists: ``get_container_logs`` and ``analyze_container_logs`` read logs
that may be many megabytes, from an engine that may stall or trickle. This
reader makes one streamed ``GET /containers/{id}/logs`` (stdout and stderr,
engine timestamps, ``tail``, ``since``/``until``), reads it in 64 KiB chunks
that :func:`~tailops.monitor.containers.frames.log_lines` turns into
``(stream, line)`` pairs, keeps the ``docker.timeout`` read timeout on the
socket, and closes the response at the deadline from a watchdog timer, so
neither a stalled nor a trickling engine holds a worker.

What it must never do: read past its deadline, buffer the whole log, leave the
response open when the caller stops early, or let an SDK exception through
untranslated.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Generator
from datetime import datetime
from typing import Any

from tailops.monitor.containers.engine import DockerEngine
from tailops.monitor.containers.errors import engine_exceptions, translate
from tailops.monitor.containers.frames import log_lines

__all__ = ["LogReader"]

CHUNK = 65536


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a log stream can raise: the engine's errors, plus what a response closed
    by the watchdog raises while being read."""
    return (*engine_exceptions(), AttributeError, ValueError)


class LogReader:
    """Stream a container's log lines (oldest first, engine timestamp prefix kept), bounded.

    ``timed_out`` tells, after reading, that the watchdog ended the read at the deadline.
    """

    def __init__(self, engine: DockerEngine, cid: str, what: str, *, tty: bool) -> None:
        self.engine = engine
        self.cid = cid
        self.what = what
        self.tty = tty
        self.timed_out = False

    def _open(self, tail: int, since: datetime | None, until: datetime | None) -> Any:
        api = self.engine.api()
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 0, "tail": tail}
        if since is not None:
            params["since"] = f"{since.timestamp():.9f}"
        if until is not None:
            params["until"] = f"{until.timestamp():.9f}"
        url = f"{api.base_url}/v{api.api_version}/containers/{self.cid}/logs"

        import docker.errors
        import requests.exceptions

        def get() -> Any:
            res = api.get(url, params=params, stream=True, timeout=api.timeout)
            if res.status_code >= 400:
                try:
                    res.raise_for_status()
                except requests.exceptions.HTTPError as exc:
                    res.close()
                    docker.errors.create_api_error_from_http_exception(exc)  # raises the matching APIError
            return res

        return self.engine.call(self.what, get)

    def lines(
        self, *, tail: int, since: datetime | None, until: datetime | None, deadline: float
    ) -> Generator[tuple[str, str], None, None]:
        """``(stream, line)`` pairs, stream ``stdout``/``stderr`` (``tty`` for TTY containers)."""
        res = self._open(tail, since, until)

        def expire() -> None:
            self.timed_out = True
            with contextlib.suppress(Exception):  # the response may already be closed or half-dead
                res.close()

        timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        try:
            yield from log_lines(iter(lambda: res.raw.read(CHUNK), b""), tty=self.tty)
        except _read_errors() as exc:
            # AttributeError/ValueError: reading a response the watchdog closed under us.
            if not self.timed_out:
                if isinstance(exc, AttributeError | ValueError):
                    raise
                raise translate(exc, what=self.what, where=self.engine.where) from exc
        finally:
            timer.cancel()
            with contextlib.suppress(Exception):  # already closed by the watchdog or the engine
                res.close()
