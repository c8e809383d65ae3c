-- Invitations as Authentik has them (a flow may be left open: any enrollment flow with an
-- invitation stage then accepts it), kept after use or revocation so that a used, expired or
-- revoked link can be told apart and `invite list` can say who used which invitation (T10, L1).
-- Each completed enrollment records one use, in the transaction that creates the user; `ended`
-- is set then for a single-use invitation (by a conditional UPDATE, so of two enrollments racing
-- on one link exactly one wins) and when an invitation is revoked.
--
-- Source connections get an integer primary key (the API's `pk`) and one link per user and
-- source, as Authentik's user-source connections.

CREATE TABLE invitations_new (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    flow_uuid TEXT REFERENCES flows(uuid) ON DELETE CASCADE,
    expires TEXT,
    fixed_data TEXT NOT NULL DEFAULT '{}',
    single_use INTEGER NOT NULL DEFAULT TRUE,
    created_by INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    revoked TEXT,
    ended INTEGER NOT NULL DEFAULT FALSE
);
INSERT INTO invitations_new (uuid, name, flow_uuid, expires, fixed_data, single_use, created_by, created)
    SELECT uuid, name, flow_uuid, expires, fixed_data, single_use, created_by, created FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_new RENAME TO invitations;

CREATE TABLE invitation_uses (
    invitation_uuid TEXT NOT NULL REFERENCES invitations(uuid) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username TEXT NOT NULL,
    used TEXT NOT NULL
);
CREATE INDEX invitation_uses_invitation ON invitation_uses(invitation_uuid);

CREATE TABLE source_connections_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_uuid TEXT NOT NULL REFERENCES sources(uuid) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    created TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    UNIQUE (source_uuid, identifier),
    UNIQUE (source_uuid, user_id)
);
INSERT INTO source_connections_new (source_uuid, user_id, identifier, created, last_updated)
    SELECT source_uuid, user_id, identifier, created, created FROM source_connections;
DROP TABLE source_connections;
ALTER TABLE source_connections_new RENAME TO source_connections;
CREATE INDEX source_connections_user ON source_connections(user_id);
