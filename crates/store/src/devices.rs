//! Second factors and passkeys: TOTP devices (with the last accepted time step, so a code
//! cannot be replayed) and WebAuthn credentials (stored as the library's serialised passkey).

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sealed::{self, TOTP_SEED};
use crate::sql::{self, Entity, RowExt};
use crate::{Result, SecretKey};

/// A TOTP authenticator of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct TotpDevice {
    /// Primary key.
    pub uuid: Uuid,
    /// Owner.
    pub user: i64,
    /// Label.
    pub name: String,
    /// Base32 secret.
    pub secret: String,
    /// Set once the user proved they can generate codes.
    pub confirmed: bool,
    /// Last accepted time step (replay protection).
    pub last_step: i64,
}

impl Entity for TotpDevice {
    const WHAT: &'static str = "TOTP device";
    const SELECT: &'static str = "SELECT * FROM totp_devices";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(TotpDevice {
            uuid: row.uuid("uuid")?,
            user: row.int("user_id")?,
            name: row.text("name")?,
            secret: row.text("secret")?,
            confirmed: row.flag("confirmed")?,
            last_step: row.int("last_step")?,
        })
    }
}

/// The confirmed TOTP devices of `user`, their seeds opened.
pub async fn totp_of(
    conn: &mut AnyConnection,
    key: &SecretKey,
    user: i64,
) -> Result<Vec<TotpDevice>> {
    sql::select::<TotpDevice>(
        conn,
        "WHERE user_id = $1 AND confirmed = $2",
        vec![user.into(), true.into()],
        "created",
    )
    .await?
    .into_iter()
    .map(|mut d| {
        d.secret = sealed::open(key, TOTP_SEED, &d.uuid.to_string(), &d.secret)?;
        Ok(d)
    })
    .collect()
}

/// Adds a confirmed TOTP device.
pub async fn add_totp(
    conn: &mut AnyConnection,
    key: &SecretKey,
    user: i64,
    name: &str,
    secret: &str,
    step: i64,
) -> Result<TotpDevice> {
    let uuid = Uuid::new_v4();
    let sealed = sealed::seal(key, TOTP_SEED, &uuid.to_string(), secret)?;
    sql::insert(
        conn,
        "totp_devices",
        vec![
            ("uuid", uuid.into()),
            ("user_id", user.into()),
            ("name", name.into()),
            ("secret", sealed.into()),
            ("confirmed", true.into()),
            ("created", sql::now().into()),
            ("last_step", step.into()),
        ],
        None,
    )
    .await?;
    let mut device: TotpDevice = sql::get(conn, uuid).await?;
    device.secret = secret.to_owned();
    Ok(device)
}

/// Records `step` as used on `device` if it is newer than the last one; false for a replay.
pub async fn use_totp_step(conn: &mut AnyConnection, device: Uuid, step: i64) -> Result<bool> {
    let changed = sql::execute(
        conn,
        "UPDATE totp_devices SET last_step = $1 WHERE uuid = $2 AND last_step < $1",
        vec![step.into(), device.into()],
    )
    .await?;
    Ok(changed > 0)
}

/// A passkey of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Passkey {
    /// Primary key.
    pub uuid: Uuid,
    /// Owner.
    pub user: i64,
    /// Label.
    pub name: String,
    /// Credential id (base64url).
    pub credential_id: String,
    /// The WebAuthn library's serialised credential.
    pub credential: String,
    /// Registration time.
    pub created: DateTime<Utc>,
}

impl Entity for Passkey {
    const WHAT: &'static str = "passkey";
    const SELECT: &'static str = "SELECT * FROM webauthn_devices";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Passkey {
            uuid: row.uuid("uuid")?,
            user: row.int("user_id")?,
            name: row.text("name")?,
            credential_id: row.text("credential_id")?,
            credential: row.text("credential")?,
            created: row.ts("created")?,
        })
    }
}

/// The passkeys of `user`.
pub async fn passkeys_of(conn: &mut AnyConnection, user: i64) -> Result<Vec<Passkey>> {
    sql::select(conn, "WHERE user_id = $1", vec![user.into()], "created").await
}

/// The passkey with credential id `credential_id`, if any.
pub async fn passkey_by_credential(
    conn: &mut AnyConnection,
    credential_id: &str,
) -> Result<Option<Passkey>> {
    sql::find(conn, "credential_id", credential_id.into()).await
}

/// Stores a new passkey.
pub async fn add_passkey(
    conn: &mut AnyConnection,
    user: i64,
    name: &str,
    credential_id: &str,
    credential: &str,
) -> Result<Passkey> {
    let uuid = Uuid::new_v4();
    sql::insert(
        conn,
        "webauthn_devices",
        vec![
            ("uuid", uuid.into()),
            ("user_id", user.into()),
            ("name", name.into()),
            ("credential_id", credential_id.into()),
            ("credential", credential.into()),
            ("created", sql::now().into()),
        ],
        None,
    )
    .await?;
    sql::get(conn, uuid).await
}

/// Replaces the serialised credential (sign counter updates).
pub async fn update_passkey(conn: &mut AnyConnection, uuid: Uuid, credential: &str) -> Result<()> {
    sql::update(
        conn,
        "webauthn_devices",
        Passkey::WHAT,
        "uuid",
        uuid.into(),
        vec![
            ("credential", credential.into()),
            ("last_used", sql::now().into()),
        ],
    )
    .await
}

/// Replaces the recovery codes of `user` with `code_hashes` (SHA-256 of each code).
pub async fn set_recovery_codes(
    conn: &mut AnyConnection,
    user: i64,
    code_hashes: &[String],
) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM recovery_codes WHERE user_id = $1",
        vec![user.into()],
    )
    .await?;
    for hash in code_hashes {
        sql::insert(
            conn,
            "recovery_codes",
            vec![
                ("user_id", user.into()),
                ("code_hash", hash.clone().into()),
                ("created", sql::now().into()),
            ],
            None,
        )
        .await?;
    }
    Ok(())
}

/// Consumes the recovery code with hash `code_hash` of `user`; false when there is none.
pub async fn use_recovery_code(
    conn: &mut AnyConnection,
    user: i64,
    code_hash: &str,
) -> Result<bool> {
    let deleted = sql::execute(
        conn,
        "DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2",
        vec![user.into(), code_hash.into()],
    )
    .await?;
    Ok(deleted > 0)
}
