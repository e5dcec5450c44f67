-- idlefarm coordinator schema: per-agent presence history (issue 6).
-- One row per change of an agent's presence state, kept 30 days (plus each agent's last change
-- before that, so its timeline still has a left edge).

CREATE TABLE presence_log (
    agent_id     INTEGER NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    at_ms        INTEGER NOT NULL,       -- unix millis the state began
    state        TEXT NOT NULL           -- PresenceState, kebab-case as on the wire
);

CREATE INDEX presence_log_agent_at ON presence_log (agent_id, at_ms);
