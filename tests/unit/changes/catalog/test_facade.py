"""The Catalog facade on the shipped catalog: every playbook loads, lookups name close matches,
and loading never imports ansible."""

from __future__ import annotations

import subprocess
import sys

import pytest
import semver

from tailops.auth.scopes import SCOPES
from tailops.changes.catalog import Catalog
from tailops.errors import NotFound
from tests.helpers import REPO_ROOT
from tests.unit.changes.catalog.helpers import EXPECTED


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
