//! Liveness and readiness: `/-/health/live/` answers while the process runs; `/-/health/ready/`
//! only once start-up finished and the database answers, so a load balancer never routes to a
//! replica that cannot serve.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

/// The health routes, with and without the trailing slash.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/-/health/live/", get(live))
        .route("/-/health/live", get(live))
        .route("/-/health/ready/", get(ready))
        .route("/-/health/ready", get(ready))
}

async fn live() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let backend = state.store.backend().as_str();
    if !state.started.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting", "database": backend})),
        );
    }
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": backend})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "database unavailable", "database": backend})),
            )
        }
    }
}
