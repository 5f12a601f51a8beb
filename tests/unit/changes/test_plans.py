"""The change engine's rules on store records (real SQLite, no Ansible).

- plan ids: canonical (parameter order does not matter) and sensitive to every
  field a reviewer relies on;
- approvals: identity comparison (not just token subjects), scope, expiry
  (never beyond the plan), single use, denial, policy;
- stale-plan and mismatch messages;
- the records themselves: effective status, prefixes, events, cancel requests,
  interrupted runs, and the executor's refusals before anything runs.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from tailops.changes import approvals, compare, plans
from tailops.changes.approval_policy import ApprovalRequirement
from tailops.changes.executors.placement import Placement
from tailops.changes.models import HostResult, RunEvent, RunMode, RunResult, TaskResult, TaskStatus
from tailops.changes.plans import HostPrediction, Plan, TaskPrediction
from tailops.config import ChangesSettings, Settings
from tailops.errors import ApprovalError, CatalogError, ChangeError, InvalidInput, NotFound, PermissionDenied
from tailops.models import Model
from tailops.principal import Principal
from tailops.runtime import Runtime
from tailops.store import Store

APT_DIFF = (
    "The following packages will be upgraded:\n   tbdemo (1.0-1 => 1.1-1)\n"
    "1 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
)
INSTALL = "Install packages (apt)"
ME = pwd.getpwuid(os.getuid()).pw_name

ALICE = Principal("alice", frozenset({"system:admin", "readonly"}), "http", token_id="jti-alice")
BOB = Principal("bob", frozenset({"changes:approve"}), "http", token_id="jti-bob")


def task(name: str, *, changed: bool = False, diff: str | None = None, status: str = "ok", **kw: Any) -> TaskPrediction:
    return TaskPrediction(task=name, status="changed" if changed else status, changed=changed, diff=diff, **kw)


def host(name: str, *tasks: TaskPrediction, status: str = "ok") -> HostPrediction:
    return HostPrediction(host=name, status=status, tasks=list(tasks))


PREDICTION = [
    host("h1", task("Look the packages up"), task(INSTALL, changed=True, diff=APT_DIFF), status="changed"),
    host("h2", task("Look the packages up"), task(INSTALL, changed=True, diff=APT_DIFF), status="changed"),
]

BASE: dict[str, Any] = {
    "playbook": "package_install",
    "version": "1.0.0",
    "playbook_sha256": "a" * 64,
    "params": {"packages": [{"name": "tbdemo", "version": "1.1-1"}], "allow_downgrade": False},
    "limit": None,
    "inventory_sha256": "b" * 64,
    "hosts": PREDICTION,
    "previous_id": None,
}


# --------------------------------------------------------------------------- plan ids
def test_plan_id_ignores_key_order_and_messages() -> None:
    params = {"allow_downgrade": False, "packages": [{"version": "1.1-1", "name": "tbdemo"}]}
    assert plans.plan_id_for(**BASE) == plans.plan_id_for(**{**BASE, "params": params})
    with_msgs = [
        h.model_copy(update={"tasks": [t.model_copy(update={"msg": "took 2s"}) for t in h.tasks]}) for h in PREDICTION
    ]
    assert plans.plan_id_for(**BASE) == plans.plan_id_for(**{**BASE, "hosts": with_msgs})
    assert plans.plan_id_for(**BASE) == plans.plan_id_for(**{**BASE, "hosts": list(reversed(PREDICTION))})
    assert plans.PLAN_ID_RE.fullmatch(plans.plan_id_for(**BASE))


def _h2(*tasks: TaskPrediction) -> list[HostPrediction]:
    return [PREDICTION[0], host("h2", *tasks)]


LOOKUP = task("Look the packages up")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("playbook", "package_update"),
        ("version", "1.0.1"),
        ("playbook_sha256", "c" * 64),
        ("params", {"packages": [{"name": "tbdemo", "version": "1.0-1"}], "allow_downgrade": False}),
        ("params", {"packages": [{"name": "tbdemo", "version": "1.1-1"}], "allow_downgrade": True}),
        ("limit", "h1"),
        ("inventory_sha256", "d" * 64),
        ("hosts", PREDICTION[:1]),
        ("hosts", _h2(LOOKUP, task(INSTALL, changed=True, diff=APT_DIFF.replace("1.1-1", "2.0-1")))),
        ("hosts", _h2(LOOKUP, task(INSTALL))),
        ("hosts", _h2(task(INSTALL, changed=True, diff=APT_DIFF), LOOKUP)),
        ("hosts", _h2(task("Look the packages up", not_simulated=True), task(INSTALL, changed=True, diff=APT_DIFF))),
        ("hosts", _h2(task("Look the packages up", status="skipped"), task(INSTALL, changed=True, diff=APT_DIFF))),
        ("previous_id", "e" * 64),
    ],
)
def test_plan_id_is_sensitive_to_every_field(field: str, value: Any) -> None:
    assert plans.plan_id_for(**BASE) != plans.plan_id_for(**{**BASE, field: value})


# --------------------------------------------------------------------------- records
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "t.db")
    yield s
    s.close()


CHANGES = ChangesSettings()


def make_plan(
    store: Store,
    requester: Principal = ALICE,
    *,
    risk: str = "high",
    ttl: float = 3600,
    status: str = "pending",
    reason: str | None = None,
    now: float | None = None,
    hosts: list[HostPrediction] | None = None,
    salt: str = "",
    plan_id: str | None = None,
) -> Plan:
    now = time.time() if now is None else now
    prediction = hosts if hosts is not None else PREDICTION
    plan_id = plan_id or plans.plan_id_for(**{**BASE, "hosts": prediction, "inventory_sha256": (salt or "b") * 64})
    plan = Plan(
        id=plan_id,
        playbook="package_install",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params=BASE["params"],
        inventory_sha256=(salt or "b") * 64,
        risk=risk,
        scope="system:admin",
        status=status,
        stored_status=status,
        status_reason=reason,
        hosts=prediction,
        requester=requester.describe(),
        requester_ids=sorted(requester.identities()),
        created_at=datetime.fromtimestamp(now, UTC),
        expires_at=datetime.fromtimestamp(now + ttl, UTC),
        updated_at=datetime.fromtimestamp(now, UTC),
    )
    plans.insert_plan(store, plan)
    return plans.get_plan(store, plan_id)


def start_run(store: Store, plan: Plan, approval_id: str, *, instance: str = "me", pid: int | None = None) -> plans.Run:
    """A run row as the executor writes it (by default: this process, which is alive)."""
    pid = os.getpid() if pid is None else pid
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = time.time()
    return plans.consume_and_start_run(
        store,
        run_id=plans.new_id(),
        plan_id=plan.id,
        approval_id=approval_id,
        requester=ALICE.describe(),
        instance_id=instance,
        pid=pid,
        pid_started=started,
        runner_ident="apply-x",
        now=time.time(),
    )


def test_plan_records_round_trip_with_effective_status(store: Store) -> None:
    plan = make_plan(store, ttl=60)
    assert plan.status == "pending" and plan.hosts == PREDICTION and plan.requester["subject"] == "alice"
    later = time.time() + 120
    assert plans.get_plan(store, plan.id, now=later).status == "expired"
    assert [p.id for p in plans.list_plans(store, status="expired", now=later)[0]] == [plan.id]
    assert plans.list_plans(store, status="pending", now=later)[0] == []
    assert plans.list_plans(store, status="pending")[1] == 1
    with pytest.raises(InvalidInput, match="unknown plan status"):
        plans.list_plans(store, status="done")
    with pytest.raises(InvalidInput, match="not a plan id"):
        plans.get_plan(store, "abc")
    with pytest.raises(NotFound):
        plans.get_plan(store, "f" * 64)


def test_ids_resolve_from_unique_prefixes(store: Store) -> None:
    plan = make_plan(store)
    assert plans.resolve_plan_id(store, plan.id[:8].upper()) == plan.id
    with pytest.raises(InvalidInput, match="at least 8 hex"):
        plans.resolve_plan_id(store, plan.id[:7])
    with pytest.raises(NotFound):
        plans.resolve_plan_id(store, "0" * 8 if not plan.id.startswith("0" * 8) else "f" * 8)
    make_plan(store, salt="c", plan_id="abcdef01" + "0" * 56)
    make_plan(store, salt="d", plan_id="abcdef01" + "1" * 56)
    with pytest.raises(InvalidInput, match="more than one"):
        plans.resolve_plan_id(store, "abcdef01")
    assert plans.resolve_plan_id(store, "abcdef011") == "abcdef01" + "1" * 56


# --------------------------------------------------------------------------- identities and approvals
def test_identities_match_the_same_person_across_transports_and_tokens() -> None:
    stdio_root = Principal("local:root", frozenset(), "stdio")
    cli_root = Principal("local:root", frozenset({"admin"}), "cli")
    assert stdio_root.identities() & cli_root.identities()
    # A CLI user who sets USER=someone-else is still this process's OS user.
    spoofed = Principal("local:someone-else", frozenset({"admin"}), "cli")
    assert f"os-user:{ME}" in spoofed.identities() and f"os-user:{ME}" in stdio_root.identities()
    # Two tokens of one Tailscale login (any case), or of one subject, are one person.
    t1 = Principal("ci-bot", frozenset(), "http", token_id="j1", human_login="Alice@Example.com")
    t2 = Principal("laptop", frozenset(), "http", token_id="j2", human_login="alice@example.com")
    assert t1.identities() & t2.identities() == {"tailscale:alice@example.com"}
    assert ALICE.identities() & Principal("alice", frozenset(), "http", token_id="other").identities()
    # Different people share nothing; HTTP principals have no OS identity.
    assert not ALICE.identities() & BOB.identities()
    assert not any(i.startswith("os-user:") for i in BOB.identities())


@pytest.mark.parametrize(
    ("requester", "approver"),
    [
        (Principal(f"local:{ME}", frozenset(), "stdio"), Principal(f"local:{ME}", frozenset({"admin"}), "cli")),
        (Principal("local:nobody", frozenset(), "stdio"), Principal("local:other", frozenset({"admin"}), "cli")),
        (
            Principal("ci", frozenset(), "http", token_id="j1", human_login="alice@example.com"),
            Principal("bob", frozenset({"changes:approve"}), "http", token_id="j2", human_login="ALICE@example.com"),
        ),
        (ALICE, Principal("alice", frozenset({"changes:approve"}), "http", token_id="another-token")),
    ],
)
def test_the_requester_can_never_approve(store: Store, requester: Principal, approver: Principal) -> None:
    plan = make_plan(store, requester)
    with pytest.raises(PermissionDenied, match="is the requester of plan"):
        approvals.approve(store, CHANGES, plan.id, approver)
    assert plans.approvals_for(store, plan.id) == []
    assert plans.get_plan(store, plan.id).status == "pending"


def test_approval_needs_the_scope_and_is_bound_single_use_and_capped(store: Store) -> None:
    now = time.time()
    plan = make_plan(store, ttl=600, now=now)
    with pytest.raises(PermissionDenied, match="changes:approve"):
        approvals.approve(store, CHANGES, plan.id, Principal("carol", frozenset({"system:admin"}), "http"))
    approval = approvals.approve(store, CHANGES, plan.id, BOB, "  looks\tfine ", now=now)
    assert approval.comment == "looks fine" and approval.plan_id == plan.id
    assert approval.approver["subject"] == "bob" and approval.approver["token_id"] == "jti-bob"
    # approval_ttl is 1h but the plan expires in 10 min: the approval never outlives the plan.
    assert approval.expires_at == plan.expires_at
    assert plans.get_plan(store, plan.id).status == "approved"
    carol = Principal("carol", frozenset({"changes:approve"}), "http")
    with pytest.raises(ApprovalError, match="already approved by bob"):
        approvals.approve(store, CHANGES, plan.id, carol)
    run = start_run(store, plan, approval.id)
    assert run.status == "running"
    assert plans.get_plan(store, plan.id).status == "applied"
    with pytest.raises(ApprovalError, match="used or expired meanwhile"):
        start_run(store, plan, approval.id)
    assert plans.list_runs(store, plan_id=plan.id)[1] == 1
    with pytest.raises(ApprovalError, match="already applied"):
        approvals.approve(store, CHANGES, plan.id, carol)


def test_an_expired_approval_can_be_renewed_but_not_used(store: Store) -> None:
    now = time.time()
    short = ChangesSettings(approval_ttl=60)
    plan = make_plan(store, ttl=3600, now=now)
    first = approvals.approve(store, short, plan.id, BOB, now=now)
    with pytest.raises(ApprovalError, match="used or expired"):
        plans.consume_and_start_run(
            store,
            run_id=plans.new_id(),
            plan_id=plan.id,
            approval_id=first.id,
            requester=ALICE.describe(),
            instance_id="x",
            pid=1,
            pid_started=0.0,
            runner_ident="apply-x",
            now=now + 120,
        )
    second = approvals.approve(store, short, plan.id, BOB, now=now + 120)
    assert second.id != first.id and plans.live_approval(store, plan.id) == second


def test_unapprovable_plans_say_why(store: Store) -> None:
    now = time.time()
    expired = make_plan(store, ttl=10, now=now - 20)
    with pytest.raises(ApprovalError, match="expired at"):
        approvals.approve(store, CHANGES, expired.id, BOB)
    blocked = make_plan(store, status="blocked", reason="host h1 unreachable", salt="c")
    with pytest.raises(ApprovalError, match="is blocked and cannot be approved: host h1 unreachable"):
        approvals.approve(store, CHANGES, blocked.id, BOB)
    denied = make_plan(store, salt="d")
    with pytest.raises(InvalidInput, match="reason is required"):
        approvals.deny(store, denied.id, BOB, "   ")
    approvals.deny(store, denied.id, BOB, "not during business hours")
    assert plans.get_plan(store, denied.id).status == "denied"
    with pytest.raises(ApprovalError, match="was denied \\(not during business hours\\)"):
        approvals.approve(store, CHANGES, denied.id, BOB)
    # The requester may withdraw (deny) their own plan; a stranger without the scope may not.
    mine = make_plan(store, salt="e")
    with pytest.raises(PermissionDenied):
        approvals.deny(store, mine.id, Principal("eve", frozenset({"readonly"}), "http"), "no")
    approvals.deny(store, mine.id, ALICE, "changed my mind")
    assert plans.get_plan(store, mine.id).status == "denied"


def test_policy_auto_approves_only_low_risk(store: Store) -> None:
    auto = ChangesSettings(approval={"low": "auto"})
    low = make_plan(store, risk="low")
    approval = approvals.approve_by_policy(store, auto, low)
    assert approval is not None and approval.by_policy and approval.approver["transport"] == "policy"
    assert "changes.approval.low" in (approval.comment or "")
    assert plans.get_plan(store, low.id).status == "approved"
    high = make_plan(store, risk="high", salt="c")
    assert approvals.approve_by_policy(store, auto, high) is None
    manual_low = make_plan(store, risk="low", salt="d")
    assert approvals.approve_by_policy(store, CHANGES, manual_low) is None
    assert approvals.policy_for(auto, "critical") == "manual"


def test_a_forged_auto_requirement_never_approves_a_high_risk_plan(store: Store) -> None:
    """Defence in depth: even a stored requirement saying auto (config refuses it for high/critical)
    does not approve a high-risk plan by policy."""
    from tailops.changes.approval_policy import ApprovalRequirement, RuleHit

    forged = ApprovalRequirement(required=0, risk="high", decided_by=[RuleHit(rule="group dev", count=None)])
    high = make_plan(store, risk="high", salt="f")
    with store.transaction() as conn:
        conn.execute("UPDATE plans SET approval_policy = ? WHERE id = ?", (forged.model_dump_json(), high.id))
    assert approvals.approve_by_policy(store, CHANGES, plans.get_plan(store, high.id)) is None
    assert plans.get_plan(store, high.id).status == "pending"


def test_a_tightened_config_voids_an_approval_by_policy(store: Store, tmp_path: Path) -> None:
    """Planned under dev: low auto (approved by policy); the config now says dev: low 2. The policy's
    approval no longer counts: two people approve, and the first leaves the plan pending."""
    from tailops.changes.approval_policy import decide

    auto = ChangesSettings(group_approvals=[{"group": "dev", "low": "auto"}])
    strict = ChangesSettings(group_approvals=[{"group": "dev", "low": 2}])
    low = make_plan(store, risk="low", salt="9")
    recorded = decide(auto, "low", {h.host: ["dev"] for h in low.hosts}, inventory_groups={"all", "dev"})
    with store.transaction() as conn:
        conn.execute("UPDATE plans SET approval_policy = ? WHERE id = ?", (recorded.model_dump_json(), low.id))
    low = plans.get_plan(store, low.id)
    assert approvals.approve_by_policy(store, auto, low) is not None
    assert approvals.required_approvals(auto, low) == 1
    approvals.approve(store, strict, low.id, BOB)
    after = plans.get_plan(store, low.id)
    assert after.status == "pending" and after.status_reason == "1 of 2 approvals"
    [live] = plans.live_approvals(store, low.id)
    assert live.approver_subject == "bob"  # the policy's approval was voided
    approvals.approve(store, strict, low.id, Principal("carol", frozenset({"changes:approve"}), "http"))
    assert plans.get_plan(store, low.id).status == "approved"


# --------------------------------------------------------------------------- stale plans and mismatches
def test_diff_summaries() -> None:
    assert compare.summarize_diff(APT_DIFF) == "tbdemo (1.0-1 => 1.1-1)"
    unified = "--- before\n+++ /etc/app.conf\n@@ -1 +1 @@\n-port = 8080\n+port = 9090\n"
    assert compare.summarize_diff(unified) == "-port = 8080; +port = 9090"
    assert compare.summarize_diff("Would restart web\n") == "Would restart web"
    assert len(compare.summarize_diff("x" * 500)) == 160
    assert compare.summarize_diff(None) == ""


def test_stale_differences_name_host_task_and_both_sides() -> None:
    now_same = [h.model_copy() for h in PREDICTION]
    assert compare.compare_predictions(PREDICTION, now_same) == []
    no_change = [host("h1", task("Look the packages up"), task(INSTALL)), PREDICTION[1]]
    assert compare.compare_predictions(PREDICTION, no_change) == [
        f"host h1, task {INSTALL}: planned 'tbdemo (1.0-1 => 1.1-1)', now: no change"
    ]
    other = [PREDICTION[0], host("h2", task(INSTALL, changed=True, diff=APT_DIFF.replace("1.0-1", "1.0-2")))]
    assert compare.compare_predictions(PREDICTION, other) == [
        f"host h2, task {INSTALL}: planned 'tbdemo (1.0-1 => 1.1-1)', now: 'tbdemo (1.0-2 => 1.1-1)'"
    ]
    unreachable = [
        PREDICTION[0],
        host(
            "h2", task("Look the packages up", status="unreachable", msg="ssh: connect refused"), status="unreachable"
        ),
    ]
    diffs = compare.compare_predictions(PREDICTION, unreachable)
    assert diffs[0] == "host h2: planned changed, now: unreachable at task 'Look the packages up': ssh: connect refused"
    assert diffs[1] == f"host h2, task {INSTALL}: planned 'tbdemo (1.0-1 => 1.1-1)', now: not run"
    new_task = [PREDICTION[0], host("h2", task(INSTALL, changed=True, diff=APT_DIFF), task("Restart", changed=True))]
    assert compare.compare_predictions(PREDICTION, new_task) == [
        "host h2, task Restart: planned not run, now: a change (no diff)"
    ]
    assert compare.compare_predictions(PREDICTION, PREDICTION[:1]) == [
        "host h2: planned, now: not in the run (inventory or limit changed)"
    ]


def _run_result(hosts: dict[str, list[TaskResult]]) -> RunResult:
    now = datetime.now(UTC)
    return RunResult(
        ident="apply-x",
        mode=RunMode.APPLY,
        status="successful",
        hosts={
            name: HostResult(host=name, status="changed" if any(t.changed for t in ts) else "ok", tasks=ts)
            for name, ts in hosts.items()
        },
        started_at=now,
        finished_at=now,
        duration_s=1.0,
    )


def test_outcome_lists_actual_vs_planned_per_host(store: Store) -> None:
    plan = make_plan(store)
    lookup = TaskResult(host="h1", task="Look the packages up", status=TaskStatus.OK)
    result = _run_result(
        {
            "h1": [lookup, TaskResult(host="h1", task=INSTALL, status=TaskStatus.CHANGED, changed=True, diff=APT_DIFF)],
            "h2": [lookup.model_copy(update={"host": "h2"}), TaskResult(host="h2", task=INSTALL, status=TaskStatus.OK)],
        }
    )
    outcome, mismatches = compare.outcome_of(plan, result)
    assert [(o.host, o.planned, o.actual) for o in outcome] == [("h1", [INSTALL], [INSTALL]), ("h2", [INSTALL], [])]
    assert mismatches == [f"host h2, task {INSTALL}: planned 'tbdemo (1.0-1 => 1.1-1)', actual: no change"]
    assert outcome[1].mismatches == mismatches and outcome[0].mismatches == []


# --------------------------------------------------------------------------- runs
def test_events_cancel_requests_and_interrupted_runs(store: Store) -> None:
    plan = make_plan(store)
    approval = approvals.approve(store, CHANGES, plan.id, BOB)
    run = start_run(store, plan, approval.id, instance="old-server", pid=2**22 + 12345)
    events = [RunEvent(kind="task_result", host="h1", task=f"t{i}", status=TaskStatus.OK) for i in range(3)]
    plans.append_events(store, run.id, 0, events[:2])
    plans.append_events(store, run.id, 2, events[2:])
    stored = plans.run_events(store, run.id)
    assert [(e.seq, e.task, e.status) for e in stored] == [(0, "t0", "ok"), (1, "t1", "ok"), (2, "t2", "ok")]
    assert plans.get_run(store, run.id).event_count == 3
    assert plans.run_events(store, run.id, limit=1)[0].task == "t0"

    assert not plans.cancel_requested(store, run.id)
    plans.request_cancel(store, run.id, "bob (http)")
    assert plans.cancel_requested(store, run.id)
    assert plans.get_run(store, run.id).cancel_requested_by == "bob (http)"

    live_plan = make_plan(store, salt="c")
    live = start_run(store, live_plan, approvals.approve(store, CHANGES, live_plan.id, BOB).id, instance="other")
    mine_plan = make_plan(store, salt="d")
    mine = start_run(store, mine_plan, approvals.approve(store, CHANGES, mine_plan.id, BOB).id, instance="this")
    # The old server's pid is gone; the other instance's process (this one) is alive; our own is ours.
    assert plans.mark_interrupted(store, "this") == [run.id]
    final = plans.get_run(store, run.id)
    assert final.status == "interrupted" and "crash or kill" in (final.status_reason or "")
    assert plans.get_run(store, live.id).status == "running" and plans.get_run(store, mine.id).status == "running"
    with pytest.raises(ChangeError, match="is interrupted, not running"):
        plans.request_cancel(store, run.id, "bob")
    plans.finish_run(store, live.id, status="succeeded", reason=None)
    plans.finish_run(store, live.id, status="failed", reason="late")  # no-op: it already finished
    assert plans.get_run(store, live.id).status == "succeeded"


# --------------------------------------------------------------------------- executor refusals
@pytest.fixture
def rt(make_settings: Callable[..., Settings]) -> Iterator[Runtime]:
    runtime = Runtime(make_settings())
    yield runtime
    runtime.stop()


async def test_apply_refuses_before_anything_runs(rt: Runtime) -> None:
    pending = make_plan(rt.store)
    with pytest.raises(ApprovalError, match="has not been approved"):
        await rt.engine.apply(ALICE, pending.id)
    with pytest.raises(PermissionDenied, match="system:admin"):
        await rt.engine.apply(Principal("eve", frozenset({"readonly"}), "http"), pending.id)
    expired = make_plan(rt.store, ttl=5, now=time.time() - 10, salt="c")
    with pytest.raises(ChangeError, match="expired at"):
        await rt.engine.apply(ALICE, expired.id)
    used = make_plan(rt.store, salt="d")
    start_run(rt.store, used, approvals.approve(rt.store, CHANGES, used.id, BOB).id)
    with pytest.raises(ApprovalError, match="already applied"):
        await rt.engine.apply(ALICE, used.id)
    # Approved, but the catalog has no such pinned content: refused before any check run.
    approved = make_plan(rt.store, salt="e")
    approvals.approve(rt.store, CHANGES, approved.id, BOB)
    with pytest.raises(CatalogError, match="package_install"):
        await rt.engine.apply(ALICE, approved.id)
    assert plans.list_runs(rt.store)[1] == 1  # only the one started by hand above


def test_the_plan_view_says_what_the_dry_run_touched(rt: Runtime) -> None:
    """A reviewer sees which tasks ran for real during planning (the manifest's
    check_mode_side_effects), e.g. the apt index refresh of the package playbooks."""
    from tailops.tools.changes import build_plan_view

    view = build_plan_view(rt, make_plan(rt.store, salt="side"))
    assert view.check_mode_side_effects, "package_install's index refresh is not shown"
    assert any("apt" in what for what in view.check_mode_side_effects.values())


# Columns a model does not carry on purpose: an index key (requester_subject: the requester's
# subject for lookups, also inside `requester`) and the owning run of an event row.
NOT_IN_MODEL = {"plans": {"requester_subject"}, "approvals": set(), "runs": set(), "run_events": {"run_id"}}


@pytest.mark.parametrize(
    ("table", "model", "renames"),
    [
        ("plans", plans.Plan, {"limit_pattern": "limit", "prediction": "hosts"}),
        ("approvals", plans.Approval, {}),
        ("runs", plans.Run, {}),
        ("run_events", plans.StoredEvent, {}),
    ],
)
def test_every_stored_column_reaches_its_model(
    store: Store, table: str, model: type[Model], renames: dict[str, str]
) -> None:
    """Rows map onto models by column name (plans.from_row): a migration that adds a column the
    model lacks would be dropped silently on every read. This fails until the model has it (or
    it is named here as deliberately not part of the model)."""
    columns = {renames.get(r["name"], r["name"]) for r in store.query(f"PRAGMA table_info({table})")}
    assert columns - set(model.model_fields) == NOT_IN_MODEL[table]


def test_a_plan_reads_back_exactly_as_stored(store: Store) -> None:
    """Every field survives the row mapping: JSON columns (placement, approval requirement),
    renamed columns (limit, hosts) and timestamps (UTC, to the microsecond)."""
    now = 1796307000.123456
    placement = Placement.model_validate(
        {
            "shard_digest": "d" * 64,
            "shards": [
                {"node": "dc2", "hosts": ["db1"], "bundle_sha256": "c" * 64},
                {"node": "local", "hosts": ["web3"], "bundle_sha256": None},
            ],
        }
    )
    needed = ApprovalRequirement.model_validate_json(
        '{"decided_by":[{"count":2,"hosts":["web1"],"rule":"group prod"}],"host_groups":{"web1":["all","prod"]},'
        '"inventory_groups":["all","prod"],"not_auto":[],"required":2,"risk":"low","tightened":false}'
    )
    plan = Plan(
        id="e" * 64,
        playbook="package_install",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params=BASE["params"],
        limit="web*:!web9",
        inventory_sha256="b" * 64,
        risk="low",
        scope="system:admin",
        status="pending",
        stored_status="pending",
        status_reason="1 of 2 approvals",
        hosts=PREDICTION,
        requester=ALICE.describe(),
        requester_ids=sorted(ALICE.identities()),
        check_ident="check-x",
        check_duration_s=4.5,
        created_at=datetime.fromtimestamp(now, UTC),
        expires_at=datetime.fromtimestamp(now + 3600, UTC),
        updated_at=datetime.fromtimestamp(now, UTC),
        placement=placement,
        approval_policy=needed,
    )
    plans.insert_plan(store, plan)
    again = plans.get_plan(store, plan.id, now=now)
    assert again.model_dump(mode="json") == plan.model_dump(mode="json")
    assert again.created_at == plan.created_at and again.created_at.utcoffset() is not None
