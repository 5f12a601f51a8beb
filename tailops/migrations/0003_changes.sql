-- The change lifecycle (DESIGN.md "The change lifecycle"): plans, approvals, runs
-- and the events of each run. Times are UNIX seconds (REAL, UTC). JSON columns
-- hold canonical JSON written by tailops/changes/plans.py (the only SQL for them).

-- One plan = one check run of one catalog playbook version with fixed params,
-- limit and inventory snapshot. `id` is the SHA-256 of that canonical content.
-- Stored status: pending | approved | denied | blocked | stale | applied
-- ("expired" is derived from expires_at, never stored).
CREATE TABLE plans (
    id                  TEXT PRIMARY KEY CHECK (length(id) = 64),
    previous_id         TEXT REFERENCES plans(id),
    playbook            TEXT NOT NULL,
    version             TEXT NOT NULL,
    playbook_sha256     TEXT NOT NULL,
    params              TEXT NOT NULL,
    limit_pattern       TEXT,
    inventory_sha256    TEXT NOT NULL,
    risk                TEXT NOT NULL CHECK (risk IN ('low', 'high', 'critical')),
    scope               TEXT NOT NULL,
    status              TEXT NOT NULL
                        CHECK (status IN ('pending', 'approved', 'denied', 'blocked', 'stale', 'applied')),
    status_reason       TEXT,
    prediction          TEXT NOT NULL,
    requester_subject   TEXT NOT NULL,
    requester           TEXT NOT NULL,
    requester_ids       TEXT NOT NULL,
    check_ident         TEXT,
    check_duration_s    REAL,
    created_at          REAL NOT NULL,
    expires_at          REAL NOT NULL,
    updated_at          REAL NOT NULL
);
CREATE INDEX plans_status ON plans(status, expires_at);
CREATE INDEX plans_created ON plans(created_at);
CREATE INDEX plans_requester ON plans(requester_subject);

-- A decision about one plan id. Approvals are single use (used_at/used_by_run set in
-- the same transaction that writes the run row) and expire; denials close the plan.
CREATE TABLE approvals (
    id                  TEXT PRIMARY KEY,
    plan_id             TEXT NOT NULL REFERENCES plans(id),
    decision            TEXT NOT NULL CHECK (decision IN ('approved', 'denied')),
    by_policy           INTEGER NOT NULL DEFAULT 0 CHECK (by_policy IN (0, 1)),
    approver_subject    TEXT NOT NULL,
    approver            TEXT NOT NULL,
    approver_ids        TEXT NOT NULL,
    comment             TEXT,
    created_at          REAL NOT NULL,
    expires_at          REAL,
    used_at             REAL,
    used_by_run         TEXT
);
CREATE INDEX approvals_plan ON approvals(plan_id, created_at);

-- One real (APPLY) run of an approved plan. The row is written, status 'running',
-- before ansible starts; a server that dies leaves it 'running' and the next start
-- marks it 'interrupted'. Status: running | succeeded | failed | canceled | interrupted.
CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    plan_id             TEXT NOT NULL REFERENCES plans(id),
    approval_id         TEXT NOT NULL REFERENCES approvals(id),
    status              TEXT NOT NULL
                        CHECK (status IN ('running', 'succeeded', 'failed', 'canceled', 'interrupted')),
    status_reason       TEXT,
    requester_subject   TEXT NOT NULL,
    requester           TEXT NOT NULL,
    instance_id         TEXT NOT NULL,
    pid                 INTEGER NOT NULL,
    pid_started         REAL NOT NULL,
    runner_ident        TEXT,
    runner_status       TEXT,
    rc                  INTEGER,
    outcome             TEXT,
    mismatches          TEXT,
    cancel_requested_at REAL,
    cancel_requested_by TEXT,
    started_at          REAL NOT NULL,
    finished_at         REAL,
    event_count         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_plan ON runs(plan_id);
CREATE INDEX runs_status ON runs(status, started_at);
CREATE UNIQUE INDEX runs_one_per_approval ON runs(approval_id);

-- Progress events of a run, in the order Ansible produced them.
CREATE TABLE run_events (
    run_id              TEXT NOT NULL REFERENCES runs(id),
    seq                 INTEGER NOT NULL,
    kind                TEXT NOT NULL,
    host                TEXT,
    task                TEXT,
    status              TEXT,
    changed             INTEGER NOT NULL DEFAULT 0,
    not_simulated       INTEGER NOT NULL DEFAULT 0,
    msg                 TEXT,
    diff                TEXT,
    created_at          REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
