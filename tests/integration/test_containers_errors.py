"""Every exception the Docker SDK (and the HTTP stack under it) can raise maps to a tailops error.

Like httpx's ``test_httpcore_all_exceptions_mapped``: walk every subclass of
``docker.errors.DockerException`` and check :func:`translate` gives a specific
tailops error with a usable message. Plus the status-code mapping, the
reconnect-after-failure behaviour of :meth:`DockerEngine.call`, and close-name
matching. The last test uses the real engine.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests
import requests.exceptions
import urllib3.exceptions

from tailops.config import DockerSettings
from tailops.errors import (
    HTTP_STATUS,
    InvalidInput,
    NotFound,
    OperationTimeout,
    TailopsError,
    Unavailable,
)
from tailops.monitor.containers import DockerEngine, close_matches, translate

WHERE = "unix:///test.sock"


def _subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    sub: type[BaseException]
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _response(status: int) -> requests.Response:
    res = requests.Response()
    res.status_code = status
    return res


def _instance(cls: type[BaseException]) -> BaseException:
    """Build one instance of any SDK exception class, whatever its constructor wants."""
    make: Any = cls
    exc: BaseException
    if issubclass(cls, docker.errors.APIError):
        exc = make("boom", response=_response(500), explanation="engine said no")
    elif cls is docker.errors.ContainerError:
        exc = make("c1", 1, "cmd", "img", b"stderr")
    elif cls is docker.errors.BuildError:
        exc = make("bad build", [])
    else:
        params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
        named = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        exc = make(*["x"] * len(named)) if named else make("something went wrong")
    assert type(exc) is cls
    return exc


@pytest.mark.parametrize("cls", list(_subclasses(docker.errors.DockerException)), ids=lambda c: c.__name__)
def test_every_sdk_exception_maps_to_a_specific_tailops_error(cls: type[BaseException]) -> None:
    err = translate(_instance(cls), what="list containers", where=WHERE)
    assert isinstance(err, TailopsError)
    assert type(err) is not TailopsError and type(err) in HTTP_STATUS
    assert err.message
    assert "list containers" in err.message or WHERE in err.message


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (docker.errors.NotFound("x", response=_response(404), explanation="No such container: web"), NotFound),
        (docker.errors.ImageNotFound("x", response=_response(404)), NotFound),
        (docker.errors.APIError("x", response=_response(400), explanation="invalid filter 'colour'"), InvalidInput),
        (docker.errors.APIError("x", response=_response(409), explanation="container is not running"), InvalidInput),
        (docker.errors.APIError("x", response=_response(500), explanation="driver failed"), Unavailable),
        (docker.errors.APIError("x", response=_response(503)), Unavailable),
        (docker.errors.DockerException("Error while fetching server API version"), Unavailable),
        (docker.errors.InvalidVersion("one_shot is not supported"), Unavailable),
        (docker.errors.InvalidArgument("since must be positive"), InvalidInput),
        (requests.exceptions.ConnectionError("Connection aborted"), Unavailable),
        (requests.exceptions.ReadTimeout("read timed out"), OperationTimeout),
        (requests.exceptions.ConnectTimeout("connect timed out"), OperationTimeout),
        (requests.exceptions.ChunkedEncodingError("broken"), Unavailable),
        (urllib3.exceptions.ProtocolError("Connection aborted"), Unavailable),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), OperationTimeout),  # type: ignore[arg-type]
        (FileNotFoundError(2, "No such file or directory"), Unavailable),
        (ConnectionRefusedError(111, "Connection refused"), Unavailable),
        (TimeoutError("timed out"), OperationTimeout),
        (ConnectionResetError(104, "Connection reset by peer"), Unavailable),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_mapping_by_kind(exc: BaseException, expected: type[TailopsError]) -> None:
    err = translate(exc, what="inspect container 'web'", where=WHERE)
    assert type(err) is expected
    assert "Traceback" not in err.public_message()


def test_engine_explanation_is_kept_and_short() -> None:
    exc = docker.errors.APIError("x", response=_response(400), explanation="invalid filter 'colour'" + "x" * 500)
    err = translate(exc, what="list containers", where=WHERE)
    assert "invalid filter 'colour'" in err.message and len(err.message) < 300


def test_close_matches_prefers_substrings_then_similar_names() -> None:
    names = ["web-1", "web-2", "db", "cache", "worker"]
    assert close_matches("web", names)[:2] == ["web-1", "web-2"]
    assert "worker" in close_matches("wroker", names)
    assert close_matches("zzzz", names) == []
    assert len(close_matches("", ["a", "b"])) <= 5


def test_a_failed_call_drops_the_client_and_marks_health(tmp_path: Path) -> None:
    sock_path = tmp_path / "e.sock"
    engine = DockerEngine(DockerSettings(base_url=f"unix://{sock_path}", timeout=timedelta(seconds=2)))
    try:
        with pytest.raises(Unavailable) as info:
            engine.client()
        assert str(sock_path) in info.value.message and "does not exist" in info.value.message
        assert engine.cached_status() is not None  # /health sees it at once
        with pytest.raises(Unavailable):
            engine.call("list containers", lambda: [])
    finally:
        engine.close()


def test_real_engine_round_trip_and_unknown_container(docker_client: Any) -> None:
    engine = DockerEngine(DockerSettings())
    try:
        assert engine.cached_status(max_age=0) is None
        with pytest.raises(NotFound) as info:
            raise engine.unknown_container("tailops-test-certainly-not-there")
        assert "get_container_list" in info.value.public_message()
        # Bugs in our own callables are not engine errors: they propagate unchanged.
        with pytest.raises(ZeroDivisionError):
            engine.call("divide", lambda: 1 / 0)
        results = engine.fan_out("square", lambda x: x * x, [1, 2, 3], timeout=5)
        assert results == [1, 4, 9]
    finally:
        engine.close()
