//! Invitations: single-use or reusable enrollment links with fixed data (e.g. the group).
//!
//! Rows are kept after use and after revocation, so a link can be told apart as used, expired
//! or revoked, and `invite list` can say who used which. A single-use invitation is consumed by
//! [`consume`] in the transaction that creates the user (SPEC L1), never when the link is opened.

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
    /// The enrollment flow it is for; `None`: any enrollment flow with an invitation stage.
    pub flow: Option<Uuid>,
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
    /// When it was revoked, if it was.
    pub revoked: Option<DateTime<Utc>>,
    /// Revoked, or single-use and used: the link no longer works.
    pub ended: bool,
}

/// Where an invitation stands, as the enrollment page and `invite list` tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    /// The link works.
    Pending,
    /// A single-use invitation someone already enrolled with.
    Used,
    /// Past its expiry.
    Expired,
    /// Revoked by an administrator.
    Revoked,
}

impl InvitationState {
    /// The lowercase name used in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationState::Pending => "pending",
            InvitationState::Used => "used",
            InvitationState::Expired => "expired",
            InvitationState::Revoked => "revoked",
        }
    }
}

impl Invitation {
    /// Its state at `now`. Revocation and use win over expiry: they say more.
    pub fn state(&self, now: DateTime<Utc>) -> InvitationState {
        if self.revoked.is_some() {
            InvitationState::Revoked
        } else if self.ended {
            InvitationState::Used
        } else if self.fields.expires.is_some_and(|t| t <= now) {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }
}

/// One completed enrollment with an invitation.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    /// The user it created (`None` once deleted).
    pub user: Option<i64>,
    /// Their username at the time.
    pub username: String,
    /// When.
    pub used: DateTime<Utc>,
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
                flow: row.opt_uuid("flow_uuid")?,
                expires: row.opt_ts("expires")?,
                fixed_data: row.json("fixed_data")?,
                single_use: row.flag("single_use")?,
                created_by: row.int("created_by")?,
            },
            created: row.ts("created")?,
            revoked: row.opt_ts("revoked")?,
            ended: row.flag("ended")?,
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

/// Revokes invitation `uuid`: its link stops working at once and says so; the row stays for
/// the record. Revoking twice is not an error.
pub async fn revoke(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    let found = sql::execute(
        conn,
        "UPDATE invitations SET ended = TRUE, revoked = COALESCE(revoked, $1) WHERE uuid = $2",
        vec![sql::now().into(), uuid.into()],
    )
    .await?;
    match found {
        0 => Err(crate::Error::NotFound {
            what: Invitation::WHAT,
        }),
        _ => Ok(()),
    }
}

/// The invitation named `name`, if any.
pub async fn find_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Invitation>> {
    sql::find(conn, "name", name.into()).await
}

/// The invitation whose link token is `uuid`, if any.
pub async fn find(conn: &mut AnyConnection, uuid: Uuid) -> Result<Option<Invitation>> {
    sql::find(conn, Invitation::KEY, uuid.into()).await
}

/// Records that `user` enrolled with invitation `uuid`, in the caller's transaction. For a
/// single-use invitation this ends it, and only one enrollment can: `false` means another one
/// consumed (or an administrator revoked) it first, and the caller must roll back.
pub async fn consume(
    conn: &mut AnyConnection,
    invitation: &Invitation,
    user: i64,
    username: &str,
) -> Result<bool> {
    if invitation.fields.single_use {
        let won = sql::execute(
            conn,
            "UPDATE invitations SET ended = TRUE WHERE uuid = $1 AND ended = FALSE",
            vec![invitation.uuid.into()],
        )
        .await?;
        if won == 0 {
            return Ok(false);
        }
    } else {
        let live = sql::fetch_optional(
            conn,
            "SELECT uuid FROM invitations WHERE uuid = $1 AND revoked IS NULL",
            vec![invitation.uuid.into()],
        )
        .await?;
        if live.is_none() {
            return Ok(false);
        }
    }
    sql::insert(
        conn,
        "invitation_uses",
        vec![
            ("invitation_uuid", invitation.uuid.into()),
            ("user_id", Some(user).into()),
            ("username", username.into()),
            ("used", sql::now().into()),
        ],
        None,
    )
    .await?;
    Ok(true)
}

/// Who enrolled with invitation `uuid`, oldest first.
pub async fn uses(conn: &mut AnyConnection, uuid: Uuid) -> Result<Vec<Use>> {
    sql::fetch_all(
        conn,
        "SELECT user_id, username, used FROM invitation_uses WHERE invitation_uuid = $1 ORDER BY used",
        vec![uuid.into()],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(Use {
            user: row.opt_int("user_id")?,
            username: row.text("username")?,
            used: row.ts("used")?,
        })
    })
    .collect()
}
