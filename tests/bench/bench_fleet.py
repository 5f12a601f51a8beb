"""Per-host cost on one controller: a package check on 1..20 container hosts.

Why: a check run on 20 hosts took 7.8x one host with today's settings (forks 5,
linear strategy), and the controller's own CPU was most of it. This module
measures what Ansible offers against that, in one run and on the same hosts:
forks (5, 10, 20), strategy (linear/free), fact caching between check and apply
(a jsonfile cache the check run fills and the next run reuses, so the
package_common ``setup`` task is skipped), and the connection plugin; each
tailops run (the catalog's pinned ``package_install`` in check mode through
:func:`tests.testbed.catalog_runs.run_pinned`, i.e. the real runner adapter) is
set against plain ``ansible-playbook --check --diff`` with the same
inventory, playbook, extravars and ``ANSIBLE_*`` environment.

Every sample records wall seconds and two CPU figures, because on this test
bed the targets are containers on the same two cores as the controller:

* ``ctl``: this process + its waited-for children (ansible-playbook, its
  forks, the ``docker`` CLI processes the docker connection spawns) — rusage;
* ``tgt``: the target containers' cgroups (python modules, apt) — cpuacct.

The Docker engine's own CPU (dockerd, containerd, shims) is left out: it is machine-wide,
other users of the engine show up in it, and exited shims take their CPU time with them.

Default (``python -m tests.bench fleet``, about 3 minutes on a quiet machine): 1 and 20 hosts with
today's defaults, the recommended settings and plain ansible-playbook.
``TAILOPS_BENCH_FLEET=full`` runs the matrix hosts (1, 5, 10, 20) x forks
(5, 10, 20) x strategy x fact cache, plus the plain baseline per host count;
``TAILOPS_BENCH_FLEET=profile`` runs the single-knob experiments (poll interval,
forks, free, fact cache, callback off, pipelining off, connection docker_api / ssh)
on 1 and 20 hosts. Wall time follows the machine's load (the last row shows it);
compare CPU seconds across runs, wall only within one.

It never touches containers it did not start (test labels, HostFactory.cleanup).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import docker

from tailops.changes.ansible.environment import build_env
from tailops.changes.models import RunMode, RunRequest
from tests.bench.common import Row
from tests.helpers import TEST_LABEL
from tests.testbed.aptrepo import build_apt_repo
from tests.testbed.catalog_runs import CATALOG, run_pinned
from tests.testbed.hosts import HostFactory, HostSet

__all__ = ["Sample", "Variant", "measure", "run"]

ENTRY = "package_install"
PARAMS: dict[str, Any] = {"packages": [{"name": "tbdemo", "version": "1.1-1"}]}
PREINSTALL = {"tbdemo": "1.0-1"}
TARGET_RATIO = 3.0  # issue 16: 20 hosts <= 3x one host where the cores allow it
_CGROUP = Path("/sys/fs/cgroup/cpuacct/docker")


@dataclass(frozen=True)
class Variant:
    """One way of running the check. ``forks=None`` means one fork per host (capped at 20)."""

    label: str
    forks: int | None = 5
    strategy: str = "linear"
    fact_cache: bool = False
    plain: bool = False
    connection: str = "docker"  # docker | docker_api | ssh
    poll_s: float | None = None  # ansible.cfg internal_poll_interval (no env var exists for it)
    env: Mapping[str, str] = field(default_factory=dict)

    def forks_for(self, hosts: int) -> int:
        return self.forks if self.forks is not None else max(1, min(hosts, 20))


TODAY = Variant("today: forks 5, linear")
# What docs/scale.md recommends: forks >= hosts (no busy-wait for a free worker), the main
# loop's poll at 10 ms instead of 1 ms, and the check run's facts reused by the next run.
# Strategy stays linear: free measured slower and costlier here (includes parsed per host).
BEST = Variant("recommended: forks=hosts, poll 10 ms, fact cache", forks=None, poll_s=0.01, fact_cache=True)
PLAIN = Variant("plain ansible-playbook, forks 5", plain=True)


@dataclass(frozen=True)
class Sample:
    wall: float
    ctl: float
    tgt: float


# --------------------------------------------------------------------------- CPU accounting
def _ctl_cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        u = resource.getrusage(who)
        total += u.ru_utime + u.ru_stime
    return total


def _target_cpu(hosts: HostSet) -> float:
    """CPU seconds the target containers used so far (cgroup v1 cpuacct; 0 where unreadable)."""
    total = 0
    for host in hosts.hosts.values():
        if host.container is None:
            continue
        try:
            total += int((_CGROUP / host.container / "cpuacct.usage").read_text())
        except (OSError, ValueError):
            continue
    return total / 1e9


# --------------------------------------------------------------------------- one run
def _inventory(hosts: HostSet, variant: Variant, workdir: Path) -> Path:
    if variant.connection != "docker_api":
        return hosts.inventory
    text = hosts.inventory.read_text().replace(
        "ansible_connection=community.docker.docker ", "ansible_connection=community.docker.docker_api "
    )
    path = workdir / f"inventory-docker-api-{uuid.uuid4().hex[:6]}.ini"
    path.write_text(text)
    return path


def _ansible_env(variant: Variant, cache_dir: Path) -> dict[str, str]:
    env = {"ANSIBLE_STRATEGY": variant.strategy, **variant.env}
    if variant.poll_s is not None:
        # The runner points ANSIBLE_CONFIG at an empty private file; this one differs only in the poll.
        cfg = cache_dir.with_suffix(".cfg")
        cfg.write_text(f"[defaults]\ninternal_poll_interval = {variant.poll_s}\n")
        env["ANSIBLE_CONFIG"] = str(cfg)
    if variant.fact_cache:
        env.update(
            {
                "ANSIBLE_CACHE_PLUGIN": "jsonfile",
                "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache_dir),
                "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600",
            }
        )
    return env


def _tailops_run(inventory: Path, variant: Variant, forks: int, workdir: Path, env: dict[str, str]) -> None:
    async def go() -> None:
        result = await run_pinned(ENTRY, PARAMS, inventory, workdir / "runs", RunMode.CHECK, extra_env=env, forks=forks)
        if result.status != "successful":
            raise RuntimeError(f"{variant.label}: run {result.status}: {result.hosts}")
        _check_planned({h: r.status for h, r in result.hosts.items()})

    anyio.run(go)


def _plain_run(inventory: Path, forks: int, workdir: Path, env: dict[str, str]) -> None:
    entry = CATALOG.require_pinned(ENTRY)
    extravars = workdir / "extravars.json"
    extravars.write_text(json.dumps(dict(entry.extravars(CATALOG.validate_params(ENTRY, PARAMS)))))
    cfg = workdir / "ansible.cfg"
    cfg.write_text("[defaults]\n")  # replaced by env["ANSIBLE_CONFIG"] when the variant sets a poll
    req = RunRequest(
        playbook=entry.playbook,
        inventory=inventory,
        mode=RunMode.CHECK,
        artifacts_root=workdir,
        roles_path=CATALOG.roles_dir,
        extra_env=env,
    )
    full = build_env(req, ansible_cfg=cfg)
    for key in ("ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_CALLBACKS_ENABLED"):
        full.pop(key, None)
    full["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    proc = subprocess.run(
        [
            str(Path(full["PATH"].split(os.pathsep)[0]) / "ansible-playbook"),
            "--check",
            "--diff",
            "-i",
            str(inventory),
            "-e",
            f"@{extravars}",
            "--forks",
            str(forks),
            str(entry.playbook),
        ],
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"plain ansible-playbook failed (rc={proc.returncode}): {proc.stdout[-2000:]}")
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP") :]
    statuses = {}
    for line in recap.splitlines()[1:]:
        if ":" in line and "changed=" in line:
            name, _, counts = line.partition(":")
            statuses[name.strip()] = "changed" if "changed=0" not in counts else "ok"
    _check_planned(statuses)


def _check_planned(statuses: Mapping[str, str]) -> None:
    """Every host must plan the install (a run that silently did less would look fast)."""
    if not statuses or any(s != "changed" for s in statuses.values()):
        raise RuntimeError(f"expected every host to plan an install: {dict(statuses)}")


def measure(hosts: HostSet, variant: Variant, workdir: Path, *, warm_cache: bool = True) -> Sample:
    """One check run of ``variant`` on ``hosts``; with a fact cache, a prior run fills it first."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = _inventory(hosts, variant, workdir)
    cache_dir = workdir / f"facts-{uuid.uuid4().hex[:6]}"
    env = _ansible_env(variant, cache_dir)
    forks = variant.forks_for(len(hosts.names))

    def once() -> None:
        if variant.plain:
            _plain_run(inventory, forks, workdir, env)
        else:
            _tailops_run(inventory, variant, forks, workdir, env)

    if variant.fact_cache and warm_cache:
        once()  # the "check" that fills the cache; the measured run stands for the apply after it
    c0, t0 = _ctl_cpu(), _target_cpu(hosts)
    w0 = time.perf_counter()
    once()
    wall = time.perf_counter() - w0
    return Sample(wall, _ctl_cpu() - c0, _target_cpu(hosts) - t0)


# --------------------------------------------------------------------------- the table
def _median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.ctl for s in samples),
        statistics.median(s.tgt for s in samples),
    )


def _rows(
    count: int, variant: Variant, s: Sample, *, baseline: Sample | None, one_host: Sample | None, n: int
) -> list[Row]:
    forks = variant.forks_for(count)
    name = f"{count:>2} host{'s' if count > 1 else ' '} | {variant.label} (forks {forks})"
    cpu = f"CPU s: controller {s.ctl:.1f}, targets {s.tgt:.1f}; median of {n}"
    rows = [
        Row(
            "fleet",
            name,
            s.wall,
            "s",
            baseline=None if baseline is None else baseline.wall,
            note=cpu,
        )
    ]
    if one_host is not None and count > 1:
        ratio = s.wall / one_host.wall
        rows.append(
            Row(
                "fleet",
                f"   {count} hosts / 1 host, {variant.label}",
                s.wall,
                "s",
                baseline=one_host.wall,
                target=f"ratio <= {TARGET_RATIO:.0f}",
                ok=ratio <= TARGET_RATIO,
                note=f"hosts/min {60 * count / s.wall:.0f}; ctl CPU per host {s.ctl / count:.2f} s",
            )
        )
    return rows


def _plan() -> tuple[dict[int, list[Variant]], int]:
    mode = os.environ.get("TAILOPS_BENCH_FLEET", "").strip().lower()
    if mode == "full":
        matrix: dict[int, list[Variant]] = {}
        for count in (1, 5, 10, 20):
            variants = [PLAIN]
            for forks in (5, 10, 20):
                if forks > count and forks != 5:
                    continue  # more forks than hosts changes nothing
                for strategy in ("linear", "free"):
                    for cache in (False, True):
                        label = f"forks {forks}, {strategy}{', fact cache' if cache else ''}"
                        variants.append(Variant(label, forks=forks, strategy=strategy, fact_cache=cache))
            matrix[count] = [*variants, BEST]
        return matrix, 1
    if mode == "profile":
        knobs = [
            TODAY,
            Variant("poll 10 ms", poll_s=0.01),
            Variant("forks=hosts", forks=None),
            Variant("forks=hosts, poll 10 ms", forks=None, poll_s=0.01),
            Variant("forks=hosts, poll 10 ms, free", forks=None, poll_s=0.01, strategy="free"),
            BEST,
            Variant("forks=hosts, poll 10 ms, docker_api", forks=None, poll_s=0.01, connection="docker_api"),
            Variant("forks=hosts, poll 10 ms, ssh", forks=None, poll_s=0.01, connection="ssh"),
            Variant(
                "forks=hosts, poll 10 ms, no tailops_taskinfo callback",
                forks=None,
                poll_s=0.01,
                # an empty ANSIBLE_CALLBACKS_ENABLED is an Ansible error; a path without the plugin
                # only warns, and ansible-runner still appends its own callback dir
                env={"ANSIBLE_CALLBACK_PLUGINS": "/nonexistent"},
            ),
            Variant("pipelining off", env={"ANSIBLE_PIPELINING": "False"}),
            PLAIN,
            Variant("plain, forks=hosts, poll 10 ms", forks=None, poll_s=0.01, plain=True),
        ]
        return {1: knobs, 20: knobs}, 1
    return {1: [TODAY, BEST, PLAIN], 20: [TODAY, BEST, PLAIN]}, 1


def run() -> list[Row]:
    matrix, repeats = _plan()
    client = docker.from_env(timeout=180)
    labels = {TEST_LABEL: f"bench-fleet-{uuid.uuid4().hex[:8]}"}
    repo = build_apt_repo()
    rows: list[Row] = []
    one_host: dict[str, Sample] = {}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tailops-bench-fleet-") as tmp:
        work = Path(tmp)
        for count, variants in matrix.items():
            factory = HostFactory(client, labels, work / f"bed{count}")
            try:
                needs_ssh = any(v.connection == "ssh" for v in variants)
                hosts = factory.make(count, apt_repo=repo, preinstall=PREINSTALL)
                ssh_hosts = factory.make(0, ssh=count, apt_repo=repo, preinstall=PREINSTALL) if needs_ssh else None
                rows.append(Row("fleet", f"bring up {count} hosts", factory.last_bringup_s or 0, "s"))
                if count == min(matrix):
                    measure(hosts, TODAY, work / "warm")  # page cache, bytecode, docker exec paths
                results: dict[str, Sample] = {}
                for variant in variants:
                    bed = ssh_hosts if variant.connection == "ssh" and ssh_hosts is not None else hosts
                    samples = [measure(bed, variant, work / f"r{count}") for _ in range(repeats)]
                    results[variant.label] = _median(samples)
                base_key = PLAIN.label if PLAIN.label in results else None
                for variant in variants:
                    s = results[variant.label]
                    baseline = None if variant.plain or base_key is None else results[base_key]
                    if count == 1:
                        one_host[variant.label] = s
                    rows.extend(
                        _rows(count, variant, s, baseline=baseline, one_host=one_host.get(variant.label), n=repeats)
                    )
            finally:
                factory.cleanup()
    client.close()
    # Wall time on a shared 2-core box follows the machine's load; CPU seconds much less so.
    rows.append(
        Row("fleet", "machine load (1-min average) at end", os.getloadavg()[0], "", note=f"at start {load_start:.1f}")
    )
    return rows
