//! Login sources: social and OIDC identity services users can log in or enrol with.

use gatehouse_core::kinds::{SourceProviderType, UserMatchingMode};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sealed::{self, SOURCE_SECRET};
use crate::sql::{self, Entity, ListSpec, Listed, RowExt, Value};
use crate::{Result, SecretKey};

/// The fields of an OAuth/OIDC login source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFields {
    /// Unique slug (in callback URLs).
    pub slug: String,
    /// Button label.
    pub name: String,
    /// Disabled sources show no button and accept no callbacks.
    pub enabled: bool,
    /// Show as a prominent button.
    pub promoted: bool,
    /// Google, GitHub, generic OIDC, …
    pub provider_type: SourceProviderType,
    /// How an outside identity links to a local user.
    pub user_matching_mode: UserMatchingMode,
    /// Flow for existing users.
    pub authentication_flow: Option<Uuid>,
    /// Flow for new users (e.g. invitation-only enrollment).
    pub enrollment_flow: Option<Uuid>,
    /// OAuth client id at the source.
    pub consumer_key: String,
    /// OAuth client secret at the source.
    pub consumer_secret: String,
    /// Authorization endpoint (empty: the preset's).
    pub authorization_url: String,
    /// Token endpoint (empty: the preset's).
    pub access_token_url: String,
    /// Userinfo endpoint (empty: the preset's).
    pub profile_url: String,
    /// OIDC discovery URL for generic sources.
    pub oidc_well_known_url: String,
    /// Extra scopes to request.
    pub additional_scopes: String,
}

/// A stored source. The consumer secret is plain text here: sealed on write, opened on read;
/// read sources through this module's functions, which open it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: SourceFields,
}

impl Entity for Source {
    const WHAT: &'static str = "source";
    const SELECT: &'static str = "SELECT * FROM sources";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Source {
            uuid: row.uuid("uuid")?,
            fields: SourceFields {
                slug: row.text("slug")?,
                name: row.text("name")?,
                enabled: row.flag("enabled")?,
                promoted: row.flag("promoted")?,
                provider_type: row.parsed("provider_type")?,
                user_matching_mode: row.parsed("user_matching_mode")?,
                authentication_flow: row.opt_uuid("authentication_flow")?,
                enrollment_flow: row.opt_uuid("enrollment_flow")?,
                consumer_key: row.text("consumer_key")?,
                consumer_secret: row.text("consumer_secret")?,
                authorization_url: row.text("authorization_url")?,
                access_token_url: row.text("access_token_url")?,
                profile_url: row.text("profile_url")?,
                oidc_well_known_url: row.text("oidc_well_known_url")?,
                additional_scopes: row.text("additional_scopes")?,
            },
        })
    }
}

fn columns(key: &SecretKey, uuid: Uuid, f: &SourceFields) -> Result<Vec<(&'static str, Value)>> {
    let secret = sealed::seal(key, SOURCE_SECRET, &uuid.to_string(), &f.consumer_secret)?;
    Ok(vec![
        ("slug", f.slug.clone().into()),
        ("name", f.name.clone().into()),
        ("enabled", f.enabled.into()),
        ("promoted", f.promoted.into()),
        ("provider_type", f.provider_type.as_str().into()),
        ("user_matching_mode", f.user_matching_mode.as_str().into()),
        ("authentication_flow", f.authentication_flow.into()),
        ("enrollment_flow", f.enrollment_flow.into()),
        ("consumer_key", f.consumer_key.clone().into()),
        ("consumer_secret", secret.into()),
        ("authorization_url", f.authorization_url.clone().into()),
        ("access_token_url", f.access_token_url.clone().into()),
        ("profile_url", f.profile_url.clone().into()),
        ("oidc_well_known_url", f.oidc_well_known_url.clone().into()),
        ("additional_scopes", f.additional_scopes.clone().into()),
    ])
}

/// Opens the sealed consumer secret.
fn opened(key: &SecretKey, mut source: Source) -> Result<Source> {
    let f = &mut source.fields;
    f.consumer_secret = sealed::open(
        key,
        SOURCE_SECRET,
        &source.uuid.to_string(),
        &f.consumer_secret,
    )?;
    Ok(source)
}

/// Creates a source.
pub async fn create(
    conn: &mut AnyConnection,
    key: &SecretKey,
    fields: &SourceFields,
) -> Result<Source> {
    let uuid = Uuid::new_v4();
    let mut cols = columns(key, uuid, fields)?;
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "sources", cols, None).await?;
    get(conn, key, uuid).await
}

/// Replaces source `uuid`.
pub async fn update(
    conn: &mut AnyConnection,
    key: &SecretKey,
    uuid: Uuid,
    fields: &SourceFields,
) -> Result<Source> {
    sql::update(
        conn,
        "sources",
        Source::WHAT,
        "uuid",
        uuid.into(),
        columns(key, uuid, fields)?,
    )
    .await?;
    get(conn, key, uuid).await
}

/// Source `uuid`.
pub async fn get(conn: &mut AnyConnection, key: &SecretKey, uuid: Uuid) -> Result<Source> {
    opened(key, sql::get(conn, uuid).await?)
}

/// Lists sources.
pub async fn list(
    conn: &mut AnyConnection,
    key: &SecretKey,
    spec: &ListSpec,
) -> Result<Listed<Source>> {
    let listed = sql::list::<Source>(conn, spec).await?;
    Ok(Listed {
        count: listed.count,
        items: listed
            .items
            .into_iter()
            .map(|s| opened(key, s))
            .collect::<Result<_>>()?,
    })
}

/// Deletes source `uuid`.
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(conn, "sources", Source::WHAT, "uuid", uuid.into()).await
}

/// The sources people can sign in with now: enabled and with a client secret, by name.
pub async fn usable(conn: &mut AnyConnection, key: &SecretKey) -> Result<Vec<Source>> {
    sql::select::<Source>(
        conn,
        "WHERE enabled = $1 AND consumer_secret <> ''",
        vec![true.into()],
        "name",
    )
    .await?
    .into_iter()
    .map(|s| opened(key, s))
    .collect()
}

/// The source with slug `slug`, if any.
pub async fn find_by_slug(
    conn: &mut AnyConnection,
    key: &SecretKey,
    slug: &str,
) -> Result<Option<Source>> {
    sql::find::<Source>(conn, "slug", slug.into())
        .await?
        .map(|s| opened(key, s))
        .transpose()
}

/// A link between a local user and their identity at a login source (Authentik's
/// user-source connection): the next login with that identity signs in as that user.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Primary key (the API's `pk`).
    pub id: i64,
    /// The source.
    pub source: Uuid,
    /// The local user.
    pub user: i64,
    /// The identity's stable id at the source (`sub`, GitHub's numeric id, ...).
    pub identifier: String,
    /// When the link was made.
    pub created: chrono::DateTime<chrono::Utc>,
    /// When it was last used to sign in.
    pub last_updated: chrono::DateTime<chrono::Utc>,
}

impl Entity for Connection {
    const WHAT: &'static str = "user source connection";
    const SELECT: &'static str = "SELECT * FROM source_connections";
    const KEY: &'static str = "id";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Connection {
            id: row.int("id")?,
            source: row.uuid("source_uuid")?,
            user: row.int("user_id")?,
            identifier: row.text("identifier")?,
            created: row.ts("created")?,
            last_updated: row.ts("last_updated")?,
        })
    }
}

/// Links `user` to `identifier` at `source`. A user has at most one link per source and an
/// identity at most one user: either taken is a unique violation naming the field.
pub async fn connect(
    conn: &mut AnyConnection,
    source: Uuid,
    user: i64,
    identifier: &str,
) -> Result<Connection> {
    let now = sql::now();
    let id = sql::insert(
        conn,
        "source_connections",
        vec![
            ("source_uuid", source.into()),
            ("user_id", user.into()),
            ("identifier", identifier.into()),
            ("created", now.into()),
            ("last_updated", now.into()),
        ],
        Some("id"),
    )
    .await?
    .ok_or(crate::Error::NotFound {
        what: Connection::WHAT,
    })?;
    sql::get(conn, id).await
}

/// The link for `identifier` at `source`, if any.
pub async fn connection_for(
    conn: &mut AnyConnection,
    source: Uuid,
    identifier: &str,
) -> Result<Option<Connection>> {
    Ok(sql::select::<Connection>(
        conn,
        "WHERE source_uuid = $1 AND identifier = $2",
        vec![source.into(), identifier.into()],
        "id",
    )
    .await?
    .pop())
}

/// Every link of `user`, oldest first.
pub async fn connections_of(conn: &mut AnyConnection, user: i64) -> Result<Vec<Connection>> {
    sql::select(conn, "WHERE user_id = $1", vec![user.into()], "id").await
}

/// Points link `id` at another source, user or identifier, keeping its id.
pub async fn update_connection(
    conn: &mut AnyConnection,
    id: i64,
    source: Uuid,
    user: i64,
    identifier: &str,
) -> Result<Connection> {
    sql::update(
        conn,
        "source_connections",
        Connection::WHAT,
        "id",
        id.into(),
        vec![
            ("source_uuid", source.into()),
            ("user_id", user.into()),
            ("identifier", identifier.into()),
            ("last_updated", sql::now().into()),
        ],
    )
    .await?;
    sql::get(conn, id).await
}

/// Marks link `id` as just used.
pub async fn touch_connection(conn: &mut AnyConnection, id: i64) -> Result<()> {
    sql::update(
        conn,
        "source_connections",
        Connection::WHAT,
        "id",
        id.into(),
        vec![("last_updated", sql::now().into())],
    )
    .await
}

/// Removes link `id`.
pub async fn disconnect(conn: &mut AnyConnection, id: i64) -> Result<()> {
    sql::delete(
        conn,
        "source_connections",
        Connection::WHAT,
        "id",
        id.into(),
    )
    .await
}
