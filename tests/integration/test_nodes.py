"""Execution nodes end to end: real sshd forced commands, real ansible-runner workers, real targets.

The bed (tests/testbed/nodes.py): two sites, each a node container plus two
SSH targets on the site's own Docker network (the controller can neither
resolve nor log into them), and one docker-connection host run locally.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from tailops.changes.ansible.job import run_playbook
from tailops.changes.models import RunEvent, RunMode, RunRequest
from tailops.changes.nodes.distribute import run_sharded
from tailops.changes.nodes.remote import NODE_TASK, run_on_node
from tailops.changes.nodes.shards import LOCAL, inventory_groups, shard_map
from tailops.changes.nodes.transport import node_info, require_same_versions, ssh_argv
from tailops.errors import ConfigError, RunnerError, StalePlan
from tests.testbed.nodes import NodeBed, make_node_bed, wrapper_command

PLAYBOOK = Path(__file__).parent / "playbooks" / "nodes.yml"
TEST_ENV = {"ANSIBLE_HOST_KEY_CHECKING": "False"}


@pytest.fixture(scope="module")
def bed(docker_client: Any, test_labels: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeBed]:
    b = make_node_bed(docker_client, test_labels, tmp_path_factory.mktemp("nodebed"))
    yield b
    b.cleanup()


def _req(bed: NodeBed, tmp: Path, mode: RunMode, **extravars: Any) -> RunRequest:
    assert bed.inventory is not None
    return RunRequest(
        playbook=PLAYBOOK,
        inventory=bed.inventory,
        mode=mode,
        artifacts_root=tmp / "runs",
        extravars=extravars,
        extra_env=TEST_ENV,
        timeout=timedelta(minutes=30),  # a loaded 2-core CI machine is slow; never reached when healthy
    )


def test_node_info_reports_the_controllers_versions(bed: NodeBed) -> None:
    for site in bed.sites:
        info = node_info(bed.node_settings(site))
        require_same_versions(info)  # raises on a mismatch
        assert info.ansible_core and info.ansible_runner and not info.errors


def test_forced_command_refuses_anything_else_with_empty_stdout(bed: NodeBed) -> None:
    node = bed.node_settings("a")
    for command in ("ls /", "sh -c id", "run ../../etc", "cancel", "info extra", ""):
        proc = subprocess.run(ssh_argv(node, command), capture_output=True, timeout=30, check=False)
        assert proc.returncode == 2, command
        assert proc.stdout == b"", command
        assert (b"tailops-node:" in proc.stderr and b"refused" in proc.stderr) or b"not allowed" in proc.stderr


def test_check_and_apply_across_two_nodes_and_local(bed: NodeBed, tmp_path: Path) -> None:
    nodes = [bed.node_settings("a"), bed.node_settings("b")]
    assert bed.inventory is not None
    smap = shard_map(inventory_groups(bed.inventory), nodes)
    assert smap.as_dict() == {"node-a": ["a1", "a2"], "node-b": ["b1", "b2"], LOCAL: ["l1"]}
    events: list[tuple[str, RunEvent]] = []

    async def check() -> Any:
        return await run_sharded(
            _req(bed, tmp_path, RunMode.CHECK, greeting="planned"),
            smap,
            nodes,
            ident="plan1",
            on_event=lambda e, n: events.append((n, e)),
        )

    planned = anyio.run(check)
    result = planned.result
    assert result.status == "successful", result
    assert sorted(result.hosts) == ["a1", "a2", "b1", "b2", "l1"]
    for host, hr in result.hosts.items():
        greet = result.task(host, "Write greeting file")
        assert greet.changed and greet.diff and "+greeting = planned" in greet.diff, host
        # check_mode: false arrives as a tailops_taskinfo event in the node's worker stream
        assert result.task(host, "Read hostname").not_simulated, host
        assert hr.status == "changed"
    shards = {s.node: s for s in planned.shards}
    assert shards["node-a"].hosts == ("a1", "a2") and shards["node-a"].bundle_sha256
    assert shards[LOCAL].bundle_sha256 is None
    counters = [e.counter for _, e in events]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert {n for n, e in events if e.kind == "task_result"} == {"node-a", "node-b", LOCAL}
    assert events[-1][1].kind == "run_end"
    # Nothing changed in check mode.
    for host in ("a1", "b2", "l1"):
        rc, _ = bed.exec(bed.target_container(host), "test -e /etc/tailops-node-greeting.conf")
        assert rc != 0
    # The worker's environment never reaches the controller's artifacts.
    art = tmp_path / "runs" / "plan1.node-a" / "artifacts" / "plan1.node-a"
    assert sorted(p.name for p in art.iterdir()) == ["job_events", "rc", "status", "stdout"]
    assert not any("ANSIBLE_COLLECTIONS_PATH" in p.read_text() for p in art.rglob("*") if p.is_file())

    # Apply: the same bundles (only the check flags differ) to the same shard map.
    async def apply(expect: dict[str, str], greeting: str) -> Any:
        return await run_sharded(
            _req(bed, tmp_path, RunMode.APPLY, greeting=greeting),
            smap,
            nodes,
            ident=f"apply-{greeting}",
            expect_bundles=expect,
        )

    with pytest.raises(StalePlan, match="node-a"):
        anyio.run(apply, planned.bundles(), "other")
    applied = anyio.run(apply, planned.bundles(), "planned")
    assert applied.bundles() == planned.bundles()
    assert applied.result.status == "successful"
    assert applied.result.changed_tasks() == result.changed_tasks()
    for host in ("a1", "a2", "b1", "b2", "l1"):
        rc, out = bed.exec(bed.target_container(host), "cat /etc/tailops-node-greeting.conf")
        assert rc == 0 and out == "greeting = planned\n", host


def test_controller_itself_cannot_reach_site_hosts(bed: NodeBed, tmp_path: Path) -> None:
    req = _req(bed, tmp_path, RunMode.CHECK)
    import dataclasses

    result = anyio.run(lambda: run_playbook(dataclasses.replace(req, limit="a1")))
    assert result.hosts["a1"].status == "unreachable"


def _run_until_wait(bed: NodeBed, tmp_path: Path, site: str, action: Any) -> tuple[Any, float]:
    """Apply with a 600 s task on ``site``'s node; call ``action(cancel)`` once that task runs.

    Returns the run and the seconds from the action to the run's end (far below 600 s when the
    action stopped the run rather than the run waiting the task out).
    """
    node = bed.node_settings(site)
    hosts = sorted(bed.sites[site].targets)
    cancel = anyio.Event()
    acted: list[float] = []
    for host in hosts:  # an earlier apply in this module wrote the marker
        bed.exec(bed.target_container(host), "rm -f /etc/tailops-node-done")

    async def main() -> Any:
        async def on_event(event: RunEvent) -> None:
            if event.kind == "host_task_start" and event.task == "Wait" and not getattr(main, "fired", False):
                main.fired = True  # type: ignore[attr-defined]
                acted.append(time.monotonic())
                await anyio.to_thread.run_sync(action, cancel)

        with anyio.fail_after(600):  # bounded: a hang fails the test instead of blocking CI
            return await run_on_node(
                _req(bed, tmp_path, RunMode.APPLY, sleep_s=600),
                node,
                hosts,
                ident=f"long-{site}-{int(time.time())}",
                on_event=on_event,
                cancel=cancel,
            )

    run = anyio.run(main)
    assert acted, "the long task never started"
    return run, time.monotonic() - acted[0]


def test_cancel_mid_run_reaches_the_remote_worker(bed: NodeBed, tmp_path: Path) -> None:
    def cancel(event: anyio.Event) -> None:
        anyio.from_thread.run_sync(event.set)

    run, took = _run_until_wait(bed, tmp_path, "a", cancel)
    assert took < 300
    assert run.result.status == "canceled"
    for host in ("a1", "a2"):
        hr = run.result.hosts[host]
        assert hr.status == "unreachable" and hr.tasks[-1].task == NODE_TASK
        assert hr.tasks[-1].msg and hr.tasks[-1].msg.startswith("interrupted: canceled on node node-a")
        rc, _ = bed.exec(bed.target_container(host), "test -e /etc/tailops-node-done")
        assert rc != 0, "the task after the canceled one must not run"
    bed.wait_node_clean("a")


def test_a_cut_link_stops_the_job_on_the_node(bed: NodeBed, tmp_path: Path) -> None:
    """Closing the pipe alone would not stop ansible-runner's worker; the wrapper's relay does."""
    import psutil

    def cut(_event: anyio.Event) -> None:
        for proc in psutil.Process().children(recursive=True):
            if proc.name() == "ssh" and " run long-a-" in " ".join(proc.cmdline()):
                proc.kill()

    run, took = _run_until_wait(bed, tmp_path, "a", cut)
    assert took < 300 and run.result.status == "failed"
    assert run.error and run.error.startswith("node node-a dropped mid-run")
    bed.wait_node_clean("a")


def test_a_node_killed_mid_run_ends_its_hosts_interrupted(bed: NodeBed, tmp_path: Path) -> None:
    def kill(_event: anyio.Event) -> None:
        bed.client.containers.get(bed.sites["b"].node_container).kill()

    try:
        run, took = _run_until_wait(bed, tmp_path, "b", kill)
    finally:
        container = bed.client.containers.get(bed.sites["b"].node_container)
        container.start()
    assert took < 300
    assert run.result.status == "failed"
    assert run.error and "node node-b dropped mid-run" in run.error
    for host in ("b1", "b2"):
        hr = run.result.hosts[host]
        assert hr.status == "unreachable"
        assert hr.tasks[-1].msg and hr.tasks[-1].msg.startswith("interrupted: node node-b dropped mid-run")


def test_shell_noise_on_stdout_is_a_clear_error_and_nothing_runs(bed: NodeBed, tmp_path: Path) -> None:
    node_c = bed.sites["a"].node_container
    bed.exec(node_c, "cp /root/.bashrc /root/.bashrc.orig 2>/dev/null; echo 'echo Welcome to node-a' >> /root/.bashrc")
    try:
        with pytest.raises(RunnerError, match=r"node node-a printed non-protocol output: 'Welcome to node-a'"):
            anyio.run(
                lambda: run_on_node(
                    _req(bed, tmp_path, RunMode.APPLY), bed.node_settings("a"), ["a1"], ident="noisy", verify=False
                )
            )
    finally:
        bed.exec(node_c, "mv /root/.bashrc.orig /root/.bashrc 2>/dev/null || sed -i '$d' /root/.bashrc")
    rc, _ = bed.exec(
        bed.target_container("a1"), "test -e /etc/tailops-node-done && grep -q other /etc/tailops-node-greeting.conf"
    )
    assert rc != 0


@pytest.fixture(scope="module")
def old_runner_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of the controller's Python with ansible-runner 2.4.2 over the shared venv's packages."""
    root = tmp_path_factory.mktemp("oldrunner")
    venv = root / "venv"
    subprocess.run([Path(sys.base_prefix) / "bin" / "python3", "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    shared = next((Path(sys.prefix).resolve() / "lib").glob("python3*/site-packages"))
    (site / "tailops_shared.pth").write_text(f"{shared}\n")
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "ansible-runner==2.4.2"],
        check=True,
        timeout=300,
    )
    return venv


def test_version_mismatch_is_refused_naming_both(bed: NodeBed, old_runner_venv: Path, tmp_path: Path) -> None:
    node_c = bed.client.containers.get(bed.sites["a"].node_container)
    # Copy the other venv into the node at the same path (its scripts' shebangs name it) and
    # make it the forced command's interpreter.
    bed.exec(node_c.id, f"mkdir -p {old_runner_venv.parent}")
    subprocess.run(["docker", "cp", str(old_runner_venv), f"{node_c.id}:{old_runner_venv}"], check=True)
    bed.set_authorized("a", wrapper_command(old_runner_venv / "bin" / "python"))
    try:
        info = node_info(bed.node_settings("a"))
        assert info.ansible_runner == "2.4.2" and info.ansible_core == node_info(bed.node_settings("b")).ansible_core
        with pytest.raises(ConfigError, match=r"node node-a runs ansible-runner 2\.4\.2 \(controller 2\.4\.3\)"):
            require_same_versions(info)
        with pytest.raises(ConfigError, match=r"ansible-runner 2\.4\.2"):
            anyio.run(
                lambda: run_on_node(
                    _req(bed, tmp_path, RunMode.CHECK), bed.node_settings("a", name="node-x"), ["a1"], ident="mismatch"
                )
            )
    finally:
        bed.set_authorized("a", wrapper_command())
