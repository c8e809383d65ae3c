//! Groups: a DAG of parents, a superuser flag, and members.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt, Value};
use crate::users::User;
use crate::{Error, Result};

/// The fields an administrator sets on a group (parents and members are set separately).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFields {
    /// Unique name.
    pub name: String,
    /// Members (and members of descendants) are superusers.
    pub is_superuser: bool,
    /// Free-form attributes (JSON object).
    pub attributes: serde_json::Value,
}

/// A stored group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Integer key (the API's `num_pk`).
    pub id: i64,
    /// UUID (the API's `pk`).
    pub uuid: Uuid,
    /// Administrator-set fields.
    pub fields: GroupFields,
}

impl Entity for Group {
    const WHAT: &'static str = "group";
    const SELECT: &'static str = "SELECT * FROM groups";
    const KEY: &'static str = "id";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Group {
            id: row.int("id")?,
            uuid: row.uuid("uuid")?,
            fields: GroupFields {
                name: row.text("name")?,
                is_superuser: row.flag("is_superuser")?,
                attributes: row.json("attributes")?,
            },
        })
    }
}

fn columns(f: &GroupFields) -> Vec<(&'static str, Value)> {
    vec![
        ("name", f.name.clone().into()),
        ("is_superuser", f.is_superuser.into()),
        ("attributes", (&f.attributes).into()),
        ("last_updated", sql::now().into()),
    ]
}

/// Creates a group without parents or members.
pub async fn create(conn: &mut AnyConnection, fields: &GroupFields) -> Result<Group> {
    let mut cols = columns(fields);
    cols.push(("uuid", Uuid::new_v4().into()));
    let id = sql::insert(conn, "groups", cols, Some("id")).await?;
    sql::get(conn, id).await
}

/// Replaces the fields of group `id`.
pub async fn update(conn: &mut AnyConnection, id: i64, fields: &GroupFields) -> Result<Group> {
    crate::changes::append(conn, crate::changes::ChangeKind::All).await?;
    sql::update(
        conn,
        "groups",
        Group::WHAT,
        "id",
        id.into(),
        columns(fields),
    )
    .await?;
    sql::get(conn, id).await
}

/// Deletes group `id`; its children lose it as a parent.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::All).await?;
    sql::delete(conn, "groups", Group::WHAT, "id", id.into()).await
}

/// The group with UUID `uuid`.
pub async fn get_by_uuid(conn: &mut AnyConnection, uuid: Uuid) -> Result<Group> {
    sql::find(conn, "uuid", uuid.into())
        .await?
        .ok_or(Error::NotFound { what: Group::WHAT })
}

/// The group named `name`, if any.
pub async fn find_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Group>> {
    sql::find(conn, "name", name.into()).await
}

/// The direct parents of group `id`, by name.
pub async fn parents(conn: &mut AnyConnection, id: i64) -> Result<Vec<Group>> {
    sql::select(
        conn,
        "WHERE id IN (SELECT parent_id FROM group_parents WHERE group_id = $1)",
        vec![id.into()],
        "name",
    )
    .await
}

/// The direct children of group `id`, by name.
pub async fn children(conn: &mut AnyConnection, id: i64) -> Result<Vec<Group>> {
    sql::select(
        conn,
        "WHERE id IN (SELECT group_id FROM group_parents WHERE parent_id = $1)",
        vec![id.into()],
        "name",
    )
    .await
}

/// Group `id` and all its ancestors' ids (for cycle checks and policy checks).
pub async fn ancestor_ids(conn: &mut AnyConnection, id: i64) -> Result<Vec<i64>> {
    let sql = "WITH RECURSIVE ancestry(id) AS (
            SELECT CAST($1 AS BIGINT)
            UNION SELECT gp.parent_id FROM group_parents gp JOIN ancestry a ON gp.group_id = a.id
        ) SELECT id FROM ancestry";
    sql::fetch_all(conn, sql, vec![id.into()])
        .await?
        .iter()
        .map(|r| r.int("id"))
        .collect()
}

/// Replaces the parents of group `id`. Refuses a parent that would close a cycle, naming it.
pub async fn set_parents(conn: &mut AnyConnection, id: i64, parent_ids: &[i64]) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::All).await?;
    sql::execute(
        conn,
        "DELETE FROM group_parents WHERE group_id = $1",
        vec![id.into()],
    )
    .await?;
    for &parent in parent_ids {
        if ancestor_ids(conn, parent).await?.contains(&id) {
            let name = sql::get::<Group>(conn, parent).await?.fields.name;
            return Err(Error::Invalid {
                field: "parents".into(),
                message: format!("making `{name}` a parent would create a cycle: it already descends from this group."),
            });
        }
        sql::insert(
            conn,
            "group_parents",
            vec![("group_id", id.into()), ("parent_id", parent.into())],
            None,
        )
        .await?;
    }
    Ok(())
}

/// The users directly in group `id`, by username.
pub async fn members(conn: &mut AnyConnection, id: i64) -> Result<Vec<User>> {
    sql::select(
        conn,
        "WHERE id IN (SELECT user_id FROM group_members WHERE group_id = $1)",
        vec![id.into()],
        "username",
    )
    .await
}

/// The groups user `user_id` is directly in, by name.
pub async fn of_user(conn: &mut AnyConnection, user_id: i64) -> Result<Vec<Group>> {
    sql::select(
        conn,
        "WHERE id IN (SELECT group_id FROM group_members WHERE user_id = $1)",
        vec![user_id.into()],
        "name",
    )
    .await
}

/// Adds user `user_id` to group `id` (no-op when already a member).
pub async fn add_member(conn: &mut AnyConnection, id: i64, user_id: i64) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::User(user_id)).await?;
    insert_member(conn, id, user_id).await
}

/// The membership row alone; callers append the change.
async fn insert_member(conn: &mut AnyConnection, id: i64, user_id: i64) -> Result<()> {
    sql::execute(
        conn,
        "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        vec![id.into(), user_id.into()],
    )
    .await?;
    Ok(())
}

/// Removes user `user_id` from group `id` (no-op when not a member).
pub async fn remove_member(conn: &mut AnyConnection, id: i64, user_id: i64) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::User(user_id)).await?;
    sql::execute(
        conn,
        "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2",
        vec![id.into(), user_id.into()],
    )
    .await?;
    Ok(())
}

/// Replaces the members of group `id`.
pub async fn set_members(conn: &mut AnyConnection, id: i64, user_ids: &[i64]) -> Result<()> {
    crate::changes::append_members(conn, id, user_ids).await?;
    sql::execute(
        conn,
        "DELETE FROM group_members WHERE group_id = $1",
        vec![id.into()],
    )
    .await?;
    for &user in user_ids {
        insert_member(conn, id, user).await?;
    }
    Ok(())
}

/// Replaces the groups user `user_id` is directly in.
pub async fn set_user_groups(
    conn: &mut AnyConnection,
    user_id: i64,
    group_ids: &[i64],
) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::User(user_id)).await?;
    sql::execute(
        conn,
        "DELETE FROM group_members WHERE user_id = $1",
        vec![user_id.into()],
    )
    .await?;
    for &group in group_ids {
        insert_member(conn, group, user_id).await?;
    }
    Ok(())
}

/// The groups user `user_id` is in directly or through a child group: membership of a child
/// implies its ancestors for policy checks.
pub async fn effective_of_user(conn: &mut AnyConnection, user_id: i64) -> Result<Vec<Group>> {
    sql::select(
        conn,
        "WHERE id IN (WITH RECURSIVE ancestry(id) AS (
            SELECT group_id FROM group_members WHERE user_id = $1
            UNION SELECT gp.parent_id FROM group_parents gp JOIN ancestry a ON gp.group_id = a.id
        ) SELECT id FROM ancestry)",
        vec![user_id.into()],
        "name",
    )
    .await
}
