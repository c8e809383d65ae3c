-- Reputation scores get a stable key for `policies/reputation/scores/{uuid}/`: a name-based
-- UUID of (identifier, ip), written by the store. Scores forgive a point a minute, so the few
-- rows present at upgrade are dropped rather than keyed in SQL (they would be gone in minutes).
DELETE FROM reputation_scores;
ALTER TABLE reputation_scores ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
CREATE INDEX reputation_scores_uuid ON reputation_scores (uuid);

-- A stage binding's `policy_engine_mode` now decides how its policies combine. Until now every
-- binding combined them with "all", whatever the column said; keep that for existing bindings.
UPDATE flow_stage_bindings SET policy_engine_mode = 'all';
