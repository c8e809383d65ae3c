//! Users: people and machine accounts, their passwords and group memberships.

use chrono::{DateTime, Utc};
use gatehouse_core::kinds::UserType;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt, Value};
use crate::Result;

/// The fields an administrator sets on a user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFields {
    /// Unique login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Email address, may be empty.
    pub email: String,
    /// Internal, external or service account.
    pub user_type: UserType,
    /// Folder-like path for organising users (Authentik's `path`).
    pub path: String,
    /// Inactive users cannot log in; their sessions end.
    pub is_active: bool,
    /// Free-form attributes (JSON object).
    pub attributes: serde_json::Value,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Integer primary key (the API's `pk`).
    pub id: i64,
    /// Stable UUID.
    pub uuid: Uuid,
    /// Administrator-set fields.
    pub fields: UserFields,
    /// Whether a password is set (the hash itself never leaves the store through this type).
    pub has_password: bool,
    /// When the password last changed (or the user was created).
    pub password_change_date: DateTime<Utc>,
    /// Creation time.
    pub date_joined: DateTime<Utc>,
    /// Last successful login.
    pub last_login: Option<DateTime<Utc>>,
    /// Last change to the record.
    pub last_updated: DateTime<Utc>,
}

impl Entity for User {
    const WHAT: &'static str = "user";
    const SELECT: &'static str = "SELECT * FROM users";
    const KEY: &'static str = "id";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(User {
            id: row.int("id")?,
            uuid: row.uuid("uuid")?,
            fields: UserFields {
                username: row.text("username")?,
                name: row.text("name")?,
                email: row.text("email")?,
                user_type: row.parsed("user_type")?,
                path: row.text("path")?,
                is_active: row.flag("is_active")?,
                attributes: row.json("attributes")?,
            },
            has_password: row.opt_text("password_hash")?.is_some(),
            password_change_date: row.ts("password_change_date")?,
            date_joined: row.ts("date_joined")?,
            last_login: row.opt_ts("last_login")?,
            last_updated: row.ts("last_updated")?,
        })
    }
}

fn columns(f: &UserFields) -> Vec<(&'static str, Value)> {
    vec![
        ("username", f.username.clone().into()),
        ("name", f.name.clone().into()),
        ("email", f.email.clone().into()),
        ("user_type", f.user_type.as_str().into()),
        ("path", f.path.clone().into()),
        ("is_active", f.is_active.into()),
        ("attributes", (&f.attributes).into()),
        ("last_updated", sql::now().into()),
    ]
}

/// Creates a user without a password.
pub async fn create(conn: &mut AnyConnection, fields: &UserFields) -> Result<User> {
    create_with_uuid(conn, Uuid::new_v4(), fields).await
}

/// Creates a user whose UUID was chosen before the account existed: a passkey registered during
/// enrollment already carries it as its WebAuthn user handle.
pub async fn create_with_uuid(
    conn: &mut AnyConnection,
    uuid: Uuid,
    fields: &UserFields,
) -> Result<User> {
    let now = sql::now();
    let mut cols = columns(fields);
    cols.extend([
        ("uuid", uuid.into()),
        ("password_change_date", now.into()),
        ("date_joined", now.into()),
    ]);
    let id = sql::insert(conn, "users", cols, Some("id")).await?;
    sql::get(conn, id).await
}

/// Replaces the administrator-set fields of user `id`; deactivating them ends their OAuth
/// tokens (whichever surface deactivates: API, declarative file, CLI).
pub async fn update(conn: &mut AnyConnection, id: i64, fields: &UserFields) -> Result<User> {
    crate::changes::append(conn, crate::changes::ChangeKind::User(id)).await?;
    if !fields.is_active {
        crate::oauth::end_user_tokens(conn, id).await?;
    }
    sql::update(conn, "users", User::WHAT, "id", id.into(), columns(fields)).await?;
    sql::get(conn, id).await
}

/// Deletes user `id` with its memberships, tokens and sessions.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::User(id)).await?;
    sql::delete(conn, "users", User::WHAT, "id", id.into()).await
}

/// User `id`.
pub async fn get(conn: &mut AnyConnection, id: i64) -> Result<User> {
    sql::get(conn, id).await
}

/// The user named `username`, if any.
pub async fn find_by_username(conn: &mut AnyConnection, username: &str) -> Result<Option<User>> {
    sql::find(conn, "username", username.into()).await
}

/// Stores a new password hash (argon2id PHC string) and records when it changed. A new
/// password ends every OAuth token of the user: whoever held the old one may hold those too.
pub async fn set_password_hash(
    conn: &mut AnyConnection,
    id: i64,
    hash: Option<&str>,
) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::User(id)).await?;
    crate::oauth::end_user_tokens(conn, id).await?;
    sql::update(
        conn,
        "users",
        User::WHAT,
        "id",
        id.into(),
        vec![
            ("password_hash", hash.map(str::to_owned).into()),
            ("password_change_date", sql::now().into()),
        ],
    )
    .await
}

/// Replaces the hash of the same password with a stronger one (at login, when the hashing
/// parameters changed): not a password change, so tokens and the change date stay.
pub async fn upgrade_password_hash(conn: &mut AnyConnection, id: i64, hash: &str) -> Result<()> {
    sql::execute(
        conn,
        "UPDATE users SET password_hash = $1 WHERE id = $2",
        vec![hash.into(), id.into()],
    )
    .await?;
    Ok(())
}

/// The stored password hash of user `id`, if a password is set.
pub async fn password_hash(conn: &mut AnyConnection, id: i64) -> Result<Option<String>> {
    sql::fetch_optional(
        conn,
        "SELECT password_hash FROM users WHERE id = $1",
        vec![id.into()],
    )
    .await?
    .map(|r| r.opt_text("password_hash"))
    .transpose()
    .map(Option::flatten)
}

/// Whether user `id` is a superuser: member of a superuser group or of a descendant of one.
pub async fn is_superuser(conn: &mut AnyConnection, id: i64) -> Result<bool> {
    let sql = "WITH RECURSIVE ancestry(id) AS (
            SELECT group_id FROM group_members WHERE user_id = $1
            UNION SELECT gp.parent_id FROM group_parents gp JOIN ancestry a ON gp.group_id = a.id
        )
        SELECT COUNT(*) AS n FROM groups g JOIN ancestry a ON g.id = a.id WHERE g.is_superuser = $2";
    let row = sql::fetch_optional(conn, sql, vec![id.into(), true.into()]).await?;
    Ok(row.map(|r| r.int("n")).transpose()?.unwrap_or(0) > 0)
}

/// The number of users (bootstrap runs only on an empty database).
pub async fn count(conn: &mut AnyConnection) -> Result<i64> {
    let row = sql::fetch_optional(conn, "SELECT COUNT(*) AS n FROM users", vec![]).await?;
    Ok(row.map(|r| r.int("n")).transpose()?.unwrap_or(0))
}

/// The user a login identifier names: by username first, else by email (case-insensitive).
pub async fn find_for_login(conn: &mut AnyConnection, identifier: &str) -> Result<Option<User>> {
    if let Some(user) = find_by_username(conn, identifier).await? {
        return Ok(Some(user));
    }
    if !identifier.contains('@') {
        return Ok(None);
    }
    find_by_email(conn, identifier).await
}

/// The one user whose email is `email` (case-insensitive). Two accounts sharing an email would
/// make a login or a login source's link ambiguous: then neither matches.
pub async fn find_by_email(conn: &mut AnyConnection, email: &str) -> Result<Option<User>> {
    let mut found: Vec<User> = sql::select(
        conn,
        "WHERE email <> '' AND LOWER(email) = LOWER($1)",
        vec![email.into()],
        "id",
    )
    .await?;
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// Records a successful login.
pub async fn touch_login(conn: &mut AnyConnection, id: i64) -> Result<()> {
    sql::execute(
        conn,
        "UPDATE users SET last_login = $1 WHERE id = $2",
        vec![sql::now().into(), id.into()],
    )
    .await?;
    Ok(())
}
