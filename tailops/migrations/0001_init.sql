-- Server-wide facts: instance id, first start time.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta(key, value) VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
INSERT INTO meta(key, value) VALUES ('instance_id', lower(hex(randomblob(16))));
