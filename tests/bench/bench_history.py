"""Per-host history on a store of 10,000 plans (issue: answers in milliseconds).

10,000 plans over 200 hosts (3 hosts each), a third approved and applied with a run; the
figure is ``host_history(host, limit=50)`` p50 against the baseline of reading one plan by
id from the same store (the cheapest store read there is), in the same run.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tailops.changes import history, plans
from tailops.changes.plans import HostPrediction, Plan, TaskPrediction
from tailops.store import Store
from tests.bench.common import Row, summarize_ms, timed

N_PLANS = 10_000
N_HOSTS = 200


def _plan(i: int, now: float) -> Plan:
    hosts = [
        HostPrediction(
            host=f"web{(i + k * 67) % N_HOSTS}",
            status="changed",
            tasks=[TaskPrediction(task="Write", status="changed", changed=True, diff=f"+line {i}\n")],
        )
        for k in range(3)
    ]
    created = now - (N_PLANS - i) * 60
    return Plan(
        id=f"{i:064x}",
        playbook="tb_marker",
        version="1.0.0",
        playbook_sha256="a" * 64,
        params={"message": f"m{i}"},
        inventory_sha256="b" * 64,
        risk="low",
        scope="system:admin",
        status="pending",
        stored_status="pending",
        hosts=hosts,
        requester={"subject": f"user{i % 7}", "transport": "http"},
        requester_ids=[f"sub:user{i % 7}"],
        created_at=datetime.fromtimestamp(created, UTC),
        expires_at=datetime.fromtimestamp(created + 3600, UTC),
        updated_at=datetime.fromtimestamp(created, UTC),
    )


def run() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "tailops.db")
        try:
            now = time.time()
            t = time.perf_counter()
            for i in range(N_PLANS):
                plans.insert_plan(store, _plan(i, now))
            seed_s = time.perf_counter() - t
            lookup = summarize_ms(timed(lambda: history.host_history(store, "web42", limit=50), 50))
            month = summarize_ms(
                timed(lambda: history.host_history(store, "web42", since=now - 30 * 86400, limit=50), 50)
            )
            base = summarize_ms(timed(lambda: plans.find_plan(store, f"{4242:064x}"), 200))
        finally:
            store.close()
    return [
        Row(
            "history",
            f"host_history p50, {N_PLANS} plans, limit 50",
            lookup["p50"],
            "ms",
            base["p50"],
            target="< 50 ms",
            ok=lookup["p50"] < 50,
            note="baseline: one plan by id",
        ),
        Row(
            "history",
            "host_history p50, last 30 days",
            month["p50"],
            "ms",
            base["p50"],
            target="< 50 ms",
            ok=month["p50"] < 50,
        ),
        Row("history", f"store {N_PLANS} plans (seeding)", seed_s, "s"),
    ]
