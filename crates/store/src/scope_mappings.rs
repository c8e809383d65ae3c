//! Scope mappings: custom claims written as CEL expressions. A provider selects some; when a
//! token is issued for a scope a selected mapping names, the expression's map is merged into
//! the claims (Authentik's scope property mappings, with CEL instead of Python).

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt};
use crate::Result;

/// The fields of a scope mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeMappingFields {
    /// Unique name.
    pub name: String,
    /// The scope that brings these claims, e.g. `profile` or a custom `headscale`.
    pub scope_name: String,
    /// CEL expression yielding a map of claims.
    pub expression: String,
    /// What the consent screen says about the scope; empty says nothing.
    pub description: String,
}

/// A stored scope mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeMapping {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: ScopeMappingFields,
    /// Creation time.
    pub created: DateTime<Utc>,
}

impl Entity for ScopeMapping {
    const WHAT: &'static str = "scope mapping";
    const SELECT: &'static str = "SELECT * FROM scope_mappings";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(ScopeMapping {
            uuid: row.uuid("uuid")?,
            fields: ScopeMappingFields {
                name: row.text("name")?,
                scope_name: row.text("scope_name")?,
                expression: row.text("expression")?,
                description: row.text("description")?,
            },
            created: row.ts("created")?,
        })
    }
}

fn columns(f: &ScopeMappingFields) -> Vec<(&'static str, sql::Value)> {
    vec![
        ("name", f.name.clone().into()),
        ("scope_name", f.scope_name.clone().into()),
        ("expression", f.expression.clone().into()),
        ("description", f.description.clone().into()),
    ]
}

/// Creates a scope mapping.
pub async fn create(conn: &mut AnyConnection, fields: &ScopeMappingFields) -> Result<ScopeMapping> {
    let uuid = Uuid::new_v4();
    let mut cols = columns(fields);
    cols.push(("uuid", uuid.into()));
    cols.push(("created", sql::now().into()));
    sql::insert(conn, "scope_mappings", cols, None).await?;
    sql::get(conn, uuid).await
}

/// Replaces scope mapping `uuid`.
pub async fn update(
    conn: &mut AnyConnection,
    uuid: Uuid,
    fields: &ScopeMappingFields,
) -> Result<ScopeMapping> {
    sql::update(
        conn,
        "scope_mappings",
        ScopeMapping::WHAT,
        "uuid",
        uuid.into(),
        columns(fields),
    )
    .await?;
    sql::get(conn, uuid).await
}

/// Deletes scope mapping `uuid` (providers that selected it stop using it).
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(
        conn,
        "scope_mappings",
        ScopeMapping::WHAT,
        "uuid",
        uuid.into(),
    )
    .await
}

/// The mappings provider `provider` selected, by name.
pub async fn of_provider(conn: &mut AnyConnection, provider: i64) -> Result<Vec<ScopeMapping>> {
    sql::fetch_all(
        conn,
        "SELECT m.* FROM scope_mappings m JOIN provider_scope_mappings p ON p.mapping_uuid = m.uuid \
         WHERE p.provider_id = $1 ORDER BY m.name",
        vec![provider.into()],
    )
    .await?
    .iter()
    .map(ScopeMapping::from_row)
    .collect()
}

/// Makes `mappings` the selection of provider `provider`.
pub async fn select_for_provider(
    conn: &mut AnyConnection,
    provider: i64,
    mappings: &[Uuid],
) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM provider_scope_mappings WHERE provider_id = $1",
        vec![provider.into()],
    )
    .await?;
    for uuid in mappings {
        sql::insert(
            conn,
            "provider_scope_mappings",
            vec![
                ("provider_id", provider.into()),
                ("mapping_uuid", (*uuid).into()),
            ],
            None,
        )
        .await?;
    }
    Ok(())
}
