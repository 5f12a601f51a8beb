"""The runner adapter against real ansible-runner and real container hosts.

Hosts: 3 containers over the docker connection + 1 over real SSH, all with the
offline apt repo as their only source. Playbooks: small test playbooks in
tests/integration/playbooks/ (not the catalog). Every assertion here is about
behaviour the planner and executor rely on: check predicts apply per host and
per task, diffs name what changes, not-simulated tasks are flagged, events
stream in order while the run goes on, cancel/timeout end the run, failures to
start are RunnerErrors, and nothing secret reaches the artifacts dir.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from tailops.changes.ansible.job import run_playbook
from tailops.changes.models import RunEvent, RunMode, RunRequest, RunResult, TaskStatus
from tailops.errors import RunnerError
from tests.testbed.aptrepo import AptRepo
from tests.testbed.hosts import HostFactory, HostSet, MakeHosts

PLAYBOOKS = Path(__file__).parent / "playbooks"
CHANGES = PLAYBOOKS / "changes.yml"
TASKS = ["Write greeting file", "Install tbdemo", "Set tbconf port", "Read os-release", "Report uptime"]

pytestmark = pytest.mark.docker


def request(hosts_inventory: Path, root: Path, mode: RunMode, playbook: Path = CHANGES, **kw: Any) -> RunRequest:
    return RunRequest(playbook=playbook, inventory=hosts_inventory, mode=mode, artifacts_root=root, **kw)


def state(bed: HostSet, host: str) -> dict[str, str]:
    _rc, version = bed.exec(host, "dpkg-query -W -f '${Version}' tbdemo 2>/dev/null || true")
    _rc, greeting = bed.exec(host, "cat /etc/tailops-greeting.conf 2>/dev/null || true")
    _rc, port = bed.exec(host, "grep '^port' /etc/tbconf.conf")
    return {"tbdemo": version.strip(), "greeting": greeting, "port": port.strip()}


@pytest.fixture(scope="module")
def bed(
    docker_client: Any,
    base_image: str,
    test_labels: dict[str, str],
    apt_repo: AptRepo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HostSet]:
    """3 docker-connection hosts + 1 SSH host with tbconf 1.0-1 preinstalled."""
    factory = HostFactory(docker_client, test_labels, tmp_path_factory.mktemp("runner-bed"))
    try:
        yield factory.make(3, ssh=1, apt_repo=apt_repo, preinstall={"tbconf": "1.0-1"})
    finally:
        factory.cleanup()


def changed_map(result: RunResult) -> dict[str, list[str]]:
    return {host: names for host, names in result.changed_tasks().items()}


async def test_check_predicts_apply_per_host_and_task_and_repeat_changes_nothing(
    bed: HostSet, runner_artifacts: Path
) -> None:
    hosts = bed.names
    assert len(bed.docker_names) == 3 and len(bed.ssh_names) == 1

    # 1. First apply: installs tbdemo 1.0-1 and writes the greeting file everywhere.
    first = await run_playbook(request(bed.inventory, runner_artifacts, RunMode.APPLY))
    assert first.status == "successful" and first.rc == 0
    assert set(first.hosts) == set(hosts)
    for host in hosts:
        assert state(bed, host)["tbdemo"] == "1.0-1"
        assert first.hosts[host].changed_tasks == ["Write greeting file", "Install tbdemo"]

    # 2. Check with new values: predicts per host, per task, with diffs; changes nothing.
    new = {"greeting": "world", "tbdemo_version": "1.1-1", "tbconf_port": "9090"}
    before = {host: state(bed, host) for host in hosts}
    check = await run_playbook(request(bed.inventory, runner_artifacts, RunMode.CHECK, extravars=new))
    assert check.mode is RunMode.CHECK and check.status == "successful"
    assert {host: state(bed, host) for host in hosts} == before, "check mode changed a host"
    for host in hosts:
        hr = check.hosts[host]
        assert hr.status == "changed"
        assert [t.task for t in hr.tasks] == TASKS
        statuses = {t.task: t.status for t in hr.tasks}
        assert statuses == {
            "Write greeting file": TaskStatus.CHANGED,
            "Install tbdemo": TaskStatus.CHANGED,
            "Set tbconf port": TaskStatus.CHANGED,
            "Read os-release": TaskStatus.OK,  # check_mode: false -> really ran
            "Report uptime": TaskStatus.SKIPPED,  # command: skipped in check mode
        }
        greeting = check.task(host, "Write greeting file")
        assert greeting.diff is not None
        assert "-greeting = hello\n" in greeting.diff and "+greeting = world\n" in greeting.diff
        assert " mode = test\n" in greeting.diff  # the unchanged line is context, not a change
        assert "+mode = test" not in greeting.diff and "-mode = test" not in greeting.diff
        apt_diff = check.task(host, "Install tbdemo").diff
        assert apt_diff is not None and "tbdemo (1.0-1 => 1.1-1)" in apt_diff
        port_diff = check.task(host, "Set tbconf port").diff
        assert port_diff is not None and "-port = 8080" in port_diff and "+port = 9090" in port_diff
        assert {t.task for t in hr.tasks if t.not_simulated} == {"Read os-release", "Report uptime"}
        assert hr.counts["changed"] == 3 and hr.counts["failed"] == 0
        assert all(t.duration_s is not None and t.duration_s >= 0 for t in hr.tasks)

    # 3. Apply: changes exactly the tasks check predicted, on every host.
    applied = await run_playbook(request(bed.inventory, runner_artifacts, RunMode.APPLY, extravars=new))
    assert applied.status == "successful"
    assert changed_map(applied) == changed_map(check)
    for host in hosts:
        assert state(bed, host) == {
            "tbdemo": "1.1-1",
            "greeting": "# managed by tailops tests\ngreeting = world\nmode = test\n",
            "port": "port = 9090",
        }
        uptime = applied.task(host, "Report uptime")
        assert uptime.status is TaskStatus.OK and not uptime.not_simulated  # only check runs flag tasks

    # 4. Repeat: check and apply both change nothing.
    for mode in (RunMode.CHECK, RunMode.APPLY):
        again = await run_playbook(request(bed.inventory, runner_artifacts, mode, extravars=new))
        assert again.status == "successful"
        assert changed_map(again) == {host: [] for host in hosts}
        assert all(h.status == "ok" for h in again.hosts.values())


async def test_unreachable_host_is_a_result_and_others_proceed(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    hosts: HostSet = container_hosts(2, apt_repo=apt_repo, preinstall={"tbconf": "1.0-1"})
    gone = hosts.add_unreachable()
    result = await run_playbook(request(hosts.inventory, runner_artifacts, RunMode.CHECK))
    assert result.status == "failed" and result.rc == 4
    assert result.hosts[gone].status == "unreachable"
    [task] = result.hosts[gone].tasks
    assert task.status is TaskStatus.UNREACHABLE and not task.changed
    assert task.msg is not None and "Connection refused" in task.msg
    for host in hosts.names:
        assert result.hosts[host].status == "changed"
        assert [t.task for t in result.hosts[host].tasks] == TASKS


async def test_status_mapping_limit_and_ignored_failures(container_hosts: MakeHosts, runner_artifacts: Path) -> None:
    hosts: HostSet = container_hosts(2)
    first, second = hosts.names
    result = await run_playbook(
        request(hosts.inventory, runner_artifacts, RunMode.CHECK, playbook=PLAYBOOKS / "statuses.yml")
    )
    assert result.status == "failed"
    failing = result.hosts[first]
    assert failing.status == "failed" and failing.counts["failed"] == 1 and failing.counts["ignored"] == 1
    assert [t.task for t in failing.tasks] == [
        "Say hello",
        "Skipped by condition",
        "Fail but ignored",
        "Fail on the first host",
    ]
    ignored = result.task(first, "Fail but ignored")
    assert ignored.status is TaskStatus.FAILED and ignored.ignored and ignored.msg == "this failure is ignored"
    hard = result.task(first, "Fail on the first host")
    assert hard.status is TaskStatus.FAILED and not hard.ignored and hard.msg == f"planned failure on {first}"
    skipped = result.task(first, "Skipped by condition")
    assert skipped.status is TaskStatus.SKIPPED and not skipped.not_simulated  # a `when`, not check mode
    other = result.hosts[second]
    assert other.status == "ok"
    assert result.task(second, "Runs on the others").status is TaskStatus.OK
    assert result.task(second, "Say hello").msg == f"hello from {second}"

    limited = await run_playbook(
        request(
            hosts.inventory,
            runner_artifacts,
            RunMode.CHECK,
            playbook=PLAYBOOKS / "statuses.yml",
            limit=second,
        )
    )
    assert set(limited.hosts) == {second}


async def test_not_simulated_hint_marks_declared_tasks(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    hosts: HostSet = container_hosts(1, apt_repo=apt_repo, preinstall={"tbconf": "1.0-1"})
    result = await run_playbook(
        request(hosts.inventory, runner_artifacts, RunMode.CHECK, not_simulated_hint=frozenset({"Install tbdemo"}))
    )
    flagged = {t.task for t in result.not_simulated}
    assert flagged == {"Install tbdemo", "Read os-release", "Report uptime"}


async def test_events_stream_in_order_while_running(container_hosts: MakeHosts, runner_artifacts: Path) -> None:
    hosts: HostSet = container_hosts(2)
    received: list[tuple[float, RunEvent]] = []

    async def on_event(event: RunEvent) -> None:  # async callbacks are awaited
        received.append((time.monotonic(), event))

    result = await run_playbook(
        request(hosts.inventory, runner_artifacts, RunMode.CHECK, playbook=PLAYBOOKS / "statuses.yml"),
        on_event=on_event,
    )
    done = time.monotonic()
    events = [e for _t, e in received]
    counters = [e.counter for e in events if e.kind != "run_end"]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert events[0].kind == "playbook_start" and events[-1].kind == "run_end"
    assert events[-1].run_status == result.status
    assert [e.kind for e in events].count("stats") == 1
    # Every task_result follows its task_start; results match the final result.
    started: set[str] = set()
    results = []
    for event in events:
        if event.kind == "task_start":
            assert event.task is not None
            started.add(event.task)
        if event.kind == "task_result":
            assert event.task in started and event.host in hosts.names
            results.append((event.host, event.task, event.status))
    final = [(t.host, t.task, t.status) for h in result.hosts.values() for t in h.tasks]
    assert sorted(results, key=str) == sorted(final, key=str) and len(results) == len(final)
    # Streamed while running: the first result arrived well before the run ended.
    first_result = next(t for t, e in received if e.kind == "task_result")
    assert done - first_result > 0.2


async def test_cancel_stops_a_long_run(container_hosts: MakeHosts, runner_artifacts: Path) -> None:
    hosts: HostSet = container_hosts(1)
    cancel = anyio.Event()
    seen: list[RunEvent] = []

    def on_event(event: RunEvent) -> None:  # plain callbacks work too
        seen.append(event)
        if event.kind == "task_start" and event.task == "Wait a long time":
            cancel.set()

    started = time.monotonic()
    with anyio.fail_after(60):
        result = await run_playbook(
            request(hosts.inventory, runner_artifacts, RunMode.APPLY, playbook=PLAYBOOKS / "long.yml"),
            on_event=on_event,
            cancel=cancel,
        )
    assert result.status == "canceled"
    assert time.monotonic() - started < 30  # the wait_for task alone would take 300 s
    assert result.task(hosts.names[0], "Quick first task").status is TaskStatus.OK
    assert seen[-1].kind == "run_end" and seen[-1].run_status == "canceled"
    assert not _ansible_processes(runner_artifacts)


async def test_cancelling_the_awaiting_task_kills_ansible(container_hosts: MakeHosts, runner_artifacts: Path) -> None:
    hosts: HostSet = container_hosts(1)
    waiting = anyio.Event()

    def on_event(event: RunEvent) -> None:
        if event.kind == "task_start" and event.task == "Wait a long time":
            waiting.set()

    started = time.monotonic()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await run_playbook(
                    request(hosts.inventory, runner_artifacts, RunMode.APPLY, playbook=PLAYBOOKS / "long.yml"),
                    on_event=on_event,
                )
                raise AssertionError("the run should have been cancelled")

            tg.start_soon(run)
            await waiting.wait()
            tg.cancel_scope.cancel()
    assert time.monotonic() - started < 30
    assert not _ansible_processes(runner_artifacts)


async def test_failing_event_callback_cancels_the_run(localhost_inventory_path: Path, runner_artifacts: Path) -> None:
    class StoreDown(Exception):
        pass

    def on_event(event: RunEvent) -> None:
        if event.kind == "task_start" and event.task == "Wait a long time":
            raise StoreDown("cannot record progress")

    started = time.monotonic()
    with anyio.fail_after(60), pytest.raises(StoreDown):
        await run_playbook(
            request(localhost_inventory_path, runner_artifacts, RunMode.APPLY, playbook=PLAYBOOKS / "long.yml"),
            on_event=on_event,
        )
    assert time.monotonic() - started < 30  # fail closed: the run stopped, it did not wait 300 s
    assert not _ansible_processes(runner_artifacts)


async def test_timeout_ends_the_run(container_hosts: MakeHosts, runner_artifacts: Path) -> None:
    hosts: HostSet = container_hosts(1)
    started = time.monotonic()
    result = await run_playbook(
        request(
            hosts.inventory,
            runner_artifacts,
            RunMode.APPLY,
            playbook=PLAYBOOKS / "long.yml",
            timeout=timedelta(seconds=4),
        )
    )
    assert result.status == "timeout"
    assert 3.5 < time.monotonic() - started < 30
    assert not _ansible_processes(runner_artifacts)


async def test_failures_to_start_are_runner_errors(localhost_inventory_path: Path, runner_artifacts: Path) -> None:
    statuses = PLAYBOOKS / "statuses.yml"
    cases: list[tuple[RunRequest, str]] = [
        (
            request(localhost_inventory_path.parent / "nope.ini", runner_artifacts, RunMode.CHECK, statuses),
            "Inventory",
        ),
        (
            request(localhost_inventory_path, runner_artifacts, RunMode.CHECK, PLAYBOOKS / "nope.yml"),
            "Playbook",
        ),
        (request(Path("relative.ini"), runner_artifacts, RunMode.CHECK, statuses), "relative"),
        (
            request(localhost_inventory_path, runner_artifacts, RunMode.CHECK, PLAYBOOKS / "broken.yml"),
            "couldn't resolve module/action 'tailops_no_such_module'",
        ),
        (
            request(localhost_inventory_path, runner_artifacts, RunMode.CHECK, statuses, limit="no-such-host"),
            "no hosts to target",
        ),
        (
            request(localhost_inventory_path, runner_artifacts, RunMode.CHECK, statuses, extra_env={"PATH": "/x"}),
            "ANSIBLE_*",
        ),
        (
            request(localhost_inventory_path, runner_artifacts, RunMode.CHECK, statuses, ident="../escape"),
            "not allowed",
        ),
    ]
    bad_inventory = localhost_inventory_path.parent / "broken.ini"
    bad_inventory.write_text("[targets\nthis is not an inventory\n")
    cases.append((request(bad_inventory, runner_artifacts, RunMode.CHECK, statuses), "failed to parse inventory"))
    for req, expected in cases:
        with pytest.raises(RunnerError) as info:
            await run_playbook(req)
        assert expected in info.value.public_message(), (req, info.value.public_message())
        assert "^ column" not in info.value.message  # the error names the line, never quotes the file


async def test_no_secrets_in_artifacts(
    container_hosts: MakeHosts, runner_artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "canary-" + os.urandom(8).hex()
    token = "ghp_" + os.urandom(18).hex()
    param_secret = "param-" + os.urandom(8).hex()
    monkeypatch.setenv("TAILOPS_CANARY_TOKEN", canary)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    hosts: HostSet = container_hosts(1)
    result = await run_playbook(
        request(
            hosts.inventory,
            runner_artifacts,
            RunMode.APPLY,
            playbook=PLAYBOOKS / "secrets.yml",
            extravars={"db_password": param_secret},
        )
    )
    assert result.status == "successful"
    host = hosts.names[0]
    assert result.task(host, "Look up the canary variable").msg == "canary=[]"  # env not passed to Ansible
    assert result.artifact_dir is not None
    run_dir = runner_artifacts / result.ident
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.parent.name == "job_events" for p in files), "job events are kept (redacted)"
    names = {p.name for p in files}
    assert "command" not in names and not (run_dir / "env").exists()
    for path in files:
        data = path.read_bytes()
        for secret in (canary, token, param_secret):
            assert secret.encode() not in data, f"{secret[:6]}… leaked into {path.relative_to(run_dir)}"
    assert stat.S_IMODE(runner_artifacts.stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in files if p.parent.name == "job_events")


async def test_old_artifact_dirs_are_pruned(localhost_inventory_path: Path, runner_artifacts: Path) -> None:
    idents = []
    for i in range(4):
        result = await run_playbook(
            request(
                localhost_inventory_path,
                runner_artifacts,
                RunMode.CHECK,
                PLAYBOOKS / "statuses.yml",
                keep_artifacts=2,
                ident=f"prune-{i}",
            )
        )
        idents.append(result.ident)
    assert sorted(p.name for p in runner_artifacts.iterdir()) == ["prune-2", "prune-3"]
    with pytest.raises(RunnerError, match="already exists"):
        await run_playbook(
            request(
                localhost_inventory_path,
                runner_artifacts,
                RunMode.CHECK,
                PLAYBOOKS / "statuses.yml",
                ident="prune-3",
            )
        )


def _ansible_processes(root: Path) -> list[str]:
    """ansible-playbook processes (main or worker) of runs under ``root`` still alive.

    Bounded wait for them to go; returns "pid status cmdline" of the survivors.
    """
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if "ansible-playbook" not in " ".join(proc.info.get("cmdline") or []):
                continue
            with contextlib.suppress(psutil.Error):
                data_dir = proc.environ().get("AWX_ISOLATED_DATA_DIR", "")
                if data_dir.startswith(str(root)) and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{proc.pid} {proc.status()} ppid={proc.ppid()} {' '.join(proc.cmdline())}")
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)
