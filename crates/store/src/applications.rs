//! Applications: what users open, with an optional provider and who may use it.

use gatehouse_core::kinds::PolicyEngineMode;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt, Value};
use crate::Result;

/// The fields of an application.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationFields {
    /// Unique slug (used in OIDC issuer URLs).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Provider id, at most one application per provider.
    pub provider: Option<i64>,
    /// Where the user page's tile links to.
    pub meta_launch_url: String,
    /// Icon URL.
    pub meta_icon: String,
    /// Description on the user page.
    pub meta_description: String,
    /// Publisher on the user page.
    pub meta_publisher: String,
    /// Open the launch URL in a new tab.
    pub open_in_new_tab: bool,
    /// Hide from the user page.
    pub meta_hide: bool,
    /// How the application's policy bindings combine.
    pub policy_engine_mode: PolicyEngineMode,
    /// Group label on the user page.
    pub group: String,
}

/// A stored application; its UUID is also its policy-binding target (`pbm_uuid`).
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: ApplicationFields,
}

impl Entity for Application {
    const WHAT: &'static str = "application";
    const SELECT: &'static str = "SELECT * FROM applications";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Application {
            uuid: row.uuid("uuid")?,
            fields: ApplicationFields {
                slug: row.text("slug")?,
                name: row.text("name")?,
                provider: row.opt_int("provider_id")?,
                meta_launch_url: row.text("meta_launch_url")?,
                meta_icon: row.text("meta_icon")?,
                meta_description: row.text("meta_description")?,
                meta_publisher: row.text("meta_publisher")?,
                open_in_new_tab: row.flag("open_in_new_tab")?,
                meta_hide: row.flag("meta_hide")?,
                policy_engine_mode: row.parsed("policy_engine_mode")?,
                group: row.text("group_name")?,
            },
        })
    }
}

fn columns(f: &ApplicationFields) -> Vec<(&'static str, Value)> {
    vec![
        ("slug", f.slug.clone().into()),
        ("name", f.name.clone().into()),
        ("provider_id", f.provider.into()),
        ("meta_launch_url", f.meta_launch_url.clone().into()),
        ("meta_icon", f.meta_icon.clone().into()),
        ("meta_description", f.meta_description.clone().into()),
        ("meta_publisher", f.meta_publisher.clone().into()),
        ("open_in_new_tab", f.open_in_new_tab.into()),
        ("meta_hide", f.meta_hide.into()),
        ("policy_engine_mode", f.policy_engine_mode.as_str().into()),
        ("group_name", f.group.clone().into()),
    ]
}

/// Creates an application.
pub async fn create(conn: &mut AnyConnection, fields: &ApplicationFields) -> Result<Application> {
    let uuid = Uuid::new_v4();
    let mut cols = columns(fields);
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "applications", cols, None).await?;
    crate::changes::append_application(conn, uuid).await?;
    sql::get(conn, uuid).await
}

/// Replaces application `uuid`.
pub async fn update(
    conn: &mut AnyConnection,
    uuid: Uuid,
    fields: &ApplicationFields,
) -> Result<Application> {
    crate::changes::append_application(conn, uuid).await?;
    sql::update(
        conn,
        "applications",
        Application::WHAT,
        "uuid",
        uuid.into(),
        columns(fields),
    )
    .await?;
    crate::changes::append_application(conn, uuid).await?;
    sql::get(conn, uuid).await
}

/// Deletes application `uuid` and its policy bindings.
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    crate::changes::append_application(conn, uuid).await?;
    sql::delete(conn, "applications", Application::WHAT, "uuid", uuid.into()).await
}

/// The application with slug `slug`, if any.
pub async fn find_by_slug(conn: &mut AnyConnection, slug: &str) -> Result<Option<Application>> {
    sql::find(conn, "slug", slug.into()).await
}

/// The application using provider `provider`, if any.
pub async fn find_by_provider(
    conn: &mut AnyConnection,
    provider: i64,
) -> Result<Option<Application>> {
    sql::find(conn, "provider_id", provider.into()).await
}
