"""The playbook catalog: manifests, content pins, lock/verify drift, parameter rules.

Most tests work on a copy of the repository's real catalog (playbooks/ + roles/)
in tmp_path, so editing files and re-locking never touches the repo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import semver
import yaml

from tailops.auth.scopes import SCOPES
from tailops.changes.catalog import LOCK_FILE, Catalog, catalog_dirs
from tailops.changes.catalog.pinning import DriftKind, collection_versions, compute_hash
from tailops.changes.catalog.scanning import default_catalog_dirs
from tailops.config import Settings
from tailops.errors import CatalogError, InvalidInput, NotFound
from tests.helpers import REPO_ROOT

EXPECTED = {
    # name: (risk, scope, target)
    "package_update": ("high", "system:admin", "targets"),
    "package_install": ("high", "system:admin", "targets"),
    "package_remove": ("critical", "system:admin", "targets"),
    "container_state": ("low", "container:write", "localhost"),
    "container_update": ("high", "container:admin", "localhost"),
    "image_pull": ("low", "container:write", "localhost"),
    "service_state": ("high", "system:admin", "targets"),
    "service_state_critical": ("critical", "system:admin", "targets"),
}
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the repo catalog, locked."""
    playbooks = tmp_path / "playbooks"
    roles = tmp_path / "roles"
    shutil.copytree(REPO_ROOT / "playbooks", playbooks)
    shutil.copytree(REPO_ROOT / "roles", roles, ignore=shutil.ignore_patterns("molecule", "__pycache__"))
    Catalog.load(playbooks, roles).lock(force=True)
    return playbooks, roles


def fake_collections(root: Path, docker_version: str = "5.4.0") -> Path:
    manifest = root / "community" / "docker" / "MANIFEST.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps({"collection_info": {"namespace": "community", "name": "docker", "version": docker_version}})
    )
    return root


def edit_yaml(path: Path, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


# --------------------------------------------------------------------------- the shipped catalog


def test_repo_catalog_loads_every_playbook_with_its_risk_scope_and_target() -> None:
    catalog = Catalog.load()
    assert catalog.names() == sorted(EXPECTED)
    for entry in catalog.entries():
        m = entry.manifest
        assert (m.risk, m.scope, m.target) == EXPECTED[m.name], m.name
        assert m.scope in SCOPES
        assert semver.Version.parse(m.version) >= semver.Version.parse("1.0.0")
        assert m.risk_reason and m.check_mode_notes, f"{m.name}: risk and check mode must be explained"
        assert entry.playbook == REPO_ROOT / "playbooks" / m.name / "playbook.yml"
        assert [d.name for d in entry.role_dirs] == sorted(m.roles)


def test_repo_catalog_matches_its_lock_file() -> None:
    catalog = Catalog.load()
    assert catalog.verify() == []
    lock = json.loads((REPO_ROOT / "playbooks" / LOCK_FILE).read_text())
    assert set(lock) == set(EXPECTED)
    for name, pin in lock.items():
        assert set(pin) == {"version", "sha256", "collections"}
        assert catalog.get(name).sha256 == pin["sha256"]


def test_package_roles_pull_in_package_common_transitively() -> None:
    catalog = Catalog.load()
    for name in ("package_update", "package_install", "package_remove"):
        assert [d.name for d in catalog.get(name).role_dirs] == ["package_common", name]
    assert catalog.get("container_update").manifest.not_simulated == [
        "Wait until the new container is healthy",
        "Refuse an unhealthy new container",
    ]


def test_not_simulated_names_are_real_task_names() -> None:
    catalog = Catalog.load()
    for entry in catalog.entries():
        text = "\n".join(p.read_text() for d in entry.role_dirs for p in (d / "tasks").rglob("*.yml"))
        for task in entry.manifest.not_simulated:
            assert f"- name: {task}\n" in text, f"{entry.name}: no task named {task!r}"


def test_default_dirs_and_settings_override(tmp_path: Path, make_settings: Any) -> None:
    assert default_catalog_dirs() == (REPO_ROOT / "playbooks", REPO_ROOT / "roles")
    settings: Settings = make_settings(changes={"playbooks_dir": str(tmp_path / "p"), "roles_dir": str(tmp_path / "r")})
    assert catalog_dirs(settings) == (tmp_path / "p", tmp_path / "r")
    assert catalog_dirs(make_settings()) == default_catalog_dirs()


def test_get_unknown_name_suggests_close_names() -> None:
    with pytest.raises(NotFound, match=r"no playbook named 'package_instal'.*Did you mean: package_install"):
        Catalog.load().get("package_instal")


def test_catalog_module_never_imports_ansible_or_ansible_runner() -> None:
    code = (
        "import sys, tailops.changes.catalog as c\n"
        "c.Catalog.load().verify()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ansible', 'ansible_runner'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr


def test_collection_versions_read_the_installed_manifests(tmp_path: Path) -> None:
    versions = collection_versions(["community.docker", "ansible.builtin"])
    assert versions["community.docker"].count(".") == 2
    assert versions["ansible.builtin"].startswith("2.")
    assert collection_versions(["community.docker"], fake_collections(tmp_path, "9.9.9")) == {
        "community.docker": "9.9.9"
    }
    with pytest.raises(CatalogError, match=r"collection community.nosuch is not installed"):
        collection_versions(["community.nosuch"])


# --------------------------------------------------------------------------- manifest errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "field `colour`: unknown field"),
        ({"version": "1.0"}, "field `version`: .*'1.0' is not a semantic version"),
        ({"risk": "medium"}, "field `risk`: Input should be 'low', 'high' or 'critical'"),
        ({"scope": "root"}, "field `scope`"),
        ({"name": "other"}, "manifest name 'other' must equal the folder name"),
        ({"parameters": {"type": "objekt"}}, r"field `parameters`: .*not a valid JSON Schema .*at type"),
        ({"parameters": {"type": "object"}}, 'must set "additionalProperties": false'),
        (
            {"parameters": {"type": "object", "additionalProperties": False, "properties": {"ansible_host": {}}}},
            "parameter name 'ansible_host' must match",
        ),
        (
            {
                "parameters": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string", "format": "hostname-ish"}},
                }
            },
            "unknown format 'hostname-ish'",
        ),
        ({"roles": ["container_state", "image_pull"]}, r"manifest roles \['container_state', 'image_pull'\] must list"),
        (
            {"collections": ["ansible.builtin"]},
            r"must list exactly the collections its tasks use: \['ansible.builtin', 'community.docker'\]",
        ),
        ({"target": "all"}, "play hosts 'localhost' must equal the manifest target 'all'"),
        ({"serial": 2}, "each play must set serial"),
        ({"serial": "150%"}, "field `serial`"),
        ({"max_fail_percentage": 101}, "field `max_fail_percentage`"),
        ({"description": None}, "field `description`: Field required"),
    ],
)
def test_manifest_errors_name_the_field_and_rule(tree: tuple[Path, Path], change: dict[str, Any], message: str) -> None:
    playbooks, roles = tree
    edit_yaml(playbooks / "container_state" / "manifest.yml", **change)
    with pytest.raises(CatalogError, match=message) as info:
        Catalog.load(playbooks, roles)
    assert "playbook container_state" in info.value.message


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


# --------------------------------------------------------------------------- hashing


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


# --------------------------------------------------------------------------- lock and verify


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


def test_extravars_carry_manifest_play_keywords() -> None:
    entry = Catalog.load().get("service_state")
    assert entry.extravars({"name": "x", "state": "started"}) == {
        "name": "x",
        "state": "started",
        "tailops_serial": 1,
        "tailops_max_fail_percentage": 0,
    }
    assert entry.extravars({}, serial="50%", max_fail_percentage=20)["tailops_serial"] == "50%"


# --------------------------------------------------------------------------- parameters

GOOD: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("package_update", {}, {"security_only": False, "packages": []}),
    ("package_update", {"security_only": True, "packages": ["tbdemo", "libc6"]}, {}),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "version": "1:1.0-1+deb12u1~bpo"}]},
        {"allow_downgrade": False},
    ),
    (
        "package_install",
        {"packages": [{"name": "g++"}, {"name": "tbtool", "version": "2.0"}], "allow_downgrade": True},
        {},
    ),
    ("package_remove", {"packages": [{"name": "tbdemo"}]}, {"purge": False}),
    ("package_remove", {"packages": [{"name": "tbdemo"}], "purge": True}, {}),
    ("container_state", {"name": "web_1.prod-a", "state": "restarted"}, {}),
    (
        "container_update",
        {"name": "web", "image": "127.0.0.1:5000/tailops/webapp:2"},
        {"health_timeout": 120, "refresh": False},
    ),
    (
        "container_update",
        {"name": "web", "image": f"registry.example.com/team/app@{DIGEST}", "health_timeout": 5},
        {"refresh": False},
    ),
    ("container_update", {"name": "web", "image": f"app:1.2@{DIGEST}"}, {"health_timeout": 120, "refresh": False}),
    ("image_pull", {"image": "127.0.0.1:5000/tailops/webapp", "tag": "1"}, {"refresh": False}),
    ("image_pull", {"image": "library/debian", "digest": DIGEST, "refresh": True}, {}),
    ("service_state", {"name": "nginx.service", "state": "stopped"}, {}),
    ("service_state", {"name": "postgresql@15-main", "state": "started"}, {}),
    ("service_state_critical", {"name": "getty@tty1", "state": "restarted"}, {}),
]


@pytest.mark.parametrize(("name", "params", "defaults"), GOOD)
def test_good_params_pass_with_defaults_filled(name: str, params: dict[str, Any], defaults: dict[str, Any]) -> None:
    out = Catalog.load().validate_params(name, params)
    assert out == {**params, **defaults}
    assert out is not params


BAD: list[tuple[str, dict[str, Any] | Any, str]] = [
    ("package_update", {"security_only": "yes"}, r"`security_only`: 'yes' is not of type 'boolean'"),
    (
        "package_update",
        {"packages": ["Bad_Name"]},
        r"`packages\[0\]`: 'Bad_Name' is not a valid package name \(rule: \^\[a-z0-9\]",
    ),
    ("package_update", {"packages": ["-rf"]}, r"`packages\[0\]`: '-rf' is not a valid package name"),
    ("package_update", {"reboot": True}, r"unknown parameter\(s\) reboot \(allowed: packages, security_only\)"),
    ("package_install", {}, r"`\(parameters\)`: 'packages' is a required property"),
    ("package_install", {"packages": []}, r"`packages`: \[\] should be non-empty"),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "version": "latest"}]},
        r"`packages\[0\].version`: 'latest' is not a valid Debian version string",
    ),
    ("package_install", {"packages": [{"name": "tbdemo", "version": "1.0-"}]}, r"not a valid Debian version string"),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "version": "1.0 ; rm -rf /"}]},
        r"not a valid Debian version string",
    ),
    (
        "package_install",
        {"packages": [{"name": "tbdemo"}, {"name": "tbdemo", "version": "1.0-1"}]},
        r"`packages`: lists name 'tbdemo' more than once",
    ),
    (
        "package_install",
        {"packages": [{"name": "tbdemo", "arch": "all"}]},
        r"`packages\[0\]`: unknown parameter\(s\) arch",
    ),
    ("package_install", {"packages": "tbdemo"}, r"`packages`: 'tbdemo' is not of type 'array'"),
    ("package_remove", {"packages": [{"name": "TBDEMO"}]}, r"'TBDEMO' is not a valid package name"),
    ("package_remove", {"packages": [{"name": "tbdemo", "version": "1.0-1"}]}, r"unknown parameter\(s\) version"),
    (
        "container_state",
        {"name": "web", "state": "paused"},
        r"`state`: 'paused' is not one of \['started', 'stopped', 'restarted'\]",
    ),
    (
        "container_state",
        {"name": "-web", "state": "started"},
        r"`name`: '-web' is not a valid container name \(rule: \^\[a-zA-Z0-9\]",
    ),
    ("container_state", {"name": "web/../x", "state": "started"}, r"not a valid container name"),
    (
        "container_update",
        {"name": "web", "image": "tailops/webapp"},
        r"`image`: 'tailops/webapp' is not a valid image reference \(rule: .*a tag or a digest is required",
    ),
    ("container_update", {"name": "web", "image": "Tailops/WebApp:1"}, r"not a valid image reference"),
    ("container_update", {"name": "web", "image": "app@sha256:123"}, r"not a valid image reference"),
    (
        "container_update",
        {"name": "web", "image": "app:1", "health_timeout": 1},
        r"`health_timeout`: 1 is less than the minimum of 5",
    ),
    ("image_pull", {"image": "app"}, r"`\(parameters\)`: give exactly one of tag and digest"),
    ("image_pull", {"image": "app", "tag": "1", "digest": DIGEST}, r"give exactly one of tag and digest"),
    ("image_pull", {"image": "app:1", "tag": "1"}, r"`image`: 'app:1' is not a valid image repository"),
    ("image_pull", {"image": "app", "tag": "-1"}, r"`tag`: '-1' is not a valid image tag"),
    ("image_pull", {"image": "app", "digest": "md5:abc"}, r"`digest`: 'md5:abc' is not a valid image digest"),
    (
        "service_state",
        {"name": "nginx; reboot", "state": "restarted"},
        r"`name`: 'nginx; reboot' is not a valid systemd service name",
    ),
    (
        "service_state_critical",
        {"name": "nginx", "state": "restarted"},
        r"`name`: 'nginx' is not a valid protected systemd service name",
    ),
    ("service_state", {"name": "nginx"}, r"'state' is a required property"),
    ("service_state", ["nginx"], r"parameters for service_state must be an object"),
]


@pytest.mark.parametrize(("name", "params", "message"), BAD)
def test_bad_params_are_refused_naming_parameter_and_rule(name: str, params: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        Catalog.load().validate_params(name, params)
    assert not isinstance(info.value, NotFound)


def test_every_playbook_has_good_and_bad_parameter_cases() -> None:
    assert {n for n, _p, _d in GOOD} == set(EXPECTED)
    assert {n for n, _p, _m in BAD} == set(EXPECTED)


def test_template_markers_and_control_characters_are_refused_everywhere(tree: tuple[Path, Path]) -> None:
    playbooks, roles = tree
    # A free-form string parameter (no format) still may not smuggle a template in.
    manifest = playbooks / "container_state" / "manifest.yml"
    data = yaml.safe_load(manifest.read_text())
    data["parameters"]["properties"]["comment"] = {"type": "string"}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    catalog = Catalog.load(playbooks, roles)
    base = {"name": "web", "state": "started"}
    with pytest.raises(InvalidInput, match=r"parameter `comment`: template markers"):
        catalog.validate_params("container_state", {**base, "comment": "{{ lookup('pipe', 'id') }}"})
    with pytest.raises(InvalidInput, match=r"parameter `comment`: control characters"):
        catalog.validate_params("container_state", {**base, "comment": "a\nb"})
    assert catalog.validate_params("container_state", {**base, "comment": "fine"})["comment"] == "fine"


def test_validate_params_of_unknown_playbook_is_not_found() -> None:
    with pytest.raises(NotFound, match="Did you mean: image_pull"):
        Catalog.load().validate_params("image_pul", {})


# --------------------------------------------------------------------------- container_update's spec filter


def _filter_module() -> Any:
    path = REPO_ROOT / "roles" / "container_update" / "filter_plugins" / "tailops_container.py"
    spec = importlib.util.spec_from_file_location("tailops_container_filter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INSPECT: dict[str, Any] = {
    "Id": "0123456789abcdef" * 4,
    "Name": "/web",
    "Image": "sha256:" + "11" * 32,
    "Config": {
        "Env": ["PATH=/usr/bin", "APP_VERSION=1", "FOO=bar"],
        "Labels": {"org.example.app": "webapp", "team": "ops"},
        "Cmd": ["python3", "-m", "http.server"],
        "Entrypoint": None,
        "User": "",
        "WorkingDir": "",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000},
        "Tty": False,
        "OpenStdin": False,
    },
    "HostConfig": {
        "Binds": ["named:/named"],
        "Mounts": [],
        "PortBindings": {
            "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
            "53/udp": [{"HostIp": "", "HostPort": ""}],
        },
        "NetworkMode": "appnet",
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "IpcMode": "private",
    },
    "Mounts": [
        {"Type": "volume", "Name": "named", "Destination": "/named", "RW": True},
        {"Type": "volume", "Name": "f00d" * 16, "Destination": "/data", "RW": True},
    ],
    "NetworkSettings": {
        "Networks": {"appnet": {"Aliases": ["web", "0123456789ab", "api"], "IPAMConfig": {"IPv4Address": "172.30.0.9"}}}
    },
    "State": {"Running": True, "Health": {"Status": "healthy"}},
}
IMAGE = {
    "Config": {
        "Env": ["PATH=/usr/bin", "APP_VERSION=1"],
        "Labels": {"org.example.app": "webapp"},
        "Cmd": ["python3", "-m", "http.server"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000},
    }
}


def test_container_spec_keeps_the_containers_own_configuration() -> None:
    spec = _filter_module().container_spec(INSPECT, IMAGE, "reg:5000/app:2")
    assert spec["image"] == "reg:5000/app:2"
    assert spec["env"] == {"FOO": "bar"}  # image defaults are left to the new image
    assert spec["labels"] == {"team": "ops"}
    assert spec["command"] is None and spec["healthcheck"] is None  # same as the image: not pinned
    assert spec["published_ports"] == ["53/udp", "127.0.0.1:18080:8000/tcp"]
    assert spec["volumes"] == ["named:/named", f"{'f00d' * 16}:/data:rw"]  # anonymous volume re-attached
    assert spec["network_mode"] == "appnet"
    assert spec["networks"] == [{"name": "appnet", "aliases": ["api"], "ipv4_address": "172.30.0.9"}]
    assert (spec["restart_policy"], spec["restart_retries"]) == ("on-failure", 3)
    assert spec["unsupported"] == []


def test_container_spec_pins_overrides_and_lists_unsupported_options() -> None:
    inspect = json.loads(json.dumps(INSPECT))
    inspect["Config"]["Cmd"] = ["sleep", "1"]
    inspect["Config"]["Healthcheck"] = {"Test": ["CMD", "false"], "Interval": 1_500_000_000, "Retries": 2}
    inspect["HostConfig"]["Memory"] = 1 << 28
    inspect["HostConfig"]["Devices"] = [{"PathOnHost": "/dev/fuse"}]
    spec = _filter_module().container_spec(inspect, IMAGE, "app:2")
    assert spec["command"] == ["sleep", "1"]
    assert spec["healthcheck"] == {"test": ["CMD", "false"], "interval": "1500ms", "retries": 2}
    assert spec["unsupported"] == ["Devices", "Memory"]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"Running": True, "Health": {"Status": "starting"}}, "starting"),
        ({"Running": True, "Health": {"Status": "unhealthy"}}, "unhealthy"),
        ({"Running": True}, "running"),
        ({"Running": True, "Restarting": True}, "exited"),
        ({"Running": False, "Health": {"Status": "healthy"}}, "exited"),
    ],
)
def test_container_health(state: dict[str, Any], expected: str) -> None:
    assert _filter_module().health_of({"State": state}) == expected
    assert _filter_module().health_of(None) == "missing"


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
