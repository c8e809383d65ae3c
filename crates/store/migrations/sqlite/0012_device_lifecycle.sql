-- Authenticator lifecycle (#13 item 6). A session remembers when its user last proved a factor
-- (the login itself, or a re-authentication on the user page): adding or removing a passkey or
-- TOTP device needs a recent proof, so a stolen cookie alone cannot change the user's factors.
-- NULL (sessions from before this migration) counts as no recent proof.
--
-- Devices get an integer id, the primary key Authentik's API gives them (`pk`), and TOTP
-- devices record when a code of theirs was last accepted, as passkeys already do. SQLite cannot
-- add an autoincrement column, so both device tables are rebuilt (nothing references them).

ALTER TABLE sessions ADD COLUMN authenticated_at TEXT;

CREATE TABLE totp_devices_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT FALSE,
    created TEXT NOT NULL,
    last_step INTEGER NOT NULL DEFAULT 0,
    last_used TEXT
);
INSERT INTO totp_devices_new (uuid, user_id, name, secret, confirmed, created, last_step)
    SELECT uuid, user_id, name, secret, confirmed, created, last_step FROM totp_devices ORDER BY created;
DROP TABLE totp_devices;
ALTER TABLE totp_devices_new RENAME TO totp_devices;
CREATE INDEX totp_devices_user ON totp_devices(user_id);

CREATE TABLE webauthn_devices_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    created TEXT NOT NULL,
    last_used TEXT
);
INSERT INTO webauthn_devices_new (uuid, user_id, name, credential_id, credential, created, last_used)
    SELECT uuid, user_id, name, credential_id, credential, created, last_used FROM webauthn_devices ORDER BY created;
DROP TABLE webauthn_devices;
ALTER TABLE webauthn_devices_new RENAME TO webauthn_devices;
CREATE INDEX webauthn_devices_user ON webauthn_devices(user_id);
