"""Placement through the engine, without a node container: what a plan records of where its hosts
run, and that apply refuses a plan whose placement moved before anything runs anywhere.

The shard map is computed by the real ``ansible-inventory``; bundles are built for real; the
check runs are real ansible-runner runs of the test-only ``tb_marker`` against ``localhost``
(local connection, check mode writes nothing). Nothing here reaches a node over SSH except the
unreachable-node test (a closed port on this machine). End to end over real nodes:
tests/integration/test_nodes_engine.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from tailops.audit import AuditLog
from tailops.changes import plans
from tailops.changes.catalog import Catalog
from tailops.changes.engine import ChangeEngine
from tailops.changes.executors import (
    Executor,
    LocalExecutor,
    PlacedShard,
    Placement,
    PlacingExecutor,
    ShardedExecutor,
    default_executor,
    placement_changes,
)
from tailops.changes.executors import placement as placement_mod
from tailops.changes.models import RunMode, RunRequest
from tailops.changes.nodes import shards
from tailops.changes.nodes.bundle import build_bundle
from tailops.config import NodeSettings, Settings
from tailops.errors import ConfigError, StalePlan, Unavailable
from tailops.principal import Principal
from tailops.store import Store
from tests.helpers import REPO_ROOT

EXTRA = REPO_ROOT / "tests" / "fixtures" / "catalog_extra"
ALICE = Principal("alice", frozenset({"system:admin", "readonly"}), "http", token_id="jti-alice")
BOB = Principal("bob", frozenset({"system:admin", "changes:approve"}), "http", token_id="jti-bob")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node(tmp: Path, name: str, claims: list[str], **more: Any) -> NodeSettings:
    return NodeSettings.model_validate(
        {
            "name": name,
            "host": "127.0.0.1",
            "port": more.pop("port", _closed_port()),
            "key": tmp / "node_key",
            "known_hosts": tmp / "known_hosts",
            "claims": claims,
            "connect_timeout": "3s",
            **more,
        }
    )


@pytest.fixture
def parts(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[ChangeEngine, Settings, Path]]:
    playbooks, roles = tmp_path / "catalog" / "playbooks", tmp_path / "catalog" / "roles"
    playbooks.mkdir(parents=True)
    roles.mkdir()
    shutil.copytree(EXTRA / "playbooks" / "tb_marker", playbooks / "tb_marker")
    shutil.copytree(EXTRA / "roles" / "tb_marker", roles / "tb_marker")
    Catalog.load(playbooks, roles).lock()
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        f"[targets]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        "[remote]\nfar1\nfar2\n"
    )
    settings = make_settings(
        changes={"playbooks_dir": str(playbooks), "roles_dir": str(roles), "inventory": str(inventory)}
    )
    store = Store(settings.db_path)
    audit = AuditLog(settings.audit_path)
    engine = ChangeEngine(settings, store, audit, instance_id=uuid.uuid4().hex)
    try:
        yield engine, settings, inventory
    finally:
        audit.close()
        store.close()


def _request(settings: Settings, inventory: Path, limit: str | None = None) -> RunRequest:
    assert settings.changes.playbooks_dir is not None and settings.changes.roles_dir is not None
    return RunRequest(
        playbook=(settings.changes.playbooks_dir / "tb_marker" / "playbook.yml").absolute(),
        inventory=inventory,
        mode=RunMode.CHECK,
        artifacts_root=settings.artifacts_dir,
        extravars={"message": "placed"},
        limit=limit,
        roles_path=settings.changes.roles_dir.absolute(),
        ident="check-placement",
    )


# --------------------------------------------------------------------------- the interface
def test_the_executors_keep_the_interface_and_the_config_picks_one(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    sharded = ShardedExecutor(tmp_path, [_node(tmp_path, "dc2", ["remote"])])
    assert isinstance(sharded, Executor) and isinstance(sharded, PlacingExecutor)
    assert isinstance(LocalExecutor(tmp_path), Executor) and not isinstance(LocalExecutor(tmp_path), PlacingExecutor)
    assert isinstance(default_executor(make_settings()), LocalExecutor)
    node = {"name": "dc2", "host": "h", "key": "/k", "known_hosts": "/kh", "claims": ["remote"]}
    chosen = default_executor(make_settings(nodes=[node]))
    assert isinstance(chosen, ShardedExecutor) and [n.name for n in chosen.nodes] == ["dc2"]
    # The two modules name the controller's own shard alike.
    assert placement_mod.LOCAL == shards.LOCAL


def test_no_node_plan_ids_are_what_they_were_before_placements() -> None:
    hosts = [
        plans.HostPrediction(
            host="web1",
            status="changed",
            tasks=[plans.TaskPrediction(task="Write the marker file", status="changed", changed=True, diff="+x\n")],
        )
    ]
    fields: dict[str, Any] = dict(
        playbook="tb_marker",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params={"message": "pin"},
        limit="web1",
        inventory_sha256="b" * 64,
        hosts=hosts,
    )
    # Computed with the code before placements existed (commit c578675): approvals bound to such
    # plans stay valid.
    pinned = "bfae19388056d7a7799ab05ba4e9798ed703c2766b3fce7901ad6200c14b0ec4"
    assert plans.plan_id_for(**fields) == pinned
    assert plans.plan_id_for(**fields, placement=None) == pinned
    local_only = Placement(shard_digest="d" * 64, shards=[PlacedShard(node="local", hosts=["web1"])])
    placed = plans.plan_id_for(**fields, placement=local_only)
    assert placed != pinned
    other = Placement(shard_digest="e" * 64, shards=[PlacedShard(node="dc2", hosts=["web1"], bundle_sha256="f" * 64)])
    assert plans.plan_id_for(**fields, placement=other) not in (pinned, placed)


def test_placement_changes_name_what_moved() -> None:
    planned = Placement(
        shard_digest="1" * 64,
        shards=[
            PlacedShard(node="dc2", hosts=["a1", "a2"], bundle_sha256="b" * 64),
            PlacedShard(node="local", hosts=["l1"]),
        ],
    )
    assert placement_changes(planned, planned, ["a1", "a2", "l1"]) == []
    moved = Placement(
        shard_digest="2" * 64,
        shards=[
            PlacedShard(node="dc2", hosts=["a1"], bundle_sha256="c" * 64),
            PlacedShard(node="local", hosts=["a2", "l1"]),
        ],
    )
    assert placement_changes(planned, moved, ["a1", "a2", "l1"]) == ["a2 moved from node dc2 to this machine"]
    # Nodes gone altogether: every node host moves here.
    assert placement_changes(planned, None, ["a1", "a2", "l1"]) == ["a1, a2 moved from node dc2 to this machine"]
    # A plan from before nodes (None) against a map that keeps every host here: nothing moved.
    all_local = Placement(shard_digest="3" * 64, shards=[PlacedShard(node="local", hosts=["a1", "l1"])])
    assert placement_changes(None, all_local, ["a1", "l1"]) == []
    # Same hosts, another job for the node.
    rebundled = Placement(
        shard_digest="1" * 64,
        shards=[
            PlacedShard(node="dc2", hosts=["a1", "a2"], bundle_sha256="d" * 64),
            PlacedShard(node="local", hosts=["l1"]),
        ],
    )
    [why] = placement_changes(planned, rebundled, ["a1", "a2", "l1"])
    assert why.startswith("the job for node dc2 differs from the one planned (bundle dddddddddddd, plan bbbbbbbbbbbb)")


# --------------------------------------------------------------------------- place
def test_place_splits_the_limit_and_fingerprints_each_node_job(
    parts: tuple[ChangeEngine, Settings, Path], tmp_path: Path
) -> None:
    _engine, settings, inventory = parts
    executor = ShardedExecutor(settings.artifacts_dir, [_node(tmp_path, "dc2", ["remote"])])
    req = _request(settings, inventory)
    placement = anyio.run(executor.place, req)
    assert placement.hosts_by_node() == {"dc2": ["far1", "far2"], "local": ["localhost"]}
    smap = shards.ShardMap((shards.Shard("dc2", ("far1", "far2")), shards.Shard(shards.LOCAL, ("localhost",))))
    assert placement.shard_digest == smap.digest()
    assert placement.bundles() == {"dc2": build_bundle(req, ident="other", hosts=["far1", "far2"]).bundle_sha256}
    # Under a limit, a node with no host of it is no error; its shard is simply absent.
    limited = anyio.run(executor.place, _request(settings, inventory, limit="localhost"))
    assert limited.hosts_by_node() == {"local": ["localhost"]} and limited.bundles() == {}


@pytest.mark.parametrize("limit", [None, "localhost"])
def test_a_node_that_claims_no_host_is_a_clear_config_error(
    parts: tuple[ChangeEngine, Settings, Path], tmp_path: Path, limit: str | None
) -> None:
    _engine, settings, inventory = parts
    nodes = [_node(tmp_path, "dc2", ["remote"]), _node(tmp_path, "dc3", ["nosuchgroup", "db-*"])]
    executor = ShardedExecutor(settings.artifacts_dir, nodes)
    with pytest.raises(ConfigError, match=r"execution node dc3 claims nosuchgroup, db-\*, which match no host"):
        anyio.run(executor.place, _request(settings, inventory, limit=limit))


# --------------------------------------------------------------------------- through the engine
def test_an_unreachable_node_at_plan_time_is_a_clear_error_and_no_plan_is_stored(
    parts: tuple[ChangeEngine, Settings, Path], tmp_path: Path
) -> None:
    engine, settings, _inventory = parts
    engine.executor = ShardedExecutor(settings.artifacts_dir, [_node(tmp_path, "dc2", ["remote"])])
    with pytest.raises(Unavailable, match="node dc2 could not be reached over SSH"):
        anyio.run(engine.plan, ALICE, "tb_marker", {"message": "unreachable"})
    assert plans.list_plans(engine.store)[1] == 0
    # Nothing ran here either: the local shard never started.
    assert not (settings.artifacts_dir.exists() and any(settings.artifacts_dir.iterdir()))


def test_apply_refuses_a_plan_whose_hosts_would_now_run_on_a_node(
    parts: tuple[ChangeEngine, Settings, Path], tmp_path: Path
) -> None:
    """Planned with every host here; a node configured since claims one: stale, naming the move,
    before anything runs (the node is not even contacted: its port is closed)."""
    engine, settings, _inventory = parts
    plan = anyio.run(engine.plan, ALICE, "tb_marker", {"message": "placed here"}, "localhost")
    assert plan.placement is None and plan.host_names == ["localhost"]
    engine.approve(BOB, plan.id)
    engine.executor = ShardedExecutor(settings.artifacts_dir, [_node(tmp_path, "dc2", ["localhost"])])
    with pytest.raises(StalePlan, match="localhost moved from this machine to node dc2"):
        anyio.run(engine.apply, BOB, plan.id)
    after = plans.get_plan(engine.store, plan.id)
    assert after.status == "stale" and "moved from this machine to node dc2" in (after.status_reason or "")
    assert plans.list_runs(engine.store, plan_id=plan.id)[1] == 0
    # The approval was not consumed.
    assert plans.live_approval(engine.store, plan.id) is not None
    records = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    assert not [r for r in records if r.get("event") == "run:started"]


def test_a_stored_placement_is_part_of_the_plan_and_reads_back(parts: tuple[ChangeEngine, Settings, Path]) -> None:
    engine, _settings, _inventory = parts
    placement = Placement(
        shard_digest="9" * 64,
        shards=[
            PlacedShard(node="dc2", hosts=["far1"], bundle_sha256="8" * 64),
            PlacedShard(node="local", hosts=["localhost"]),
        ],
    )
    hosts = [plans.HostPrediction(host=h, status="ok") for h in ("far1", "localhost")]
    content: dict[str, Any] = dict(
        playbook="tb_marker",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params={"message": "x"},
        limit=None,
        inventory_sha256="b" * 64,
        hosts=hosts,
    )
    plan_id = plans.plan_id_for(**content, placement=placement)
    now = datetime.now(UTC)
    plan = plans.Plan(
        id=plan_id,
        playbook="tb_marker",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params={"message": "x"},
        inventory_sha256="b" * 64,
        risk="low",
        scope="system:admin",
        status="pending",
        stored_status="pending",
        hosts=hosts,
        requester={"subject": "alice"},
        requester_ids=["sub:alice"],
        created_at=now,
        expires_at=now.replace(year=now.year + 1),
        updated_at=now,
        placement=placement,
    )
    plans.insert_plan(engine.store, plan)
    back = plans.get_plan(engine.store, plan_id)
    assert back.placement == placement
    row = engine.store.query_one("SELECT placement FROM plans WHERE id = ?", (plan_id,))
    assert row is not None
    assert json.loads(row["placement"])["shards"][0] == {"node": "dc2", "hosts": ["far1"], "bundle_sha256": "8" * 64}


def test_recovery_with_an_unreachable_node_stops_nothing_and_does_not_raise(tmp_path: Path) -> None:
    """A restarted server recovers its runs even when a node is down: the node's own relay ends
    an orphaned job once its controller's link is gone (tests/integration/test_nodes.py)."""
    executor = ShardedExecutor(tmp_path, [_node(tmp_path, "dc2", ["remote"]), _node(tmp_path, "dc3", ["db"])])
    assert executor.recover("apply-0123456789abcdef") == 0
