-- idlefarm coordinator schema: frame checks (issue 8). What each done frame looked like, how a
-- check of it ended, the renders held while it waits for another PC's opinion, and which
-- failure records are wrong frames (renders other PCs outvoted) rather than failed leases.

ALTER TABLE frames ADD COLUMN look TEXT;         -- JSON {"flat": [r,g,b] | null, "bytes": n}; NULL: not measured
ALTER TABLE frames ADD COLUMN check_note TEXT;   -- how its check ended; NULL: never checked
ALTER TABLE frames ADD COLUMN checking TEXT;     -- JSON check (reason, since, candidates) while held

ALTER TABLE lease_failures ADD COLUMN wrong_frame INTEGER NOT NULL DEFAULT 0;
