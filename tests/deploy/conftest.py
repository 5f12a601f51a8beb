"""Fixtures of the deployment tests: the built wheel, a venv outside the repo, the test bed.

``container_hosts`` and ``apt_repo`` are the integration test bed's fixtures (re-exported).
Everything that needs Docker fails, never skips, without the engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.installs import build_wheel, install_wheel_venv
from tests.integration.conftest import apt_repo, container_hosts

__all__ = ["apt_repo", "container_hosts"]


@pytest.fixture(scope="session")
def tailops_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once per session by ``pip wheel`` of a copy of the source."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def wheel_venv(tailops_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the repository with tailops installed from the wheel."""
    return install_wheel_venv(tailops_wheel, tmp_path_factory.mktemp("installed") / "venv")
