"""Fixtures of the multi-host test bed (see tests/testbed/ and TESTBED.md).

- ``apt_repo`` (session): the offline apt repositories (main + security), built once
  per machine (content-keyed cache).
- ``container_hosts`` (function): a factory ``make_hosts(n, *, ssh=0, apt_repo=None,
  preinstall=None) -> HostSet``; every container it starts is removed at teardown.
- ``local_registry`` (session): a real registry on 127.0.0.1 serving
  ``tailops/webapp`` tags 1, 2 and bad.
- ``localhost_inventory_path`` (function): an inventory with only ``localhost``
  (local connection, this venv's python) for playbooks that act on the local engine.
- ``runner_artifacts`` (function): a fresh 0700 artifacts root for runner runs.

Everything needs the real Docker engine through ``docker_client``, which fails
(never skips) when the engine is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.aptrepo import AptRepo, build_apt_repo
from tests.testbed.hosts import HostFactory, MakeHosts, localhost_inventory
from tests.testbed.registry import LocalRegistry, start_local_registry


@pytest.fixture(scope="session")
def apt_repo() -> AptRepo:
    return build_apt_repo()


@pytest.fixture
def container_hosts(
    docker_client: Any, base_image: str, test_labels: dict[str, str], tmp_path: Path
) -> Iterator[MakeHosts]:
    """``make_hosts(n, *, ssh=0, apt_repo=None, preinstall=None) -> HostSet``."""
    factory = HostFactory(docker_client, test_labels, tmp_path / "testbed")
    try:
        yield factory.make
    finally:
        factory.cleanup()


@pytest.fixture(scope="session")
def local_registry(
    docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalRegistry]:
    with start_local_registry(docker_client, tmp_path_factory.mktemp("registry")) as registry:
        yield registry


@pytest.fixture
def localhost_inventory_path(tmp_path: Path) -> Path:
    return localhost_inventory(tmp_path / "inventory")


@pytest.fixture
def runner_artifacts(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "runs"
    root.mkdir(parents=True, mode=0o700)
    return root
