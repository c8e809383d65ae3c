//! `core/groups/`: list, read, create, replace, patch, delete, `add_user`, `remove_user`.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use gatehouse_core::validate;
use gatehouse_proto::core::{Group, GroupRequest, PartialGroup, RelatedGroup};
use gatehouse_proto::UserAccountRequest;
use gatehouse_store::{groups, sql, users, Conn, ListSpec, Listed};
use serde_json::json;
use uuid::Uuid;

use super::resource::{Operations, Resource};
use super::users::audit;
use super::validate::{or, Errors};
use super::{must_be_empty, Api, Reply};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, JsonBody, ListRules, Path};
use crate::AppState;
use crate::Settings;
use gatehouse_store::SecretKey;

const RULES: ListRules = ListRules {
    filters: &[
        ("name", "name", FilterKind::Text),
        ("is_superuser", "is_superuser", FilterKind::Bool),
        ("pk", "uuid", FilterKind::Text),
    ],
    search: &["name"],
    ordering: &[("name", "name"), ("is_superuser", "is_superuser"), ("num_pk", "id")],
    default_order: "name",
    relations: &[(
        "members_by_username",
        "id",
        "SELECT gm.group_id FROM group_members gm JOIN users u ON u.id = gm.user_id WHERE u.username = $?",
    )],
};

pub(super) fn routes(mut api: Api) -> Api {
    let account = api.schema::<UserAccountRequest>();
    api.resource::<groups::Group>(
        "/core/groups/",
        "/core/groups/{uuid}/",
        "group",
        Operations::Crud,
    )
    .op(
        Method::POST,
        "/core/groups/{uuid}/add_user/",
        "Add a user to a group",
        add_user,
        Some(&account),
        Reply::Empty,
    )
    .op(
        Method::POST,
        "/core/groups/{uuid}/remove_user/",
        "Remove a user from a group",
        remove_user,
        Some(&account),
        Reply::Empty,
    )
}

/// A group as embedded in a user.
pub(crate) fn partial(g: &groups::Group) -> PartialGroup {
    PartialGroup {
        pk: g.uuid,
        num_pk: g.id,
        name: g.fields.name.clone(),
        is_superuser: g.fields.is_superuser,
        attributes: g.fields.attributes.clone(),
    }
}

fn related(g: &groups::Group) -> RelatedGroup {
    RelatedGroup {
        pk: g.uuid,
        name: g.fields.name.clone(),
        is_superuser: g.fields.is_superuser,
        attributes: g.fields.attributes.clone(),
        group_uuid: g.uuid,
    }
}

async fn render(conn: &mut Conn, g: &groups::Group) -> ApiResult<Group> {
    let parents = groups::parents(conn, g.id).await?;
    let children = groups::children(conn, g.id).await?;
    let members = groups::members(conn, g.id).await?;
    Ok(Group {
        pk: g.uuid,
        num_pk: g.id,
        name: g.fields.name.clone(),
        is_superuser: g.fields.is_superuser,
        parents: parents.iter().map(|p| p.uuid).collect(),
        parents_obj: parents.iter().map(related).collect(),
        users: members.iter().map(|u| u.id).collect(),
        users_obj: members.iter().map(super::users::partial).collect(),
        attributes: g.fields.attributes.clone(),
        roles: Vec::new(),
        roles_obj: Vec::new(),
        inherited_roles_obj: Vec::new(),
        children: children.iter().map(|c| c.uuid).collect(),
        children_obj: children.iter().map(related).collect(),
    })
}

fn fields(
    current: Option<&groups::GroupFields>,
    req: &GroupRequest,
    full: bool,
) -> ApiResult<groups::GroupFields> {
    let mut errors = Errors::default();
    if full {
        errors.require("name", req.name.as_ref());
    }
    let defaults = groups::GroupFields {
        name: String::new(),
        is_superuser: false,
        attributes: json!({}),
    };
    let base = current.unwrap_or(&defaults);
    let merged = groups::GroupFields {
        name: or(&req.name, &base.name),
        is_superuser: or(&req.is_superuser, &base.is_superuser),
        attributes: req
            .attributes
            .clone()
            .map(serde_json::Value::Object)
            .unwrap_or_else(|| base.attributes.clone()),
    };
    if req.name.is_some() {
        errors.check("name", validate::name(&merged.name));
    }
    errors.check("roles", must_be_empty(&req.roles, "roles"));
    errors.finish()?;
    Ok(merged)
}

/// Applies the relation fields of a request (parents, members) to group `id`.
async fn relations(conn: &mut Conn, id: i64, req: &GroupRequest) -> ApiResult<()> {
    if let Some(parents) = &req.parents {
        let mut ids = Vec::with_capacity(parents.len());
        for uuid in parents {
            match groups::get_by_uuid(conn, *uuid).await {
                Ok(p) => ids.push(p.id),
                Err(gatehouse_store::Error::NotFound { .. }) => {
                    return Err(ApiError::field(
                        "parents",
                        format!("Invalid pk \"{uuid}\" - object does not exist."),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        if ids.contains(&id) {
            return Err(ApiError::field(
                "parents",
                "A group cannot be its own parent.",
            ));
        }
        groups::set_parents(conn, id, &ids).await?;
    }
    if let Some(members) = &req.users {
        for &user in members {
            if let Err(gatehouse_store::Error::NotFound { .. }) = users::get(conn, user).await {
                return Err(ApiError::field(
                    "users",
                    format!("Invalid pk \"{user}\" - object does not exist."),
                ));
            }
        }
        groups::set_members(conn, id, members).await?;
    }
    Ok(())
}

impl Resource for groups::Group {
    const MODEL: &'static str = "group";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = Group;
    type Request = GroupRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        Ok(groups::get_by_uuid(conn, *key).await?)
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        Ok(sql::list(conn, spec).await?)
    }

    async fn render(
        &self,
        conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<Group> {
        render(conn, self).await
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: GroupRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let fields = fields(current.as_ref().map(|c| &c.fields), &req, full)?;
        let group = match current {
            Some(c) => groups::update(conn, c.id, &fields).await?,
            None => groups::create(conn, &fields).await?,
        };
        relations(conn, group.id, &req).await?;
        Ok(group)
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(groups::delete(conn, self.id).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.name.clone())
    }
}

async fn membership(
    state: AppState,
    admin: Admin,
    uuid: Uuid,
    user: i64,
    add: bool,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let g = groups::get_by_uuid(&mut tx, uuid).await?;
    let u = match users::get(&mut tx, user).await {
        Err(gatehouse_store::Error::NotFound { .. }) => {
            return Err(ApiError::field(
                "pk",
                format!("Invalid pk \"{user}\" - object does not exist."),
            ))
        }
        other => other?,
    };
    if add {
        groups::add_member(&mut tx, g.id, u.id).await?;
    } else {
        groups::remove_member(&mut tx, g.id, u.id).await?;
    }
    let name = format!(
        "{} {} {}",
        u.fields.username,
        if add { "→" } else { "←" },
        g.fields.name
    );
    audit(
        &mut tx,
        &admin,
        "model_updated",
        "group",
        uuid.to_string(),
        &name,
    )
    .await?;
    gatehouse_store::commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(uuid): Path<Uuid>,
    JsonBody(req): JsonBody<UserAccountRequest>,
) -> ApiResult<StatusCode> {
    membership(state, admin, uuid, req.pk, true).await
}

async fn remove_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(uuid): Path<Uuid>,
    JsonBody(req): JsonBody<UserAccountRequest>,
) -> ApiResult<StatusCode> {
    membership(state, admin, uuid, req.pk, false).await
}
