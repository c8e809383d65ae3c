//! The CRUD shape every resource shares — list, read, create, replace, patch, delete — written
//! once over the [`Resource`] trait. A resource module says how to find, render, validate and
//! write its objects; this module turns that into handlers, transactions, audit events and
//! documented routes.

use std::fmt::Display;
use std::future::Future;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::Json;
use gatehouse_proto::page::Paginated;
use gatehouse_store::{ListSpec, Listed};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use super::users::audit;
use super::{page, Api, Reply};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, ListQuery, ListRules, Path};
use crate::{AppState, Settings};
use gatehouse_store::{Conn, SecretKey};

/// One kind of object served under `/api/v3/<path>/`.
pub(crate) trait Resource: Sized + Send + Sync + 'static {
    /// Model name in audit events, e.g. `user`.
    const MODEL: &'static str;
    /// What list queries may filter and order by.
    const RULES: ListRules;
    /// The path segment that names one object (pk, uuid or slug).
    type Key: DeserializeOwned + Display + Send + Sync + 'static;
    /// The wire type of responses.
    type Wire: Serialize + ToSchema + Send + 'static;
    /// The wire type of create/replace/patch bodies.
    type Request: DeserializeOwned + ToSchema + Send + Sync + 'static;

    /// The stored object named by `key`. `sealing` opens secret columns (the store's key).
    fn find(
        conn: &mut Conn,
        sealing: &SecretKey,
        key: &Self::Key,
    ) -> impl Future<Output = ApiResult<Self>> + Send;
    /// One page of stored objects.
    fn list(
        conn: &mut Conn,
        sealing: &SecretKey,
        spec: &ListSpec,
    ) -> impl Future<Output = ApiResult<Listed<Self>>> + Send;
    /// The wire form of a stored object (`settings` gives the external URL for links).
    fn render(
        &self,
        conn: &mut Conn,
        sealing: &SecretKey,
        settings: &Settings,
    ) -> impl Future<Output = ApiResult<Self::Wire>> + Send;
    /// Validates `req` and writes it: a new object when `current` is `None`, else an update
    /// (`full` for PUT, where required fields must be present). Resources registered with
    /// [`Operations::ReadOnly`] or [`Operations::ReadDelete`] have no write route and keep this
    /// default.
    fn write(
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        _current: Option<Self>,
        _req: Self::Request,
        _full: bool,
    ) -> impl Future<Output = ApiResult<Self>> + Send {
        async {
            Err(ApiError::Internal(format!(
                "{} has no write route",
                Self::MODEL
            )))
        }
    }
    /// Deletes the object.
    fn delete(self, conn: &mut Conn, admin: &Admin) -> impl Future<Output = ApiResult<()>> + Send;
    /// `(pk, name)` for audit events.
    fn label(&self) -> (String, String);
}

async fn list<R: Resource>(
    State(state): State<AppState>,
    _admin: Admin,
    query: ListQuery,
) -> ApiResult<Json<Paginated<R::Wire>>> {
    let spec = query.spec(&R::RULES)?;
    let mut conn = state.store.conn().await?;
    let listed = R::list(&mut conn, state.store.key(), &spec).await?;
    let mut results = Vec::with_capacity(listed.items.len());
    for item in &listed.items {
        results.push(
            item.render(&mut conn, state.store.key(), &state.settings)
                .await?,
        );
    }
    Ok(Json(page(&spec, &listed, results)))
}

async fn read<R: Resource>(
    State(state): State<AppState>,
    _admin: Admin,
    Path(key): Path<R::Key>,
) -> ApiResult<Json<R::Wire>> {
    let mut conn = state.store.conn().await?;
    let item = R::find(&mut conn, state.store.key(), &key).await?;
    Ok(Json(
        item.render(&mut conn, state.store.key(), &state.settings)
            .await?,
    ))
}

async fn write<R: Resource>(
    state: &AppState,
    admin: &Admin,
    key: Option<R::Key>,
    req: R::Request,
    full: bool,
) -> ApiResult<R::Wire> {
    let mut tx = state.store.begin().await?;
    let current = match &key {
        Some(key) => Some(R::find(&mut tx, state.store.key(), key).await?),
        None => None,
    };
    let action = if current.is_some() {
        "model_updated"
    } else {
        "model_created"
    };
    let item = R::write(&mut tx, state.store.key(), admin, current, req, full).await?;
    let (pk, name) = item.label();
    audit(&mut tx, admin, action, R::MODEL, pk, &name).await?;
    let body = item
        .render(&mut tx, state.store.key(), &state.settings)
        .await?;
    gatehouse_store::commit(tx).await?;
    Ok(body)
}

async fn create<R: Resource>(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<R::Request>,
) -> ApiResult<(StatusCode, Json<R::Wire>)> {
    Ok((
        StatusCode::CREATED,
        Json(write::<R>(&state, &admin, None, req, true).await?),
    ))
}

async fn replace<R: Resource>(
    State(state): State<AppState>,
    admin: Admin,
    Path(key): Path<R::Key>,
    JsonBody(req): JsonBody<R::Request>,
) -> ApiResult<Json<R::Wire>> {
    Ok(Json(
        write::<R>(&state, &admin, Some(key), req, true).await?,
    ))
}

async fn patch<R: Resource>(
    State(state): State<AppState>,
    admin: Admin,
    Path(key): Path<R::Key>,
    JsonBody(req): JsonBody<R::Request>,
) -> ApiResult<Json<R::Wire>> {
    Ok(Json(
        write::<R>(&state, &admin, Some(key), req, false).await?,
    ))
}

pub(crate) async fn remove<R: Resource>(
    State(state): State<AppState>,
    admin: Admin,
    Path(key): Path<R::Key>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let item = R::find(&mut tx, state.store.key(), &key).await?;
    let (pk, name) = item.label();
    item.delete(&mut tx, &admin).await?;
    audit(&mut tx, &admin, "model_deleted", R::MODEL, pk, &name).await?;
    gatehouse_store::commit(tx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One page of a per-kind resource over a table every kind shares (stages, policies): `spec`
/// narrowed to the rows whose `kind` column is `kind`, each wrapped by `wrap`.
pub(crate) async fn list_of_kind<E: gatehouse_store::sql::Entity, T>(
    conn: &mut Conn,
    spec: &ListSpec,
    kind: &str,
    wrap: impl Fn(E) -> T,
) -> ApiResult<Listed<T>> {
    let mut spec = spec.clone();
    spec.filters
        .push(gatehouse_store::sql::Filter::Equals("kind", kind.into()));
    let listed = gatehouse_store::sql::list::<E>(conn, &spec).await?;
    Ok(Listed {
        count: listed.count,
        items: listed.items.into_iter().map(wrap).collect(),
    })
}

/// The request body of resources without write routes: no value exists, so none is accepted.
#[derive(serde::Deserialize)]
pub(crate) enum NoRequest {}

impl utoipa::PartialSchema for NoRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new().into()
    }
}

impl ToSchema for NoRequest {}

/// Which operations a resource offers.
#[derive(Clone, Copy)]
pub(crate) enum Operations {
    /// All six.
    Crud,
    /// List, read, create, delete (no updates, e.g. tokens and invitations).
    CreateDelete,
    /// List and read.
    ReadOnly,
    /// List, read, delete (objects made elsewhere, e.g. `policies/all/`, reputation scores).
    ReadDelete,
}

impl Api {
    /// Registers the operations of `R` under `collection` (e.g. `/core/users/`) and
    /// `item` (e.g. `/core/users/{id}/`); `noun` names one object in summaries.
    pub(crate) fn resource<R: Resource>(
        mut self,
        collection: &'static str,
        item: &'static str,
        noun: &'static str,
        ops: Operations,
    ) -> Self {
        let wire = self.schema::<R::Wire>();
        let summary = |verb: &str| format!("{verb} {noun}");
        self = self
            .op(
                Method::GET,
                collection,
                summary("List every"),
                list::<R>,
                None,
                Reply::List(wire.clone()),
            )
            .op(
                Method::GET,
                item,
                summary("Read a"),
                read::<R>,
                None,
                Reply::Object(wire.clone()),
            );
        if matches!(ops, Operations::ReadOnly) {
            return self;
        }
        self = self.op(
            Method::DELETE,
            item,
            summary("Delete a"),
            remove::<R>,
            None,
            Reply::Empty,
        );
        if matches!(ops, Operations::ReadDelete) {
            return self;
        }
        let request = self.schema::<R::Request>();
        self = self.op(
            Method::POST,
            collection,
            summary("Create a"),
            create::<R>,
            Some(&request),
            Reply::Created(wire.clone()),
        );
        if matches!(ops, Operations::Crud) {
            self = self
                .op(
                    Method::PUT,
                    item,
                    summary("Replace a"),
                    replace::<R>,
                    Some(&request),
                    Reply::Object(wire.clone()),
                )
                .op(
                    Method::PATCH,
                    item,
                    summary("Change some fields of a"),
                    patch::<R>,
                    Some(&request),
                    Reply::Object(wire),
                );
        }
        self
    }
}
