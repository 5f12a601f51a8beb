"""``tailops playbooks``: list, show, verify, lock, and their bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tailops.changes.catalog import LOCK_FILE
from tailops.cli.main import app
from tests.helpers import REPO_ROOT

runner = CliRunner()


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A config whose catalog is a private copy of the repo's (so lock can write)."""
    shutil.copytree(REPO_ROOT / "playbooks", tmp_path / "playbooks")
    shutil.copytree(REPO_ROOT / "roles", tmp_path / "roles", ignore=shutil.ignore_patterns("molecule", "__pycache__"))
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"data_dir": str(tmp_path / "data")},
                "changes": {"playbooks_dir": str(tmp_path / "playbooks"), "roles_dir": str(tmp_path / "roles")},
            }
        )
    )
    return path


def run(cfg: Path | None, *args: str) -> Result:
    extra = ["--config", str(cfg)] if cfg is not None else []
    return runner.invoke(app, ["playbooks", *args, *extra])


def test_list_shows_every_playbook_with_version_risk_scope(cfg: Path) -> None:
    result = run(cfg, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "RISK", "SCOPE", "DESCRIPTION"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:] if line and not line.startswith(" ")}
    assert rows == {
        "container_state": ["1.0.0", "low", "container:write"],
        "container_update": ["1.0.0", "high", "container:admin"],
        "image_pull": ["1.0.0", "low", "container:write"],
        "package_install": ["2.0.0", "high", "system:admin"],
        "package_remove": ["2.0.0", "critical", "system:admin"],
        "package_update": ["2.0.0", "high", "system:admin"],
        "service_state": ["2.0.0", "high", "system:admin"],
        "service_state_critical": ["1.0.0", "critical", "system:admin"],
    }


def test_show_prints_manifest_schema_hash_and_lock_status(cfg: Path) -> None:
    result = run(cfg, "show", "container_update")
    assert result.exit_code == 0, result.output
    out = result.stdout
    lock = json.loads((cfg.parent / "playbooks" / LOCK_FILE).read_text())
    assert f"sha256:      {lock['container_update']['sha256']}" in out
    assert "lock status: OK" in out
    assert "scope:       container:admin" in out
    assert "not simulated in check mode: Wait until the new container is healthy, Refuse an unhealthy" in out
    schema = json.loads(out[out.index("parameters (JSON Schema):") + len("parameters (JSON Schema):") :])
    assert schema["required"] == ["name", "image"]


def test_show_lists_what_runs_for_real_during_a_plan(cfg: Path) -> None:
    out = run(cfg, "show", "package_update").stdout
    assert "runs for real during a plan: Refresh the package index (apt): rewrites the apt package index" in out
    assert "/var/lib/apt/lists" in out
    assert "runs for real during a plan" not in run(cfg, "show", "container_update").stdout


def test_show_unknown_name_exits_2_with_close_matches(cfg: Path) -> None:
    result = run(cfg, "show", "container_stat")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no playbook named 'container_stat'")
    assert "Did you mean: container_state" in result.stderr
    assert result.stdout == ""


def test_verify_ok_on_the_repo_catalog() -> None:
    result = run(None, "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "catalog OK (8 playbooks)"


def test_verify_reports_each_drift_and_exits_1(cfg: Path) -> None:
    roles = cfg.parent / "roles"
    with (roles / "image_pull" / "tasks" / "main.yml").open("a") as fh:
        fh.write("# edited\n")
    shutil.rmtree(cfg.parent / "playbooks" / "service_state")
    result = run(cfg, "verify")
    assert result.exit_code == 1
    err = result.stderr.splitlines()
    assert err[0].startswith("drift: image_pull 1.0.0: content changed but the version is still 1.0.0")
    assert "an edit requires a version bump" in err[0]
    assert err[1].startswith("drift: service_state is pinned in catalog.lock.json but has no playbook folder")
    assert err[2] == "catalog verify failed: 2 drift(s) against catalog.lock.json."
    assert result.stdout == ""


def test_lock_refuses_unbumped_edit_then_force_and_bump_work(cfg: Path) -> None:
    playbooks = cfg.parent / "playbooks"
    lock_path = playbooks / LOCK_FILE
    before = lock_path.read_text()
    with (cfg.parent / "roles" / "container_state" / "tasks" / "main.yml").open("a") as fh:
        fh.write("# edited\n")
    refused = run(cfg, "lock")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: lock refused: container_state 1.0.0: content changed")
    assert "Bump the version in the manifest" in refused.stderr
    assert lock_path.read_text() == before

    manifest = playbooks / "container_state" / "manifest.yml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    bumped = run(cfg, "lock")
    assert bumped.exit_code == 0, bumped.output
    assert "re-pinned container_state 1.0.0 -> 1.0.1" in bumped.stdout
    assert json.loads(lock_path.read_text())["container_state"]["version"] == "1.0.1"
    assert run(cfg, "verify").exit_code == 0

    with (cfg.parent / "roles" / "container_state" / "tasks" / "main.yml").open("a") as fh:
        fh.write("# edited again\n")
    forced = run(cfg, "lock", "--force")
    assert forced.exit_code == 0, forced.output
    assert "re-pinned container_state 1.0.1 -> 1.0.1" in forced.stdout
    again = run(cfg, "lock")
    assert again.exit_code == 0
    assert again.stdout.strip().endswith("(no changes)")


def test_bad_manifest_is_one_error_line_exit_1(cfg: Path) -> None:
    manifest = cfg.parent / "playbooks" / "image_pull" / "manifest.yml"
    manifest.write_text(manifest.read_text().replace("risk: low", "risk: medium"))
    for command in (["list"], ["verify"], ["show", "image_pull"], ["lock"]):
        result = run(cfg, *command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith("error: playbook image_pull: manifest.yml field `risk`:")
        assert len(result.stderr.strip().splitlines()) == 1


def test_missing_catalog_dir_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"changes": {"playbooks_dir": str(tmp_path / "nope")}}))
    result = run(path, "list")
    assert result.exit_code == 1
    assert "playbooks directory" in result.stderr and "does not exist" in result.stderr
