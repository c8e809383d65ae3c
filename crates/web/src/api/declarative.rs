//! `declarative/plan/` and `declarative/apply/`: the server side of `gatehouse plan` and
//! `gatehouse apply`. Both run the same reconciliation in one transaction; plan rolls it back.

use axum::extract::State;
use axum::http::Method;
use axum::Json;
use gatehouse_declarative::document::Located;
use gatehouse_proto::declarative::{ConfigPlan, ConfigRequest};

use super::{Api, Reply};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::reconcile::{reconcile, Failure};
use crate::AppState;

pub(super) fn routes(mut api: Api) -> Api {
    let request = api.schema::<ConfigRequest>();
    let plan_schema = api.schema::<ConfigPlan>();
    api.op(
        Method::POST,
        "/declarative/plan/",
        "Show what applying a declarative config would change (nothing is written)",
        plan,
        Some(&request),
        Reply::Object(plan_schema.clone()),
    )
    .op(
        Method::POST,
        "/declarative/apply/",
        "Apply a declarative config in one transaction",
        apply,
        Some(&request),
        Reply::Object(plan_schema),
    )
}

async fn run(
    state: AppState,
    admin: Admin,
    req: ConfigRequest,
    write: bool,
) -> ApiResult<Json<ConfigPlan>> {
    let located = Located {
        source: if req.source.is_empty() {
            "config".into()
        } else {
            req.source.clone()
        },
        text: req.document,
    };
    let (doc, warnings) = gatehouse_declarative::parse(&located, &req.env)
        .map_err(|e| ApiError::field("document", e.to_string()))?;
    let mut tx = state.store.begin().await?;
    let outcome = match reconcile(
        &mut tx,
        state.store.key(),
        &admin,
        &located,
        &doc,
        req.prune,
        warnings,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(Failure::Document(e)) => return Err(ApiError::field("document", e.to_string())),
        Err(Failure::Server(e)) => return Err(e),
    };
    if write && !outcome.changes.is_empty() {
        super::users::audit(
            &mut tx,
            &admin,
            "model_updated",
            "declarative_config",
            located.source.clone(),
            &format!("{} change(s)", outcome.changes.len()),
        )
        .await?;
        gatehouse_store::commit(tx).await?;
        tracing::info!(source = %located.source, changes = outcome.changes.len(), "declarative config applied");
    } else {
        drop(tx);
    }
    Ok(Json(ConfigPlan {
        changes: outcome.changes,
        warnings: outcome.warnings,
        applied: write,
    }))
}

async fn plan(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<ConfigRequest>,
) -> ApiResult<Json<ConfigPlan>> {
    run(state, admin, req, false).await
}

async fn apply(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<ConfigRequest>,
) -> ApiResult<Json<ConfigPlan>> {
    run(state, admin, req, true).await
}
