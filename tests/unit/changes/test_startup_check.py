"""The catalog check at start-up: a vetted catalog passes, each drift is reported, nothing raises."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tailops.changes.startup_check import check_catalog_at_start
from tailops.config import Settings
from tests.helpers import REPO_ROOT


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
