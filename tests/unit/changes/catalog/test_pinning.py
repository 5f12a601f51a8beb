"""Pinning: content hashes, collection versions, the lock file, and every kind of drift.

Most tests work on a copy of the repository's real catalog (the ``tree`` fixture) in
tmp_path, so editing files and re-locking never touches the repo.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tailops.changes.catalog import LOCK_FILE, Catalog
from tailops.changes.catalog.pinning import DriftKind, collection_versions, compute_hash
from tailops.errors import CatalogError
from tests.helpers import REPO_ROOT
from tests.unit.changes.catalog.helpers import EXPECTED, edit_yaml, fake_collections


def test_repo_catalog_matches_its_lock_file() -> None:
    catalog = Catalog.load()
    assert catalog.verify() == []
    lock = json.loads((REPO_ROOT / "playbooks" / LOCK_FILE).read_text())
    assert set(lock) == set(EXPECTED)
    for name, pin in lock.items():
        assert set(pin) == {"version", "sha256", "collections"}
        assert catalog.get(name).sha256 == pin["sha256"]


def test_collection_versions_read_the_installed_manifests(tmp_path: Path) -> None:
    versions = collection_versions(["community.docker", "ansible.builtin"])
    assert versions["community.docker"].count(".") == 2
    assert versions["ansible.builtin"].startswith("2.")
    assert collection_versions(["community.docker"], fake_collections(tmp_path, "9.9.9")) == {
        "community.docker": "9.9.9"
    }
    with pytest.raises(CatalogError, match=r"collection community.nosuch is not installed"):
        collection_versions(["community.nosuch"])


def test_hash_is_stable_across_copies_and_mtimes(tree: tuple[Path, Path], tmp_path: Path) -> None:
    playbooks, roles = tree
    first = {e.name: compute_hash(e) for e in Catalog.load(playbooks, roles).entries()}
    assert first == {e.name: e.sha256 for e in Catalog.load().entries()}  # same as the repo's copy
    for path in [*playbooks.rglob("*"), *roles.rglob("*")]:
        os.utime(path, (1_000_000, 1_000_000))
    (roles / "container_update" / "molecule" / "default").mkdir(parents=True)
    (roles / "container_update" / "molecule" / "default" / "converge.yml").write_text("- hosts: all\n")
    (roles / "container_update" / "filter_plugins" / "__pycache__").mkdir(exist_ok=True)
    (roles / "container_update" / "filter_plugins" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "playbooks", moved / "playbooks")
    shutil.copytree(tmp_path / "roles", moved / "roles")
    assert {e.name: e.sha256 for e in Catalog.load(moved / "playbooks", moved / "roles").entries()} == first


def test_editing_a_role_file_changes_exactly_the_playbooks_that_use_it(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    before = {e.name: e.sha256 for e in Catalog.load(playbooks, roles).entries()}
    with (roles / "package_common" / "tasks" / "main.yml").open("a") as fh:
        fh.write("# a comment is a change\n")
    after = {e.name: e.sha256 for e in Catalog.load(playbooks, roles).entries()}
    changed = sorted(n for n in before if before[n] != after[n])
    assert changed == ["package_install", "package_remove", "package_update"]
    # A new file in a role counts too, and so does a file of the playbook folder.
    (roles / "image_pull" / "files").mkdir()
    (roles / "image_pull" / "files" / "note.txt").write_text("x\n")
    (playbooks / "service_state" / "README.md").write_text("x\n")
    again = {e.name: e.sha256 for e in Catalog.load(playbooks, roles).entries()}
    assert again["image_pull"] != after["image_pull"]
    assert again["service_state"] != after["service_state"]
    assert again["container_state"] == before["container_state"]


def test_collection_version_is_part_of_the_hash(tree: tuple[Path, Path], tmp_path: Path) -> None:
    playbooks, roles = tree
    real = Catalog.load(playbooks, roles).get("image_pull")
    fake = Catalog.load(playbooks, roles, collections_root=fake_collections(tmp_path / "colls", "0.0.1"))
    assert fake.get("image_pull").sha256 != real.sha256
    assert fake.get("package_install").sha256 == Catalog.load(playbooks, roles).get("package_install").sha256


def test_content_change_without_version_bump_is_drift_and_lock_refuses(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    with (roles / "container_state" / "tasks" / "main.yml").open("a") as fh:
        fh.write("# edited\n")
    catalog = Catalog.load(playbooks, roles)
    drifts = catalog.verify()
    assert [(d.name, d.kind) for d in drifts] == [("container_state", DriftKind.CONTENT_CHANGED)]
    assert "content changed but the version is still 1.0.0" in drifts[0].message
    assert "an edit requires a version bump" in drifts[0].message
    lock_before = catalog.lock_path.read_text()
    with pytest.raises(CatalogError, match=r"lock refused: container_state 1.0.0: content changed"):
        catalog.lock()
    assert catalog.lock_path.read_text() == lock_before
    with pytest.raises(CatalogError, match="content changed"):
        catalog.require_pinned("container_state")
    assert catalog.lock(force=True) == ["re-pinned container_state 1.0.0 -> 1.0.0"]
    assert Catalog.load(playbooks, roles).verify() == []


def test_version_bump_then_lock(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    with (roles / "image_pull" / "tasks" / "main.yml").open("a") as fh:
        fh.write("# edited\n")
    edit_yaml(playbooks / "image_pull" / "manifest.yml", version="1.1.0")
    catalog = Catalog.load(playbooks, roles)
    drifts = catalog.verify()
    assert [(d.name, d.kind) for d in drifts] == [("image_pull", DriftKind.LOCK_OUTDATED)]
    assert "version is 1.1.0 but the lock pins 1.0.0" in drifts[0].message
    assert catalog.lock() == ["re-pinned image_pull 1.0.0 -> 1.1.0"]
    reloaded = Catalog.load(playbooks, roles)
    assert reloaded.verify() == []
    assert reloaded.get("image_pull").locked is not None
    assert reloaded.locked()["image_pull"].version == "1.1.0"
    assert reloaded.require_pinned("image_pull").version == "1.1.0"


def test_version_going_down_is_refused(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    edit_yaml(playbooks / "image_pull" / "manifest.yml", version="0.9.0")
    with pytest.raises(CatalogError, match=r"version 0.9.0 is lower than the pinned 1.0.0"):
        Catalog.load(playbooks, roles).lock()


def test_new_and_removed_playbooks_are_drift(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    shutil.copytree(playbooks / "image_pull", playbooks / "image_pull_two")
    edit_yaml(playbooks / "image_pull_two" / "manifest.yml", name="image_pull_two")
    shutil.rmtree(playbooks / "service_state")
    catalog = Catalog.load(playbooks, roles)
    kinds = {(d.name, d.kind) for d in catalog.verify()}
    assert kinds == {("image_pull_two", DriftKind.NOT_LOCKED), ("service_state", DriftKind.NOT_IN_CATALOG)}
    messages = " ".join(d.message for d in catalog.verify())
    assert "image_pull_two 1.0.0 is not in catalog.lock.json" in messages
    assert "service_state is pinned in catalog.lock.json but has no playbook folder" in messages
    assert catalog.lock() == ["pinned image_pull_two 1.0.0", "dropped service_state (no playbook folder)"]
    assert Catalog.load(playbooks, roles).verify() == []


def test_collection_version_change_is_its_own_drift(tree: tuple[Path, Path], tmp_path: Path) -> None:
    playbooks, roles = tree
    catalog = Catalog.load(playbooks, roles, collections_root=fake_collections(tmp_path / "colls", "6.0.0"))
    drifts = {d.name: d for d in catalog.verify()}
    assert set(drifts) == {"container_state", "container_update", "image_pull"}
    real_version = collection_versions(["community.docker"])["community.docker"]
    for drift in drifts.values():
        assert drift.kind is DriftKind.COLLECTION_CHANGED
        assert f"collection version changed (community.docker {real_version} -> 6.0.0)" in drift.message
    # A collection upgrade does not need a version bump: review, then re-lock.
    assert len(catalog.lock()) == 3
    relocked = json.loads(catalog.lock_path.read_text())
    assert relocked["image_pull"]["collections"]["community.docker"] == "6.0.0"


def test_missing_collection_is_reported_not_raised(tree: tuple[Path, Path], tmp_path: Path) -> None:
    playbooks, roles = tree
    empty = tmp_path / "nocolls"
    empty.mkdir()
    drifts = Catalog.load(playbooks, roles, collections_root=empty).verify()
    assert {d.kind for d in drifts} == {DriftKind.UNHASHABLE}
    assert "collection community.docker is not installed" in drifts[0].message


def test_malformed_lock_file_is_a_catalog_error(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    (playbooks / LOCK_FILE).write_text("{not json")
    with pytest.raises(CatalogError, match=r"lock file catalog.lock.json is not valid JSON"):
        Catalog.load(playbooks, roles)
    (playbooks / LOCK_FILE).write_text(json.dumps({"image_pull": {"version": "1.0.0", "sha256": "xyz"}}))
    with pytest.raises(CatalogError, match="entry 'image_pull' is malformed"):
        Catalog.load(playbooks, roles)
