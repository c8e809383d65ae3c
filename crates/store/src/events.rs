//! The audit log: logins, failures and admin changes, newest first.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt};
use crate::Result;

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Primary key.
    pub uuid: Uuid,
    /// What happened, in Authentik's vocabulary (`login`, `model_created`, …).
    pub action: String,
    /// The component that recorded it.
    pub app: String,
    /// Who did it: `{"pk": …, "username": …}` or empty.
    pub user: serde_json::Value,
    /// Details.
    pub context: serde_json::Value,
    /// Client address, if known.
    pub client_ip: Option<String>,
    /// When.
    pub created: DateTime<Utc>,
}

impl Entity for Event {
    const WHAT: &'static str = "event";
    const SELECT: &'static str = "SELECT * FROM events";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Event {
            uuid: row.uuid("uuid")?,
            action: row.text("action")?,
            app: row.text("app")?,
            user: row.json("user_info")?,
            context: row.json("context")?,
            client_ip: row.opt_text("client_ip")?,
            created: row.ts("created")?,
        })
    }
}

/// Records an event (in the caller's transaction, so it commits with the change it describes).
pub async fn record(
    conn: &mut AnyConnection,
    action: &str,
    app: &str,
    user: serde_json::Value,
    context: serde_json::Value,
    client_ip: Option<String>,
) -> Result<()> {
    sql::insert(
        conn,
        "events",
        vec![
            ("uuid", Uuid::new_v4().into()),
            ("action", action.into()),
            ("app", app.into()),
            ("user_info", (&user).into()),
            ("context", (&context).into()),
            ("client_ip", client_ip.into()),
            ("created", sql::now().into()),
        ],
        None,
    )
    .await?;
    Ok(())
}

/// The `user_info` of an event about `user` (or about nobody known yet): pk, username, email.
pub fn user_info(user: Option<&crate::users::User>) -> serde_json::Value {
    user.map(
        |u| serde_json::json!({"pk": u.id, "username": u.fields.username, "email": u.fields.email}),
    )
    .unwrap_or_else(|| serde_json::json!({}))
}
