//! Failed-login scores per (identifier, IP). A failure lowers the score by one; scores recover
//! by one point per `RECOVERY_SECONDS` without failures, so nobody stays locked out (SPEC L2).

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt};
use crate::Result;

/// Seconds after which one point of a negative score is forgiven.
pub const RECOVERY_SECONDS: i64 = 60;

fn decayed(score: i64, updated: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let recovered = (now - updated).num_seconds().max(0) / RECOVERY_SECONDS;
    (score + recovered).min(0)
}

/// One stored tally, as `policies/reputation/scores/` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Stable key: a name-based UUID of `(identifier, ip)`, see [`key`].
    pub uuid: Uuid,
    /// The username tried (empty: any username from `ip`).
    pub identifier: String,
    /// The client address (empty: `identifier` from anywhere).
    pub ip: String,
    /// The score as stored at `updated` (see [`Score::current`] for today's value).
    pub score: i64,
    /// When the last failure was recorded.
    pub updated: DateTime<Utc>,
}

impl Score {
    /// The score now, with the points forgiven since `updated`: what the policy compares.
    pub fn current(&self, now: DateTime<Utc>) -> i64 {
        decayed(self.score, self.updated, now)
    }
}

impl Entity for Score {
    const WHAT: &'static str = "reputation score";
    const SELECT: &'static str = "SELECT * FROM reputation_scores";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Score {
            uuid: row.uuid("uuid")?,
            identifier: row.text("identifier")?,
            ip: row.text("ip")?,
            score: row.int("score")?,
            updated: row.ts("updated")?,
        })
    }
}

/// The key of the tally of `identifier` from `ip`: the same pair always gets the same UUID, so
/// a score keeps its API address while failures rewrite its row.
pub fn key(identifier: &str, ip: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6761_7465_686f_7573_6572_6570_7574_6174);
    Uuid::new_v5(&NAMESPACE, format!("{identifier}\0{ip}").as_bytes())
}

/// Forgets the tally `uuid` (an administrator unblocking someone).
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(conn, "reputation_scores", Score::WHAT, "uuid", uuid.into()).await
}

/// The current score of `identifier` from `ip` (0 = clean, negative = failures); an empty
/// `identifier` or `ip` reads the per-address or per-identifier tally.
pub async fn score(
    conn: &mut AnyConnection,
    identifier: &str,
    ip: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let row = sql::fetch_optional(
        conn,
        "SELECT score, updated FROM reputation_scores WHERE identifier = $1 AND ip = $2",
        vec![identifier.into(), ip.into()],
    )
    .await?;
    match row {
        Some(r) => Ok(decayed(r.int("score")?, r.ts("updated")?, now)),
        None => Ok(0),
    }
}

/// Records one failure of `identifier` from `ip`, in three tallies: the pair, the identifier
/// from anywhere (`ip` empty) and the address for any identifier (`identifier` empty).
pub async fn record_failure(
    conn: &mut AnyConnection,
    identifier: &str,
    ip: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    for (who, from) in [(identifier, ip), (identifier, ""), ("", ip)] {
        let current = score(conn, who, from, now).await?;
        sql::execute(
            conn,
            "DELETE FROM reputation_scores WHERE identifier = $1 AND ip = $2",
            vec![who.into(), from.into()],
        )
        .await?;
        sql::insert(
            conn,
            "reputation_scores",
            vec![
                ("uuid", key(who, from).into()),
                ("identifier", who.into()),
                ("ip", from.into()),
                ("score", (current - 1).into()),
                ("updated", now.into()),
            ],
            None,
        )
        .await?;
    }
    Ok(())
}

/// Clears the failures of `identifier` (from `ip` and overall) after a successful login; the
/// address's tally stays, since others may be guessing from it.
pub async fn record_success(conn: &mut AnyConnection, identifier: &str, ip: &str) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM reputation_scores WHERE identifier = $1 AND (ip = $2 OR ip = '')",
        vec![identifier.into(), ip.into()],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_recover_over_time_but_never_go_positive() {
        let now = Utc::now();
        assert_eq!(decayed(-5, now, now), -5);
        assert_eq!(decayed(-5, now - chrono::Duration::seconds(130), now), -3);
        assert_eq!(decayed(-1, now - chrono::Duration::hours(1), now), 0);
    }
}
