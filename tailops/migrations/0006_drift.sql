-- Drift: scheduled check runs of configured catalog playbooks, and per host what each found.
-- state: in_line (the check predicts no change) | drifted (it predicts changes: the host is not
-- in the desired state) | unreachable | failed. `after_apply` marks a drifted host that tailops
-- itself brought in line with a successful run of the same playbook and params: the drift was
-- introduced outside tailops since then.
CREATE TABLE drift_runs (
    id              TEXT PRIMARY KEY,
    check_name      TEXT NOT NULL,
    playbook        TEXT NOT NULL,
    params          TEXT NOT NULL,
    limit_pattern   TEXT,
    started_at      REAL NOT NULL,
    finished_at     REAL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    reason          TEXT
);
CREATE INDEX drift_runs_check ON drift_runs(check_name, started_at DESC);

CREATE TABLE drift_results (
    run_id          TEXT NOT NULL REFERENCES drift_runs(id),
    check_name      TEXT NOT NULL,
    host            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('in_line', 'drifted', 'unreachable', 'failed')),
    changes         TEXT NOT NULL,
    diff            TEXT,
    after_apply     TEXT,
    checked_at      REAL NOT NULL,
    PRIMARY KEY (run_id, host)
);
CREATE INDEX drift_results_latest ON drift_results(check_name, host, checked_at DESC);
CREATE INDEX drift_results_host ON drift_results(host, checked_at DESC);
