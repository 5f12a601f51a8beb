"""``tailops plans``: every command on real store records, its bad inputs (one stderr
line, exit 2), its refusals (exit 1) and its audit records. Applying for real is
covered by tests/integration/test_change_lifecycle.py."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tailops.auth import local_user
from tailops.changes import plans
from tailops.changes.models import RunEvent, TaskStatus
from tailops.changes.plans import HostOutcome, Plan
from tailops.config import Settings
from tailops.principal import Principal
from tailops.store import Store
from tests.clihelpers import cli_records, group_runner, one_error_line
from tests.testbed.seed import MARKER_DIFF, seed_plan, seed_run

run = group_runner("plans")
DIFF = MARKER_DIFF
ALICE = Principal("alice", frozenset({"system:admin"}), "http", token_id="jti-a")
BOB = Principal("bob", frozenset({"changes:approve"}), "http", token_id="jti-b")


def add_plan(
    settings: Settings, requester: Principal = ALICE, *, message: str = "hello", status: str = "pending"
) -> Plan:
    return seed_plan(settings.db_path, requester, message=message, status=status)


def add_run(settings: Settings, plan: Plan) -> plans.Run:
    marker = RunEvent(
        kind="task_result", host="web1", task="Write the marker file", status=TaskStatus.CHANGED, changed=True
    )
    return seed_run(settings.db_path, plan, BOB, [marker])


def stored_plan(settings: Settings, plan_id: str) -> Plan:
    store = Store(settings.db_path)
    try:
        return plans.get_plan(store, plan_id)
    finally:
        store.close()


def test_list_and_show(cfg: Path, settings: Settings) -> None:
    empty = run(cfg, "list")
    assert empty.exit_code == 0 and "no plans" in empty.stderr
    plan = add_plan(settings)
    listed = run(cfg, "list")
    assert listed.exit_code == 0, listed.output
    assert plan.id[:12] in listed.stdout and "tb_marker 1.0.0" in listed.stdout and "1/1 changing" in listed.stdout
    assert plan.id[:12] in run(cfg, "list", "--status", "pending").stdout
    assert "no plans with status approved" in run(cfg, "list", "--status", "approved").stderr

    shown = run(cfg, "show", plan.id[:8])
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert plan.id in out and "requested   by alice via http" in out
    assert "host web1" in out and "would change: Write the marker file" in out
    assert "+hello" in out and "not simulated in check mode" in out

    bad = run(cfg, "list", "--status", "done")
    assert bad.exit_code == 2 and "unknown plan status" in one_error_line(bad)
    for arg, fragment in (("xyz", "not a plan id"), ("1234567", "at least 8 hex"), ("deadbeef00", "no plan starts")):
        result = run(cfg, "show", arg)
        assert result.exit_code == 2, (arg, result.output)
        assert fragment in one_error_line(result)


def test_approve_by_another_person_is_audited(cfg: Path, settings: Settings) -> None:
    plan = add_plan(settings)
    result = run(cfg, "approve", plan.id[:10], "--comment", "reviewed")
    assert result.exit_code == 0, result.output
    assert f"approved plan {plan.id}" in result.stdout
    assert stored_plan(settings, plan.id).status == "approved"
    [record] = cli_records(settings)
    assert record["command"] == "plans approve" and record["outcome"] == "ok"
    assert record["plan_id"] == plan.id and record["approval_id"]
    assert record["principal"]["sub"] == f"local:{local_user()}"

    again = run(cfg, "approve", plan.id[:10])
    assert again.exit_code == 1 and "already approved" in one_error_line(again)
    assert [r["outcome"] for r in cli_records(settings)] == ["ok", "error"]


def test_approve_refuses_the_cli_users_own_plan(cfg: Path, settings: Settings) -> None:
    # Requested over stdio by this OS user: the same person as the CLI user.
    mine = add_plan(settings, Principal(f"local:{local_user()}", frozenset({"system:admin"}), "stdio"))
    result = run(cfg, "approve", mine.id)
    assert result.exit_code == 1
    assert "is the requester" in one_error_line(result)
    assert stored_plan(settings, mine.id).status == "pending"
    [record] = cli_records(settings)
    assert record["outcome"] == "error" and record["plan_id"] == mine.id and "requester" in record["error"]


def test_deny(cfg: Path, settings: Settings) -> None:
    plan = add_plan(settings)
    missing = run(cfg, "deny", plan.id[:8])
    assert missing.exit_code == 2 and "reason is required" in one_error_line(missing)
    assert stored_plan(settings, plan.id).status == "pending"
    result = run(cfg, "deny", plan.id[:8], "--reason", "wrong maintenance window")
    assert result.exit_code == 0, result.output
    denied = stored_plan(settings, plan.id)
    assert denied.status == "denied" and denied.status_reason == "wrong maintenance window"
    assert run(cfg, "approve", plan.id[:8]).exit_code == 1
    assert [(r["command"], r["outcome"]) for r in cli_records(settings)] == [
        ("plans deny", "error"),
        ("plans deny", "ok"),
        ("plans approve", "error"),
    ]


def test_apply_refuses_what_is_not_approved(cfg: Path, settings: Settings) -> None:
    pending = add_plan(settings)
    result = run(cfg, "apply", pending.id[:8])
    assert result.exit_code == 1
    assert "has not been approved" in one_error_line(result)
    blocked = add_plan(settings, message="other", status="blocked")
    result = run(cfg, "apply", blocked.id[:8])
    assert result.exit_code == 1 and "blocked (host web2 unreachable)" in one_error_line(result)
    bad = run(cfg, "apply", "not-an-id")
    assert bad.exit_code == 2 and "not a plan id" in one_error_line(bad)
    records = cli_records(settings)
    # The refusals happened before any run: start records, then errors, and no run ids.
    assert [(r.get("phase"), r["outcome"]) for r in records] == [
        ("start", "ok"),
        (None, "error"),
        ("start", "ok"),
        (None, "error"),
        (None, "error"),
    ]
    assert all(r.get("run_id") is None for r in records)


def test_runs_run_and_cancel(cfg: Path, settings: Settings) -> None:
    empty = run(cfg, "runs")
    assert empty.exit_code == 0 and "no runs" in empty.stderr
    plan = add_plan(settings)
    started = add_run(settings, plan)
    listed = run(cfg, "runs")
    assert listed.exit_code == 0 and started.id[:12] in listed.stdout and "running" in listed.stdout
    assert started.id[:12] in run(cfg, "runs", "--plan", plan.id[:8], "--status", "running").stdout

    shown = run(cfg, "run", started.id[:8])
    assert shown.exit_code == 0, shown.output
    assert f"run         {started.id}" in shown.stdout and "Write the marker file" in shown.stdout
    assert "(1 events stored)" in shown.stdout

    cancelled = run(cfg, "cancel", started.id[:8])
    assert cancelled.exit_code == 0, cancelled.output
    store = Store(settings.db_path)
    try:
        assert plans.cancel_requested(store, started.id)
        plans.finish_run(store, started.id, status="canceled", reason="canceled on request")
    finally:
        store.close()
    again = run(cfg, "cancel", started.id)
    assert again.exit_code == 1 and "is canceled, not running" in one_error_line(again)
    records = cli_records(settings)
    assert [(r["command"], r["outcome"], r.get("run_id")) for r in records] == [
        ("plans cancel", "ok", started.id),
        ("plans cancel", "error", started.id),
    ]

    for args, fragment in (
        (("run", "zz"), "not a run id"),
        (("run", "0" * 8), "no run starts"),
        (("runs", "--status", "done"), "unknown run status"),
        (("cancel", "0" * 40), "not a run id"),
    ):
        result = run(cfg, *args)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in one_error_line(result)


def test_run_follow_prints_events_as_they_come_until_the_run_ends(cfg: Path, settings: Settings) -> None:
    started = add_run(settings, add_plan(settings))

    def server_side() -> None:  # what the executor does meanwhile: more events, then the end
        time.sleep(0.8)
        store = Store(settings.db_path)
        try:
            late = RunEvent(kind="task_result", host="web1", task="Wait before finishing", status=TaskStatus.OK)
            plans.append_events(store, started.id, 2, [late])
            time.sleep(0.8)
            outcome = [HostOutcome(host="web1", status="ok", planned=["Write the marker file"], actual=[])]
            plans.finish_run(store, started.id, status="succeeded", reason=None, outcome=outcome)
        finally:
            store.close()

    writer = threading.Thread(target=server_side)
    writer.start()
    t = time.monotonic()
    followed = run(cfg, "run", started.id[:10], "--follow")
    writer.join()
    assert followed.exit_code == 0, followed.output
    assert time.monotonic() - t >= 1.5  # it waited for the end
    out = followed.stdout
    assert out.index("Write the marker file") < out.index("Wait before finishing") < out.index("status      succeeded")
    assert out.count("Wait before finishing") == 1  # each event once
    assert "host web1: ok; planned: Write the marker file; actual: nothing" in out


def test_following_a_run_whose_server_is_gone_ends_with_an_error(cfg: Path, settings: Settings) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    # The run is recorded as applied by a process that has exited (a crashed server).
    started = seed_run(settings.db_path, add_plan(settings), BOB, [], server=(gone.pid, time.time() - 5))
    result = run(cfg, "run", started.id, "--follow")
    assert result.exit_code == 1
    assert f"server process applying it (pid {gone.pid}) is gone" in one_error_line(result)


def test_follow_on_a_finished_run_just_shows_it(cfg: Path, settings: Settings) -> None:
    started = add_run(settings, add_plan(settings))
    store = Store(settings.db_path)
    try:
        plans.finish_run(store, started.id, status="failed", reason="failed on web1")
    finally:
        store.close()
    result = run(cfg, "run", started.id, "--follow")
    assert result.exit_code == 0 and "status      failed — failed on web1" in result.stdout
    assert "following" not in result.stdout
