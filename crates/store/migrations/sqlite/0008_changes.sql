-- The change feed: one row per write that can change a forward-auth decision (a session
-- ended, a user deactivated or re-grouped, a provider, application or binding edited),
-- appended in the same transaction as the write. Outposts apply the rows in `seq` order and
-- drop exactly what each names; a consumer that finds a gap drops everything it cached.
-- `kind` is `user`, `provider` or `all`; `subject` the user or provider id (0 for `all`).
-- It replaces the unused placeholder of 0001 (never written): sequence numbers are now taken
-- by the writer under its lock (gap-free, in commit order), and subjects are ids.

DROP TABLE changes;

CREATE TABLE changes (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject INTEGER NOT NULL,
    created TEXT NOT NULL
);
