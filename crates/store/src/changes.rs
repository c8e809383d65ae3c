//! The change feed: every write that can change a forward-auth decision appends a [`Change`]
//! here, in the caller's transaction, so the change and the write commit (or roll back)
//! together, whichever surface made it (API, flows, the user page, the CLI). Sequence numbers
//! are gap-free and follow commit order (the next one is taken under the writer's lock), so a
//! consumer that sees a gap knows it missed something.
//!
//! Neighbours: [`crate::Store`] wakes this process's feed reader after each commit and, on
//! PostgreSQL, every replica hears `NOTIFY` with the new sequence number
//! ([`crate::Store::listen_changes`]); the server's feed reader (`web/changes.rs`) reads
//! [`since`] and hands the changes to outposts.

use sqlx::AnyConnection;

use crate::sql::{self, RowExt};
use crate::{Error, Result};

/// How many changes the feed keeps; a consumer further behind than that starts afresh.
pub const KEPT: i64 = 10_000;

/// The PostgreSQL channel the sequence number of each committed change is sent on.
pub(crate) const CHANNEL: &str = "gatehouse_changes";

/// What a change affects: the smallest set of cached decisions that must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// One user's sessions and identity: a logout, revocation, deactivation, password or
    /// group-membership change.
    User(i64),
    /// One proxy provider: its settings, its application or that application's bindings.
    Provider(i64),
    /// Anything else that may touch every decision (a policy or a group edited).
    All,
}

/// One entry of the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Position in the feed: 1, 2, 3, … without gaps, in commit order.
    pub seq: i64,
    /// What it affects.
    pub kind: ChangeKind,
}

impl ChangeKind {
    /// The stored (and streamed) form: kind name and subject id.
    pub fn parts(self) -> (&'static str, i64) {
        match self {
            ChangeKind::User(id) => ("user", id),
            ChangeKind::Provider(id) => ("provider", id),
            ChangeKind::All => ("all", 0),
        }
    }

    /// Reads the stored form back; an unknown kind counts as [`ChangeKind::All`], so a newer
    /// server's change never goes unapplied by an older consumer.
    pub fn from_parts(kind: &str, subject: i64) -> ChangeKind {
        match kind {
            "user" => ChangeKind::User(subject),
            "provider" => ChangeKind::Provider(subject),
            _ => ChangeKind::All,
        }
    }
}

/// Appends `kind` to the feed, in the caller's transaction. On PostgreSQL the transaction
/// first takes an advisory lock held until it ends, so sequence numbers follow commit order,
/// and queues a `NOTIFY` carrying the new number (delivered at commit); on SQLite the write
/// lock already orders writers. Called outside a transaction (autocommit), two writers may
/// pick the same number at once: the loser takes the next one (nothing is aborted).
pub async fn append(conn: &mut AnyConnection, kind: ChangeKind) -> Result<i64> {
    let postgres = sql::is_postgres(conn);
    if postgres {
        sql::execute(
            conn,
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(7340093)) AS l",
            vec![],
        )
        .await?;
    }
    let (name, subject) = kind.parts();
    let mut seq = None;
    for _ in 0..16 {
        let row = sql::fetch_optional(
            conn,
            "INSERT INTO changes (seq, kind, subject, created) \
             SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3 FROM changes WHERE TRUE \
             ON CONFLICT (seq) DO NOTHING RETURNING seq",
            vec![name.into(), subject.into(), sql::now().into()],
        )
        .await?;
        if let Some(row) = row {
            seq = Some(row.int("seq")?);
            break;
        }
    }
    let seq = seq.ok_or_else(|| Error::Conflict {
        field: "changes".into(),
        message: "too many concurrent writers for the change feed; retry".into(),
    })?;
    if postgres {
        sql::execute(
            conn,
            "SELECT 1 FROM (SELECT pg_notify($1, $2)) AS n",
            vec![CHANNEL.into(), seq.to_string().into()],
        )
        .await?;
    }
    Ok(seq)
}

/// Appends one [`ChangeKind::User`] per user in `users` (group membership edits).
pub async fn append_users(conn: &mut AnyConnection, users: &[i64]) -> Result<()> {
    for &user in users {
        append(conn, ChangeKind::User(user)).await?;
    }
    Ok(())
}

/// The changes after `seq`, oldest first, at most `limit`. `Ok(None)` when the feed no
/// longer holds the change right after `seq` (the consumer is too far behind and must start
/// afresh).
pub async fn since(conn: &mut AnyConnection, seq: i64, limit: i64) -> Result<Option<Vec<Change>>> {
    let rows = sql::fetch_all(
        conn,
        "SELECT seq, kind, subject FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        vec![seq.into(), limit.into()],
    )
    .await?;
    let changes = rows
        .iter()
        .map(|r| {
            Ok(Change {
                seq: r.int("seq")?,
                kind: ChangeKind::from_parts(&r.text("kind")?, r.int("subject")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    match changes.first() {
        Some(first) if first.seq != seq + 1 => Ok(None),
        None if seq > latest(conn).await? => Ok(None),
        _ => Ok(Some(changes)),
    }
}

/// The position of the newest change (0 when none was ever made).
pub async fn latest(conn: &mut AnyConnection) -> Result<i64> {
    let row = sql::fetch_optional(
        conn,
        "SELECT COALESCE(MAX(seq), 0) AS last FROM changes",
        vec![],
    )
    .await?
    .ok_or_else(|| Error::Corrupt("the change feed has no position".into()))?;
    row.int("last")
}

/// Forgets all but the newest [`KEPT`] changes (called by the server's reaper); returns how
/// many.
pub async fn prune(conn: &mut AnyConnection) -> Result<u64> {
    let last = latest(conn).await?;
    sql::execute(
        conn,
        "DELETE FROM changes WHERE seq <= $1",
        vec![(last - KEPT).into()],
    )
    .await
}

/// Appends a [`ChangeKind::Provider`] for the provider of application `application`, if it
/// has one (an application's fields and bindings shape its provider's decisions).
pub async fn append_application(conn: &mut AnyConnection, application: uuid::Uuid) -> Result<()> {
    let row = sql::fetch_optional(
        conn,
        "SELECT provider_id FROM applications WHERE uuid = $1",
        vec![application.into()],
    )
    .await?;
    if let Some(provider) = row.map(|r| r.opt_int("provider_id")).transpose()?.flatten() {
        append(conn, ChangeKind::Provider(provider)).await?;
    }
    Ok(())
}

/// Appends a change for policy binding `binding` when it is bound to an application (the
/// bindings of flows and stages decide logins, not forward-auth answers).
pub async fn append_binding(conn: &mut AnyConnection, binding: uuid::Uuid) -> Result<()> {
    let row = sql::fetch_optional(
        conn,
        "SELECT target_application FROM policy_bindings WHERE uuid = $1",
        vec![binding.into()],
    )
    .await?;
    if let Some(application) = row
        .map(|r| r.opt_uuid("target_application"))
        .transpose()?
        .flatten()
    {
        append_application(conn, application).await?;
    }
    Ok(())
}

/// Appends a change for each user whose direct membership of group `group` differs between
/// now and `after` (call before replacing the members).
pub async fn append_members(conn: &mut AnyConnection, group: i64, after: &[i64]) -> Result<()> {
    let rows = sql::fetch_all(
        conn,
        "SELECT user_id FROM group_members WHERE group_id = $1",
        vec![group.into()],
    )
    .await?;
    let before = rows
        .iter()
        .map(|r| r.int("user_id"))
        .collect::<Result<Vec<_>>>()?;
    let mut changed: Vec<i64> = before
        .iter()
        .filter(|u| !after.contains(u))
        .chain(after.iter().filter(|u| !before.contains(u)))
        .copied()
        .collect();
    changed.sort_unstable();
    changed.dedup();
    append_users(conn, &changed).await
}
