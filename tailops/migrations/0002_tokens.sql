-- Tokens minted by `tailops token mint` (never the token itself: only its claims)
-- and their revocation. Verification checks `revoked_at` on every request.
CREATE TABLE tokens (
    jti         TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT,
    note        TEXT
);
CREATE INDEX tokens_subject ON tokens(subject);
-- Revocations of jtis this store never issued (tokens minted elsewhere with the same key).
CREATE TABLE revocations (
    jti         TEXT PRIMARY KEY,
    revoked_at  INTEGER NOT NULL,
    revoked_by  TEXT
);
