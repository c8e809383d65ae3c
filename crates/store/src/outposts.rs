//! Outposts: the embedded one and standalone ones, with the providers each serves.

use gatehouse_core::kinds::OutpostType;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt, Value};
use crate::Result;

/// The `managed` marker of the embedded outpost, as Authentik names it.
pub const EMBEDDED: &str = "goauthentik.io/outposts/embedded";

/// The fields of an outpost.
#[derive(Debug, Clone, PartialEq)]
pub struct OutpostFields {
    /// Unique name.
    pub name: String,
    /// Only `proxy` is implemented.
    pub outpost_type: OutpostType,
    /// Free-form settings (JSON object), e.g. `authentik_host`.
    pub config: serde_json::Value,
    /// Set for the embedded outpost.
    pub managed: Option<String>,
    /// Providers served, by id.
    pub providers: Vec<i64>,
}

/// A stored outpost.
#[derive(Debug, Clone, PartialEq)]
pub struct Outpost {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: OutpostFields,
}

impl Entity for Outpost {
    const WHAT: &'static str = "outpost";
    const SELECT: &'static str = "SELECT * FROM outposts";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Outpost {
            uuid: row.uuid("uuid")?,
            fields: OutpostFields {
                name: row.text("name")?,
                outpost_type: row.parsed("outpost_type")?,
                config: row.json("config")?,
                managed: row.opt_text("managed")?,
                providers: Vec::new(),
            },
        })
    }
}

fn columns(f: &OutpostFields) -> Vec<(&'static str, Value)> {
    vec![
        ("name", f.name.clone().into()),
        ("outpost_type", f.outpost_type.as_str().into()),
        ("config", (&f.config).into()),
        ("managed", f.managed.clone().into()),
    ]
}

async fn write_providers(conn: &mut AnyConnection, uuid: Uuid, providers: &[i64]) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM outpost_providers WHERE outpost_uuid = $1",
        vec![uuid.into()],
    )
    .await?;
    for &p in providers {
        sql::insert(
            conn,
            "outpost_providers",
            vec![("outpost_uuid", uuid.into()), ("provider_id", p.into())],
            None,
        )
        .await?;
    }
    Ok(())
}

/// Fills in the providers of an outpost read by a generic query.
pub async fn complete(conn: &mut AnyConnection, mut outpost: Outpost) -> Result<Outpost> {
    outpost.fields.providers = sql::fetch_all(
        conn,
        "SELECT provider_id FROM outpost_providers WHERE outpost_uuid = $1 ORDER BY provider_id",
        vec![outpost.uuid.into()],
    )
    .await?
    .iter()
    .map(|r| r.int("provider_id"))
    .collect::<Result<_>>()?;
    Ok(outpost)
}

/// Outpost `uuid` with its providers.
pub async fn get(conn: &mut AnyConnection, uuid: Uuid) -> Result<Outpost> {
    let outpost = sql::get(conn, uuid).await?;
    complete(conn, outpost).await
}

/// Creates an outpost.
pub async fn create(conn: &mut AnyConnection, f: &OutpostFields) -> Result<Outpost> {
    let uuid = Uuid::new_v4();
    let mut cols = columns(f);
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "outposts", cols, None).await?;
    write_providers(conn, uuid, &f.providers).await?;
    get(conn, uuid).await
}

/// Replaces outpost `uuid`.
pub async fn update(conn: &mut AnyConnection, uuid: Uuid, f: &OutpostFields) -> Result<Outpost> {
    sql::update(
        conn,
        "outposts",
        Outpost::WHAT,
        "uuid",
        uuid.into(),
        columns(f),
    )
    .await?;
    write_providers(conn, uuid, &f.providers).await?;
    get(conn, uuid).await
}

/// Deletes outpost `uuid`.
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(conn, "outposts", Outpost::WHAT, "uuid", uuid.into()).await
}

/// The names of outposts serving provider `provider` (the API's `outpost_set`).
pub async fn names_serving(conn: &mut AnyConnection, provider: i64) -> Result<Vec<String>> {
    sql::fetch_all(
        conn,
        "SELECT o.name FROM outposts o JOIN outpost_providers op ON op.outpost_uuid = o.uuid WHERE op.provider_id = $1 ORDER BY o.name",
        vec![provider.into()],
    )
    .await?
    .iter()
    .map(|r| r.text("name"))
    .collect()
}
