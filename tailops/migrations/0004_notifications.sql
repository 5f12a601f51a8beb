-- Webhook notifications (tailops/notify): a durable outbox and its delivery attempts.
-- Times are UNIX seconds (REAL, UTC). Rows hold no secret: `endpoint` is the name of a
-- configured endpoint whose URL and key are resolved when a row is sent, and `event`
-- is the event's canonical JSON (ids, counts, subjects, redacted reason; never params
-- or diffs). All SQL for these tables lives in tailops/notify/outbox.py.

-- One notification = one event for one endpoint. `id` is stable across retries and is
-- sent to the receiver (X-Tailops-Delivery, body "id") so it can de-duplicate.
-- state: pending (due at next_attempt_at) | sending (claimed until lease_until; a row
-- whose lease ran out belongs to a process that died and is due again) | delivered | dead.
CREATE TABLE notifications (
    id                  TEXT PRIMARY KEY,
    event_id            TEXT NOT NULL,
    kind                TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    event               TEXT NOT NULL,
    plan_id             TEXT,
    run_id              TEXT,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     REAL NOT NULL,
    lease_until         REAL,
    claimed_by          TEXT,
    last_status         INTEGER,
    last_error          TEXT,
    created_at          REAL NOT NULL,
    due_since           REAL NOT NULL,          -- queued or last retried by hand: max_age counts from here
    updated_at          REAL NOT NULL,
    delivered_at        REAL,
    UNIQUE (event_id, endpoint)
);
-- The worker's question: what is due now (pending by time; the few rows 'sending' are
-- found by the same index's state prefix). Listing is newest first. Every index costs
-- each emit (measured in tests/bench/bench_notify.py), so there are no others.
CREATE INDEX notifications_due ON notifications(state, next_attempt_at);
CREATE INDEX notifications_created ON notifications(created_at);

-- Every delivery attempt, kept for `tailops notifications list --attempts` and forensics.
-- outcome: delivered | failed (answered, not 2xx) | timeout | error (no answer).
-- `error` is written by tailops, never a receiver's body or a URL.
CREATE TABLE notification_attempts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id     TEXT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    attempt             INTEGER NOT NULL,
    started_at          REAL NOT NULL,
    finished_at         REAL NOT NULL,
    outcome             TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'timeout', 'error')),
    status              INTEGER,
    error               TEXT
);
CREATE INDEX notification_attempts_by ON notification_attempts(notification_id, attempt);
