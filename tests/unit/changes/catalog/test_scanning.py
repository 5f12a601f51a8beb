"""Scanning: where the catalog lives, and each playbook held to what it and its roles really use."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tailops.changes.catalog import Catalog, scanning
from tailops.changes.catalog.scanning import catalog_dirs, default_catalog_dirs
from tailops.config import Settings
from tailops.errors import CatalogError
from tests.helpers import REPO_ROOT
from tests.unit.changes.catalog.helpers import edit_yaml


def test_default_dirs_and_settings_override(tmp_path: Path, make_settings: Any) -> None:
    assert default_catalog_dirs() == (REPO_ROOT / "playbooks", REPO_ROOT / "roles")
    settings: Settings = make_settings(changes={"playbooks_dir": str(tmp_path / "p"), "roles_dir": str(tmp_path / "r")})
    assert catalog_dirs(settings) == (tmp_path / "p", tmp_path / "r")
    assert catalog_dirs(make_settings()) == default_catalog_dirs()


def test_broken_yaml_and_missing_role_are_catalog_errors(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    (playbooks / "image_pull" / "manifest.yml").write_text("name: image_pull\n  version: [\n")
    with pytest.raises(CatalogError, match=r"playbook image_pull: manifest.yml is not valid YAML at line"):
        Catalog.load(playbooks, roles)
    shutil.rmtree(playbooks / "image_pull")
    shutil.rmtree(roles / "package_common")
    with pytest.raises(CatalogError, match="uses role 'package_common', which is not in"):
        Catalog.load(playbooks, roles)


def test_templated_role_names_and_symlinks_are_refused(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    book = playbooks / "image_pull" / "playbook.yml"
    original = book.read_text()
    book.write_text(original.replace("- role: image_pull", '- role: "{{ which }}"'))
    with pytest.raises(CatalogError, match="must be a plain role name"):
        Catalog.load(playbooks, roles)
    book.write_text(original)
    os.symlink("/etc/hostname", roles / "image_pull" / "tasks" / "extra.yml")
    with pytest.raises(CatalogError, match=r"image_pull/tasks/extra.yml is a symlink"):
        _ = Catalog.load(playbooks, roles).get("image_pull").sha256


def test_tasks_that_run_for_real_in_check_mode_must_be_declared(tree: tuple[Path, Path]) -> None:
    """check_mode_side_effects names exactly the tasks with check_mode: false (issue 13):
    a new one in a role, a stale entry, or a templated check_mode are refused at load."""
    playbooks, roles = tree
    Catalog.load(playbooks, roles)  # the repo's declarations are complete
    extra = roles / "image_pull" / "tasks" / "main.yml"
    text = extra.read_text()
    extra.write_text(
        text + "\n- name: Peek at the engine\n  ansible.builtin.command: docker info\n  check_mode: false\n"
        "  changed_when: false\n"
    )
    with pytest.raises(CatalogError, match=r"image_pull: manifest check_mode_side_effects \[\] must name exactly"):
        Catalog.load(playbooks, roles)
    manifest = playbooks / "image_pull" / "manifest.yml"
    edit_yaml(manifest, check_mode_side_effects={"Peek at the engine": "reads engine info only"})
    assert Catalog.load(playbooks, roles).get("image_pull").manifest.check_mode_side_effects
    extra.write_text(
        text + '\n- name: Peek at the engine\n  ansible.builtin.command: docker info\n  check_mode: "{{ flag }}"\n'
    )
    with pytest.raises(CatalogError, match="only a literal true or false is allowed"):
        Catalog.load(playbooks, roles)
    extra.write_text(text)
    with pytest.raises(CatalogError, match=r"\['Peek at the engine'\] must name exactly the tasks"):
        Catalog.load(playbooks, roles)


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
