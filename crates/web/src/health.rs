//! Liveness and readiness: `/-/health/live/` answers while the process runs; `/-/health/ready/`
//! only once start-up finished, the OIDC signing keys are loaded (made, on first start) and the
//! database answers, so a load balancer never routes to a replica that cannot serve.

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
    let (status, body) = check(&state).await;
    state
        .metrics
        .database_ready
        .set(i64::from(status == StatusCode::OK));
    (status, body)
}

/// Whether start-up finished, the signing keys are ready and the database answers.
async fn check(state: &AppState) -> (StatusCode, Json<Value>) {
    let backend = state.store.backend().as_str();
    if !state.started.load(Ordering::Acquire) || !state.keys.is_prepared() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting", "database": backend})),
        );
    }
    // Which outpost this is and where its sessions live: `gatehouse doctor` reads them (T3).
    let names = state.metrics.outpost.names();
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(
                json!({"status": "ready", "database": backend, "mode": names.mode, "sessions": names.sessions}),
            ),
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
