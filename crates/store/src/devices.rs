//! Second factors and passkeys: TOTP devices (with the last accepted time step, so a code
//! cannot be replayed) and WebAuthn credentials (stored as the library's serialised passkey).
//! [`Device`] is what the user page and the API show of either kind: never a secret or a key.

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
    /// Its number (the API's `pk`).
    pub id: i64,
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
            id: row.int("id")?,
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
        "UPDATE totp_devices SET last_step = $1, last_used = $2 WHERE uuid = $3 AND last_step < $1",
        vec![step.into(), sql::now().into(), device.into()],
    )
    .await?;
    Ok(changed > 0)
}

/// A passkey of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Passkey {
    /// Primary key.
    pub uuid: Uuid,
    /// Its number (the API's `pk`).
    pub id: i64,
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
            id: row.int("id")?,
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

/// The two kinds of authenticator a user can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// An authenticator app (TOTP): a second factor only.
    Totp,
    /// A passkey (WebAuthn): a way to sign in on its own.
    Passkey,
}

impl DeviceKind {
    /// Both kinds, in the order lists show them.
    pub const ALL: [DeviceKind; 2] = [DeviceKind::Passkey, DeviceKind::Totp];

    fn table(self) -> &'static str {
        match self {
            DeviceKind::Totp => "totp_devices",
            DeviceKind::Passkey => "webauthn_devices",
        }
    }

    fn what(self) -> &'static str {
        match self {
            DeviceKind::Totp => TotpDevice::WHAT,
            DeviceKind::Passkey => Passkey::WHAT,
        }
    }

    /// The model name audit events give it (Authentik's).
    pub fn model_name(self) -> &'static str {
        match self {
            DeviceKind::Totp => "totpdevice",
            DeviceKind::Passkey => "webauthndevice",
        }
    }

    /// What pages call it.
    pub fn label(self) -> &'static str {
        match self {
            DeviceKind::Totp => "Authenticator app",
            DeviceKind::Passkey => "Passkey",
        }
    }

    /// Its segment in page URLs (`/if/user/devices/<segment>/<id>/remove`).
    pub fn segment(self) -> &'static str {
        match self {
            DeviceKind::Totp => "totp",
            DeviceKind::Passkey => "passkey",
        }
    }

    /// The kind a URL segment names.
    pub fn from_segment(segment: &str) -> Option<DeviceKind> {
        DeviceKind::ALL.into_iter().find(|k| k.segment() == segment)
    }
}

/// What may be shown of a device of either kind: no secret, no public key.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Which kind.
    pub kind: DeviceKind,
    /// Its number, unique within its kind (the API's `pk`).
    pub id: i64,
    /// Owner.
    pub user: i64,
    /// Label.
    pub name: String,
    /// When it was added.
    pub created: DateTime<Utc>,
    /// When it last signed someone in or passed a second-factor stage.
    pub last_used: Option<DateTime<Utc>>,
}

fn device_from(kind: DeviceKind, row: &AnyRow) -> Result<Device> {
    Ok(Device {
        kind,
        id: row.int("id")?,
        user: row.int("user_id")?,
        name: row.text("name")?,
        created: row.ts("created")?,
        last_used: row.opt_ts("last_used")?,
    })
}

/// The devices of `kind`, of `user` or (`None`) of everyone, oldest first.
pub async fn devices(
    conn: &mut AnyConnection,
    kind: DeviceKind,
    user: Option<i64>,
) -> Result<Vec<Device>> {
    let (filter, values) = match user {
        Some(u) => ("WHERE user_id = $1", vec![u.into()]),
        None => ("", Vec::new()),
    };
    let sql = format!(
        "SELECT id, user_id, name, created, last_used FROM {} {filter} ORDER BY created, id",
        kind.table()
    );
    sql::fetch_all(conn, &sql, values)
        .await?
        .iter()
        .map(|row| device_from(kind, row))
        .collect()
}

/// The devices of both kinds of `user` or (`None`) of everyone: passkeys, then TOTP devices.
pub async fn all_devices(conn: &mut AnyConnection, user: Option<i64>) -> Result<Vec<Device>> {
    let mut out = Vec::new();
    for kind in DeviceKind::ALL {
        out.extend(devices(conn, kind, user).await?);
    }
    Ok(out)
}

/// The device of `kind` numbered `id`, if any.
pub async fn device(conn: &mut AnyConnection, kind: DeviceKind, id: i64) -> Result<Option<Device>> {
    let sql = format!(
        "SELECT id, user_id, name, created, last_used FROM {} WHERE id = $1",
        kind.table()
    );
    sql::fetch_optional(conn, &sql, vec![id.into()])
        .await?
        .map(|row| device_from(kind, &row))
        .transpose()
}

/// Renames the device of `kind` numbered `id`.
pub async fn rename(conn: &mut AnyConnection, kind: DeviceKind, id: i64, name: &str) -> Result<()> {
    sql::update(
        conn,
        kind.table(),
        kind.what(),
        "id",
        id.into(),
        vec![("name", name.into())],
    )
    .await
}

/// Deletes the device of `kind` numbered `id`. With the user's last TOTP device go their
/// recovery codes, which stand in for it: a new authenticator app brings new ones.
pub async fn remove(conn: &mut AnyConnection, kind: DeviceKind, id: i64) -> Result<()> {
    let Some(found) = device(conn, kind, id).await? else {
        return Err(crate::Error::NotFound { what: kind.what() });
    };
    sql::delete(conn, kind.table(), kind.what(), "id", id.into()).await?;
    if kind == DeviceKind::Totp && devices(conn, kind, Some(found.user)).await?.is_empty() {
        set_recovery_codes(conn, found.user, &[]).await?;
    }
    Ok(())
}

/// How many ways `user` has to sign in on their own: a password, each passkey, each login-source
/// connection. An authenticator app is never one (it only adds to a password).
pub async fn sign_in_ways(conn: &mut AnyConnection, user: &crate::users::User) -> Result<usize> {
    let passkeys = devices(conn, DeviceKind::Passkey, Some(user.id))
        .await?
        .len();
    let sources = crate::sources::connections_of(conn, user.id).await?.len();
    Ok(passkeys + sources + usize::from(user.has_password))
}

/// Whether removing `device` would leave its owner `user` no way to sign in.
pub async fn is_last_way_in(
    conn: &mut AnyConnection,
    user: &crate::users::User,
    device: &Device,
) -> Result<bool> {
    Ok(device.kind == DeviceKind::Passkey && sign_in_ways(conn, user).await? < 2)
}

/// Records `action` (`model_created`, `model_updated`, `model_deleted`) on `device` by `actor`
/// from `app` in the audit log, in Authentik's shape, with the owner when it is someone else.
pub async fn audit(
    conn: &mut AnyConnection,
    action: &str,
    app: &str,
    actor: &crate::users::User,
    device: &Device,
    client_ip: Option<String>,
) -> Result<()> {
    let mut context = serde_json::json!({"model": {
        "app": "gatehouse",
        "model_name": device.kind.model_name(),
        "pk": device.id.to_string(),
        "name": device.name,
    }});
    if device.user != actor.id {
        context["owner"] = device.user.into();
    }
    crate::events::record(
        conn,
        action,
        app,
        crate::events::user_info(Some(actor)),
        context,
        client_ip,
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
