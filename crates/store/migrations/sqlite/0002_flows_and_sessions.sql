-- Login flows: server-side flow state keyed by an opaque cookie, remembered consents, TOTP replay
-- protection and recovery codes.

CREATE TABLE flow_states (
    key_hash TEXT PRIMARY KEY,
    flow_uuid TEXT NOT NULL REFERENCES flows(uuid) ON DELETE CASCADE,
    data TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX flow_states_expires ON flow_states(expires);

CREATE TABLE consents (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    application_uuid TEXT NOT NULL REFERENCES applications(uuid) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (user_id, application_uuid)
);

ALTER TABLE totp_devices ADD COLUMN last_step INTEGER NOT NULL DEFAULT 0;

CREATE TABLE recovery_codes (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
