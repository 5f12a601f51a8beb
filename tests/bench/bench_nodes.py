"""Execution nodes: transmit/process overhead on 1 host, and N hosts over 2 nodes vs the controller.

The bed is tests/testbed/nodes.py with ``controller_reach=True``: targets are
named by IP and the site key sits at the same path on the controller and the
node, so one inventory runs either way and the comparison is the same work
(the same SSH targets, the same check run of tests/integration/playbooks/nodes.yml).

* overhead: one host, check run, local :func:`run_playbook` vs
  :func:`run_on_node` (bundle + SSH + worker + stream parsing; the version
  check is done once before and not timed), alternated, medians. Target <= 1.2x.
* split: ``TAILOPS_BENCH_NODE_HOSTS`` hosts (default 20) split over 2 nodes
  (:func:`run_sharded`) vs the same hosts from the controller (forks 5 both
  ways, i.e. 10 forks in total over 2 nodes). Both nodes are containers on this
  2-core machine: they add no CPU, so the figure shows the protocol's cost
  and the effect of forks per node, not what real extra machines would give.

Caveat measured on this machine (cgroup v1): every container shares one
``/docker`` cgroup with ``cpu.shares`` 1024, while processes on the host each
weigh 1024 in the root cgroup. When the machine is busy, the node's
``ansible-playbook`` (in a container) gets a far smaller CPU slice than the
controller's local one, so the node figures here include that starvation, not
only the protocol's cost. Compare them on an idle machine.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import docker

from tailops.changes.ansible.job import run_playbook
from tailops.changes.models import RunMode, RunRequest
from tailops.changes.nodes.distribute import run_sharded
from tailops.changes.nodes.remote import run_on_node
from tailops.changes.nodes.shards import inventory_groups, shard_map
from tailops.changes.nodes.transport import verify_node
from tests.bench.common import Row
from tests.helpers import REPO_ROOT, TEST_LABEL
from tests.testbed.nodes import make_node_bed

PLAYBOOK = REPO_ROOT / "tests" / "integration" / "playbooks" / "nodes.yml"
TARGET = 1.2
REPEATS = 3


def _req(inventory: Path, root: Path) -> RunRequest:
    return RunRequest(
        playbook=PLAYBOOK,
        inventory=inventory,
        mode=RunMode.CHECK,
        artifacts_root=root,
        extra_env={"ANSIBLE_HOST_KEY_CHECKING": "False"},
    )


def run() -> list[Row]:
    hosts_total = int(os.environ.get("TAILOPS_BENCH_NODE_HOSTS", "20"))
    per_site = max(1, hosts_total // 2)
    client = docker.from_env(timeout=60)
    labels = {TEST_LABEL: f"bench-{uuid.uuid4().hex[:8]}"}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tailops-bench-nodes-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        bed = make_node_bed(client, labels, work / "bed", targets=per_site, controller_reach=True)
        bringup = time.perf_counter() - t0
        try:
            assert bed.inventory is not None
            nodes = [bed.node_settings("a"), bed.node_settings("b")]
            for node in nodes:
                verify_node(node)
            req = _req(bed.inventory, work / "runs")
            one = "a1"

            local_s: list[float] = []
            node_s: list[float] = []
            for i in range(REPEATS):
                t = time.perf_counter()
                r = anyio.run(functools.partial(run_playbook, dataclasses.replace(req, limit=one, ident=f"l{i}")))
                local_s.append(time.perf_counter() - t)
                assert r.hosts[one].status == "changed", r.hosts
                t = time.perf_counter()
                n = anyio.run(functools.partial(run_on_node, req, nodes[0], [one], ident=f"n{i}", verify=False))
                node_s.append(time.perf_counter() - t)
                assert n.result.hosts[one].status == "changed", n.result.hosts
            local_med, node_med = statistics.median(local_s), statistics.median(node_s)
            rows.append(
                Row(
                    "nodes",
                    "check run, 1 host, via node vs local",
                    node_med,
                    "s",
                    baseline=local_med,
                    target=f"ratio <= {TARGET}",
                    ok=node_med / local_med <= TARGET,
                    note=f"median of {REPEATS}",
                )
            )

            print(f"  1 host: local {local_s}, via node {node_s}", file=sys.stderr, flush=True)
            # Only the sites' hosts (the bed's docker-connection host l1 is not part of this figure).
            smap = shard_map(inventory_groups(bed.inventory, "site_a:site_b"), nodes)
            everything = ",".join(smap.hosts)
            t = time.perf_counter()
            local_all = anyio.run(lambda: run_playbook(dataclasses.replace(req, limit=everything, ident="all-local")))
            local_wall = time.perf_counter() - t
            t = time.perf_counter()
            split = anyio.run(lambda: run_sharded(req, smap, nodes, ident="all-nodes"))
            split_wall = time.perf_counter() - t
            print(f"  {2 * per_site} hosts: local {local_wall:.1f} s, 2 nodes {split_wall:.1f} s", file=sys.stderr)
            assert len(local_all.hosts) == len(split.result.hosts) == 2 * per_site
            assert split.result.status == local_all.status == "successful"
            rows.append(
                Row(
                    "nodes",
                    f"check run, {2 * per_site} hosts over 2 nodes vs controller",
                    split_wall,
                    "s",
                    baseline=local_wall,
                    note="forks 5 per node and locally; nodes share this machine's 2 cores",
                )
            )
            rows.append(Row("nodes", f"bed bring-up, 2 nodes + {2 * per_site} targets", bringup, "s"))
        finally:
            bed.cleanup()
    return rows
