//! Outpost sessions, one per provider and browser, found by the SHA-256 of the cookie value.
//! A row is written only when a login completes (a login in progress lives in the browser's
//! cookie and the OAuth state, so anonymous requests write nothing). Each is linked to the IdP
//! session that produced it, so logging out at the IdP deletes it (cascade).

use chrono::{DateTime, Utc};
use gatehouse_core::secret;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, RowExt, Value};
use crate::Result;

/// A stored outpost session.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySession {
    /// Primary key.
    pub uuid: Uuid,
    /// Provider it belongs to.
    pub provider: i64,
    /// User, once logged in.
    pub user: Option<i64>,
    /// The IdP session it came from.
    pub idp_session: Option<Uuid>,
    /// The identity claims (`{id_token}`).
    pub data: serde_json::Value,
    /// Expiry.
    pub expires: DateTime<Utc>,
}

/// Starts `user`'s session under cookie value `key` (a login completed at the callback;
/// logins in progress are kept by the browser, see `gatehouse_outpost::pending`).
pub async fn create(
    conn: &mut AnyConnection,
    key: &str,
    provider: i64,
    user: i64,
    idp_session: Option<Uuid>,
    data: &serde_json::Value,
    expires: DateTime<Utc>,
) -> Result<()> {
    sql::insert(
        conn,
        "proxy_sessions",
        vec![
            ("uuid", Uuid::new_v4().into()),
            ("key_hash", secret::token_hash(key).into()),
            ("provider_id", provider.into()),
            ("user_id", user.into()),
            ("idp_session", idp_session.into()),
            ("session_data", Value::from(data)),
            ("created", sql::now().into()),
            ("expires", expires.into()),
        ],
        None,
    )
    .await?;
    Ok(())
}

/// The unexpired session under cookie value `key`, if any.
pub async fn find(
    conn: &mut AnyConnection,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<ProxySession>> {
    let row = sql::fetch_optional(
        conn,
        "SELECT * FROM proxy_sessions WHERE key_hash = $1 AND expires > $2",
        vec![secret::token_hash(key).into(), now.into()],
    )
    .await?;
    row.map(|r| {
        Ok(ProxySession {
            uuid: r.uuid("uuid")?,
            provider: r.int("provider_id")?,
            user: r.opt_int("user_id")?,
            idp_session: r.opt_uuid("idp_session")?,
            data: r.json("session_data")?,
            expires: r.ts("expires")?,
        })
    })
    .transpose()
}

/// The user and expiry of the unexpired, logged-in session under cookie value `key` for
/// `provider`, if its user is active: the outpost's one-read cold path.
pub async fn owner(
    conn: &mut AnyConnection,
    key: &str,
    provider: i64,
    now: DateTime<Utc>,
) -> Result<Option<(i64, DateTime<Utc>)>> {
    let row = sql::fetch_optional(
        conn,
        "SELECT s.user_id, s.expires FROM proxy_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.key_hash = $1 AND s.provider_id = $2 AND s.expires > $3 AND u.is_active = TRUE",
        vec![secret::token_hash(key).into(), provider.into(), now.into()],
    )
    .await?;
    row.map(|r| Ok((r.int("user_id")?, r.ts("expires")?)))
        .transpose()
}

/// Ends every outpost session of `user`; returns how many.
pub async fn end_all_of(conn: &mut AnyConnection, user: i64) -> Result<u64> {
    crate::changes::append(conn, crate::changes::ChangeKind::User(user)).await?;
    sql::execute(
        conn,
        "DELETE FROM proxy_sessions WHERE user_id = $1",
        vec![user.into()],
    )
    .await
}

/// Deletes expired sessions; returns how many.
pub async fn reap(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<u64> {
    sql::execute(
        conn,
        "DELETE FROM proxy_sessions WHERE expires <= $1",
        vec![now.into()],
    )
    .await
}
