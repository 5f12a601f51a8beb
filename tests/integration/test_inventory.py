"""``tailops inventory show|check`` and the ``check_inventory`` tool, with real Ansible.

- ``show`` on the shipped examples (inventory/example with group_vars/host_vars,
  inventory/local) gives the hosts, groups and connection facts Ansible reads, the
  snapshot a plan pins (and it moves when a file changes), and never a variable's
  value beyond the connection facts (a become password in host_vars stays hidden).
- ``check`` on the container test bed with one host down (its container killed):
  real ``ansible -m ping`` through ansible-runner; the down host is named with
  Ansible's reason, the others answer, progress comes per host, exit 1. The same
  through the MCP tool over a real HTTP client, with progress notifications.
- An inventory plugin (community.docker.docker_containers) pointed at the test
  bed's containers yields them.
- Bad inputs: a missing or unparsable inventory and a bad limit are one-line errors.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from typer.testing import CliRunner, Result

from tailops.changes.ansible.ping import run_adhoc_ping
from tailops.changes.planner import inventory_snapshot
from tailops.cli.main import app
from tailops.config import Settings
from tailops.errors import RunnerError
from tests.helpers import REPO_ROOT, SESSION_ID, TEST_LABEL
from tests.servers import http_server, mcp_http_client
from tests.testbed.hosts import MakeHosts

runner = CliRunner()
EXAMPLE = REPO_ROOT / "inventory" / "example"
SECRET = "correct-horse-battery-staple"


def config_for(tmp_path: Path, inventory: Path | str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump({"server": {"data_dir": str(tmp_path / "data")}, "changes": {"inventory": str(inventory)}})
    )
    return cfg


def inv(cfg: Path, *args: str) -> Result:
    return runner.invoke(app, ["inventory", *args, "--config", str(cfg)])


def one_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_show_the_example_inventory(tmp_path: Path) -> None:
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE, example)
    (example / "host_vars" / "db1.example.internal.yml").write_text(
        f"ansible_host: 100.64.0.21\nansible_become_pass: {SECRET}\napi_token: {SECRET}\n"
    )
    cfg = config_for(tmp_path, example)
    result = inv(cfg, "show", "--json")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    view = json.loads(result.stdout)
    hosts = {h["name"]: h for h in view["hosts"]}
    assert set(hosts) == {
        "web1.example.internal",
        "web2.example.internal",
        "db1.example.internal",
        "apps1.example.internal",
    }
    assert hosts["web2.example.internal"]["groups"] == ["docker_hosts", "production", "web"]
    web1 = hosts["web1.example.internal"]["connection"]
    assert web1["ansible_host"] == "100.64.0.11" and web1["ansible_port"] == "2222"  # host_vars
    assert web1["ansible_user"] == "deploy" and web1["ansible_become"] == "True"  # group_vars/all
    assert hosts["db1.example.internal"]["connection"]["ansible_become_user"] == "root"  # group_vars/db
    assert "ansible_become_pass" not in hosts["db1.example.internal"]["connection"]
    assert hosts["db1.example.internal"]["other_vars"] >= 3  # db_service, the password, the token: counted only
    groups = {g["name"]: g for g in view["groups"]}
    assert groups["production"]["children"] == ["web", "db", "docker_hosts"]
    assert view["snapshot_sha256"] == inventory_snapshot(example)

    table = inv(cfg, "show")
    assert table.exit_code == 0 and SECRET not in table.output
    assert "ssh deploy@100.64.0.11:2222 become(sudo)" in table.stdout
    assert f"snapshot:  {inventory_snapshot(example)}" in table.stdout

    # Any edit moves the snapshot a plan pins.
    (example / "group_vars" / "web.yml").write_text("web_service: apache2\n")
    moved = json.loads(inv(cfg, "show", "--json").stdout)["snapshot_sha256"]
    assert moved != view["snapshot_sha256"]

    limited = json.loads(inv(cfg, "show", "--json", "--limit", "db").stdout)
    assert [h["name"] for h in limited["hosts"]] == ["db1.example.internal"]


def test_show_the_local_inventory(tmp_path: Path) -> None:
    result = inv(config_for(tmp_path, REPO_ROOT / "inventory" / "local" / "hosts.yml"), "show", "--json")
    assert result.exit_code == 0, result.output
    [host] = json.loads(result.stdout)["hosts"]
    assert host["name"] == "localhost" and host["connection"]["ansible_connection"] == "local"


def test_bad_inventories_and_limits(tmp_path: Path) -> None:
    missing = inv(config_for(tmp_path, tmp_path / "nope.ini"), "show")
    assert missing.exit_code == 2 and "does not exist" in one_error(missing)
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts: [this, is, not, a, mapping\n")
    result = inv(config_for(tmp_path, broken), "show")
    assert result.exit_code == 2 and "Ansible cannot parse the inventory" in one_error(result)
    # A plugin config that fails: the error says what the plugin said, not only the last parser tried.
    plugin = tmp_path / "gone.docker.yml"
    plugin.write_text("plugin: community.docker.docker_containers\ndocker_host: unix:///nonexistent.sock\n")
    result = inv(config_for(tmp_path, plugin), "show")
    assert result.exit_code == 2 and "auto: Error connecting" in one_error(result)
    for bad in ("@/etc/passwd", "web db", "x'y", "-ilocalhost,", "--become"):
        result = inv(config_for(tmp_path, EXAMPLE), "check", f"--limit={bad}")
        assert result.exit_code == 2 and "is not a host pattern" in one_error(result), bad
    # The adapter refuses it too, whoever calls it: the pattern is the last word of `ansible`'s argv.
    with pytest.raises(RunnerError, match="not allowed"):
        run_adhoc_ping(EXAMPLE, tmp_path / "checks", pattern="-ilocalhost,")
    assert not (tmp_path / "checks").exists()
    nothing = inv(config_for(tmp_path, EXAMPLE), "check", "--limit", "nosuchgroup")
    assert nothing.exit_code == 2 and "no host matching" in one_error(nothing)
    result = inv(config_for(tmp_path, EXAMPLE), "check", "--timeout", "soon")
    assert result.exit_code == 2


@pytest.mark.docker
async def test_check_names_the_host_that_is_down(
    tmp_path: Path, container_hosts: MakeHosts, docker_client: Any, make_settings: Callable[..., Settings]
) -> None:
    bed = container_hosts(2, ssh=1)
    down = sorted([bed.docker_names[0], bed.ssh_names[0]])
    for name in down:
        docker_client.containers.get(bed.hosts[name].container).kill()
    cfg = config_for(tmp_path, bed.inventory)

    result = await anyio.to_thread.run_sync(lambda: inv(cfg, "check"))
    assert result.exit_code == 1, result.output
    summary, *rest = result.stdout.splitlines()
    assert summary.startswith(f"1/{len(bed.names)} hosts answered (all,")
    reasons = {line.split()[0]: line for line in rest}
    assert sorted(reasons) == down
    # docker exec into a stopped container: Ansible reports a failed module run; the reason says why.
    assert "is not running" in reasons[bed.docker_names[0]], reasons
    assert "unreachable" in reasons[bed.ssh_names[0]] and "ssh" in reasons[bed.ssh_names[0]].lower(), reasons
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == len(bed.names) and progress[-1].startswith(f"[{len(bed.names)}/{len(bed.names)}]")
    # The ping's private dir keeps no environment dump (ansible-runner's `command` file) and is 0700.
    [private] = (tmp_path / "data" / "checks").iterdir()
    assert private.stat().st_mode & 0o777 == 0o700
    assert not list(private.rglob("command")) and not (private / "env").exists()

    # The same through the MCP tool, with progress notifications per host.
    settings = make_settings(changes={"inventory": str(bed.inventory)})
    with http_server(settings) as srv:
        async with mcp_http_client(srv.url, srv.mint("reader", "readonly")) as client:
            seen: list[str | None] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append(message)

            with anyio.fail_after(240):
                answer = await client.call_tool("check_inventory", {}, progress_callback=on_progress)
    assert not answer.is_error, answer.content
    report = answer.structured_content or {}
    assert report["total"] == len(bed.names) and report["ok"] == 1
    assert [r["host"] for r in report["not_ok"]] == down and all(r["reason"] for r in report["not_ok"])
    assert report["snapshot_sha256"] == inventory_snapshot(bed.inventory)
    assert len(seen) == len(bed.names) and any(m and m.startswith(f"{bed.ssh_names[0]}: unreachable") for m in seen)


@pytest.mark.docker
def test_an_inventory_plugin_yields_the_containers(tmp_path: Path, container_hosts: MakeHosts) -> None:
    bed = container_hosts(2)
    plugin = tmp_path / "bed.docker.yml"
    plugin.write_text(
        yaml.safe_dump(
            {
                "plugin": "community.docker.docker_containers",
                "connection_type": "docker-cli",
                "filters": [
                    {"include": f"docker_config.Labels['{TEST_LABEL}'] | default('') == '{SESSION_ID}'"},
                    {"exclude": True},
                ],
            }
        )
    )
    cfg = config_for(tmp_path, plugin)
    # The plugin lists every container of the engine, then inspects each one; it fails when a
    # container is removed in between ("Error inspecting container"), which other tests sharing
    # this engine do all the time. That race is the plugin's: only it is retried.
    for _ in range(3):
        result = inv(cfg, "show", "--json")
        if "Error inspecting container" not in result.stderr:
            break
    assert result.exit_code == 0, result.output
    names = {h["name"] for h in json.loads(result.stdout)["hosts"]}
    assert set(bed.docker_names) <= names
