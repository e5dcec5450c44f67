-- Owners, priorities and control of jobs; modes, tags and health of agents; per-frame detail.

ALTER TABLE jobs ADD COLUMN owner_id INTEGER;                     -- users.id; NULL: from before accounts
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN required_tags TEXT NOT NULL DEFAULT '[]';  -- JSON list
ALTER TABLE jobs ADD COLUMN started_at INTEGER;                   -- unix seconds of the first lease
ALTER TABLE jobs ADD COLUMN finished_at INTEGER;                  -- unix seconds
ALTER TABLE jobs ADD COLUMN latest_frame INTEGER;

ALTER TABLE frames ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE frames ADD COLUMN render_ms INTEGER;
ALTER TABLE frames ADD COLUMN failed_on TEXT NOT NULL DEFAULT '[]';   -- JSON list of agent ids

ALTER TABLE agents ADD COLUMN mode TEXT NOT NULL DEFAULT 'active';     -- active | draining | disabled
ALTER TABLE agents ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';         -- JSON list
ALTER TABLE agents ADD COLUMN released_at INTEGER NOT NULL DEFAULT 0;  -- unix millis; failures before it are forgiven
ALTER TABLE agents ADD COLUMN yields INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN forgotten INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN latest_job INTEGER;
ALTER TABLE agents ADD COLUMN latest_frame INTEGER;

ALTER TABLE lease_failures ADD COLUMN frames TEXT NOT NULL DEFAULT '[]';  -- JSON list of frame numbers
ALTER TABLE lease_failures ADD COLUMN at_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX lease_failures_agent ON lease_failures (agent_id, at_ms);
CREATE INDEX lease_failures_job ON lease_failures (job_id);
