"""The built wheel is a working tailops outside the repository (issue 14, "Install").

Built by ``pip wheel`` from a copy of the source, installed into a fresh venv in a temp dir
(tests/deploy/installs.py says how dependencies are provided), run with another ``cwd``:
the packaged catalog verifies against the packaged lock, ``tailops serve`` answers
``/health`` and an MCP client plans a real change on a container host.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.deploy.installs import clean_env
from tests.netfixtures import free_port
from tests.servers import mcp_http_client, serve_process
from tests.testbed.aptrepo import AptRepo
from tests.testbed.hosts import MakeHosts

pytestmark = pytest.mark.docker

INSTALL = "Install packages (apt)"


def run_cli(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "tailops"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(bin_dir=venv / "bin"),
        timeout=120,
    )


def test_the_wheel_ships_the_catalog_without_test_scaffolding(tailops_wheel: Path) -> None:
    names = zipfile.ZipFile(tailops_wheel).namelist()
    catalog = [n for n in names if n.startswith("tailops/_catalog/")]
    assert "tailops/_catalog/playbooks/catalog.lock.json" in catalog
    assert "tailops/_catalog/playbooks/package_install/manifest.yml" in catalog
    assert "tailops/_catalog/roles/container_update/library/tailops_docker_rename.py" in catalog
    assert "tailops/_catalog/roles/container_update/filter_plugins/tailops_container.py" in catalog
    assert "tailops/_catalog/roles/package_common/library/tailops_apt_query.py" in catalog
    assert not [n for n in catalog if "/molecule/" in n or "/_molecule/" in n or "__pycache__" in n]
    # Every playbook folder of the checkout is in the wheel.
    repo_playbooks = {p.parent.name for p in Path("playbooks").glob("*/manifest.yml")}
    shipped = {n.split("/")[3] for n in catalog if n.endswith("/manifest.yml") and "/playbooks/" in n}
    assert shipped == repo_playbooks and len(shipped) >= 7


def test_the_installed_tailops_serves_and_plans_outside_the_repo(
    wheel_venv: Path, tmp_path: Path, container_hosts: MakeHosts, apt_repo: AptRepo
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # Imported from the venv, catalog from the package: not from the checkout.
    probe = subprocess.run(
        [
            str(wheel_venv / "bin" / "python"),
            "-c",
            "import tailops, tailops.changes.catalog.scanning as c; "
            "print(tailops.__file__); print(c.default_catalog_dirs()[0])",
        ],
        cwd=outside,
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(bin_dir=wheel_venv / "bin"),
    )
    module_file, playbooks_dir = probe.stdout.split()
    assert module_file.startswith(str(wheel_venv)) and playbooks_dir.startswith(str(wheel_venv))
    assert playbooks_dir.endswith("tailops/_catalog/playbooks")

    hosts = container_hosts(1, apt_repo=apt_repo)
    [host] = hosts.names
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "server": {"data_dir": str(tmp_path / "data"), "port": port},
                "changes": {"inventory": str(hosts.inventory)},
            }
        )
    )
    verify = run_cli(wheel_venv, outside, "playbooks", "verify", "--config", str(cfg))
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip().startswith("catalog OK (")
    assert run_cli(wheel_venv, outside, "token", "keygen", "--config", str(cfg)).returncode == 0
    minted = run_cli(
        wheel_venv, outside, "token", "mint", "--config", str(cfg), "--subject", "ops",
        "--scopes", "readonly system:admin", "--ttl", "1h",
    )  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()

    log = tmp_path / "serve.log"
    env = clean_env(bin_dir=wheel_venv / "bin")
    with serve_process(cfg, port, log, exe=wheel_venv / "bin" / "tailops", cwd=outside, env=env):
        started = log.read_text()
        assert "catalog verified against its lock" in started
        assert "tailops/_catalog/playbooks" in started

        async def plan() -> dict[str, object]:
            async with mcp_http_client(f"http://127.0.0.1:{port}/mcp", token) as client:
                params = {"packages": [{"name": "tbdemo", "version": "1.1-1"}]}
                result = await client.call_tool("plan_change", {"playbook": "package_install", "params": params})
                assert not result.is_error, result.content
                assert isinstance(result.structured_content, dict)
                return result.structured_content

        view = anyio.run(plan)
    assert view["status"] == "pending" and view["hosts_total"] == 1 and view["hosts_changing"] == 1
    hosts_view = view["hosts"]
    assert isinstance(hosts_view, list) and len(hosts_view) == 1
    host_view: dict[str, Any] = hosts_view[0]
    assert host_view["host"] == host and host_view["changed_tasks"] == [INSTALL]
    [task] = [t for t in host_view["tasks"] if t["task"] == INSTALL]
    assert "tbdemo" in task["diff"] and "1.1-1" in task["diff"]


def test_a_drifted_catalog_is_reported_by_the_installed_tailops(wheel_venv: Path, tmp_path: Path) -> None:
    # The packaged catalog, copied and edited, configured as changes.playbooks_dir/roles_dir
    # (the configured directories override the packaged ones).
    [packaged] = wheel_venv.glob("lib/python*/site-packages/tailops/_catalog")
    shutil.copytree(packaged, tmp_path / "catalog")
    playbook = tmp_path / "catalog" / "playbooks" / "package_install" / "playbook.yml"
    playbook.write_text(playbook.read_text() + "# an unreviewed edit\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "server": {"data_dir": str(tmp_path / "data")},
                "changes": {
                    "playbooks_dir": str(tmp_path / "catalog" / "playbooks"),
                    "roles_dir": str(tmp_path / "catalog" / "roles"),
                },
            }
        )
    )
    result = run_cli(wheel_venv, tmp_path, "playbooks", "verify", "--config", str(cfg))
    assert result.returncode == 1
    assert "drift: package_install" in result.stderr and "content changed" in result.stderr
    assert "catalog verify failed: 1 drift(s)" in result.stderr
