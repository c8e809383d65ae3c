-- Secrets at rest are sealed with the server's secret key (GATEHOUSE_SECRET_KEY or the data
-- directory's secret.key). This one-row table records which key: its public id (a fingerprint
-- derived from the key, never the key), so a server started with another key refuses to start
-- instead of failing on every secret it reads.

CREATE TABLE secret_key (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    key_id TEXT NOT NULL,
    recorded TEXT NOT NULL
);
