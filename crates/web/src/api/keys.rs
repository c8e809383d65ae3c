//! `oauth2/signing_keys/` (a Gatehouse addition): list the OIDC signing keys and rotate one.
//! Rotation retires the active key of an algorithm and makes its successor; the retired key
//! stays in the JWKS for the longest token lifetime of any provider, so every token it signed
//! keeps verifying until it expires.

use axum::extract::State;
use axum::http::Method;
use axum::Json;
use chrono::Utc;
use gatehouse_proto::providers::{KeyRotationRequest, SigningKeyInfo, SigningKeys};
use gatehouse_store::{oauth, providers};

use super::{Api, Reply};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::AppState;

/// How long past the longest token lifetime a retired key stays published (clock skew).
const PUBLISHED_MARGIN_SECONDS: i64 = 300;

pub(super) fn routes(mut api: Api) -> Api {
    let keys = api.schema::<SigningKeys>();
    let key = api.schema::<SigningKeyInfo>();
    let request = api.schema::<KeyRotationRequest>();
    api.op(
        Method::GET,
        "/oauth2/signing_keys/",
        "List the OIDC signing keys, newest first",
        list,
        None,
        Reply::Object(keys),
    )
    .op(
        Method::POST,
        "/oauth2/signing_keys/rotate/",
        "Retire the active key of an algorithm and make its successor",
        rotate,
        Some(&request),
        Reply::Created(key),
    )
}

fn wire(k: oauth::SigningKey) -> ApiResult<SigningKeyInfo> {
    Ok(SigningKeyInfo {
        algorithm: k
            .algorithm
            .parse()
            .map_err(|e| ApiError::Internal(format!("signing key {}: {e}", k.kid)))?,
        kid: k.kid,
        created: k.created,
        retired: k.retired,
        published_until: k.published_until,
    })
}

async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<SigningKeys>> {
    let mut conn = state.store.conn().await?;
    let keys = oauth::all_keys(&mut conn, state.store.key()).await?;
    state.metrics.show_signing_keys(&keys);
    let keys = keys.into_iter().map(wire).collect::<ApiResult<_>>()?;
    Ok(Json(SigningKeys { keys }))
}

async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<KeyRotationRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<SigningKeyInfo>)> {
    let mut conn = state.store.conn().await?;
    let longest = providers::access_token_validities(&mut conn)
        .await?
        .iter()
        .filter_map(|v| v.parse::<gatehouse_core::Duration>().ok())
        .map(|d| d.seconds())
        .max()
        .unwrap_or(0);
    drop(conn);
    let until = Utc::now() + chrono::Duration::seconds(longest + PUBLISHED_MARGIN_SECONDS);
    let kid = state
        .keys
        .rotate(&state.store, req.algorithm, until)
        .await?;
    tracing::info!(kid = %kid, algorithm = %req.algorithm, by = %admin.user.fields.username, "rotated the signing key");
    let mut conn = state.store.conn().await?;
    let keys = oauth::all_keys(&mut conn, state.store.key()).await?;
    state.metrics.show_signing_keys(&keys);
    let key = keys
        .into_iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| ApiError::Internal("the new signing key vanished".into()))?;
    Ok((axum::http::StatusCode::CREATED, Json(wire(key)?)))
}
