//! Bearer-token authentication for the API: `Authorization: Bearer <key>` names an API token by
//! its hash; the token's user must be active, and superuser for admin endpoints ([`Admin`]);
//! endpoints about the caller's own things take any such user ([`Caller`]).
//! Standalone outposts call the outpost API with their own token ([`OutpostCaller`]).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use gatehouse_core::kinds::TokenIntent;
use gatehouse_store::outposts::{self, Outpost};
use gatehouse_store::tokens::{self, Token};
use gatehouse_store::users::{self, User};

use crate::error::ApiError;
use crate::AppState;

/// A superuser calling the API with a valid token.
pub struct Admin {
    /// The caller.
    pub user: User,
    /// The token used.
    pub token: Token,
    /// Gatehouse's own external URL: the rules of some resources are about it (a proxy
    /// provider must not claim it as the application's host).
    pub external_url: String,
}

/// The token in `Authorization: Bearer <key>`, if it is a valid, unexpired API token of an
/// active user, with that user.
async fn bearer(parts: &Parts, state: &AppState) -> Result<(Token, User), ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::NotAuthenticated)?;
    let key = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::AuthenticationFailed(
            "expected `Authorization: Bearer <token>`",
        ))?;
    let mut conn = state.store.conn().await?;
    let token = tokens::find_by_key(&mut conn, key)
        .await?
        .ok_or(ApiError::AuthenticationFailed("no such token"))?;
    if token.fields.intent != TokenIntent::Api {
        return Err(ApiError::AuthenticationFailed(
            "this token is not an API token",
        ));
    }
    if token.is_expired(chrono::Utc::now()) {
        return Err(ApiError::AuthenticationFailed("the token has expired"));
    }
    let user = users::get(&mut conn, token.fields.user).await?;
    if !user.fields.is_active {
        return Err(ApiError::AuthenticationFailed(
            "the token's user is deactivated",
        ));
    }
    Ok((token, user))
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, user) = bearer(parts, state).await?;
        let mut conn = state.store.conn().await?;
        if !users::is_superuser(&mut conn, user.id).await? {
            return Err(ApiError::PermissionDenied);
        }
        Ok(Admin {
            user,
            token,
            external_url: state.settings.external_url.clone(),
        })
    }
}

/// Any active user calling the API with a valid token, for endpoints about their own things
/// (their authenticator devices).
pub struct Caller {
    /// The caller.
    pub user: User,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (_, user) = bearer(parts, state).await?;
        Ok(Caller { user })
    }
}

/// The token identifier of outpost `uuid`'s API token, as Authentik names it.
pub fn outpost_token_identifier(uuid: uuid::Uuid) -> String {
    format!("ak-outpost-{uuid}-api")
}

/// A standalone outpost calling the outpost API with its own token (`gatehouse outpost token`).
/// The token grants nothing else: its user is a service account without superuser rights.
pub struct OutpostCaller {
    /// The calling outpost, with the providers assigned to it.
    pub outpost: Outpost,
}

impl FromRequestParts<AppState> for OutpostCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (token, _) = bearer(parts, state).await?;
        let uuid = token
            .fields
            .identifier
            .strip_prefix("ak-outpost-")
            .and_then(|rest| rest.strip_suffix("-api"))
            .and_then(|u| uuid::Uuid::parse_str(u).ok())
            .ok_or(ApiError::PermissionDenied)?;
        let mut conn = state.store.conn().await?;
        let outpost = match outposts::get(&mut conn, uuid).await {
            Ok(o) => o,
            Err(gatehouse_store::Error::NotFound { .. }) => {
                return Err(ApiError::AuthenticationFailed(
                    "the outpost of this token no longer exists",
                ))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(OutpostCaller {
            outpost: outposts::complete(&mut conn, outpost).await?,
        })
    }
}
