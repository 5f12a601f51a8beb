"""Execution nodes without a node: bundle, shard map, wrapper refusals, config, CLI bad input.

The wrapper is run as the real script (as sshd would run it); ``info`` runs the
real ``ansible-runner worker --worker-info`` of this venv. The end-to-end
behaviour over SSH is in tests/integration/test_nodes.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailops.changes.ansible.environment import ANSIBLE_CFG
from tailops.changes.models import RunMode, RunRequest
from tailops.changes.nodes import node_wrapper
from tailops.changes.nodes.bundle import build_bundle
from tailops.changes.nodes.shards import LOCAL, _flatten, shard_map
from tailops.changes.nodes.transport import NodeInfo, require_same_versions, ssh_argv
from tailops.config import NodeSettings, load_config
from tailops.errors import ConfigError, InvalidInput, RunnerError

WRAPPER = Path(node_wrapper.__file__)


def _tree(tmp: Path) -> RunRequest:
    pb = tmp / "pb"
    pb.mkdir()
    (pb / "playbook.yml").write_text("- hosts: all\n  tasks: []\n")
    inv = tmp / "inv.ini"
    inv.write_text("[g]\nh1\nh2\n")
    return RunRequest(
        playbook=pb / "playbook.yml",
        inventory=inv,
        mode=RunMode.CHECK,
        artifacts_root=tmp / "runs",
        extravars={"x": 1},
    )


def _members(stream: bytes) -> dict[str, bytes]:
    import base64
    import io
    import zipfile

    lines = stream.split(b"\n", 2)
    size = json.loads(lines[1])["zipfile"]
    encoded = lines[2][: 4 * ((size + 2) // 3)]
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded))) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


# --------------------------------------------------------------------------- bundle
def test_bundle_is_deterministic_and_independent_of_ident_and_check_flag(tmp_path: Path) -> None:
    req = _tree(tmp_path)
    a = build_bundle(req, ident="one", hosts=["h2", "h1"])
    os.utime(req.playbook, (1, 1))  # an mtime change is not a content change
    b = build_bundle(req, ident="two", hosts=["h1", "h2"])
    c = build_bundle(
        RunRequest(**{**req.__dict__, "mode": RunMode.APPLY}),
        ident="one",
        hosts=["h1", "h2"],
    )
    assert a.bundle_sha256 == b.bundle_sha256 == c.bundle_sha256
    assert a.stream != c.stream  # --check --diff vs --diff
    assert json.loads(c.stream.split(b"\n", 1)[0])["kwargs"]["cmdline"] == "--diff"
    assert build_bundle(req, ident="one", hosts=["h1", "h2"]).stream == a.stream


@pytest.mark.parametrize("change", ["playbook", "extravars", "hosts", "forks"])
def test_bundle_hash_follows_content(tmp_path: Path, change: str) -> None:
    req = _tree(tmp_path)
    before = build_bundle(req, ident="i", hosts=["h1"]).bundle_sha256
    hosts = ["h1"]
    if change == "playbook":
        req.playbook.write_text("- hosts: all\n  tasks: [{debug: {msg: x}}]\n")
    elif change == "extravars":
        req = RunRequest(**{**req.__dict__, "extravars": {"x": 2}})
    elif change == "hosts":
        hosts = ["h1", "h2"]
    else:
        req = RunRequest(**{**req.__dict__, "forks": 9})
    assert build_bundle(req, ident="i", hosts=hosts).bundle_sha256 != before


def test_bundle_holds_only_the_job_and_no_controller_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-123")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    req = _tree(tmp_path)
    (tmp_path / "runs" / "old").mkdir(parents=True)
    bundle = build_bundle(req, ident="i", hosts=["h1"])
    assert b"s3cr3t-value-123" not in bundle.stream and b"agent.sock" not in bundle.stream
    assert set(_members(bundle.stream)) == {
        "env/extravars",
        "env/settings",
        "inventory/inv.ini",
        "project/ansible.cfg",
        "project/callback_plugins/tailops_taskinfo.py",
        "project/playbook.yml",
    }
    kwargs = json.loads(bundle.stream.split(b"\n", 1)[0])["kwargs"]
    assert "extravars" not in kwargs  # the worker would put them on ansible-playbook's command line
    assert json.loads(_members(bundle.stream)["env/extravars"]) == {"x": 1}
    # The node runs with the settings a local run has (e.g. the 10 ms internal poll, docs/scale.md).
    assert _members(bundle.stream)["project/ansible.cfg"] == ANSIBLE_CFG.encode()
    envvars = kwargs["envvars"]
    assert all(k.startswith(("ANSIBLE_", "LC_")) or k == "LANG" for k in envvars)
    assert "PATH" not in envvars and "ANSIBLE_HOST_KEY_CHECKING" in envvars


def test_bundle_refuses_symlinks(tmp_path: Path) -> None:
    req = _tree(tmp_path)
    (req.playbook.parent / "secret").symlink_to("/etc/passwd")
    with pytest.raises(RunnerError, match="not a regular file"):
        build_bundle(req, ident="i", hosts=["h1"])


# --------------------------------------------------------------------------- shard map
def _node(name: str, claims: list[str]) -> NodeSettings:
    return NodeSettings(name=name, host="n", key=Path("/k"), known_hosts=Path("/kh"), claims=claims)


def test_shard_map_first_claim_wins_and_the_rest_runs_locally() -> None:
    groups = _flatten(
        {
            "all": {"children": ["web", "db", "ungrouped"]},
            "web": {"hosts": ["w1", "w2"]},
            "db": {"hosts": ["d1"]},
            "ungrouped": {"hosts": ["x1"]},
            "dc1": {"children": ["web"]},
        }
    )
    smap = shard_map(groups, [_node("n1", ["dc1"]), _node("n2", ["web", "d*"])])
    assert smap.as_dict() == {"n1": ["w1", "w2"], "n2": ["d1"], LOCAL: ["x1"]}
    moved = shard_map(groups, [_node("n1", ["w1"]), _node("n2", ["web", "d*"])])
    assert moved.as_dict() == {"n1": ["w1"], "n2": ["d1", "w2"], LOCAL: ["x1"]}
    assert moved.digest() != smap.digest()
    assert shard_map(groups, [_node("n1", ["dc1"]), _node("n2", ["web", "d*"])]).digest() == smap.digest()
    with pytest.raises(InvalidInput):
        shard_map({}, [])


# --------------------------------------------------------------------------- config
def test_node_config_refuses_duplicates_and_the_local_name(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    one = "{name: %s, host: x, key: /k, known_hosts: /kh, claims: [g]}"
    for names, match in ((("a", "a"), "unique"), (("local",), "reserved")):
        cfg.write_text("nodes:\n" + "".join(f" - {one % n}\n" for n in names))
        with pytest.raises(ConfigError, match=match):
            load_config(cfg)
    cfg.write_text("nodes:\n - {name: a, host: x, key: /k, known_hosts: /kh, claims: []}\n")
    with pytest.raises(ConfigError, match="claims"):
        load_config(cfg)


def test_ssh_argv_pins_key_known_hosts_and_batch_mode() -> None:
    argv = ssh_argv(_node("n1", ["g"]), "info")
    joined = " ".join(argv)
    for option in ("BatchMode=yes", "IdentitiesOnly=yes", "StrictHostKeyChecking=yes", "UserKnownHostsFile=/kh"):
        assert option in joined
    assert argv[-2:] == ["n", "info"] and argv[argv.index("-F") + 1] == "/dev/null"


def test_version_mismatch_names_both_versions() -> None:
    info = NodeInfo(node="n1", ansible_core="2.21.5", ansible_runner="2.4.2", python="3.12.1", cpu_count=2)
    with pytest.raises(ConfigError, match=r"node n1 runs ansible-runner 2\.4\.2 \(controller 2\.4\.3\)"):
        require_same_versions(info, {"ansible-core": "2.21.5", "ansible-runner": "2.4.3"})
    require_same_versions(info, {"ansible-core": "2.21.5", "ansible-runner": "2.4.2"})


# --------------------------------------------------------------------------- wrapper (the real script)
def _wrapper(command: str | None, tmp: Path) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "TAILOPS_NODE_STATE_DIR": str(tmp / "state")}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run(
        [sys.executable, str(WRAPPER)], env=env, capture_output=True, timeout=120, check=False, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "command",
    ["", "ls -la", "bash", "run", "run ../etc", "run a b", "cancel /x", "info; id", "run $(id)", "scp -t /"],
)
def test_wrapper_refuses_anything_else_with_nothing_on_stdout(tmp_path: Path, command: str) -> None:
    proc = _wrapper(command, tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert proc.stderr.startswith(b"tailops-node: ")
    assert not (tmp_path / "x").exists()


def test_wrapper_info_reports_this_venvs_versions(tmp_path: Path) -> None:
    from importlib import metadata

    proc = _wrapper("info", tmp_path)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    info = json.loads(line)
    assert info["ansible_runner"] == metadata.version("ansible-runner")
    assert info["ansible_core"] == metadata.version("ansible-core")
    assert "runner_version" in (info["worker_info"] or "")


def test_wrapper_cancel_of_unknown_job_signals_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # A pid file pointing at a process that is not this job's worker (ourselves) is not obeyed.
    (state / "job1.pid").write_text(f"{os.getpid()}\n")
    proc = _wrapper("cancel job1", tmp_path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"job": "job1", "cancel": "not-running"}


def test_wrapper_worker_env_has_the_venv_first_and_nothing_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = node_wrapper.worker_env()
    assert env["PATH"].split(":")[0] == str(Path(sys.prefix) / "bin")
    assert "AWS_SECRET_ACCESS_KEY" not in env


# --------------------------------------------------------------------------- CLI
def test_cli_nodes_list_check_and_bad_name(tmp_path: Path) -> None:
    from tailops.cli.main import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "server: {data_dir: %s}\nnodes:\n - {name: edge-1, host: 127.0.0.1, port: 9, key: /nonexistent,"
        " known_hosts: /dev/null, claims: [dc1], forks: 7, connect_timeout: 2s}\n" % (tmp_path / "data")
    )
    runner = CliRunner()
    listed = runner.invoke(app, ["nodes", "list", "--json", "--config", str(cfg)])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "edge-1" and row["forks"] == 7 and row["claims"] == ["dc1"] and not row["checked"]
    checked = runner.invoke(app, ["nodes", "check", "--json", "--config", str(cfg)])
    assert checked.exit_code == 1
    (row,) = json.loads(checked.stdout)
    assert row["reachable"] is False and "edge-1" in row["error"]
    bad = runner.invoke(app, ["nodes", "check", "nope", "--config", str(cfg)])
    assert bad.exit_code == 2 and "No execution node named 'nope'" in bad.stderr
