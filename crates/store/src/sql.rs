//! The generic statements every entity reuses, and the mapping of database errors.
//!
//! Column and table names passed here are `&'static str` chosen by entity modules, never user
//! input; values always travel as bound parameters.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::{Error, Result};

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (also UUIDs, timestamps and JSON, which are stored as text).
    Text(String),
    /// Nullable text.
    OptText(Option<String>),
    /// An integer.
    Int(i64),
    /// A nullable integer.
    OptInt(Option<i64>),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::OptText(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::OptInt(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<Option<Uuid>> for Value {
    fn from(v: Option<Uuid>) -> Self {
        Value::OptText(v.map(|u| u.to_string()))
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Text(timestamp(v))
    }
}
impl From<Option<DateTime<Utc>>> for Value {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Value::OptText(v.map(timestamp))
    }
}
impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Self {
        Value::Text(v.to_string())
    }
}

/// The stored form of a timestamp: RFC 3339 UTC with microseconds, fixed width so it sorts.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, truncated to what the database stores (microseconds), so a value read back compares
/// equal to the one written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind(query: AnyQuery<'_>, value: Value) -> AnyQuery<'_> {
    match value {
        Value::Text(v) => query.bind(v),
        Value::OptText(v) => query.bind(v),
        Value::Int(v) => query.bind(v),
        Value::OptInt(v) => query.bind(v),
        Value::Bool(v) => query.bind(v),
    }
}

/// Whether `conn` talks to PostgreSQL (for the few statements only it has, e.g. `NOTIFY`).
pub fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name() == "PostgreSQL"
}

/// Runs `sql` with `values` bound as `$1..$n` and returns all rows.
pub async fn fetch_all(
    conn: &mut AnyConnection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<AnyRow>> {
    let query = values.into_iter().fold(sqlx::query(sql), bind);
    Ok(query.fetch_all(conn).await?)
}

/// Runs `sql` with `values` bound and returns the first row, if any.
pub async fn fetch_optional(
    conn: &mut AnyConnection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<AnyRow>> {
    let query = values.into_iter().fold(sqlx::query(sql), bind);
    Ok(query.fetch_optional(conn).await?)
}

/// Runs `sql` with `values` bound; returns the number of rows affected.
pub async fn execute(conn: &mut AnyConnection, sql: &str, values: Vec<Value>) -> Result<u64> {
    let query = values.into_iter().fold(sqlx::query(sql), bind);
    Ok(query.execute(conn).await?.rows_affected())
}

/// Reads typed values out of a row, turning stored text back into UUIDs, timestamps and JSON.
pub trait RowExt {
    /// Text column.
    fn text(&self, column: &str) -> Result<String>;
    /// Nullable text column.
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    /// Integer column.
    fn int(&self, column: &str) -> Result<i64>;
    /// Nullable integer column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    /// Boolean column (SQLite stores 0/1).
    fn flag(&self, column: &str) -> Result<bool>;
    /// UUID stored as text.
    fn uuid(&self, column: &str) -> Result<Uuid>;
    /// Nullable UUID stored as text.
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>>;
    /// Timestamp stored as text.
    fn ts(&self, column: &str) -> Result<DateTime<Utc>>;
    /// Nullable timestamp stored as text.
    fn opt_ts(&self, column: &str) -> Result<Option<DateTime<Utc>>>;
    /// JSON stored as text.
    fn json(&self, column: &str) -> Result<serde_json::Value>;
    /// A closed-set value stored as text.
    fn parsed<T: std::str::FromStr>(&self, column: &str) -> Result<T>
    where
        T::Err: std::fmt::Display;
}

fn corrupt(column: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("column {column}: {e}"))
}

fn parse_ts(column: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(column, e))
}

impl RowExt for AnyRow {
    fn text(&self, column: &str) -> Result<String> {
        self.try_get(column).map_err(|e| corrupt(column, e))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        self.try_get(column).map_err(|e| corrupt(column, e))
    }
    fn int(&self, column: &str) -> Result<i64> {
        self.try_get(column).map_err(|e| corrupt(column, e))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        self.try_get(column).map_err(|e| corrupt(column, e))
    }
    fn flag(&self, column: &str) -> Result<bool> {
        match self.try_get::<bool, _>(column) {
            Ok(v) => Ok(v),
            Err(_) => self.int(column).map(|v| v != 0),
        }
    }
    fn uuid(&self, column: &str) -> Result<Uuid> {
        self.text(column)?.parse().map_err(|e| corrupt(column, e))
    }
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        self.opt_text(column)?
            .map(|s| s.parse().map_err(|e| corrupt(column, e)))
            .transpose()
    }
    fn ts(&self, column: &str) -> Result<DateTime<Utc>> {
        parse_ts(column, &self.text(column)?)
    }
    fn opt_ts(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        self.opt_text(column)?
            .map(|s| parse_ts(column, &s))
            .transpose()
    }
    fn json(&self, column: &str) -> Result<serde_json::Value> {
        serde_json::from_str(&self.text(column)?).map_err(|e| corrupt(column, e))
    }
    fn parsed<T: std::str::FromStr>(&self, column: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        self.text(column)?.parse().map_err(|e| corrupt(column, e))
    }
}

/// An entity stored in one table (or one joined select) with a single key column.
pub trait Entity: Sized {
    /// What the API calls it, for "not found" messages.
    const WHAT: &'static str;
    /// The SELECT (without WHERE) that yields a full record.
    const SELECT: &'static str;
    /// The key column, qualified as it appears in `SELECT`.
    const KEY: &'static str;
    /// Builds the record from a row of `SELECT`.
    fn from_row(row: &AnyRow) -> Result<Self>;
}

/// Inserts one row; returns the generated integer id when `returning` names it.
pub async fn insert(
    conn: &mut AnyConnection,
    table: &str,
    columns: Vec<(&'static str, Value)>,
    returning: Option<&str>,
) -> Result<Option<i64>> {
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let mut sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        placeholders.join(", ")
    );
    let values = columns.into_iter().map(|(_, v)| v).collect();
    match returning {
        Some(column) => {
            sql.push_str(&format!(" RETURNING {column}"));
            let row = fetch_optional(conn, &sql, values).await?;
            row.map(|r| r.int(column)).transpose()
        }
        None => {
            execute(conn, &sql, values).await?;
            Ok(None)
        }
    }
}

/// Updates the row whose `key_column` equals `key`; `NotFound` when there is none.
pub async fn update(
    conn: &mut AnyConnection,
    table: &str,
    what: &'static str,
    key_column: &str,
    key: Value,
    columns: Vec<(&'static str, Value)>,
) -> Result<()> {
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{c} = ${}", i + 1))
        .collect();
    let sql = format!(
        "UPDATE {table} SET {} WHERE {key_column} = ${}",
        sets.join(", "),
        columns.len() + 1
    );
    let mut values: Vec<Value> = columns.into_iter().map(|(_, v)| v).collect();
    values.push(key);
    match execute(conn, &sql, values).await? {
        0 => Err(Error::NotFound { what }),
        _ => Ok(()),
    }
}

/// Deletes the row whose `key_column` equals `key`; `NotFound` when there is none.
pub async fn delete(
    conn: &mut AnyConnection,
    table: &str,
    what: &'static str,
    key_column: &str,
    key: Value,
) -> Result<()> {
    let sql = format!("DELETE FROM {table} WHERE {key_column} = $1");
    match execute(conn, &sql, vec![key]).await? {
        0 => Err(Error::NotFound { what }),
        _ => Ok(()),
    }
}

/// The record of `E` whose `column` equals `value`, if any.
pub async fn find<E: Entity>(
    conn: &mut AnyConnection,
    column: &str,
    value: Value,
) -> Result<Option<E>> {
    let sql = format!("{} WHERE {column} = $1", E::SELECT);
    fetch_optional(conn, &sql, vec![value])
        .await?
        .map(|row| E::from_row(&row))
        .transpose()
}

/// The record of `E` with key `key`, or `NotFound`.
pub async fn get<E: Entity>(conn: &mut AnyConnection, key: impl Into<Value>) -> Result<E> {
    find::<E>(conn, E::KEY, key.into())
        .await?
        .ok_or(Error::NotFound { what: E::WHAT })
}

/// Every record of `E` matching `where_sql` (with `$n` placeholders for `values`), in `order`.
pub async fn select<E: Entity>(
    conn: &mut AnyConnection,
    where_sql: &str,
    values: Vec<Value>,
    order: &str,
) -> Result<Vec<E>> {
    let sql = format!("{} {where_sql} ORDER BY {order}", E::SELECT);
    fetch_all(conn, &sql, values)
        .await?
        .iter()
        .map(E::from_row)
        .collect()
}

/// One condition of a list query: a whitelisted column compared with a value.
#[derive(Debug, Clone)]
pub enum Filter {
    /// `column = value`.
    Equals(&'static str, Value),
    /// `column <> value` (or NULL).
    NotEquals(&'static str, Value),
    /// Case-insensitive substring match over several columns (the `search` parameter).
    Search(&'static [&'static str], String),
    /// `column IN (SELECT …)` with one bound text value, for relations such as
    /// "users in the group named X".
    InSubquery(&'static str, &'static str, String),
}

/// A list request: filters, ordering and one page.
#[derive(Debug, Clone)]
pub struct ListSpec {
    /// Conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// `(column, descending)` pairs, most significant first; the key is appended as a tiebreak.
    pub ordering: Vec<(&'static str, bool)>,
    /// 1-based page number.
    pub page: i64,
    /// Rows per page.
    pub page_size: i64,
}

/// One page of results and the total number of matching rows.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    /// Rows matching the filters, across all pages.
    pub count: i64,
    /// This page.
    pub items: Vec<T>,
}

/// Lists records of `E` by `spec`.
pub async fn list<E: Entity>(conn: &mut AnyConnection, spec: &ListSpec) -> Result<Listed<E>> {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    for filter in &spec.filters {
        match filter {
            Filter::Equals(column, value) => {
                values.push(value.clone());
                conditions.push(format!("{column} = ${}", values.len()));
            }
            Filter::NotEquals(column, value) => {
                values.push(value.clone());
                conditions.push(format!(
                    "({column} IS NULL OR {column} <> ${})",
                    values.len()
                ));
            }
            // A resource without searchable columns ignores `search`, as Django REST
            // framework's SearchFilter does with no `search_fields` (an empty OR was an SQL
            // syntax error: a 500).
            Filter::Search([], _) => {}
            Filter::Search(columns, term) => {
                let escaped = term
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                values.push(Value::Text(format!("%{}%", escaped.to_lowercase())));
                let n = values.len();
                let any: Vec<String> = columns
                    .iter()
                    .map(|c| format!("LOWER({c}) LIKE ${n} ESCAPE '\\'"))
                    .collect();
                conditions.push(format!("({})", any.join(" OR ")));
            }
            Filter::InSubquery(column, subquery, value) => {
                values.push(Value::Text(value.clone()));
                conditions.push(format!(
                    "{column} IN ({})",
                    subquery.replace("$?", &format!("${}", values.len()))
                ));
            }
        }
    }
    let where_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let from = E::SELECT
        .split_once(" FROM ")
        .map(|(_, from)| from)
        .unwrap_or(E::SELECT);
    let count_sql = format!("SELECT COUNT(*) AS n FROM {from}{where_sql}");
    let count = fetch_optional(conn, &count_sql, values.clone())
        .await?
        .map(|r| r.int("n"))
        .transpose()?
        .unwrap_or(0);
    let mut order: Vec<String> = spec
        .ordering
        .iter()
        .map(|(c, desc)| format!("{c} {}", if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push(format!("{} ASC", E::KEY));
    let page_size = spec.page_size.clamp(1, 1000);
    let offset = (spec.page.max(1) - 1).saturating_mul(page_size);
    let sql = format!(
        "{}{where_sql} ORDER BY {} LIMIT {page_size} OFFSET {offset}",
        E::SELECT,
        order.join(", ")
    );
    let items = fetch_all(conn, &sql, values)
        .await?
        .iter()
        .map(E::from_row)
        .collect::<Result<_>>()?;
    Ok(Listed { count, items })
}

/// Maps a database error to a domain error: unique violations name the clashing field, foreign-key
/// and check violations become validation errors; everything else stays a database error.
pub(crate) fn classify(e: sqlx::Error) -> Error {
    let Some(db) = e.as_database_error() else {
        return Error::Database(e);
    };
    let message = db.message().to_owned();
    let constraint = db.constraint().map(str::to_owned);
    match db.kind() {
        sqlx::error::ErrorKind::UniqueViolation => {
            let field = unique_field(&message, constraint.as_deref());
            Error::Conflict {
                message: format!("an object with this {field} already exists."),
                field,
            }
        }
        sqlx::error::ErrorKind::ForeignKeyViolation => Error::Invalid {
            field: "non_field_errors".into(),
            message:
                "refers to an object that does not exist, or is still referenced by another object."
                    .into(),
        },
        sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
            Error::Invalid {
                field: "non_field_errors".into(),
                message: format!("the values break a rule of the data model ({message})."),
            }
        }
        _ => Error::Database(e),
    }
}

/// The column named by a unique violation: SQLite says `UNIQUE constraint failed: users.username`,
/// PostgreSQL names the constraint `users_username_key`.
fn unique_field(message: &str, constraint: Option<&str>) -> String {
    if let Some(rest) = message.split("UNIQUE constraint failed: ").nth(1) {
        let last = rest.split(", ").last().unwrap_or(rest);
        return last.rsplit('.').next().unwrap_or(last).to_owned();
    }
    if let Some(name) = constraint {
        let trimmed = name.trim_end_matches("_key").trim_end_matches("_pkey");
        for table in [
            "users",
            "groups",
            "group_parents",
            "group_members",
            "flows",
            "stages",
            "flow_stage_bindings",
            "policies",
            "providers",
            "applications",
            "sources",
            "invitations",
            "tokens",
            "outposts",
        ] {
            if let Some(field) = trimmed
                .strip_prefix(table)
                .and_then(|f| f.strip_prefix('_'))
            {
                if !field.is_empty() {
                    return field.to_owned();
                }
            }
        }
        return trimmed.to_owned();
    }
    "non_field_errors".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_the_field_on_both_databases() {
        assert_eq!(
            unique_field("UNIQUE constraint failed: users.username", None),
            "username"
        );
        assert_eq!(
            unique_field(
                "duplicate key value violates unique constraint",
                Some("users_username_key")
            ),
            "username"
        );
        assert_eq!(
            unique_field("dup", Some("applications_provider_id_key")),
            "provider_id"
        );
    }
}
