"""Store a plan through the real store API, without a check run.

Why: CLI and review-page tests are about reading and deciding plans; a real check
run (tests/integration/test_change_lifecycle.py covers it) would only add minutes.
The plan is a real row: ids, requester identities and expiry as the planner
writes them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from tailops.changes import plans
from tailops.changes.plans import HostPrediction, Plan, TaskPrediction
from tailops.principal import Principal
from tailops.store import Store

__all__ = ["MARKER_DIFF", "seed_plan"]

MARKER_DIFF = "--- before\n+++ /etc/tailops-tb-marker\n@@ -0,0 +1 @@\n+hello\n"


def seed_plan(
    db_path: Path,
    requester: Principal,
    *,
    message: str = "hello",
    status: str = "pending",
    diff: str = MARKER_DIFF,
    task_msg: str | None = None,
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
    )
    store = Store(db_path)
    try:
        plans.insert_plan(store, plan)
    finally:
        store.close()
    return plan
