//! Secret columns at rest: which columns are sealed with the server's secret key, how a value is
//! sealed for its row and opened again, and the two whole-database passes over them — sealing
//! the plain text left from before sealing existed ([`adopt_key`], at start-up) and moving every
//! value to a new key ([`rotate_key`], `gatehouse secret-key rotate`).
//!
//! Each value is bound to its place (table, column and the row's stable key), so a sealed value
//! copied into another row does not open. Entity modules (`providers`, `sources`, `devices`,
//! `oauth`) seal on write and open on read through [`seal`] and [`open`]; callers of the store
//! only ever see plain text. The key itself is held by the [`Store`](crate::Store) and never
//! written anywhere; the `secret_key` table records its public id only.

use gatehouse_sealing::{Place, SecretKey};
use sqlx::AnyConnection;

use crate::sql::{self, RowExt};
use crate::{Error, Result};

/// One sealed column: its table, its name and the column whose value names the row.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    /// Table name.
    pub table: &'static str,
    /// The sealed column.
    pub column: &'static str,
    /// The row's stable key (bound into the seal).
    pub row: &'static str,
}

/// OAuth2 client secrets, bound to the client id.
pub const PROVIDER_SECRET: SealedColumn = SealedColumn {
    table: "providers",
    column: "client_secret",
    row: "client_id",
};

/// Login sources' client secrets, bound to the source's uuid.
pub const SOURCE_SECRET: SealedColumn = SealedColumn {
    table: "sources",
    column: "consumer_secret",
    row: "uuid",
};

/// OIDC signing private keys, bound to the kid.
pub const SIGNING_KEY: SealedColumn = SealedColumn {
    table: "signing_keys",
    column: "private_pem",
    row: "kid",
};

/// TOTP seeds, bound to the device's uuid.
pub const TOTP_SEED: SealedColumn = SealedColumn {
    table: "totp_devices",
    column: "secret",
    row: "uuid",
};

/// Every sealed column: what start-up and key rotation walk over.
pub const COLUMNS: [SealedColumn; 4] = [PROVIDER_SECRET, SOURCE_SECRET, SIGNING_KEY, TOTP_SEED];

impl SealedColumn {
    fn place<'a>(&self, row: &'a str) -> Place<'a> {
        Place {
            table: self.table,
            column: self.column,
            row,
        }
    }

    fn describe(&self, row: &str) -> String {
        format!("{}.{} of {} `{row}`", self.table, self.column, self.row)
    }
}

/// The stored form of `plain` in `column` of row `row`. An empty value (no secret set, e.g. a
/// public client) stays empty, so "has a secret" queries keep working.
pub fn seal(key: &SecretKey, column: SealedColumn, row: &str, plain: &str) -> Result<String> {
    if plain.is_empty() {
        return Ok(String::new());
    }
    key.seal(column.place(row), plain)
        .map_err(|source| Error::Sealed {
            place: column.describe(row),
            source,
        })
}

/// The plain text of `stored`, read from `column` of row `row`. A value that does not open —
/// another key, altered, or moved from another row — is an error, never a pass.
pub fn open(key: &SecretKey, column: SealedColumn, row: &str, stored: &str) -> Result<String> {
    if stored.is_empty() {
        return Ok(String::new());
    }
    key.unseal(column.place(row), stored)
        .map_err(|source| Error::Sealed {
            place: column.describe(row),
            source,
        })
}

/// The key id recorded in the database, if any key was recorded yet.
pub async fn recorded_key(conn: &mut AnyConnection) -> Result<Option<String>> {
    let row = sql::fetch_optional(
        conn,
        "SELECT key_id FROM secret_key WHERE singleton = 1",
        Vec::new(),
    )
    .await?;
    row.map(|r| r.text("key_id")).transpose()
}

/// Records `key` unless a key is recorded already (another replica starting at the same time
/// may have won), then checks that the recorded key is `key`.
async fn record_first_key(conn: &mut AnyConnection, key: &SecretKey) -> Result<()> {
    sql::execute(
        conn,
        "INSERT INTO secret_key (singleton, key_id, recorded) VALUES (1, $1, $2) ON CONFLICT (singleton) DO NOTHING",
        vec![key.id().into(), sql::now().into()],
    )
    .await?;
    match recorded_key(conn).await? {
        Some(recorded) if recorded != key.id() => Err(Error::WrongSecretKey {
            recorded,
            configured: key.id().to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Replaces the recorded key with `key` (after a rotation).
async fn record_key(conn: &mut AnyConnection, key: &SecretKey) -> Result<()> {
    sql::execute(conn, "DELETE FROM secret_key", Vec::new()).await?;
    sql::execute(
        conn,
        "INSERT INTO secret_key (singleton, key_id, recorded) VALUES (1, $1, $2)",
        vec![key.id().into(), sql::now().into()],
    )
    .await?;
    Ok(())
}

/// Rewrites every non-empty value of `column` (only those in plain text when `plain_only`)
/// through `rewrite` (row key, stored value).
async fn rewrite_column(
    conn: &mut AnyConnection,
    column: SealedColumn,
    plain_only: bool,
    mut rewrite: impl FnMut(&str, &str) -> Result<Option<String>>,
) -> Result<u64> {
    let rows = sql::fetch_all(
        conn,
        &format!(
            "SELECT {row} AS row_key, {col} AS stored FROM {table} WHERE {col} <> ''{plain}",
            row = column.row,
            col = column.column,
            table = column.table,
            plain = if plain_only {
                format!(" AND {} NOT LIKE $1", column.column)
            } else {
                String::new()
            },
        ),
        if plain_only {
            vec![format!("{}%", gatehouse_sealing::PREFIX).into()]
        } else {
            Vec::new()
        },
    )
    .await?;
    let mut changed = 0;
    for r in rows {
        let row = r.text("row_key")?;
        let stored = r.text("stored")?;
        if let Some(new) = rewrite(&row, &stored)? {
            sql::execute(
                conn,
                &format!(
                    "UPDATE {table} SET {col} = $1 WHERE {row} = $2",
                    table = column.table,
                    col = column.column,
                    row = column.row
                ),
                vec![new.into(), row.into()],
            )
            .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// At start-up, inside one transaction: refuses a key other than the one the database records
/// ([`Error::WrongSecretKey`]); records `key` on first use; seals every value still in plain
/// text (written before sealing existed). Returns how many values it sealed.
pub async fn adopt_key(conn: &mut AnyConnection, key: &SecretKey) -> Result<u64> {
    match recorded_key(conn).await? {
        Some(recorded) if recorded != key.id() => {
            return Err(Error::WrongSecretKey {
                recorded,
                configured: key.id().to_owned(),
            })
        }
        Some(_) => {}
        None => record_first_key(conn, key).await?,
    }
    let mut sealed = 0;
    for column in COLUMNS {
        sealed += rewrite_column(conn, column, true, |row, stored| {
            if gatehouse_sealing::is_sealed(stored) {
                return Ok(None);
            }
            seal(key, column, row, stored).map(Some)
        })
        .await?;
    }
    Ok(sealed)
}

/// Inside one transaction: opens every sealed value with `old` (plain text left from before
/// sealing is taken as is), seals it with `new` and records `new` as the database's key. Any
/// value that does not open aborts the whole rotation. Returns how many values it moved.
pub async fn rotate_key(conn: &mut AnyConnection, old: &SecretKey, new: &SecretKey) -> Result<u64> {
    if let Some(recorded) = recorded_key(conn).await? {
        if recorded != old.id() {
            return Err(Error::WrongSecretKey {
                recorded,
                configured: old.id().to_owned(),
            });
        }
    }
    let mut moved = 0;
    for column in COLUMNS {
        moved += rewrite_column(conn, column, false, |row, stored| {
            let plain = if gatehouse_sealing::is_sealed(stored) {
                open(old, column, row, stored)?
            } else {
                stored.to_owned()
            };
            seal(new, column, row, &plain).map(Some)
        })
        .await?;
    }
    record_key(conn, new).await?;
    Ok(moved)
}
