"""Queue ``plan.expired`` for plans whose time ran out while they waited.

Why here: a plan's "expired" status is derived from ``expires_at`` (never stored),
so no lifecycle step happens when it expires and nobody would emit the event. The
delivery worker calls :func:`sweep_expired_plans` once a minute: plans still
pending or approved whose ``expires_at`` passed within the last ``max_age`` get one
event each (the id ``plan.expired:<plan id>`` makes repeats no-ops). It only reads
the plans table (ids, playbook, risk, host count, requester) and writes the outbox.
"""

from __future__ import annotations

import json
import time

from tailops.config import Settings
from tailops.notify import outbox
from tailops.notify.events import Event, EventKind, who
from tailops.store import Store

__all__ = ["sweep_expired_plans"]

_BATCH = 200


def sweep_expired_plans(store: Store, settings: Settings, *, now: float | None = None) -> int:
    """Queue plan.expired for newly expired plans; return how many events were queued."""
    if not any(EventKind.PLAN_EXPIRED.value in e.events for e in settings.notifications.endpoints):
        return 0
    at = time.time() if now is None else now
    since = at - settings.notifications.max_age.total_seconds()
    rows = store.query(
        "SELECT id, playbook, risk, requester, json_array_length(prediction) AS hosts, expires_at FROM plans"
        " WHERE status IN ('pending', 'approved') AND expires_at <= ? AND expires_at > ?"
        " AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = 'plan.expired:' || plans.id)"
        " ORDER BY expires_at LIMIT ?",
        (at, since, _BATCH),
    )
    queued = 0
    for row in rows:
        requester = json.loads(row["requester"]) if row["requester"] else {}
        event = Event(
            id=f"plan.expired:{row['id']}",
            kind=EventKind.PLAN_EXPIRED,
            occurred_at=float(row["expires_at"]),
            plan_id=row["id"],
            playbook=row["playbook"],
            risk=row["risk"],
            hosts=int(row["hosts"] or 0),
            requester=who(requester),
        )
        if outbox.enqueue(store, settings, event, now=at):
            queued += 1
    return queued
