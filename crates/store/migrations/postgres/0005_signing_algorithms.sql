-- OIDC providers choose their signing algorithm (RS256 or ES256); a rotated-out key records
-- until when it stays published (the longest token lifetime at the moment it was retired).

ALTER TABLE oauth2_providers ADD COLUMN signing_algorithm TEXT NOT NULL DEFAULT 'RS256';
ALTER TABLE signing_keys ADD COLUMN published_until TEXT;
