"""Where the Docker SDK's exceptions become tailops errors: the one translation point.

Why it exists: every engine call of the read path (through
:meth:`~tailops.monitor.containers.engine.DockerEngine.call`, the event feed and
the log reader) needs the same answer to "what does this SDK / requests / urllib3
exception mean for the caller?". Keeping :func:`translate` and the tuple of
exceptions to catch in one small module lets every other module of the package
import them without importing the engine (no import cycle), and lets
tests/integration/test_containers_errors.py check that every SDK exception maps.

What it must never do: import the Docker SDK at module import time (the server
starts without it), or let an SDK exception through untranslated.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from tailops.errors import InvalidInput, NotFound, OperationTimeout, TailopsError, Unavailable

if TYPE_CHECKING:
    import docker.errors

__all__ = ["HINT_DOWN", "engine_exceptions", "translate"]

HINT_DOWN = "Start dockerd or set docker.base_url / DOCKER_HOST; the other tools keep working."


@functools.cache
def engine_exceptions() -> tuple[type[BaseException], ...]:
    """Everything the SDK (and the HTTP stack under it) raises when talking to the engine.

    A function, not a constant: the Docker SDK (with requests and urllib3) is
    imported on first use, so the server starts without it (``except
    engine_exceptions():`` is evaluated only when an exception is on its way).
    """
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    return (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        OSError,  # includes TimeoutError / socket.timeout, FileNotFoundError of a missing socket
    )


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:200]


def _explanation(exc: docker.errors.APIError) -> str:
    text = exc.explanation if isinstance(exc.explanation, str) else None
    if not text:
        text = _short(exc)
    return text.strip()[:200]


def translate(exc: BaseException, *, what: str, where: str) -> TailopsError:
    """The tailops error for an exception raised by the Docker SDK or its HTTP stack.

    ``what`` names the operation ("inspect container 'web'"), ``where`` the engine.
    Every subclass of ``docker.errors.DockerException`` maps to some tailops error
    (tests/integration/test_containers_errors.py checks that).
    """
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    if isinstance(exc, TailopsError):
        return exc
    if isinstance(exc, docker.errors.NotFound):
        return NotFound(f"{what}: the Docker engine has no such object ({_explanation(exc)}).")
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        if status == 400:
            return InvalidInput(f"the Docker engine refused {what}: {_explanation(exc)}.")
        if status == 409:
            return InvalidInput(
                f"{what} conflicts with the container's current state: {_explanation(exc)}.",
                hint="Check its state with get_container_list.",
            )
        return Unavailable(
            f"the Docker engine at {where} failed {what} (HTTP {status or 'error'}: {_explanation(exc)}).",
            hint="Retry; if it persists, check the engine (docker info, its log).",
        )
    if isinstance(exc, docker.errors.InvalidVersion):
        return Unavailable(
            f"the Docker engine at {where} is too old for {what} ({_short(exc)}).",
            hint="Upgrade the engine (API 1.41 / Docker 20.10 or newer).",
        )
    if isinstance(exc, docker.errors.InvalidArgument | docker.errors.NullResource):
        return InvalidInput(f"{what}: {_short(exc)}.")
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError | urllib3.exceptions.TimeoutError):
        return OperationTimeout(
            f"the Docker engine at {where} did not answer {what} in time.",
            hint="The engine may be overloaded; retry, or raise docker.timeout.",
        )
    if isinstance(exc, docker.errors.DockerException):
        return Unavailable(f"the Docker engine at {where} is not reachable ({_short(exc)}).", hint=HINT_DOWN)
    # requests ConnectionError, urllib3 protocol errors, OSError of a missing/refused socket.
    return Unavailable(
        f"the Docker engine at {where} is not answering ({exc.__class__.__name__}: {_short(exc)}).",
        hint=HINT_DOWN,
    )
