"""Fixtures shared by every test suite.

Docker: tests that need the engine use the ``docker_client`` fixture. When the
engine is missing the fixture *fails* (``pytest.fail``), never skips: a green run
must mean the real thing was exercised. ``make test`` installs and starts
dockerd and builds the local images before pytest runs.

Containers created by tests carry the label ``tailops.test=<session id>`` and a
name starting ``tailops-test-``; the session removes what it created, and at its start
what sessions that were killed left behind (tests/testbed/sessions.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tailops.config import Settings, load_config
from tests.helpers import BASE_IMAGE, SESSION_ID, TEST_LABEL
from tests.testbed import sessions


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient TAILOPS_* settings or system config leak into a test."""
    for key in list(os.environ):
        if key.startswith("TAILOPS_"):
            monkeypatch.delenv(key)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a private data dir under tmp_path plus nested overrides."""

    def make(**overrides: Any) -> Settings:
        server = {"data_dir": tmp_path / "data", **overrides.pop("server", {})}
        empty = tmp_path / "empty.yaml"
        empty.write_text("{}\n")
        return load_config(empty, server=server, **overrides)

    return make


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker.DockerClient for the local engine; fails (never skips) if there is none."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"Docker engine not reachable ({exc}). Run `make test` (it installs and starts dockerd) "
            "or start dockerd yourself.",
            pytrace=False,
        )
    sessions.register()
    sessions.sweep_dead_sessions(client)
    yield client
    for container in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={SESSION_ID}"}):
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True, v=True)
    sessions.unregister()
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The local Debian target image (built by scripts/testbed/build-images.sh)."""
    import docker.errors

    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{BASE_IMAGE} missing: run scripts/testbed/build-images.sh (make test does).", pytrace=False)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def test_labels() -> dict[str, str]:
    """Labels to put on every container a test creates (session cleanup finds them)."""
    return {TEST_LABEL: SESSION_ID}
