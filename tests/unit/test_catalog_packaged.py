"""Where the catalog comes from (packaged copy, checkout, config) and the start-up check."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tailops.changes.catalog import scanning
from tailops.changes.catalog.scanning import catalog_dirs, default_catalog_dirs
from tailops.changes.startup_check import check_catalog_at_start
from tailops.config import Settings
from tests.helpers import REPO_ROOT


def test_a_checkout_uses_its_own_folders() -> None:
    # No tailops/_catalog in a source tree: setup.py writes it into the build only.
    assert not (REPO_ROOT / "tailops" / "_catalog").exists()
    assert default_catalog_dirs() == (REPO_ROOT / "playbooks", REPO_ROOT / "roles")


def test_an_installed_package_uses_its_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = tmp_path / "site-packages" / "tailops" / "_catalog"
    (packaged / "playbooks").mkdir(parents=True)
    (packaged / "roles").mkdir()
    monkeypatch.setattr(scanning, "packaged_catalog_dir", lambda: packaged)
    assert default_catalog_dirs() == (packaged / "playbooks", packaged / "roles")


def test_configured_dirs_override_the_packaged_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    packaged = tmp_path / "_catalog"
    (packaged / "playbooks").mkdir(parents=True)
    monkeypatch.setattr(scanning, "packaged_catalog_dir", lambda: packaged)
    settings = make_settings(changes={"playbooks_dir": str(tmp_path / "p"), "roles_dir": str(tmp_path / "r")})
    assert catalog_dirs(settings) == (tmp_path / "p", tmp_path / "r")
    assert catalog_dirs(make_settings()) == (packaged / "playbooks", packaged / "roles")


def copy_catalog(dest: Path) -> tuple[Path, Path]:
    shutil.copytree(REPO_ROOT / "playbooks", dest / "playbooks")
    shutil.copytree(REPO_ROOT / "roles", dest / "roles", ignore=shutil.ignore_patterns("molecule", "_molecule"))
    return dest / "playbooks", dest / "roles"


def test_start_up_check_passes_on_the_vetted_catalog(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tailops.catalog"):
        status = check_catalog_at_start(make_settings())
    assert status.ok and status.playbooks >= 7 and status.problems == ()
    assert [r.getMessage() for r in caplog.records] == ["catalog verified against its lock"]


def test_start_up_check_reports_each_drift_without_raising(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    playbooks, roles = copy_catalog(tmp_path / "catalog")
    tasks = roles / "package_common" / "tasks" / "main.yml"
    tasks.write_text(tasks.read_text() + "# edited on the server\n")  # a role used by three playbooks
    settings = make_settings(changes={"playbooks_dir": str(playbooks), "roles_dir": str(roles)})
    with caplog.at_level(logging.INFO, logger="tailops.catalog"):
        status = check_catalog_at_start(settings)
    assert not status.ok
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].startswith("catalog drift: 3 playbook(s) differ from ")
    assert errors[0].endswith("plans of them are refused: package_install, package_remove, package_update")
    assert len(errors) == 4 and all("content changed" in e for e in errors[1:])


def test_start_up_check_reports_an_unloadable_catalog(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(changes={"playbooks_dir": str(tmp_path / "missing")})
    with caplog.at_level(logging.INFO, logger="tailops.catalog"):
        status = check_catalog_at_start(settings)
    assert not status.ok and status.playbooks == 0
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "catalog cannot be loaded; every plan is refused" in record.getMessage()
    assert "does not exist" in record.getMessage()
