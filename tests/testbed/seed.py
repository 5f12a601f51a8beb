"""Store a plan through the real store API, without a check run.

Why: CLI and review-page tests are about reading and deciding plans; a real check
run (tests/integration/test_change_lifecycle.py covers it) would only add minutes.
The plan is a real row: ids, requester identities and expiry as the planner
writes them.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from tailops.changes import approvals, plans
from tailops.changes.executors.placement import Placement
from tailops.changes.models import RunEvent
from tailops.changes.plans import HostOutcome, HostPrediction, Plan, Run, RunState, TaskPrediction
from tailops.config import ChangesSettings
from tailops.principal import Principal
from tailops.store import Store

__all__ = ["MARKER_DIFF", "seed_plan", "seed_run"]

MARKER_DIFF = "--- before\n+++ /etc/tailops-tb-marker\n@@ -0,0 +1 @@\n+hello\n"


def seed_plan(
    db_path: Path,
    requester: Principal,
    *,
    message: str = "hello",
    status: str = "pending",
    diff: str = MARKER_DIFF,
    task_msg: str | None = None,
    placement: Placement | None = None,
) -> Plan:
    hosts = [
        HostPrediction(
            host="web1",
            status="changed",
            tasks=[
                TaskPrediction(task="Write the marker file", status="changed", changed=True, diff=diff, msg=task_msg),
                TaskPrediction(task="Wait before finishing", status="skipped", not_simulated=True),
            ],
        )
    ]
    now = time.time()
    params = {"message": message}
    plan_id = plans.plan_id_for(
        playbook="tb_marker",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params=params,
        limit=None,
        inventory_sha256="b" * 64,
        hosts=hosts,
        placement=placement,
    )
    plan = Plan(
        id=plan_id,
        playbook="tb_marker",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params=params,
        inventory_sha256="b" * 64,
        risk="low",
        scope="system:admin",
        status=status,
        stored_status=status,
        status_reason="host web2 unreachable" if status == "blocked" else None,
        hosts=hosts,
        requester=requester.describe(),
        requester_ids=sorted(requester.identities()),
        created_at=datetime.fromtimestamp(now, UTC),
        expires_at=datetime.fromtimestamp(now + 3600, UTC),
        updated_at=datetime.fromtimestamp(now, UTC),
        placement=placement,
    )
    store = Store(db_path)
    try:
        plans.insert_plan(store, plan)
    finally:
        store.close()
    return plan


def seed_run(
    db_path: Path,
    plan: Plan,
    approver: Principal,
    events: list[RunEvent],
    *,
    finish: tuple[RunState, str | None, list[HostOutcome], list[str]] | None = None,
    server: tuple[int, float] | None = None,
) -> Run:
    """Approve ``plan`` as ``approver``, start its run (the one-transaction path the
    executor uses), store ``events`` and, with ``finish`` = (status, reason, outcome,
    mismatches), record its end — without Ansible. ``server`` = (pid, start time) of the
    process recorded as applying it (default: this one, alive; a gone one mimics a
    crashed server)."""
    pid, pid_started = server or (os.getpid(), psutil.Process().create_time())
    store = Store(db_path)
    try:
        approval = approvals.approve(store, ChangesSettings(), plan.id, approver, "seeded")
        run = plans.consume_and_start_run(
            store,
            run_id=plans.new_id(),
            plan_id=plan.id,
            approval_id=approval.id,
            requester=plan.requester,
            instance_id="seed",
            pid=pid,
            pid_started=pid_started,
            runner_ident="apply-seed",
            now=time.time(),
        )
        plans.append_events(store, run.id, 1, events)
        if finish is not None:
            status, reason, outcome, mismatches = finish
            plans.finish_run(store, run.id, status=status, reason=reason, outcome=outcome, mismatches=mismatches)
        return plans.get_run(store, run.id)
    finally:
        store.close()
