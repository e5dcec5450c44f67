-- idlefarm coordinator schema, version 2: accounts (users, login sessions, API tokens), the audit
-- log, and enrolment tokens with ids, expiry and revocation times.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'submitter')),
    password_hash  TEXT NOT NULL,          -- argon2 PHC string
    created_at     INTEGER NOT NULL        -- unix seconds
);

-- A browser's login. The cookie holds `<id>.<secret>`; only the secret's blake3 hash is kept.
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,         -- unix seconds
    expires_at   INTEGER NOT NULL          -- unix seconds
);
CREATE INDEX sessions_user ON sessions(user_id);

-- The CLI's bearer tokens, `<id>.<secret>` like sessions.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,        -- unix seconds
    last_used_at  INTEGER                  -- unix seconds, updated at most once a minute
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,              -- unix seconds
    actor   TEXT NOT NULL,                 -- user name, `local:<unix user>` or `system`
    action  TEXT NOT NULL,                 -- e.g. `user.add`
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL
);

-- Enrolment tokens get an id (for `idlefarm token revoke ID`), an optional expiry and the time
-- they were revoked. Existing tokens stay valid; a token revoked before has no known revocation
-- time, so its creation time stands in.
CREATE TABLE enrolment_tokens_v2 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token       TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,          -- unix seconds
    expires_at  INTEGER,                   -- unix seconds; NULL = never
    revoked_at  INTEGER                    -- unix seconds; NULL = live
);
INSERT INTO enrolment_tokens_v2 (token, created_at, revoked_at)
    SELECT token, created_at, CASE WHEN revoked != 0 THEN created_at END
    FROM enrolment_tokens ORDER BY created_at, token;
DROP TABLE enrolment_tokens;
ALTER TABLE enrolment_tokens_v2 RENAME TO enrolment_tokens;
