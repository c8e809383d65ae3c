//! `core/users/`: list, read, create, replace, patch, delete, `set_password`.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::Json;
use gatehouse_core::kinds::UserType;
use gatehouse_core::{secret, validate};
use gatehouse_proto::core::{PartialUser, SessionUser, User, UserRequest, UserSelf, UserSelfGroup};
use gatehouse_proto::{UserPasswordHashSetRequest, UserPasswordSetRequest};
use gatehouse_store::{groups, sql, users, Conn, ListSpec, Listed};
use serde_json::json;

pub(crate) use gatehouse_oidc::uid;

use super::resource::{Operations, Resource};
use super::validate::{or, Errors};
use super::{must_be_empty, Api, Reply};
use crate::auth::{Admin, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, JsonBody, ListRules, Path};
use crate::AppState;
use crate::Settings;
use gatehouse_store::SecretKey;

const RULES: ListRules = ListRules {
    filters: &[
        ("username", "username", FilterKind::Text),
        ("name", "name", FilterKind::Text),
        ("email", "email", FilterKind::Text),
        ("is_active", "is_active", FilterKind::Bool),
        ("type", "user_type", FilterKind::Text),
        ("uuid", "uuid", FilterKind::Text),
        ("path", "path", FilterKind::Text),
        ("pk", "id", FilterKind::Int),
    ],
    search: &["username", "name", "email"],
    ordering: &[
        ("pk", "id"),
        ("username", "username"),
        ("name", "name"),
        ("email", "email"),
        ("is_active", "is_active"),
        ("date_joined", "date_joined"),
        ("last_login", "last_login"),
        ("last_updated", "last_updated"),
        ("type", "user_type"),
    ],
    default_order: "username",
    relations: &[(
        "groups_by_name",
        "id",
        "SELECT gm.user_id FROM group_members gm JOIN groups g ON g.id = gm.group_id WHERE g.name = $?",
    )],
};

pub(super) fn routes(mut api: Api) -> Api {
    let password = api.schema::<UserPasswordSetRequest>();
    let password_hash = api.schema::<UserPasswordHashSetRequest>();
    let me_schema = api.schema::<SessionUser>();
    api.resource::<users::User>(
        "/core/users/",
        "/core/users/{id}/",
        "user",
        Operations::Crud,
    )
    .op(
        Method::GET,
        "/core/users/me/",
        "Read the calling user",
        me,
        None,
        Reply::Object(me_schema),
    )
    .op(
        Method::POST,
        "/core/users/{id}/set_password/",
        "Set a user's password",
        set_password,
        Some(&password),
        Reply::Empty,
    )
    .op(
        Method::POST,
        "/core/users/{id}/set_password_hash/",
        "Set a user's password from a hash carried over from another identity provider",
        set_password_hash,
        Some(&password_hash),
        Reply::Empty,
    )
}

/// `core/users/me/`: any active user's token tells who it belongs to.
async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<SessionUser>> {
    let mut conn = state.store.conn().await?;
    let user = &caller.user;
    let me = UserSelf {
        pk: user.id,
        username: user.fields.username.clone(),
        name: user.fields.name.clone(),
        is_active: user.fields.is_active,
        is_superuser: users::is_superuser(&mut conn, user.id).await?,
        is_current: false,
        groups: groups::of_user(&mut conn, user.id)
            .await?
            .into_iter()
            .map(|g| UserSelfGroup {
                name: g.fields.name,
                pk: g.uuid.to_string(),
            })
            .collect(),
        roles: Vec::new(),
        email: user.fields.email.clone(),
        avatar: String::new(),
        uid: uid(user),
        settings: serde_json::json!({}),
        user_type: user.fields.user_type,
        system_permissions: Vec::new(),
    };
    Ok(Json(SessionUser {
        user: me.clone(),
        original: None,
        users: vec![me],
    }))
}

/// A user as embedded in other objects.
pub(crate) fn partial(user: &users::User) -> PartialUser {
    PartialUser {
        pk: user.id,
        username: user.fields.username.clone(),
        name: user.fields.name.clone(),
        is_active: user.fields.is_active,
        last_login: user.last_login,
        email: user.fields.email.clone(),
        attributes: user.fields.attributes.clone(),
        uid: uid(user),
    }
}

/// A user with groups expanded.
pub(crate) async fn render(conn: &mut Conn, user: &users::User) -> ApiResult<User> {
    let direct = groups::of_user(conn, user.id).await?;
    Ok(User {
        pk: user.id,
        username: user.fields.username.clone(),
        name: user.fields.name.clone(),
        is_active: user.fields.is_active,
        last_login: user.last_login,
        date_joined: user.date_joined,
        is_superuser: users::is_superuser(conn, user.id).await?,
        groups: direct.iter().map(|g| g.uuid).collect(),
        groups_obj: direct.iter().map(super::groups::partial).collect(),
        roles: Vec::new(),
        roles_obj: Vec::new(),
        email: user.fields.email.clone(),
        avatar: String::new(),
        attributes: user.fields.attributes.clone(),
        uid: uid(user),
        path: user.fields.path.clone(),
        user_type: user.fields.user_type,
        uuid: user.uuid,
        password_change_date: user.password_change_date,
        last_updated: user.last_updated,
    })
}

/// Records an admin change in the audit log, in the same transaction as the change.
pub(crate) async fn audit(
    conn: &mut Conn,
    admin: &Admin,
    action: &str,
    model: &str,
    pk: String,
    name: &str,
) -> ApiResult<()> {
    gatehouse_store::events::record(
        conn,
        action,
        "gatehouse.api",
        json!({"pk": admin.user.id, "username": admin.user.fields.username, "email": admin.user.fields.email}),
        json!({"model": {"app": "gatehouse", "model_name": model, "pk": pk, "name": name}}),
        None,
    )
    .await?;
    Ok(())
}

/// Merges a request into current fields (or defaults), validating every field.
fn fields(
    current: Option<&users::UserFields>,
    req: &UserRequest,
    full: bool,
) -> ApiResult<users::UserFields> {
    let mut errors = Errors::default();
    let defaults = users::UserFields {
        username: String::new(),
        name: String::new(),
        email: String::new(),
        user_type: UserType::Internal,
        path: "users".into(),
        is_active: true,
        attributes: json!({}),
    };
    let base = current.unwrap_or(&defaults);
    if full {
        errors.require("username", req.username.as_ref());
        errors.require("name", req.name.as_ref());
    }
    let merged = users::UserFields {
        username: or(&req.username, &base.username),
        name: or(&req.name, &base.name),
        email: or(&req.email, &base.email),
        user_type: or(&req.user_type, &base.user_type),
        path: or(&req.path, &base.path),
        is_active: or(&req.is_active, &base.is_active),
        attributes: req
            .attributes
            .clone()
            .map(serde_json::Value::Object)
            .unwrap_or_else(|| base.attributes.clone()),
    };
    if req.username.is_some() {
        errors.check("username", validate::username(&merged.username));
    }
    errors.check("name", validate::text(&merged.name));
    errors.check("email", validate::email(&merged.email));
    errors.check("path", validate::name(&merged.path));
    errors.check("roles", must_be_empty(&req.roles, "roles"));
    errors.finish()?;
    Ok(merged)
}

async fn group_ids(conn: &mut Conn, uuids: &[uuid::Uuid]) -> ApiResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(uuids.len());
    for uuid in uuids {
        match groups::get_by_uuid(conn, *uuid).await {
            Ok(g) => ids.push(g.id),
            Err(gatehouse_store::Error::NotFound { .. }) => {
                return Err(ApiError::field(
                    "groups",
                    format!("Invalid pk \"{uuid}\" - object does not exist."),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ids)
}

impl Resource for users::User {
    const MODEL: &'static str = "user";
    const RULES: ListRules = RULES;
    type Key = i64;
    type Wire = User;
    type Request = UserRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &i64) -> ApiResult<Self> {
        Ok(users::get(conn, *key).await?)
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
    ) -> ApiResult<User> {
        render(conn, self).await
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: UserRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let fields = fields(current.as_ref().map(|c| &c.fields), &req, full)?;
        let user = match current {
            Some(c) => users::update(conn, c.id, &fields).await?,
            None => users::create(conn, &fields).await?,
        };
        if let Some(uuids) = &req.groups {
            let ids = group_ids(conn, uuids).await?;
            groups::set_user_groups(conn, user.id, &ids).await?;
        }
        if !user.fields.is_active {
            // A deactivated user is logged out everywhere at once.
            gatehouse_store::sessions::revoke_all(conn, user.id).await?;
        }
        Ok(user)
    }

    async fn delete(self, conn: &mut Conn, admin: &Admin) -> ApiResult<()> {
        if self.id == admin.user.id {
            return Err(ApiError::field(
                "non_field_errors",
                "You cannot delete the account you are calling with.",
            ));
        }
        Ok(users::delete(conn, self.id).await?)
    }

    fn label(&self) -> (String, String) {
        (self.id.to_string(), self.fields.username.clone())
    }
}

/// Longest accepted password: argon2 hashes anything, but megabyte passwords are a DoS vector.
const MAX_PASSWORD: usize = 1024;

async fn set_password(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<UserPasswordSetRequest>,
) -> ApiResult<StatusCode> {
    if req.password.is_empty() {
        return Err(ApiError::field("password", "This field may not be blank."));
    }
    if req.password.len() > MAX_PASSWORD {
        return Err(ApiError::field(
            "password",
            format!("Ensure this field has no more than {MAX_PASSWORD} characters."),
        ));
    }
    let hash = hash_password(req.password).await?;
    store_password_hash(&state, &admin, id, &hash).await
}

/// Sets a user's password from an encoded hash (Authentik's `set_password_hash`): how people
/// moved over keep their passwords. The hash is verified at the next login and replaced by
/// Gatehouse's argon2id then.
async fn set_password_hash(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<UserPasswordHashSetRequest>,
) -> ApiResult<StatusCode> {
    if req.password.len() > MAX_PASSWORD {
        return Err(ApiError::field(
            "password",
            format!("Ensure this field has no more than {MAX_PASSWORD} characters."),
        ));
    }
    secret::check_importable_hash(&req.password)
        .map_err(|e| ApiError::field("password", e.to_string()))?;
    store_password_hash(&state, &admin, id, &req.password).await
}

async fn store_password_hash(
    state: &AppState,
    admin: &Admin,
    id: i64,
    hash: &str,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let user = users::get(&mut tx, id).await?;
    users::set_password_hash(&mut tx, id, Some(hash)).await?;
    audit(
        &mut tx,
        admin,
        "password_set",
        "user",
        id.to_string(),
        &user.fields.username,
    )
    .await?;
    gatehouse_store::commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hashes off the async runtime: argon2 takes tens of milliseconds of CPU.
pub(crate) async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}
