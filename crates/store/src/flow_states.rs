//! Server-side state of the flow runs that must be kept by the server (an authenticated user, an
//! invitation, a login source's pending state; anonymous runs travel in their cookie, see
//! `gatehouse_flow::keep`), keyed by the SHA-256 of an opaque cookie value. The state itself is
//! a JSON document owned by the flow engine; rows expire and are reaped.

use chrono::{DateTime, Utc};
use gatehouse_core::secret;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, RowExt, Value};
use crate::Result;

/// Stores (or replaces) the state of a flow run under cookie value `key`.
pub async fn put(
    conn: &mut AnyConnection,
    key: &str,
    flow: Uuid,
    data: &serde_json::Value,
    expires: DateTime<Utc>,
) -> Result<()> {
    let hash = secret::token_hash(key);
    sql::execute(
        conn,
        "DELETE FROM flow_states WHERE key_hash = $1",
        vec![hash.clone().into()],
    )
    .await?;
    sql::insert(
        conn,
        "flow_states",
        vec![
            ("key_hash", hash.into()),
            ("flow_uuid", flow.into()),
            ("data", Value::from(data)),
            ("created", sql::now().into()),
            ("expires", expires.into()),
        ],
        None,
    )
    .await?;
    Ok(())
}

/// The unexpired state stored under `key` for `flow`, if any.
pub async fn get(
    conn: &mut AnyConnection,
    key: &str,
    flow: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<serde_json::Value>> {
    let row = sql::fetch_optional(
        conn,
        "SELECT data FROM flow_states WHERE key_hash = $1 AND flow_uuid = $2 AND expires > $3",
        vec![secret::token_hash(key).into(), flow.into(), now.into()],
    )
    .await?;
    row.map(|r| r.json("data")).transpose()
}

/// The unexpired state stored under `key`, whichever flow it belongs to, with that flow's id:
/// a login source's callback continues the run that sent the browser away.
pub async fn get_current(
    conn: &mut AnyConnection,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, serde_json::Value)>> {
    let row = sql::fetch_optional(
        conn,
        "SELECT flow_uuid, data FROM flow_states WHERE key_hash = $1 AND expires > $2",
        vec![secret::token_hash(key).into(), now.into()],
    )
    .await?;
    row.map(|r| Ok((r.uuid("flow_uuid")?, r.json("data")?)))
        .transpose()
}

/// Forgets the state under `key`.
pub async fn delete(conn: &mut AnyConnection, key: &str) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM flow_states WHERE key_hash = $1",
        vec![secret::token_hash(key).into()],
    )
    .await?;
    Ok(())
}

/// Deletes expired states; returns how many.
pub async fn reap(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<u64> {
    sql::execute(
        conn,
        "DELETE FROM flow_states WHERE expires <= $1",
        vec![now.into()],
    )
    .await
}
