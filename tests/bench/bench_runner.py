"""Runner adapter overhead: check run of the catalog's package_install on 1, 5, 20 hosts.

For each host count the same inventory (container hosts over the docker
connection, offline apt repo) is planned alternately through
:func:`tailops.changes.ansible.job.run_playbook` and through plain
``ansible-playbook --check --diff`` (the baseline) with the same Ansible
settings (pipelining, interpreter, roles path); the median wall times give the
ratio (target <= 1.10). Host bring-up time for 5 and 20 hosts is reported too.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
import docker

from tailops.changes.ansible.job import run_playbook
from tailops.changes.models import RunMode, RunRequest
from tests.bench.common import Row
from tests.helpers import REPO_ROOT, TEST_LABEL
from tests.testbed.aptrepo import build_apt_repo
from tests.testbed.hosts import HostFactory, HostSet

PLAYBOOK = REPO_ROOT / "playbooks" / "package_install" / "playbook.yml"
ROLES = REPO_ROOT / "roles"
EXTRAVARS = {"packages": [{"name": "tbdemo", "version": "1.1-1"}], "allow_downgrade": False}
HOST_COUNTS = (1, 5, 20)
REPEATS = {1: 5, 5: 3, 20: 3}
TARGET = 1.10


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its waited-for children (Ansible and its forks)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        u = resource.getrusage(who)
        total += u.ru_utime + u.ru_stime
    return total


def _measured(fn: Callable[[], float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    c0 = _cpu_s()
    wall = fn()
    return wall, _cpu_s() - c0


def _plain(hosts: HostSet, workdir: Path) -> float:
    extravars = workdir / "extravars.json"
    extravars.write_text(json.dumps(EXTRAVARS))
    env = {
        "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [
            str(Path(sys.prefix) / "bin" / "ansible-playbook"),
            "--check",
            "--diff",
            "-i",
            str(hosts.inventory),
            "-e",
            f"@{extravars}",
            "--forks",
            "5",
            str(PLAYBOOK),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"plain ansible-playbook failed (rc={proc.returncode}): {proc.stdout[-2000:]}")
    return elapsed


def _adapter(hosts: HostSet, artifacts: Path) -> float:
    async def go() -> float:
        started = time.perf_counter()
        result = await run_playbook(
            RunRequest(
                playbook=PLAYBOOK,
                inventory=hosts.inventory,
                mode=RunMode.CHECK,
                artifacts_root=artifacts,
                extravars=EXTRAVARS,
                roles_path=ROLES,
                forks=5,
            )
        )
        elapsed = time.perf_counter() - started
        if result.status != "successful":
            raise RuntimeError(f"adapter run {result.status}: {result.hosts}")
        changed = {h: r.changed_tasks for h, r in result.hosts.items()}
        if len(changed) != len(hosts.names) or not all(changed.values()):
            raise RuntimeError(f"expected every host to plan an install: {changed}")
        return elapsed

    return anyio.run(go)


def run() -> list[Row]:
    if not PLAYBOOK.is_file():
        raise RuntimeError(f"{PLAYBOOK} is missing (the catalog's package_install playbook)")
    client = docker.from_env(timeout=120)
    labels = {TEST_LABEL: f"bench-{uuid.uuid4().hex[:8]}"}
    repo = build_apt_repo()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tailops-bench-runner-") as tmp:
        work = Path(tmp)
        for count in HOST_COUNTS:
            factory = HostFactory(client, labels, work / f"bed{count}")
            try:
                hosts = factory.make(count, apt_repo=repo, preinstall={"tbdemo": "1.0-1"})
                if count in (5, 20):
                    rows.append(Row("testbed", f"bring up {count} hosts", factory.last_bringup_s or 0, "s"))
                artifacts = work / f"runs{count}"
                _adapter(hosts, artifacts)  # warm-up: page cache, python bytecode, docker exec paths
                adapter: list[tuple[float, float]] = []
                plain: list[tuple[float, float]] = []
                for i in range(REPEATS[count]):
                    # alternate the order so drifting machine load hits both sides alike
                    if i % 2 == 0:
                        adapter.append(_measured(partial(_adapter, hosts, artifacts)))
                        plain.append(_measured(partial(_plain, hosts, work)))
                    else:
                        plain.append(_measured(partial(_plain, hosts, work)))
                        adapter.append(_measured(partial(_adapter, hosts, artifacts)))
                a, p = statistics.median(w for w, _ in adapter), statistics.median(w for w, _ in plain)
                a_cpu, p_cpu = statistics.median(c for _, c in adapter), statistics.median(c for _, c in plain)
                rows.append(
                    Row(
                        "runner",
                        f"package_install check, {count} host{'s' if count > 1 else ''}",
                        a,
                        "s",
                        baseline=p,
                        target=f"ratio <= {TARGET:.2f}",
                        ok=a / p <= TARGET,
                        note=f"median of {REPEATS[count]}",
                    )
                )
                # Wall time on a 2-core box swings +-10 % run to run (docker exec latency);
                # CPU time (server process + Ansible and its forks) shows the adapter's own cost.
                rows.append(
                    Row(
                        "runner",
                        f"  CPU seconds, {count} host{'s' if count > 1 else ''}",
                        a_cpu,
                        "s",
                        baseline=p_cpu,
                        note="adapter process + children vs ansible-playbook + children",
                    )
                )
            finally:
                factory.cleanup()
    client.close()
    return rows
