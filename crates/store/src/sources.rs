//! Login sources: social and OIDC identity services users can log in or enrol with.

use gatehouse_core::kinds::{SourceProviderType, UserMatchingMode};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt, Value};
use crate::Result;

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

/// A stored source.
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

fn columns(f: &SourceFields) -> Vec<(&'static str, Value)> {
    vec![
        ("slug", f.slug.clone().into()),
        ("name", f.name.clone().into()),
        ("enabled", f.enabled.into()),
        ("promoted", f.promoted.into()),
        ("provider_type", f.provider_type.as_str().into()),
        ("user_matching_mode", f.user_matching_mode.as_str().into()),
        ("authentication_flow", f.authentication_flow.into()),
        ("enrollment_flow", f.enrollment_flow.into()),
        ("consumer_key", f.consumer_key.clone().into()),
        ("consumer_secret", f.consumer_secret.clone().into()),
        ("authorization_url", f.authorization_url.clone().into()),
        ("access_token_url", f.access_token_url.clone().into()),
        ("profile_url", f.profile_url.clone().into()),
        ("oidc_well_known_url", f.oidc_well_known_url.clone().into()),
        ("additional_scopes", f.additional_scopes.clone().into()),
    ]
}

/// Creates a source.
pub async fn create(conn: &mut AnyConnection, fields: &SourceFields) -> Result<Source> {
    let uuid = Uuid::new_v4();
    let mut cols = columns(fields);
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "sources", cols, None).await?;
    sql::get(conn, uuid).await
}

/// Replaces source `uuid`.
pub async fn update(conn: &mut AnyConnection, uuid: Uuid, fields: &SourceFields) -> Result<Source> {
    sql::update(
        conn,
        "sources",
        Source::WHAT,
        "uuid",
        uuid.into(),
        columns(fields),
    )
    .await?;
    sql::get(conn, uuid).await
}

/// Deletes source `uuid`.
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(conn, "sources", Source::WHAT, "uuid", uuid.into()).await
}

/// The source with slug `slug`, if any.
pub async fn find_by_slug(conn: &mut AnyConnection, slug: &str) -> Result<Option<Source>> {
    sql::find(conn, "slug", slug.into()).await
}
