"""The notification outbox: every SQL statement on ``notifications`` and ``notification_attempts``.

Why an outbox: a webhook receiver can be slow, down or hanging, and a tool call must
never wait for it. Emitting an event only inserts rows (one per endpoint that wants
the event) in one short transaction — callers may do it inside their own transaction
with :func:`enqueue_in`, so the state change and its notification commit together.
A worker claims due rows, sends them and records the outcome here.

Delivery is at-least-once: a claim is a lease (``sending`` until ``lease_until``); a
process that dies mid-send leaves a row whose lease runs out and which is claimed
again. Each row's ``id`` is stable across attempts so receivers can de-duplicate.

Rows never hold a secret (endpoint *names*, redacted event JSON) and this module
never logs row contents.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from tailops.config import NotificationsSettings, Settings
from tailops.errors import InvalidInput, NotFound
from tailops.models import Model
from tailops.notify.events import Event, review_url
from tailops.store import Store

__all__ = [
    "STATES",
    "AttemptRow",
    "Claim",
    "NotificationRow",
    "abandon",
    "backoff_delay",
    "claim_due",
    "counts",
    "enqueue",
    "enqueue_in",
    "get_notification",
    "list_attempts",
    "list_notifications",
    "next_due",
    "notification_id",
    "pending_count",
    "prune",
    "record_attempt",
    "release",
    "retry_dead",
]

State = Literal["pending", "sending", "delivered", "dead"]
Outcome = Literal["delivered", "failed", "timeout", "error"]
STATES: tuple[State, ...] = ("pending", "sending", "delivered", "dead")
_CANDIDATES = 256


def notification_id(event_id: str, endpoint: str) -> str:
    """Stable id of one event for one endpoint (the receiver's de-duplication key)."""
    return hashlib.sha256(f"{event_id}\x00{endpoint}".encode()).hexdigest()[:32]


def _event_json(event: Event) -> str:
    return json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _wanting(settings: Settings, event: Event, only: list[str] | None) -> list[str]:
    if only is not None:  # named endpoints (the CLI's test), whatever their events filter
        return [e.name for e in settings.notifications.endpoints if e.name in only]
    return [e.name for e in settings.notifications.endpoints if event.kind.value in e.events]


def enqueue_in(
    conn: sqlite3.Connection,
    settings: Settings,
    event: Event,
    *,
    endpoints: list[str] | None = None,
    now: float | None = None,
) -> list[str]:
    """Insert the rows for ``event`` on an open write transaction (``store.transaction()``).

    One row per configured endpoint whose ``events`` include the event's kind (or per
    endpoint named in ``endpoints``); an event id already queued for an endpoint is not
    queued twice. Returns the new rows' ids.
    """
    names = _wanting(settings, event, endpoints)
    if not names:
        return []
    if event.review_url is None:
        event = event.model_copy(update={"review_url": review_url(settings, event.plan_id)})
    at = time.time() if now is None else now
    body = _event_json(event)
    created: list[str] = []
    for name in names:
        nid = notification_id(event.id, name)
        cur = conn.execute(
            "INSERT OR IGNORE INTO notifications(id, event_id, kind, endpoint, event, plan_id, run_id, state,"
            " attempts, next_attempt_at, created_at, due_since, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
            (nid, event.id, event.kind.value, name, body, event.plan_id, event.run_id, at, at, at, at),
        )
        if cur.rowcount == 1:
            created.append(nid)
    return created


def enqueue(
    store: Store,
    settings: Settings,
    event: Event,
    *,
    endpoints: list[str] | None = None,
    now: float | None = None,
) -> list[str]:
    """Queue ``event`` for every endpoint that wants it, in one transaction; return the new ids.

    Only SQLite is touched (no network, no secret read), so this is as fast as one
    small insert per endpoint whatever state the receivers are in.
    """
    if not _wanting(settings, event, endpoints):
        return []
    with store.transaction() as conn:
        return enqueue_in(conn, settings, event, endpoints=endpoints, now=now)


# --------------------------------------------------------------------------- delivery side
@dataclass(frozen=True)
class Claim:
    """A row claimed for one delivery attempt by one worker."""

    id: str
    endpoint: str
    event: Event
    attempt: int
    due_since: float


def claim_due(
    store: Store,
    *,
    instance: str,
    lease: float,
    capacity: int,
    busy: dict[str, int],
    per_endpoint: int,
    only: set[str] | None = None,
    now: float | None = None,
) -> list[Claim]:
    """Claim up to ``capacity`` due rows, at most ``per_endpoint`` in flight per endpoint.

    Due: ``pending`` whose time has come, or ``sending`` whose lease ran out (its
    worker died). ``busy`` counts this worker's deliveries in flight per endpoint.
    Each claim counts as an attempt (a row that kills its worker is not retried forever).
    ``only`` restricts the claim to those ids (``tailops notifications test``).
    """
    if capacity <= 0:
        return []
    at = time.time() if now is None else now
    taken: dict[str, int] = dict(busy)
    # Endpoints already at their limit are left out in SQL, so their backlog cannot fill the
    # candidate window and starve the others.
    full = sorted(name for name, n in busy.items() if n >= per_endpoint)
    skip = f" AND endpoint NOT IN ({','.join('?' * len(full))})" if full else ""
    claims: list[Claim] = []
    with store.transaction() as conn:
        if only is not None:
            wanted = sorted(only)[:_CANDIDATES]
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(
                "SELECT id, endpoint, event, attempts, due_since FROM notifications"  # noqa: S608 - marks are ?s
                f" WHERE id IN ({marks}) AND ((state = 'pending' AND next_attempt_at <= ?)"
                f" OR (state = 'sending' AND lease_until <= ?)){skip}",
                (*wanted, at, at, *full),
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT id, endpoint, event, attempts, due_since, next_attempt_at AS due FROM notifications"  # noqa: S608
                f" WHERE state = 'pending' AND next_attempt_at <= ?{skip}"
                " UNION ALL "
                "SELECT id, endpoint, event, attempts, due_since, lease_until AS due FROM notifications"
                f" WHERE state = 'sending' AND lease_until <= ?{skip}"
                " ORDER BY due LIMIT ?",
                (at, *full, at, *full, _CANDIDATES),
            ).fetchall()
        for row in rows:
            if len(claims) >= capacity:
                break
            name = str(row["endpoint"])
            if taken.get(name, 0) >= per_endpoint:
                continue
            attempt = int(row["attempts"]) + 1
            try:
                event = Event.model_validate_json(row["event"])
            except ValueError:
                # Written by another version or edited by hand: it cannot be sent as is.
                conn.execute(
                    "UPDATE notifications SET state = 'dead', attempts = ?, last_error = ?, updated_at = ?"
                    " WHERE id = ?",
                    (attempt, "the stored event cannot be read", at, row["id"]),
                )
                continue
            conn.execute(
                "UPDATE notifications SET state = 'sending', attempts = ?, lease_until = ?, claimed_by = ?,"
                " updated_at = ? WHERE id = ?",
                (attempt, at + lease, instance, at, row["id"]),
            )
            taken[name] = taken.get(name, 0) + 1
            claims.append(
                Claim(
                    id=str(row["id"]),
                    endpoint=name,
                    event=event,
                    attempt=attempt,
                    due_since=float(row["due_since"]),
                )
            )
    return claims


def next_due(store: Store, *, exclude: set[str], only: set[str] | None = None) -> float | None:
    """When the earliest pending row of an endpoint not in ``exclude`` is due (None: none is)."""
    skip = sorted(exclude)
    where = "state = 'pending'"
    params: list[object] = []
    if skip:
        where += f" AND endpoint NOT IN ({','.join('?' * len(skip))})"
        params += skip
    if only is not None:
        wanted = sorted(only)[:_CANDIDATES]
        where += f" AND id IN ({','.join('?' * len(wanted))})"
        params += wanted
    row = store.query_one(f"SELECT MIN(next_attempt_at) AS due FROM notifications WHERE {where}", params)  # noqa: S608
    return float(row["due"]) if row is not None and row["due"] is not None else None


def backoff_delay(attempt: int, config: NotificationsSettings, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): doubling from backoff_min up
    to backoff_max, with "equal jitter" (a random point in the upper half) so that many rows
    failing together do not retry together."""
    low = config.backoff_min.total_seconds()
    high = config.backoff_max.total_seconds()
    base = min(high, low * (2 ** min(attempt - 1, 40)))
    return (rng or random).uniform(base / 2, base)


def record_attempt(
    store: Store,
    claim: Claim,
    config: NotificationsSettings,
    *,
    instance: str,
    outcome: Outcome,
    status: int | None,
    error: str | None,
    started_at: float,
    retry_after: float | None = None,
    final: bool = False,
    now: float | None = None,
) -> State:
    """Store one attempt and the row's next state: delivered, pending (with backoff) or dead.

    Dead when ``max_attempts`` attempts failed, the row is older than ``max_age``, or
    ``final`` (retrying cannot help, e.g. the endpoint left the config). A row
    this worker no longer owns (its lease ran out and another worker took it) keeps the
    other worker's state; the attempt is recorded either way.
    """
    at = time.time() if now is None else now
    if outcome == "delivered":
        state: State = "delivered"
        next_at = at
    elif final or claim.attempt >= config.max_attempts or at - claim.due_since >= config.max_age.total_seconds():
        state = "dead"
        next_at = at
    else:
        state = "pending"
        delay = backoff_delay(claim.attempt, config)
        if retry_after is not None:
            delay = max(delay, min(retry_after, config.backoff_max.total_seconds()))
        next_at = at + delay
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO notification_attempts(notification_id, attempt, started_at, finished_at, outcome, status,"
            " error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (claim.id, claim.attempt, started_at, at, outcome, status, error),
        )
        conn.execute(
            "UPDATE notifications SET state = ?, next_attempt_at = ?, lease_until = NULL, claimed_by = NULL,"
            " last_status = ?, last_error = ?, updated_at = ?, delivered_at = CASE WHEN ? THEN ? ELSE NULL END"
            " WHERE id = ? AND state = 'sending' AND claimed_by = ?",
            (state, next_at, status, error, at, state == "delivered", at, claim.id, instance),
        )
    return state


def release(store: Store, ids: list[str], *, instance: str, now: float | None = None) -> int:
    """Give back rows whose delivery was cut short by a stop: due again at once (the attempt
    is not counted; the receiver may have got it, which de-duplication by id covers)."""
    if not ids:
        return 0
    at = time.time() if now is None else now
    changed = 0
    with store.transaction() as conn:
        for nid in ids:
            changed += conn.execute(
                "UPDATE notifications SET state = 'pending', attempts = MAX(attempts - 1, 0), next_attempt_at = ?,"
                " lease_until = NULL, claimed_by = NULL, updated_at = ? WHERE id = ? AND state = 'sending'"
                " AND claimed_by = ?",
                (at, at, nid, instance),
            ).rowcount
    return changed


# --------------------------------------------------------------------------- reading, operator actions
class NotificationRow(Model):
    id: str = Field(description="Stable notification id (sent as X-Tailops-Delivery).")
    event_id: str
    kind: str
    endpoint: str
    state: State
    attempts: int
    plan_id: str | None = None
    run_id: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    created_at: float
    next_attempt_at: float
    delivered_at: float | None = None


class AttemptRow(Model):
    attempt: int
    started_at: float
    finished_at: float
    outcome: Outcome
    status: int | None = None
    error: str | None = None


def _row(row: sqlite3.Row) -> NotificationRow:
    return NotificationRow(**{k: row[k] for k in NotificationRow.model_fields})


_COLUMNS = ", ".join(NotificationRow.model_fields)


def list_notifications(store: Store, *, state: str | None = None, limit: int = 50) -> list[NotificationRow]:
    """Newest first, optionally of one state."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown state {state!r}; use one of: {', '.join(STATES)}.")
    # _COLUMNS is the model's field names (constant).
    if state is None:
        rows = store.query(f"SELECT {_COLUMNS} FROM notifications ORDER BY created_at DESC LIMIT ?", (limit,))  # noqa: S608
    else:
        rows = store.query(
            f"SELECT {_COLUMNS} FROM notifications WHERE state = ? ORDER BY created_at DESC LIMIT ?",  # noqa: S608
            (state, limit),
        )
    return [_row(r) for r in rows]


def get_notification(store: Store, nid: str) -> NotificationRow:
    row = store.query_one(f"SELECT {_COLUMNS} FROM notifications WHERE id = ?", (nid,))  # noqa: S608
    if row is None:
        raise NotFound(f"no notification {nid}.")
    return _row(row)


def list_attempts(store: Store, nid: str) -> list[AttemptRow]:
    rows = store.query(
        "SELECT attempt, started_at, finished_at, outcome, status, error FROM notification_attempts"
        " WHERE notification_id = ? ORDER BY id",
        (nid,),
    )
    return [AttemptRow(**dict(r)) for r in rows]


def pending_count(store: Store) -> int:
    """Rows queued or being sent (the ``tailops_notifications_pending`` gauge)."""
    row = store.query_one("SELECT COUNT(*) AS n FROM notifications WHERE state IN ('pending', 'sending')")
    return int(row["n"]) if row else 0


def counts(store: Store) -> dict[str, int]:
    """Rows per state (every state present, zero included)."""
    found = {
        str(r["state"]): int(r["n"])
        for r in store.query("SELECT state, COUNT(*) AS n FROM notifications GROUP BY state")
    }
    return {s: found.get(s, 0) for s in STATES}


def retry_dead(store: Store, ids: list[str] | None = None, *, now: float | None = None) -> int:
    """Make dead rows due again with a fresh attempt budget and age; ``None`` = every dead row.

    An id that does not exist or is not dead is refused (nothing is changed then)."""
    at = time.time() if now is None else now
    with store.transaction() as conn:
        if ids is None:
            return conn.execute(
                "UPDATE notifications SET state = 'pending', attempts = 0, next_attempt_at = ?, due_since = ?,"
                " updated_at = ? WHERE state = 'dead'",
                (at, at, at),
            ).rowcount
        for nid in ids:
            row = conn.execute("SELECT state FROM notifications WHERE id = ?", (nid,)).fetchone()
            if row is None:
                raise NotFound(f"no notification {nid}.")
            if row["state"] != "dead":
                raise InvalidInput(f"notification {nid} is {row['state']}, not dead; only dead ones are retried.")
        changed = 0
        for nid in ids:
            changed += conn.execute(
                "UPDATE notifications SET state = 'pending', attempts = 0, next_attempt_at = ?, due_since = ?,"
                " updated_at = ? WHERE id = ? AND state = 'dead'",
                (at, at, at, nid),
            ).rowcount
        return changed


def abandon(store: Store, ids: list[str], *, now: float | None = None) -> int:
    """Mark rows not delivered yet as dead (a test notification gets one attempt only)."""
    at = time.time() if now is None else now
    changed = 0
    with store.transaction() as conn:
        for nid in ids:
            changed += conn.execute(
                "UPDATE notifications SET state = 'dead', lease_until = NULL, claimed_by = NULL, updated_at = ?,"
                " last_error = COALESCE(last_error, 'not sent in time')"
                " WHERE id = ? AND state IN ('pending', 'sending')",
                (at, nid),
            ).rowcount
    return changed


def prune(store: Store, *, older_than: float) -> int:
    """Delete delivered and dead rows queued before ``older_than`` (their attempts go too).

    By queue time, so the scan is an index range over old rows only (it runs every minute
    inside a write transaction). Nothing pending is that old: ``max_age`` <= ``retention``.
    """
    with store.transaction() as conn:
        conn.execute(
            "DELETE FROM notification_attempts WHERE notification_id IN (SELECT id FROM notifications"
            " WHERE created_at < ? AND +state IN ('delivered', 'dead'))",  # + : use the created_at index
            (older_than,),
        )
        return conn.execute(
            "DELETE FROM notifications WHERE created_at < ? AND +state IN ('delivered', 'dead')", (older_than,)
        ).rowcount
