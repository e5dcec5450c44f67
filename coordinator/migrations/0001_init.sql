-- idlefarm coordinator schema, version 1.

CREATE TABLE enrolment_tokens (
    token       TEXT PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE agents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    renderers    TEXT NOT NULL,          -- JSON list of RendererInfo
    presence     TEXT NOT NULL DEFAULT 'idle',
    last_seen    INTEGER,                -- unix seconds
    frames_done  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    error        TEXT,
    warnings     TEXT NOT NULL,          -- JSON list of strings
    settings     TEXT NOT NULL,          -- JSON RenderSettings
    input_hash   TEXT NOT NULL,
    input_kind   TEXT NOT NULL,
    input_name   TEXT NOT NULL,
    chunk_size   INTEGER,
    has_video    INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

CREATE TABLE leases (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    agent_id     INTEGER NOT NULL REFERENCES agents(id),
    frames       TEXT NOT NULL,          -- JSON list of frame indices
    started_at   INTEGER NOT NULL,       -- unix millis
    expires_at   INTEGER NOT NULL        -- unix millis
);

CREATE TABLE frames (
    job_id       INTEGER NOT NULL REFERENCES jobs(id),
    idx          INTEGER NOT NULL,       -- position in the job's frame list
    frame        INTEGER NOT NULL,
    state        TEXT NOT NULL,          -- queued | rendering | done | failed
    lease_id     INTEGER,
    agent_id     INTEGER,
    failures     INTEGER NOT NULL DEFAULT 0,
    file         TEXT,
    PRIMARY KEY (job_id, idx)
);

CREATE TABLE lease_failures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       INTEGER NOT NULL,
    agent_id     INTEGER NOT NULL,
    lease_id     INTEGER NOT NULL,
    message      TEXT NOT NULL,
    log_tail     TEXT,
    at           INTEGER NOT NULL
);
