-- idlefarm coordinator schema: one-time setup links (issue 7). The first start prints a link that
-- lets the admin choose their password; `idlefarm user setup-link` makes a new one. The link's key
-- is `<id>.<secret>` like an API token; only the secret's blake3 hash is kept. A used key stays
-- (with `used_at`) so a second visit can be told "already used" rather than "wrong".

CREATE TABLE setup_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,         -- unix seconds
    expires_at   INTEGER NOT NULL,         -- unix seconds
    used_at      INTEGER                   -- unix seconds; NULL = not used yet
);
CREATE INDEX setup_keys_user ON setup_keys(user_id);
