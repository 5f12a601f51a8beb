-- Per-host history: which plans targeted which host, so "what changed on web-3 this month,
-- who asked and who approved?" is an index lookup, not a scan of every plan's prediction.
-- One row per (host, plan), written in the transaction that stores the plan; `changing`
-- says whether the check run predicted a change on that host.
CREATE TABLE plan_hosts (
    host        TEXT NOT NULL,
    plan_id     TEXT NOT NULL REFERENCES plans(id),
    created_at  REAL NOT NULL,
    status      TEXT NOT NULL,
    changing    INTEGER NOT NULL CHECK (changing IN (0, 1)),
    PRIMARY KEY (host, plan_id)
);
CREATE INDEX plan_hosts_recent ON plan_hosts(host, created_at DESC);
CREATE INDEX runs_plan_started ON runs(plan_id, started_at);

-- Plans stored before this migration.
INSERT INTO plan_hosts (host, plan_id, created_at, status, changing)
SELECT json_extract(h.value, '$.host'),
       p.id,
       p.created_at,
       json_extract(h.value, '$.status'),
       EXISTS (SELECT 1 FROM json_each(json_extract(h.value, '$.tasks')) t
               WHERE json_extract(t.value, '$.changed') = 1)
FROM plans p, json_each(p.prediction) h
WHERE json_extract(h.value, '$.host') IS NOT NULL;
