"""The catalog's package and service playbooks against real container hosts.

Each test validates its parameters through the catalog, runs the pinned catalog
playbook through the runner adapter in check mode, then for real, then again,
and checks: the check run predicts exactly which tasks the real run changes on
each host, the diffs name the package versions that change, a repeat changes
nothing, unknown names are refused on the host, an unreachable host is reported
while the others proceed. The hosts' only apt sources are the offline test
repositories (tests/testbed/aptrepo.py); service_state runs against a container
with systemd as PID 1 (roles/_molecule/build-images.sh builds it from the base
image).
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tailops.changes.ansible.job import run_playbook
from tailops.changes.models import RunMode, RunRequest, RunResult, TaskStatus
from tests.helpers import REPO_ROOT, unique_name
from tests.testbed.aptrepo import AptRepo
from tests.testbed.catalog_runs import CATALOG, run_pinned
from tests.testbed.hosts import HostSet, MakeHosts

pytestmark = pytest.mark.docker

INSTALL = "Install packages (apt)"
REMOVE = "Remove packages (apt)"
UPGRADE = "Upgrade packages (apt)"


# Run a pinned catalog playbook the way the planner/executor will.
run = functools.partial(run_pinned, extra_env={"ANSIBLE_HOST_KEY_CHECKING": "False"})


def versions(bed: HostSet, host: str, *packages: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for package in packages:
        _rc, text = bed.exec(host, f"dpkg-query -W -f '${{db:Status-Abbrev}}${{Version}}' {package} 2>/dev/null")
        out[package] = text[3:].strip() if text.startswith("ii ") else ""
    return out


def assert_check_predicts_apply(check: RunResult, apply: RunResult) -> None:
    assert check.mode is RunMode.CHECK and apply.mode is RunMode.APPLY
    assert set(check.hosts) == set(apply.hosts)
    assert check.changed_tasks() == apply.changed_tasks()
    for host, result in check.hosts.items():
        assert result.status == apply.hosts[host].status, host


async def test_package_install_check_predicts_apply_then_nothing_changes(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    bed = container_hosts(2, ssh=1, apt_repo=apt_repo, preinstall={"tbdemo": "1.0-1"})
    params = {"packages": [{"name": "tbdemo", "version": "1.1-1"}, {"name": "tbtool"}]}

    check = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.CHECK)
    assert check.status == "successful", check
    for host in bed.names:
        assert check.hosts[host].changed_tasks == [INSTALL]
        diff = check.task(host, INSTALL).diff or ""
        assert "tbdemo (1.0-1 => 1.1-1)" in diff
        assert "tbtool" in diff
        assert versions(bed, host, "tbdemo", "tbtool") == {"tbdemo": "1.0-1", "tbtool": ""}  # untouched
        # The lookup only reads: it runs in check mode and is not a "not simulated" task.
        lookup = check.task(host, "Look the packages up")
        assert lookup.status is TaskStatus.OK and not lookup.not_simulated

    apply = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert apply.status == "successful", apply
    assert_check_predicts_apply(check, apply)
    for host in bed.names:
        assert versions(bed, host, "tbdemo", "tbtool") == {"tbdemo": "1.1-1", "tbtool": "1.1-1"}

    again = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.APPLY)
    recheck = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.CHECK)
    for result in (again, recheck):
        assert result.status == "successful"
        assert result.changed_tasks() == {host: [] for host in bed.names}


async def test_package_install_pins_a_downgrade_only_when_allowed(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    bed = container_hosts(1, apt_repo=apt_repo, preinstall={"tbdemo": "2.0-1"})
    [host] = bed.names
    params: dict[str, Any] = {"packages": [{"name": "tbdemo", "version": "1.0-1"}]}
    refused = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.CHECK)
    assert refused.status == "failed"
    failed = refused.task(host, "Look the packages up")
    assert failed.status is TaskStatus.FAILED
    assert "refusing to downgrade tbdemo 2.0-1 -> 1.0-1" in (failed.msg or "")

    params["allow_downgrade"] = True
    check = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.CHECK)
    assert "tbdemo (2.0-1 => 1.0-1)" in (check.task(host, INSTALL).diff or "")
    apply = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert_check_predicts_apply(check, apply)
    assert versions(bed, host, "tbdemo") == {"tbdemo": "1.0-1"}


async def test_unknown_package_and_version_are_refused_on_the_host(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    bed = container_hosts(1, apt_repo=apt_repo)
    [host] = bed.names
    for name, params, message in (
        (
            "package_install",
            {"packages": [{"name": "tbdemo"}, {"name": "tbnosuch"}]},
            "unknown package(s): tbnosuch - not known to apt on this host",
        ),
        (
            "package_install",
            {"packages": [{"name": "tbdemo", "version": "9.9-1"}]},
            "tbdemo=9.9-1 (available: 1.0-1, 1.0-2, 1.1-1, 2.0-1)",
        ),
        ("package_remove", {"packages": [{"name": "tbnosuch"}]}, "unknown package(s): tbnosuch"),
        ("package_update", {"packages": ["tbnosuch"]}, "unknown package(s): tbnosuch"),
    ):
        for mode in (RunMode.CHECK, RunMode.APPLY):
            result = await run(name, params, bed.inventory, runner_artifacts, mode)
            assert result.status == "failed", (name, mode)
            assert result.hosts[host].status == "failed"
            failed = [t for t in result.hosts[host].tasks if t.status is TaskStatus.FAILED]
            assert len(failed) == 1 and message in (failed[0].msg or ""), (name, failed)
            assert result.changed_tasks() == {host: []}
    assert versions(bed, host, "tbdemo") == {"tbdemo": ""}


async def test_unreachable_host_is_reported_while_the_others_proceed(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    bed = container_hosts(2, apt_repo=apt_repo)
    gone = bed.add_unreachable("ssh")
    params = {"packages": [{"name": "tbtool", "version": "1.0-1"}]}
    check = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.CHECK)
    apply = await run("package_install", params, bed.inventory, runner_artifacts, RunMode.APPLY)
    for result in (check, apply):
        assert result.status == "failed"
        assert result.hosts[gone].status == "unreachable", result.hosts[gone]
        assert result.hosts[gone].tasks[0].status is TaskStatus.UNREACHABLE
        for host in bed.names:
            assert result.hosts[host].changed_tasks == [INSTALL], host
    assert_check_predicts_apply(check, apply)
    for host in bed.names:
        assert versions(bed, host, "tbtool") == {"tbtool": "1.0-1"}


async def test_package_update_security_only_then_all_and_reboot_required(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    bed = container_hosts(2, apt_repo=apt_repo, preinstall={"tbdemo": "1.0-1", "tbsec": "1.0-1", "tbtool": "1.0-1"})
    security = {"security_only": True}
    check = await run("package_update", security, bed.inventory, runner_artifacts, RunMode.CHECK)
    assert check.status == "successful", check
    for host in bed.names:
        report = check.task(host, "Report upgradable packages").msg or ""
        assert report.startswith("2 upgradable (security only):")
        assert "tbdemo 1.0-1 -> 1.0-2 (security)" in report and "tbsec 1.0-1 -> 1.0-2 (security)" in report
        assert "tbtool" not in report
        diff = check.task(host, UPGRADE).diff or ""
        assert "tbdemo (1.0-1 => 1.0-2)" in diff and "tbsec (1.0-1 => 1.0-2)" in diff
        assert "tbtool" not in diff
        assert check.task(host, "Report reboot required").msg == "reboot_required=false (no /var/run/reboot-required)"

    apply = await run("package_update", security, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert_check_predicts_apply(check, apply)
    for host in bed.names:
        assert versions(bed, host, "tbdemo", "tbsec", "tbtool") == {
            "tbdemo": "1.0-2",
            "tbsec": "1.0-2",
            "tbtool": "1.0-1",
        }
    again = await run("package_update", security, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert again.changed_tasks() == {host: [] for host in bed.names}
    assert again.task(bed.names[0], "Report upgradable packages").msg == "0 upgradable (security only): none"

    # Everything else, with a reboot flagged on one host.
    flagged = bed.names[0]
    assert bed.exec(flagged, "touch /var/run/reboot-required")[0] == 0
    check_all = await run("package_update", {}, bed.inventory, runner_artifacts, RunMode.CHECK)
    for host in bed.names:
        report = check_all.task(host, "Report upgradable packages").msg or ""
        assert "tbdemo 1.0-2 -> 2.0-1" in report and "tbtool 1.0-1 -> 1.1-1" in report
        expected = "true" if host == flagged else "false"
        assert (check_all.task(host, "Report reboot required").msg or "").startswith(f"reboot_required={expected}")
    apply_all = await run("package_update", {}, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert_check_predicts_apply(check_all, apply_all)
    subset = await run("package_update", {"packages": ["tbdemo"]}, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert subset.changed_tasks() == {host: [] for host in bed.names}
    for host in bed.names:
        assert versions(bed, host, "tbdemo", "tbtool") == {"tbdemo": "2.0-1", "tbtool": "1.1-1"}


async def test_package_remove_purges_and_repeats_as_no_change(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    bed = container_hosts(2, apt_repo=apt_repo, preinstall={"tbdemo": "1.0-1", "tbconf": "1.0-1"})
    params = {"packages": [{"name": "tbconf"}], "purge": True}
    check = await run("package_remove", params, bed.inventory, runner_artifacts, RunMode.CHECK)
    for host in bed.names:
        assert check.hosts[host].changed_tasks == [REMOVE]
        assert "tbconf" in (check.task(host, REMOVE).diff or "")
        assert bed.exec(host, "test -f /etc/tbconf.conf")[0] == 0  # untouched by the check
    apply = await run("package_remove", params, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert_check_predicts_apply(check, apply)
    for host in bed.names:
        assert versions(bed, host, "tbconf", "tbdemo") == {"tbconf": "", "tbdemo": "1.0-1"}
        assert bed.exec(host, "test -e /etc/tbconf.conf")[0] != 0  # purged
    again = await run("package_remove", params, bed.inventory, runner_artifacts, RunMode.APPLY)
    assert again.changed_tasks() == {host: [] for host in bed.names}


# --------------------------------------------------------------------------- service_state


@pytest.fixture(scope="module")
def systemd_image(docker_client: Any, base_image: str) -> str:
    proc = subprocess.run(
        [str(REPO_ROOT / "roles" / "_molecule" / "build-images.sh")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return "tailops-target:systemd"


@pytest.fixture
def systemd_host(
    docker_client: Any, systemd_image: str, test_labels: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """A container with systemd as PID 1 and its INI inventory (group targets)."""
    name = unique_name("systemd")
    container = docker_client.containers.run(
        systemd_image,
        name=name,
        detach=True,
        labels=test_labels,
        tmpfs={"/run": "", "/run/lock": ""},
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}},
        network_mode="none",
    )
    try:
        for _ in range(100):
            _rc, out = container.exec_run(["systemctl", "is-system-running"])
            if out.decode().strip() in ("running", "degraded"):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"systemd did not boot in {name}")
        inventory = tmp_path / "systemd.ini"
        inventory.write_text(
            f"[targets]\n{name} ansible_connection=community.docker.docker "
            "ansible_python_interpreter=/usr/bin/python3\n"
        )
        yield name, inventory
    finally:
        container.remove(force=True, v=True)


def unit_state(docker_client: Any, name: str) -> str:
    _rc, out = docker_client.containers.get(name).exec_run(["systemctl", "is-active", "tbsvc"])
    return str(out.decode().strip())


async def test_service_state_on_a_systemd_host(
    docker_client: Any, systemd_host: tuple[str, Path], runner_artifacts: Path
) -> None:
    host, inventory = systemd_host
    task = "Set the service state"
    start = {"name": "tbsvc", "state": "started"}
    check = await run("service_state", start, inventory, runner_artifacts, RunMode.CHECK)
    assert check.hosts[host].changed_tasks == [task]
    assert unit_state(docker_client, host) == "inactive"
    apply = await run("service_state", start, inventory, runner_artifacts, RunMode.APPLY)
    assert_check_predicts_apply(check, apply)
    assert unit_state(docker_client, host) == "active"
    again = await run("service_state", start, inventory, runner_artifacts, RunMode.CHECK)
    assert again.changed_tasks() == {host: []}

    _rc, before = docker_client.containers.get(host).exec_run(["systemctl", "show", "-p", "ExecMainPID", "tbsvc"])
    restart = {"name": "tbsvc", "state": "restarted"}
    check_restart = await run("service_state", restart, inventory, runner_artifacts, RunMode.CHECK)
    apply_restart = await run("service_state", restart, inventory, runner_artifacts, RunMode.APPLY)
    assert_check_predicts_apply(check_restart, apply_restart)
    assert apply_restart.hosts[host].changed_tasks == [task]
    _rc, after = docker_client.containers.get(host).exec_run(["systemctl", "show", "-p", "ExecMainPID", "tbsvc"])
    assert before != after  # a new main process: it really restarted

    unknown = await run(
        "service_state", {"name": "tbnosuch", "state": "started"}, inventory, runner_artifacts, RunMode.CHECK
    )
    assert unknown.status == "failed"
    assert "Could not find the requested service tbnosuch" in (unknown.task(host, task).msg or "")


async def run_unvalidated(
    name: str, params: dict[str, Any], inventory: Path, artifacts: Path, mode: RunMode
) -> RunResult:
    """The pinned playbook with params the catalog would refuse: a direct ansible run."""
    entry = CATALOG.require_pinned(name)
    return await run_playbook(
        RunRequest(
            playbook=entry.playbook,
            inventory=inventory,
            mode=mode,
            artifacts_root=artifacts,
            extravars=entry.extravars(params),
            roles_path=CATALOG.roles_dir,
        )
    )


def unit_active(docker_client: Any, host: str, unit: str) -> str:
    _rc, out = docker_client.containers.get(host).exec_run(["systemctl", "is-active", unit])
    return str(out.decode().strip())


async def test_service_state_refuses_other_unit_types_and_protected_services_on_the_host(
    docker_client: Any, systemd_host: tuple[str, Path], runner_artifacts: Path
) -> None:
    """The role refuses what the catalog refuses, so a direct run (no catalog check) is
    refused too, in both modes, before anything changes; and an alias of a protected unit
    is caught on the host, where only systemd knows it."""
    host, inventory = systemd_host
    box = docker_client.containers.get(host)
    # An alias (not a protected name) of dbus.service, and a protected unit of our own.
    setup = (
        "ln -s /lib/systemd/system/dbus.service /etc/systemd/system/tbalias.service"
        " && printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/tailops-tbprobe.service"
        " && systemctl daemon-reload"
    )
    rc, out = box.exec_run(["sh", "-c", setup])
    assert rc == 0, out
    _rc, names = box.exec_run(["systemctl", "show", "-p", "Names", "dbus.service"])
    assert "tbalias.service" in names.decode(), names
    assert CATALOG.validate_params("service_state", {"name": "tbalias", "state": "stopped"})  # the name passes

    refusals = [
        (
            "service_state",
            {"name": "poweroff.target", "state": "started"},
            "Refuse a unit that is not a service",
            "is not a systemd service name",
        ),
        (
            "service_state",
            {"name": "dbus", "state": "stopped"},
            "Refuse a protected unit (as asked)",
            "dbus.service is protected",
        ),
        (
            "service_state",
            {"name": "systemd-journald.service", "state": "restarted"},
            "Refuse a protected unit (as asked)",
            "Only the critical-risk playbook service_state_critical",
        ),
        (
            "service_state",
            {"name": "tbalias", "state": "stopped"},
            "Refuse a protected unit (as the host resolves it)",
            "is the unit dbus.service",
        ),
        (
            "service_state_critical",
            {"name": "tbsvc", "state": "started"},
            "Refuse a protected unit (as asked)",
            "service_state_critical acts only on the protected units",
        ),
    ]
    for playbook, params, failed_task, message in refusals:
        for mode in (RunMode.CHECK, RunMode.APPLY):
            result = await run_unvalidated(playbook, params, inventory, runner_artifacts, mode)
            assert result.status == "failed", (playbook, params, mode)
            failed = result.task(host, failed_task)
            assert failed.status is TaskStatus.FAILED, (playbook, params, mode, result.hosts[host].tasks)
            assert message in (failed.msg or ""), failed.msg
            assert result.changed_tasks() == {host: []}
    assert unit_active(docker_client, host, "dbus") == "active"
    assert unit_active(docker_client, host, "tbsvc") == "inactive"
    assert box.exec_run(["systemctl", "is-system-running"])[1].decode().strip() in ("running", "degraded")

    # The critical playbook acts on a protected unit, through the catalog as usual.
    start = {"name": "tailops-tbprobe", "state": "started"}
    check = await run("service_state_critical", start, inventory, runner_artifacts, RunMode.CHECK)
    assert check.hosts[host].changed_tasks == ["Set the service state"], check
    apply = await run("service_state_critical", start, inventory, runner_artifacts, RunMode.APPLY)
    assert_check_predicts_apply(check, apply)
    assert unit_active(docker_client, host, "tailops-tbprobe") == "active"


async def test_service_state_refuses_a_host_without_systemd(container_hosts: MakeHosts, runner_artifacts: Path) -> None:
    bed = container_hosts(1)
    [host] = bed.names
    result = await run(
        "service_state", {"name": "cron", "state": "restarted"}, bed.inventory, runner_artifacts, RunMode.CHECK
    )
    assert result.status == "failed"
    failed = result.task(host, "Refuse hosts not booted with systemd")
    assert failed.status is TaskStatus.FAILED
    assert f"{host} is not running systemd (no /run/systemd/system)" in (failed.msg or "")
    assert result.changed_tasks() == {host: []}
