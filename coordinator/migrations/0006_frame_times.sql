-- idlefarm coordinator schema: when each frame was stored, for the overview's frames per hour
-- (issue 7). NULL for frames stored before this column existed and for frames not done.

ALTER TABLE frames ADD COLUMN done_at_ms INTEGER;              -- unix millis

CREATE INDEX frames_done_at ON frames (done_at_ms) WHERE done_at_ms IS NOT NULL;
