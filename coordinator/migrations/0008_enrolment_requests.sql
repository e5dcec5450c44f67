-- idlefarm coordinator schema: enrolment by approval (issue 9). A PC without an enrolment token
-- asks to join; an admin approves (the PC then claims its credentials with the key it sent)
-- or turns it down.

CREATE TABLE enrolment_requests (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    renderers   TEXT NOT NULL,             -- JSON list of {renderer, version}
    key_hash    TEXT NOT NULL,             -- blake3 of the PC's key, hex
    created_at  INTEGER NOT NULL,          -- unix seconds
    state       TEXT NOT NULL,             -- waiting | approved | rejected | claimed
    decided_by  INTEGER,                   -- users.id of the admin who decided
    agent_id    INTEGER                    -- the agent made when it was claimed
);

CREATE INDEX enrolment_requests_state ON enrolment_requests (state);
