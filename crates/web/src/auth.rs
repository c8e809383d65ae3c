//! Bearer-token authentication for the API: `Authorization: Bearer <key>` names an API token by
//! its hash; the token's user must be active, and superuser for admin endpoints.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use gatehouse_core::kinds::TokenIntent;
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
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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
        if !users::is_superuser(&mut conn, user.id).await? {
            return Err(ApiError::PermissionDenied);
        }
        Ok(Admin { user, token })
    }
}
