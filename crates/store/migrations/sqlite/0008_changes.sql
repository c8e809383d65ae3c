-- The change feed: one row per write that can change a forward-auth decision (a session
-- ended, a user deactivated or re-grouped, a provider, application or binding edited),
-- appended in the same transaction as the write. Outposts apply the rows in `seq` order and
-- drop exactly what each names; a consumer that finds a gap drops everything it cached.
-- `kind` is `user`, `provider` or `all`; `subject` the user or provider id (0 for `all`).

CREATE TABLE changes (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject INTEGER NOT NULL,
    created TEXT NOT NULL
);
