"""A plan never changes a host, and the package roles work wherever the system Python has python3-apt.

issue 13. Before: ``package_common`` refreshed the apt index with ``check_mode: false``
and apt's default ``auto_install_module_deps``, so planning on a host WITHOUT
python3-apt installed it (``apt-get install python3-apt``) before the first lookup
ever ran; and ``tailops_apt_query`` failed outright when the inventory's interpreter
(e.g. a virtualenv) could not import ``apt``, even where the system Python could.

Here, on real container hosts whose only apt sources are offline:

- a host whose Pythons all lack python3-apt, but whose apt sources OFFER it
  (tests/testbed/images.py): planning package_install and package_update leaves
  ``dpkg -l`` byte-for-byte identical and ends blocked at "Check the apt Python
  bindings" with a message that says what to install; a real run refuses the same way
  (plan and apply agree: nothing ever auto-installs it);
- a host whose inventory interpreter is a virtualenv without python3-apt: the lookups
  re-run under /usr/bin/python3 (as ansible.builtin.apt does), the plan predicts the
  install and the real run does exactly that.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

from tailops.changes.catalog import Catalog
from tailops.changes.models import RunMode, TaskStatus
from tailops.changes.planner import blocked_reason
from tests.testbed.aptrepo import AptRepo
from tests.testbed.catalog_runs import run_pinned
from tests.testbed.hosts import HostSet, MakeHosts
from tests.testbed.images import PYAPT_SOURCE, noapt_image

pytestmark = pytest.mark.docker

run = functools.partial(run_pinned, extra_env={"ANSIBLE_HOST_KEY_CHECKING": "False"})
BINDINGS = "Check the apt Python bindings"
REFRESH = "Refresh the package index (apt)"
VENV = "/opt/tailops-venv"


def dpkg_list(bed: HostSet, host: str) -> str:
    rc, out = bed.exec(host, "dpkg -l")
    assert rc == 0, out
    return out


def test_every_task_that_runs_for_real_in_a_plan_is_declared() -> None:
    """The catalog refuses a manifest whose check_mode_side_effects do not name exactly the
    tasks with check_mode: false; today only the package index refresh does."""
    catalog = Catalog.load()
    for entry in catalog.entries():
        effects = entry.manifest.check_mode_side_effects
        if entry.name.startswith("package_"):
            assert sorted(effects) == [REFRESH, "Refresh the package index (dnf)"], entry.name
            assert "/var/lib/apt/lists" in effects[REFRESH]
        else:
            assert effects == {}, entry.name


async def test_planning_on_a_host_without_python3_apt_installs_nothing(
    docker_client: Any, container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    image = noapt_image(docker_client)
    bed = container_hosts(1, apt_repo=apt_repo, image=image, extra_sources=PYAPT_SOURCE, preinstall={"tbdemo": "1.0-1"})
    [host] = bed.names
    # The trap is armed: apt could install python3-apt right now, and no Python has it.
    rc, policy = bed.exec(host, "apt-cache policy python3-apt")
    assert rc == 0 and "Candidate: 2." in policy, policy
    assert bed.exec(host, "python3 -c 'import apt'")[0] != 0
    before = dpkg_list(bed, host)
    assert re.search(r"^ii\s+tbdemo\s", before, re.M) and not re.search(r"^ii\s+python3-apt\s", before, re.M)

    cases: list[tuple[str, dict[str, Any], RunMode]] = [
        ("package_install", {"packages": [{"name": "tbdemo", "version": "1.1-1"}, {"name": "tbtool"}]}, RunMode.CHECK),
        ("package_update", {}, RunMode.CHECK),
        ("package_update", {"security_only": True}, RunMode.CHECK),
        # A real run refuses the same way: plan and apply agree, nothing auto-installs it.
        ("package_install", {"packages": [{"name": "tbtool"}]}, RunMode.APPLY),
    ]
    for playbook, params, mode in cases:
        result = await run(playbook, params, bed.inventory, runner_artifacts, mode)
        assert dpkg_list(bed, host) == before, (playbook, mode)  # first: nothing was installed
        assert result.status == "failed", (playbook, mode)
        failed = result.task(host, BINDINGS)
        assert failed.status is TaskStatus.FAILED, result.hosts[host].tasks
        msg = failed.msg or ""
        assert "python3-apt is not installed on this host" in msg and "apt-get install python3-apt" in msg, msg
        assert [t.task for t in result.hosts[host].tasks if t.task == REFRESH] == []  # never reached
        assert result.changed_tasks() == {host: []}
        reason = blocked_reason(result) or ""
        assert f"host {host} failed at task '{BINDINGS}'" in reason and "apt-get install python3-apt" in reason
    assert bed.exec(host, "dpkg-query -W -f '${db:Status-Abbrev}' python3-apt")[1].strip() != "ii"


async def test_a_virtualenv_interpreter_without_python3_apt_plans_and_applies(
    container_hosts: MakeHosts, apt_repo: AptRepo, runner_artifacts: Path
) -> None:
    bed = container_hosts(1, apt_repo=apt_repo, preinstall={"tbdemo": "1.0-1"})
    [host] = bed.names
    rc, out = bed.exec(host, f"python3 -m venv --without-pip {VENV} && ! {VENV}/bin/python3 -c 'import apt'")
    assert rc == 0, out  # the venv's Python cannot import apt; /usr/bin/python3 can
    inventory = bed.inventory.with_name("venv.ini")
    inventory.write_text(
        f"[targets]\n{host} ansible_connection=community.docker.docker ansible_python_interpreter={VENV}/bin/python3\n"
    )
    params = {"packages": [{"name": "tbdemo", "version": "1.1-1"}, {"name": "tbtool"}]}
    before = dpkg_list(bed, host)
    check = await run("package_install", params, inventory, runner_artifacts, RunMode.CHECK)
    assert check.status == "successful", blocked_reason(check)
    assert check.hosts[host].changed_tasks == ["Install packages (apt)"]
    assert "tbdemo (1.0-1 => 1.1-1)" in (check.task(host, "Install packages (apt)").diff or "")
    assert dpkg_list(bed, host) == before
    apply = await run("package_install", params, inventory, runner_artifacts, RunMode.APPLY)
    assert apply.status == "successful", blocked_reason(apply)
    assert apply.changed_tasks() == check.changed_tasks()
    rc, out = bed.exec(host, "dpkg-query -W -f '${Version} ' tbdemo tbtool")
    assert out.split() == ["1.1-1", "1.1-1"], out

    update = await run("package_update", {}, inventory, runner_artifacts, RunMode.CHECK)
    assert update.status == "successful", blocked_reason(update)
    assert "tbdemo 1.1-1 -> 2.0-1" in (update.task(host, "Report upgradable packages").msg or "")
