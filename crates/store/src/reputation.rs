//! Failed-login scores per (identifier, IP). A failure lowers the score by one; scores recover
//! by one point per `RECOVERY_SECONDS` without failures, so nobody stays locked out (SPEC L2).

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::sql::{self, RowExt};
use crate::Result;

/// Seconds after which one point of a negative score is forgiven.
pub const RECOVERY_SECONDS: i64 = 60;

fn decayed(score: i64, updated: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let recovered = (now - updated).num_seconds().max(0) / RECOVERY_SECONDS;
    (score + recovered).min(0)
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
