//! One error type for every HTTP surface, rendered in the shapes clients expect: Django REST
//! Framework's for the API (`{"field": ["message"]}` or `{"detail", "code"}`), so scripts written
//! for Authentik read Gatehouse's errors unchanged.
//!
//! Internal failures are logged with their whole chain and answered with a generic message, never
//! with database details.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Invalid input: field name → messages. Status 400.
    #[error("invalid input: {0:?}")]
    Validation(BTreeMap<String, Vec<String>>),
    /// No credentials were sent. Status 401.
    #[error("authentication credentials were not provided")]
    NotAuthenticated,
    /// Credentials were sent but are wrong or expired. Status 401.
    #[error("authentication failed: {0}")]
    AuthenticationFailed(&'static str),
    /// The caller may not do this. Status 403.
    #[error("permission denied")]
    PermissionDenied,
    /// No such object. Status 404.
    #[error("{0} not found")]
    NotFound(String),
    /// The database is unreachable. Status 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else. Status 500; details only in the log.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A handler result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A validation error on one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Validation(BTreeMap::from([(field.into(), vec![message.into()])]))
    }

    /// "This field is required." on `field`.
    pub fn required(field: &str) -> ApiError {
        ApiError::field(field, "This field is required.")
    }
}

impl From<gatehouse_oidc::Error> for ApiError {
    fn from(e: gatehouse_oidc::Error) -> Self {
        match e {
            gatehouse_oidc::Error::Store(e) => e.into(),
            gatehouse_oidc::Error::Internal(message) => ApiError::Internal(message),
        }
    }
}

impl From<gatehouse_store::Error> for ApiError {
    fn from(e: gatehouse_store::Error) -> Self {
        use gatehouse_store::Error as E;
        match e {
            E::NotFound { what } => ApiError::NotFound(what.to_owned()),
            E::Conflict { field, message } | E::Invalid { field, message } => {
                ApiError::field(field, message)
            }
            e if e.is_unavailable() => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Validation(fields) => (StatusCode::BAD_REQUEST, json!(fields)),
            ApiError::NotAuthenticated => (
                StatusCode::UNAUTHORIZED,
                json!({"detail": "Authentication credentials were not provided. Send `Authorization: Bearer <token>`.", "code": "not_authenticated"}),
            ),
            ApiError::AuthenticationFailed(why) => (
                StatusCode::UNAUTHORIZED,
                json!({"detail": format!("Token invalid/expired: {why}."), "code": "authentication_failed"}),
            ),
            ApiError::PermissionDenied => (
                StatusCode::FORBIDDEN,
                json!({"detail": "You do not have permission to perform this action: it needs a superuser's token.", "code": "permission_denied"}),
            ),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                json!({"detail": format!("No {what} matches the given query."), "code": "not_found"}),
            ),
            ApiError::Unavailable(cause) => {
                tracing::error!(%cause, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"detail": "The database is unavailable; try again shortly.", "code": "unavailable"}),
                )
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"detail": "Internal server error; the server log has the details.", "code": "error"}),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
