//! Invitations: single-use or reusable enrollment links with fixed data (e.g. the group).

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt};
use crate::Result;

/// The fields of an invitation.
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationFields {
    /// Unique name (slug-like).
    pub name: String,
    /// The enrollment flow it is for.
    pub flow: Uuid,
    /// Expiry; `None` never expires.
    pub expires: Option<DateTime<Utc>>,
    /// Data applied at enrollment, e.g. `{"group": "Headscale Users"}`.
    pub fixed_data: serde_json::Value,
    /// Consumed when enrollment completes.
    pub single_use: bool,
    /// Who created it.
    pub created_by: i64,
}

/// A stored invitation; its UUID is the `itoken`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// Primary key and link token.
    pub uuid: Uuid,
    /// Fields.
    pub fields: InvitationFields,
    /// Creation time.
    pub created: DateTime<Utc>,
}

impl Entity for Invitation {
    const WHAT: &'static str = "invitation";
    const SELECT: &'static str = "SELECT * FROM invitations";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Invitation {
            uuid: row.uuid("uuid")?,
            fields: InvitationFields {
                name: row.text("name")?,
                flow: row.uuid("flow_uuid")?,
                expires: row.opt_ts("expires")?,
                fixed_data: row.json("fixed_data")?,
                single_use: row.flag("single_use")?,
                created_by: row.int("created_by")?,
            },
            created: row.ts("created")?,
        })
    }
}

/// Creates an invitation.
pub async fn create(conn: &mut AnyConnection, f: &InvitationFields) -> Result<Invitation> {
    let uuid = Uuid::new_v4();
    sql::insert(
        conn,
        "invitations",
        vec![
            ("uuid", uuid.into()),
            ("name", f.name.clone().into()),
            ("flow_uuid", f.flow.into()),
            ("expires", f.expires.into()),
            ("fixed_data", (&f.fixed_data).into()),
            ("single_use", f.single_use.into()),
            ("created_by", f.created_by.into()),
            ("created", sql::now().into()),
        ],
        None,
    )
    .await?;
    sql::get(conn, uuid).await
}

/// Revokes (deletes) invitation `uuid`.
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(conn, "invitations", Invitation::WHAT, "uuid", uuid.into()).await
}

/// The invitation named `name`, if any.
pub async fn find_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Invitation>> {
    sql::find(conn, "name", name.into()).await
}
