//! `authenticators/`: passkeys (`webauthn/`) and authenticator apps (`totp/`) in Authentik's
//! shapes, the caller's own under `authenticators/<kind>/` and everyone's for administrators
//! under `authenticators/admin/<kind>/`; `all/` and `admin/all/?user=` list both kinds at once.
//! Devices can be listed, read, renamed and deleted here, never created (adding one is a
//! ceremony on the user page) and never shown with their secret or public key.
//!
//! The caller's own list and delete take an API token, not a browser session, so they need no
//! step-up (a stolen cookie does not reach the API); deleting one's own last way to sign in is
//! refused as on the user page. Administrators may delete any device (a lost passkey).
//!
//! One set of handlers serves both kinds ([`Kind`]) and both audiences ([`Scope`]).

use axum::extract::{FromRequestParts, State};
use axum::http::{Method, StatusCode};
use axum::Json;
use gatehouse_proto::authenticators::{Device, DeviceRequest, TotpDevice, WebAuthnDevice};
use gatehouse_proto::page::Paginated;
use gatehouse_store::devices::{self, DeviceKind};
use gatehouse_store::users::{self, User};
use gatehouse_store::{Conn, Filter, ListSpec, Listed, Value};
use serde::Serialize;
use utoipa::ToSchema;

use super::{page, Api, Reply};
use crate::auth::{Admin, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, JsonBody, ListQuery, ListRules, Path};
use crate::AppState;

const RULES: ListRules = ListRules {
    filters: &[("name", "name", FilterKind::Text)],
    search: &["name"],
    ordering: &[("name", "name"), ("created", "created"), ("pk", "id")],
    default_order: "created",
    relations: &[],
};

/// One kind of device as the API shows it.
trait Kind: Send + Sync + 'static {
    /// Which kind.
    const KIND: DeviceKind;
    /// The wire type.
    type Wire: Serialize + ToSchema + Send + 'static;
    /// The wire form of `device`, owned by `owner`.
    fn render(device: &devices::Device, owner: &User) -> Self::Wire;
}

/// Authenticator apps (`totp/`).
struct Totp;
/// Passkeys (`webauthn/`).
struct Webauthn;

impl Kind for Totp {
    const KIND: DeviceKind = DeviceKind::Totp;
    type Wire = TotpDevice;
    fn render(device: &devices::Device, owner: &User) -> TotpDevice {
        TotpDevice {
            name: device.name.clone(),
            pk: device.id,
            user: super::users::partial(owner),
        }
    }
}

impl Kind for Webauthn {
    const KIND: DeviceKind = DeviceKind::Passkey;
    type Wire = WebAuthnDevice;
    fn render(device: &devices::Device, owner: &User) -> WebAuthnDevice {
        WebAuthnDevice {
            pk: device.id,
            name: device.name.clone(),
            created_on: device.created,
            device_type: None,
            aaguid: uuid::Uuid::nil().to_string(),
            user: super::users::partial(owner),
        }
    }
}

/// Who is asking: the owner of the devices, or an administrator for anyone's.
trait Scope: FromRequestParts<AppState, Rejection = ApiError> + Send + Sync + 'static {
    /// The caller.
    fn actor(&self) -> &User;
    /// Whose devices this scope sees: the caller's own, or (`None`) everyone's.
    fn owner(&self) -> Option<i64>;
}

impl Scope for Caller {
    fn actor(&self) -> &User {
        &self.user
    }
    fn owner(&self) -> Option<i64> {
        Some(self.user.id)
    }
}

impl Scope for Admin {
    fn actor(&self) -> &User {
        &self.user
    }
    fn owner(&self) -> Option<i64> {
        None
    }
}

/// `device` as `all/` shows it.
fn summary(device: &devices::Device) -> Device {
    let (app, model, verbose) = match device.kind {
        DeviceKind::Totp => (
            "authentik_stages_authenticator_totp",
            "TOTPDevice",
            "TOTP Device",
        ),
        DeviceKind::Passkey => (
            "authentik_stages_authenticator_webauthn",
            "WebAuthnDevice",
            "WebAuthn Device",
        ),
    };
    Device {
        verbose_name: verbose.into(),
        verbose_name_plural: format!("{verbose}s"),
        meta_model_name: format!("{app}.{}", model.to_lowercase()),
        pk: device.id.to_string(),
        name: device.name.clone(),
        kind: format!("{app}.{model}"),
        confirmed: true,
        created: device.created,
        last_updated: device.created,
        last_used: device.last_used,
        extra_description: None,
        external_id: None,
    }
}

/// Keeps the devices `spec` asks for (name filter, search, ordering) and cuts out its page.
fn select(mut found: Vec<devices::Device>, spec: &ListSpec) -> Listed<devices::Device> {
    for filter in &spec.filters {
        match filter {
            Filter::Equals(_, Value::Text(name)) => found.retain(|d| &d.name == name),
            Filter::Search(_, term) => {
                let term = term.to_lowercase();
                found.retain(|d| d.name.to_lowercase().contains(&term));
            }
            _ => {}
        }
    }
    for (column, desc) in spec.ordering.iter().rev() {
        found.sort_by(|a, b| {
            let order = match *column {
                "name" => a.name.cmp(&b.name),
                "id" => a.id.cmp(&b.id),
                _ => a.created.cmp(&b.created),
            };
            if *desc {
                order.reverse()
            } else {
                order
            }
        });
    }
    let count = i64::try_from(found.len()).unwrap_or(i64::MAX);
    let skip =
        usize::try_from((spec.page - 1).saturating_mul(spec.page_size)).unwrap_or(usize::MAX);
    let take = usize::try_from(spec.page_size).unwrap_or(usize::MAX);
    Listed {
        count,
        items: found.into_iter().skip(skip).take(take).collect(),
    }
}

/// The device of kind `K` numbered `id` that `scope` may see, else 404.
async fn find<K: Kind>(conn: &mut Conn, scope: &impl Scope, id: i64) -> ApiResult<devices::Device> {
    devices::device(conn, K::KIND, id)
        .await?
        .filter(|d| scope.owner().is_none_or(|owner| owner == d.user))
        .ok_or_else(|| ApiError::NotFound(format!("{} {id}", K::KIND.model_name())))
}

async fn render<K: Kind>(conn: &mut Conn, device: &devices::Device) -> ApiResult<K::Wire> {
    let owner = users::get(conn, device.user).await?;
    Ok(K::render(device, &owner))
}

async fn list<K: Kind, S: Scope>(
    State(state): State<AppState>,
    scope: S,
    query: ListQuery,
) -> ApiResult<Json<Paginated<K::Wire>>> {
    let spec = query.spec(&RULES)?;
    let mut conn = state.store.conn().await?;
    let listed = select(
        devices::devices(&mut conn, K::KIND, scope.owner()).await?,
        &spec,
    );
    let mut results = Vec::with_capacity(listed.items.len());
    for device in &listed.items {
        results.push(render::<K>(&mut conn, device).await?);
    }
    Ok(Json(page(&spec, &listed, results)))
}

async fn read<K: Kind, S: Scope>(
    State(state): State<AppState>,
    scope: S,
    Path(id): Path<i64>,
) -> ApiResult<Json<K::Wire>> {
    let mut conn = state.store.conn().await?;
    let device = find::<K>(&mut conn, &scope, id).await?;
    Ok(Json(render::<K>(&mut conn, &device).await?))
}

/// A device label: trimmed, 1 to 64 characters, no control characters.
fn label(name: Option<String>, required: bool) -> ApiResult<Option<String>> {
    let Some(name) = name else {
        return if required {
            Err(ApiError::required("name"))
        } else {
            Ok(None)
        };
    };
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "Give 1 to 64 characters without control characters.",
        ));
    }
    Ok(Some(name))
}

async fn rename<K: Kind>(
    state: &AppState,
    scope: &impl Scope,
    id: i64,
    req: DeviceRequest,
    full: bool,
) -> ApiResult<K::Wire> {
    let name = label(req.name, full)?;
    let mut tx = state.store.begin().await?;
    let mut device = find::<K>(&mut tx, scope, id).await?;
    if let Some(name) = name {
        devices::rename(&mut tx, K::KIND, id, &name).await?;
        device.name = name;
        devices::audit(
            &mut tx,
            "model_updated",
            "gatehouse.api",
            scope.actor(),
            &device,
            None,
        )
        .await?;
    }
    let body = render::<K>(&mut tx, &device).await?;
    gatehouse_store::commit(tx).await?;
    Ok(body)
}

async fn replace<K: Kind, S: Scope>(
    State(state): State<AppState>,
    scope: S,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ApiResult<Json<K::Wire>> {
    Ok(Json(rename::<K>(&state, &scope, id, req, true).await?))
}

async fn patch<K: Kind, S: Scope>(
    State(state): State<AppState>,
    scope: S,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<DeviceRequest>,
) -> ApiResult<Json<K::Wire>> {
    Ok(Json(rename::<K>(&state, &scope, id, req, false).await?))
}

async fn remove<K: Kind, S: Scope>(
    State(state): State<AppState>,
    scope: S,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let device = find::<K>(&mut tx, &scope, id).await?;
    if scope.owner().is_some() && devices::is_last_way_in(&mut tx, scope.actor(), &device).await? {
        return Err(ApiError::field(
            "non_field_errors",
            "This passkey is your only way to sign in; add another passkey, a password or a login source first.",
        ));
    }
    devices::remove(&mut tx, K::KIND, id).await?;
    devices::audit(
        &mut tx,
        "model_deleted",
        "gatehouse.api",
        scope.actor(),
        &device,
        None,
    )
    .await?;
    gatehouse_store::commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn all_own(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Device>>> {
    let mut conn = state.store.conn().await?;
    let found = devices::all_devices(&mut conn, Some(caller.user.id)).await?;
    Ok(Json(found.iter().map(summary).collect()))
}

async fn all_admin(
    State(state): State<AppState>,
    _admin: Admin,
    query: ListQuery,
) -> ApiResult<Json<Vec<Device>>> {
    let user = match query.get("user").filter(|u| !u.is_empty()) {
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            ApiError::field("user", format!("`{raw}` is not a user's integer id."))
        })?),
        None => None,
    };
    let mut conn = state.store.conn().await?;
    let found = devices::all_devices(&mut conn, user).await?;
    Ok(Json(found.iter().map(summary).collect()))
}

impl Api {
    /// Registers list, read, replace, patch and delete of kind `K` for scope `S` under
    /// `collection` and `item`.
    fn devices<K: Kind, S: Scope>(
        mut self,
        collection: &'static str,
        item: &'static str,
        noun: &str,
    ) -> Self {
        let wire = self.schema::<K::Wire>();
        let request = self.schema::<DeviceRequest>();
        self.op(
            Method::GET,
            collection,
            format!("List {noun}s"),
            list::<K, S>,
            None,
            Reply::List(wire.clone()),
        )
        .op(
            Method::GET,
            item,
            format!("Read a {noun}"),
            read::<K, S>,
            None,
            Reply::Object(wire.clone()),
        )
        .op(
            Method::PUT,
            item,
            format!("Rename a {noun}"),
            replace::<K, S>,
            Some(&request),
            Reply::Object(wire.clone()),
        )
        .op(
            Method::PATCH,
            item,
            format!("Rename a {noun}"),
            patch::<K, S>,
            Some(&request),
            Reply::Object(wire),
        )
        .op(
            Method::DELETE,
            item,
            format!("Delete a {noun}"),
            remove::<K, S>,
            None,
            Reply::Empty,
        )
    }
}

pub(super) fn routes(mut api: Api) -> Api {
    let device = api.schema::<Device>();
    api.op(
        Method::GET,
        "/authenticators/all/",
        "List the caller's passkeys and authenticator apps",
        all_own,
        None,
        Reply::Array(device.clone()),
    )
    .op(
        Method::GET,
        "/authenticators/admin/all/",
        "List everyone's (or `?user=`'s) passkeys and authenticator apps",
        all_admin,
        None,
        Reply::Array(device),
    )
    .devices::<Webauthn, Caller>(
        "/authenticators/webauthn/",
        "/authenticators/webauthn/{id}/",
        "passkey of the caller",
    )
    .devices::<Totp, Caller>(
        "/authenticators/totp/",
        "/authenticators/totp/{id}/",
        "authenticator app of the caller",
    )
    .devices::<Webauthn, Admin>(
        "/authenticators/admin/webauthn/",
        "/authenticators/admin/webauthn/{id}/",
        "passkey",
    )
    .devices::<Totp, Admin>(
        "/authenticators/admin/totp/",
        "/authenticators/admin/totp/{id}/",
        "authenticator app",
    )
}
