"""The lifecycle across execution nodes, through the change engine: plan → approve → apply.

The bed (tests/testbed/nodes.py): two sites, each a node container plus two SSH targets
on the site's own Docker network (the controller can neither resolve nor log into them),
and one docker-connection host run locally. The engine is built from the config alone
(``nodes:`` lists both nodes), so what a server or ``tailops plans`` would do is what
runs here: the catalog's ``tb_marker`` (test-only) through real forced-command sshd,
real ``ansible-runner worker`` processes and real targets.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tailops.audit import AuditLog
from tailops.changes import plans
from tailops.changes.catalog import Catalog
from tailops.changes.engine import ChangeEngine
from tailops.changes.executors import ShardedExecutor
from tailops.changes.models import RunEvent
from tailops.changes.plans import Plan, Run
from tailops.config import Settings
from tailops.errors import StalePlan
from tailops.principal import Principal
from tailops.store import Store
from tests.helpers import REPO_ROOT
from tests.testbed.nodes import NodeBed, make_node_bed

EXTRA = REPO_ROOT / "tests" / "fixtures" / "catalog_extra"
ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-alice")
BOB = Principal("bob", frozenset({"system:admin", "changes:approve"}), "http", token_id="jti-bob")
ALL = ["a1", "a2", "b1", "b2", "l1"]
MARKER = "/etc/tailops-tb-marker"


@pytest.fixture(scope="module")
def bed(docker_client: Any, test_labels: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeBed]:
    b = make_node_bed(docker_client, test_labels, tmp_path_factory.mktemp("nodebed-engine"))
    yield b
    b.cleanup()


def _node_config(bed: NodeBed, site: str, **overrides: Any) -> dict[str, Any]:
    node = bed.node_settings(site, **overrides)
    return {**node.model_dump(), "key": str(node.key), "known_hosts": str(node.known_hosts)}


@pytest.fixture
def catalog(tmp_path: Path, bed: NodeBed) -> dict[str, str]:
    playbooks, roles = tmp_path / "catalog" / "playbooks", tmp_path / "catalog" / "roles"
    playbooks.mkdir(parents=True)
    roles.mkdir()
    shutil.copytree(EXTRA / "playbooks" / "tb_marker", playbooks / "tb_marker")
    shutil.copytree(EXTRA / "roles" / "tb_marker", roles / "tb_marker")
    Catalog.load(playbooks, roles).lock()
    assert bed.inventory is not None
    # tb_marker runs on `targets`. The nodes reach their targets over SSH with a key the node
    # holds; the targets' host keys are new to the node (a fresh bed), so this test inventory
    # accepts them (the engine itself keeps host key checking on).
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        bed.inventory.read_text() + "\n[targets:children]\nsite_a\nsite_b\nlocal_hosts\n\n[site_a:vars]\n"
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
        "[site_b:vars]\n"
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
    )
    return {"playbooks_dir": str(playbooks), "roles_dir": str(roles), "inventory": str(inventory)}


@pytest.fixture
def make_engine(
    make_settings: Callable[..., Settings], bed: NodeBed, catalog: dict[str, str]
) -> Iterator[Callable[..., ChangeEngine]]:
    """An engine on one data dir, built from config alone (``nodes`` given as config sections)."""
    opened: list[tuple[Store, AuditLog]] = []

    def make(nodes: list[dict[str, Any]] | None = None) -> ChangeEngine:
        if nodes is None:
            nodes = [_node_config(bed, "a"), _node_config(bed, "b")]
        settings = make_settings(changes={**catalog, "run_timeout": "30m"}, nodes=nodes)
        settings.server.data_dir.mkdir(mode=0o700, exist_ok=True)
        store, audit = Store(settings.db_path), AuditLog(settings.audit_path)
        opened.append((store, audit))
        return ChangeEngine(settings, store, audit, instance_id=uuid.uuid4().hex)

    yield make
    for store, audit in opened:
        audit.close()
        store.close()


def _marker(bed: NodeBed, host: str) -> str | None:
    rc, out = bed.exec(bed.target_container(host), f"cat {MARKER}")
    return out if rc == 0 else None


def test_plan_approve_apply_across_two_nodes_and_the_controller(
    bed: NodeBed, make_engine: Callable[..., ChangeEngine]
) -> None:
    engine = make_engine()
    assert isinstance(engine.executor, ShardedExecutor)
    for host in ALL:
        bed.exec(bed.target_container(host), f"rm -f {MARKER}")

    plan = anyio.run(engine.plan, ALICE, "tb_marker", {"message": "across nodes"})
    assert plan.status == "pending", plan.status_reason
    assert plan.host_names == ALL
    # The plan says where each host runs and what each node was sent.
    assert plan.placement is not None
    assert plan.placement.hosts_by_node() == {"node-a": ["a1", "a2"], "node-b": ["b1", "b2"], "local": ["l1"]}
    bundles = plan.placement.bundles()
    assert set(bundles) == {"node-a", "node-b"} and bundles["node-a"] != bundles["node-b"]
    for host in ALL:
        [write] = [t for t in plan.host(host).tasks if t.task == "Write the marker file"]
        assert write.changed and write.diff and "+across nodes" in write.diff, host
        assert _marker(bed, host) is None, "a check run wrote the file"
    # Stored: the placement reads back and the id covers it.
    stored = plans.get_plan(engine.store, plan.id)
    assert stored.placement == plan.placement

    engine.approve(BOB, plan.id)
    seen: list[RunEvent] = []
    run = anyio.run(lambda: engine.apply(BOB, plan.id, on_event=seen.append))
    assert run.status == "succeeded", run.status_reason
    assert run.mismatches == []
    assert {o.host: (o.planned, o.actual) for o in run.outcome} == {
        h: (["Write the marker file"], ["Write the marker file"]) for h in ALL
    }
    for host in ALL:
        assert _marker(bed, host) == "across nodes\n", host
    # Every shard's events are in the run's own store, in one increasing stream.
    stored_events = plans.run_events(engine.store, run.id, limit=1000, kinds=["task_result"])
    assert {e.host for e in stored_events if e.task == "Write the marker file" and e.changed} == set(ALL)
    assert [e.seq for e in plans.run_events(engine.store, run.id, limit=1000)] == list(range(len(seen)))
    counters = [e.counter for e in seen]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert seen[-1].kind == "run_end"
    # The audit trail is the engine's, as for a local run.
    records = [json.loads(x) for x in engine.settings.audit_path.read_text().splitlines()]
    events = [r["event"] for r in records if r.get("kind") == "change"]
    assert events == ["plan:stored", "plan:approved", "run:started", "run:finished"]


@pytest.mark.parametrize("change", ["node removed", "claim moved"])
def test_a_node_config_changed_after_planning_makes_apply_refuse_as_stale(
    bed: NodeBed, make_engine: Callable[..., ChangeEngine], change: str
) -> None:
    engine = make_engine()
    for host in ("b1", "b2"):
        bed.exec(bed.target_container(host), f"rm -f {MARKER}")
    plan = anyio.run(engine.plan, ALICE, "tb_marker", {"message": change}, "site_b:l1")
    assert plan.placement is not None
    assert plan.placement.hosts_by_node() == {"node-b": ["b1", "b2"], "local": ["l1"]}
    engine.approve(BOB, plan.id)
    if change == "node removed":
        nodes = [_node_config(bed, "a")]
        expected = "b1, b2 moved from node node-b to this machine"
    else:  # node-a now claims b2 before node-b does (first claim wins)
        nodes = [_node_config(bed, "a", claims=["site_a", "b2"]), _node_config(bed, "b")]
        expected = "b2 moved from node node-b to node node-a"
    later = make_engine(nodes)  # same data dir: the restarted server with the edited config
    with pytest.raises(StalePlan, match=expected):
        anyio.run(later.apply, BOB, plan.id)
    after = plans.get_plan(later.store, plan.id)
    assert after.status == "stale" and expected in (after.status_reason or "")
    assert plans.list_runs(later.store, plan_id=plan.id)[1] == 0
    for host in ("b1", "b2"):
        assert _marker(bed, host) is None, "nothing may run on a stale plan"


def test_cancel_through_the_engine_reaches_the_node(bed: NodeBed, make_engine: Callable[..., ChangeEngine]) -> None:
    engine = make_engine()
    for host in ("a1", "a2"):
        bed.exec(bed.target_container(host), f"rm -f {MARKER}")
    plan = anyio.run(engine.plan, ALICE, "tb_marker", {"message": "to cancel", "wait_seconds": 600}, "site_a")
    assert plan.placement is not None and plan.placement.hosts_by_node() == {"node-a": ["a1", "a2"]}
    engine.approve(BOB, plan.id)
    started: list[Run] = []
    asked: list[float] = []

    async def main() -> Run:
        async def on_start(run: Run, _plan: Plan) -> None:
            started.append(run)

        async def on_event(event: RunEvent) -> None:
            # The marker is written, the 600 s wait comes next: cancel now.
            if event.kind == "task_result" and event.task == "Write the marker file" and not asked:
                asked.append(time.monotonic())
                await engine.cancel(BOB, started[0].id, via="test")

        with anyio.fail_after(600):
            return await engine.apply(BOB, plan.id, on_event=on_event, on_start=on_start)

    run = anyio.run(main)
    assert asked, "the marker task never reported"
    assert time.monotonic() - asked[0] < 300, "the run waited the task out instead of stopping"
    assert run.status == "canceled", run.status_reason
    assert run.cancel_requested_by and "bob" in run.cancel_requested_by
    # The node's hosts end unreachable (interrupted by the cancel), never silently missing.
    assert {o.host: o.status for o in run.outcome} == {"a1": "unreachable", "a2": "unreachable"}
    # The events up to the cancel are in the run's store (the marker was written for real).
    written = plans.run_events(engine.store, run.id, limit=1000, kinds=["task_result"])
    assert {e.host for e in written if e.task == "Write the marker file" and e.changed} <= {"a1", "a2"}
    assert any(e.task == "Write the marker file" and e.changed for e in written)
    bed.wait_node_clean("a")


def test_recovery_after_a_crash_cancels_the_nodes_job(bed: NodeBed, make_engine: Callable[..., ChangeEngine]) -> None:
    """What a restarted server does for a run its predecessor left: ``cancel <ident>.<node>``."""
    engine = make_engine()
    plan = anyio.run(engine.plan, ALICE, "tb_marker", {"message": "to recover", "wait_seconds": 600}, "a1")
    engine.approve(BOB, plan.id)
    started: list[Run] = []
    stopped: list[int] = []

    async def main() -> Run:
        async def on_start(run: Run, _plan: Plan) -> None:
            started.append(run)

        async def on_event(event: RunEvent) -> None:
            if event.kind == "task_result" and event.task == "Write the marker file" and not stopped:
                ident = started[0].runner_ident
                assert ident is not None
                # A fresh executor from the same config, as a restarted server builds it.
                fresh = make_engine().executor
                stopped.append(await anyio.to_thread.run_sync(fresh.recover, ident))

        with anyio.fail_after(600):
            return await engine.apply(BOB, plan.id, on_event=on_event, on_start=on_start)

    run = anyio.run(main)
    assert stopped == [1], "the node did not report the job signalled"
    # The node ended the job as canceled; its host is interrupted (unreachable), never silently missing.
    assert run.status == "canceled" and [(o.host, o.status) for o in run.outcome] == [("a1", "unreachable")]
    bed.wait_node_clean("a")
