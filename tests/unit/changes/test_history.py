"""Per-host history on the real store: which plans targeted a host, predicted vs actual there,
who asked and decided; the index a migration backfills for plans stored before it; the CLI
and the review page show the same answer; bad input is refused clearly."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tailops.changes import approvals, history
from tailops.changes.plans import HostOutcome
from tailops.cli.main import app
from tailops.config import Settings
from tailops.errors import InvalidInput
from tailops.principal import Principal
from tailops.store import Store, load_migrations
from tests.servers import http_server
from tests.testbed.seed import MARKER_DIFF, seed_plan, seed_run

ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-alice", human_login="alice@example.com")
BOB = Principal("bob", frozenset({"changes:approve"}), "http", token_id="jti-bob")
CAROL = Principal("carol", frozenset({"changes:approve"}), "http", token_id="jti-carol")


def test_history_of_a_host_newest_first_with_decisions_and_runs(tmp_path: Path) -> None:
    db = tmp_path / "tailops.db"
    first = seed_plan(db, ALICE, message="first")
    second = seed_plan(db, ALICE, message="second")
    denied = seed_plan(db, ALICE, message="third")
    outcome = [
        HostOutcome(host="web1", status="changed", planned=["Write the marker file"], actual=["Write the marker file"])
    ]
    run = seed_run(db, first, BOB, [], finish=("succeeded", None, outcome, []))
    store = Store(db)
    try:
        approvals.deny(store, denied.id, CAROL, "not now")
        found = history.host_history(store, "web1")
        times = [c.planned_at for c in found.changes]
        assert times == sorted(times, reverse=True)  # newest first
        assert {c.plan_id for c in found.changes} == {first.id, second.id, denied.id} and found.total == 3
        by_id = {c.plan_id: c for c in found.changes}
        applied = by_id[first.id]
        assert applied.status == "applied" and applied.requested_by == "alice"
        assert applied.requester_human == "alice@example.com"
        assert applied.predicted == ["Write the marker file: +hello"] and applied.host_status == "changed"
        assert applied.approved_by == ["bob"]
        [seen_run] = applied.runs
        assert seen_run.run_id == run.id and seen_run.status == "succeeded"
        assert seen_run.host_status == "changed" and seen_run.changed == ["Write the marker file"]
        assert by_id[denied.id].denied_by == ["carol: not now"] and by_id[denied.id].runs == []
        assert by_id[second.id].status == "pending" and by_id[second.id].approved_by == []
        # Newest first, a limit that cuts says so, another host has none, a window excludes older plans.
        newest = history.host_history(store, "web1", limit=1)
        assert len(newest.changes) == 1 and newest.truncated and newest.total == 3
        assert newest.changes[0].planned_at >= max(c.planned_at for c in found.changes)
        assert history.host_history(store, "web2").changes == []
        assert history.host_history(store, "web1", since=time.time() + 60).total == 0
    finally:
        store.close()


@pytest.mark.parametrize("bad", ["", "two words", "x" * 300, "tab\there"])
def test_bad_host_names_are_refused(tmp_path: Path, bad: str) -> None:
    store = Store(tmp_path / "t.db")
    try:
        with pytest.raises(InvalidInput):
            history.host_history(store, bad)
    finally:
        store.close()


def test_since_takes_durations_and_iso_times() -> None:
    now = 1_800_000_000.0
    assert history.parse_since("7d", now=now) == now - 7 * 86400
    expected = datetime(2027, 1, 15, tzinfo=UTC).timestamp()
    assert history.parse_since("2027-01-15T00:00:00Z", now=now) == expected
    assert history.parse_since("2027-01-15T00:00:00", now=now) == expected  # naive: UTC
    assert history.parse_since(None) is None
    with pytest.raises(InvalidInput, match="neither a duration"):
        history.parse_since("last tuesday")


def test_the_migration_indexes_plans_stored_before_it(tmp_path: Path) -> None:
    """A store at schema 4 (before plan_hosts) with a plan in it: opening it with this code
    backfills the index from the plans' predictions, so old plans show in the history."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL)")
    for migration in load_migrations():
        if migration.version >= 5:
            break
        conn.executescript(migration.sql)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
            (migration.version, migration.name, time.time()),
        )
    hosts = [
        {"host": "old1", "status": "changed", "tasks": [{"task": "t", "status": "changed", "changed": True}]},
        {"host": "old2", "status": "ok", "tasks": [{"task": "t", "status": "ok", "changed": False}]},
    ]
    now = time.time()
    conn.execute(
        "INSERT INTO plans (id, playbook, version, playbook_sha256, params, inventory_sha256, risk, scope, status,"
        " prediction, requester_subject, requester, requester_ids, created_at, expires_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            "c" * 64,
            "tb_marker",
            "1.0.0",
            "a" * 64,
            "{}",
            "b" * 64,
            "low",
            "system:admin",
            "pending",
            json.dumps(hosts),
            "alice",
            json.dumps({"subject": "alice"}),
            "[]",
            now,
            now + 3600,
            now,
        ),
    )
    conn.commit()
    conn.close()
    store = Store(db)
    try:
        rows = store.query("SELECT host, changing FROM plan_hosts WHERE plan_id = ? ORDER BY host", ("c" * 64,))
        assert [(r["host"], r["changing"]) for r in rows] == [("old1", 1), ("old2", 0)]
        assert history.host_history(store, "old1").changes[0].predicted == ["t"]
    finally:
        store.close()


def test_the_cli_and_the_review_page_show_the_same_history(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    plan = seed_plan(settings.db_path, ALICE, message="cli")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"server": {"data_dir": str(settings.server.data_dir)}}))
    runner = CliRunner()
    out = runner.invoke(app, ["hosts", "history", "web1", "--json", "--config", str(cfg)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [c["plan_id"] for c in data["changes"]] == [plan.id]
    text = runner.invoke(app, ["hosts", "history", "web1", "--config", str(cfg)])
    assert text.exit_code == 0 and plan.id[:12] in text.stdout and "requested by alice" in text.stdout
    bad = runner.invoke(app, ["hosts", "history", "web1", "--since", "soon", "--config", str(cfg)])
    assert bad.exit_code == 2 and "neither a duration" in bad.stderr and "Traceback" not in bad.output
    with http_server(settings) as srv:
        token = srv.mint("rita", "readonly")
        with httpx.Client(base_url=srv.base_url, timeout=10) as c:
            c.post("/review/login", data={"token": token}, headers={"Origin": srv.base_url})
            page = c.get("/review/hosts/web1")
            assert page.status_code == 200 and plan.id in page.text and "alice@example.com" in page.text
            hostile = c.get("/review/hosts/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
            assert "<script>" not in hostile.text
            plan_page = c.get(f"/review/plans/{plan.id}")
            assert 'href="/review/hosts/web1"' in plan_page.text
    assert MARKER_DIFF  # the seeded diff is what "+hello" summarises


def test_get_drift_says_what_a_check_itself_changes(make_settings: Callable[..., Settings]) -> None:
    """A drift check of a package playbook refreshes the apt index even in check mode: get_drift says
    so per check (the manifest's check_mode_side_effects); a check of tb-like playbooks touches nothing."""
    from tailops.runtime import Runtime
    from tailops.tools.changes import get_drift
    from tailops.tools.registry import ToolCall, declared_specs

    settings = make_settings(
        drift={"checks": [{"name": "packages", "playbook": "package_update", "every": "1d"}]},
    )
    rt = Runtime(settings)
    try:
        spec = next(s for s in declared_specs() if s.name == "get_drift")
        report = get_drift(ToolCall(rt=rt, principal=ALICE, spec=spec))
        effects = report.side_effects["packages"]
        assert "Refresh the package index (apt)" in effects
        assert "/var/lib/apt/lists" in effects["Refresh the package index (apt)"]
        assert report.results == []  # no check has run yet
    finally:
        rt.stop()


@pytest.mark.parametrize("tool_name", ["run_drift_check", "plan_from_drift"])
async def test_an_unknown_drift_check_is_a_clear_error(make_settings: Callable[..., Settings], tool_name: str) -> None:
    from mcp.types import TextContent

    from tailops.runtime import Runtime
    from tailops.tools.registry import bind, declared_specs

    rt = Runtime(make_settings(drift={"checks": [{"name": "packages", "playbook": "package_update"}]}))
    try:
        spec = next(s for s in declared_specs() if s.name == tool_name)
        result = await bind(spec, rt)(ctx=None, check="nope")
    finally:
        rt.stop()
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert block.text.startswith("not_found:") and "packages" in block.text and "Traceback" not in block.text
