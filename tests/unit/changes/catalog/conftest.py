"""The catalog tests' fixture: a private, locked copy of the repository's catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tailops.changes.catalog import Catalog
from tests.helpers import REPO_ROOT


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the repo catalog, locked."""
    playbooks = tmp_path / "playbooks"
    roles = tmp_path / "roles"
    shutil.copytree(REPO_ROOT / "playbooks", playbooks)
    shutil.copytree(REPO_ROOT / "roles", roles, ignore=shutil.ignore_patterns("molecule", "__pycache__"))
    Catalog.load(playbooks, roles).lock(force=True)
    return playbooks, roles
