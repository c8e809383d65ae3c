//! `flows/instances/{slug}/explain/`: evaluates a flow's bindings for a user (or an anonymous
//! visitor) and an address without running it, so an operator sees why a flow would deny (T4).

use axum::extract::State;
use axum::http::Method;
use axum::Json;
use gatehouse_flow::policy::{self, Context, Explained, Verdict};
use gatehouse_flow::RequestInfo;
use gatehouse_proto::flows::{ExplainedBinding, ExplainedStage, FlowExplanation};
use gatehouse_store::{flows, sql, users};

use super::{Api, Reply};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ListQuery, Path};
use crate::AppState;

pub(super) fn routes(mut api: Api) -> Api {
    let explanation = api.schema::<FlowExplanation>();
    api.op(
        Method::GET,
        "/flows/instances/{slug}/explain/",
        "Explain what a flow's policies decide for a user (query: user, ip)",
        explain,
        None,
        Reply::Object(explanation),
    )
}

fn wire(e: Explained) -> ExplainedBinding {
    ExplainedBinding {
        binding: e.binding,
        order: e.order,
        result: e.result,
        reason: e.reason,
    }
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Pass | Verdict::NotApplicable => "pass".into(),
        Verdict::Fail(m) => format!("fail: {m}"),
    }
}

async fn explain(
    State(state): State<AppState>,
    _admin: Admin,
    Path(slug): Path<String>,
    query: ListQuery,
) -> ApiResult<Json<FlowExplanation>> {
    let mut conn = state.store.conn().await?;
    let flow = flows::find_by_slug(&mut conn, &slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("flow with slug `{slug}`")))?;
    let user = match query.get("user").filter(|u| !u.is_empty()) {
        Some(name) => Some(
            users::find_by_username(&mut conn, name)
                .await?
                .ok_or_else(|| ApiError::field("user", format!("no user named `{name}`")))?,
        ),
        None => None,
    };
    let ip = query.get("ip").unwrap_or("127.0.0.1").to_owned();
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(ApiError::field(
            "ip",
            format!("`{ip}` is not an IP address"),
        ));
    }
    let req = RequestInfo {
        ip: ip.clone(),
        host: String::new(),
        path: format!("/if/flow/{slug}/"),
        method: "GET".into(),
        user_agent: String::new(),
    };
    let ctx = Context {
        user: user.as_ref(),
        identifier: user.as_ref().map(|u| u.fields.username.as_str()),
        request: &req,
        flow: Some(&slug),
        invitation: None,
    };
    let internal = |e: gatehouse_flow::Error| ApiError::Internal(e.to_string());
    let anonymous = Context {
        user: None,
        identifier: None,
        ..ctx
    };
    // Flow-level bindings run before anyone is identified.
    let (flow_verdict, flow_bindings) = policy::evaluate_target(
        &mut conn,
        flow.uuid,
        flow.fields.policy_engine_mode,
        anonymous,
    )
    .await
    .map_err(internal)?;
    let mut stages = Vec::new();
    for binding in flows::stage_bindings(&mut conn, flow.uuid).await? {
        let stage = sql::get::<flows::Stage>(&mut conn, binding.stage).await?;
        let (v, explained) =
            policy::evaluate_target(&mut conn, binding.uuid, binding.policy_engine_mode, ctx)
                .await
                .map_err(internal)?;
        stages.push(ExplainedStage {
            stage: stage.fields.name,
            kind: stage.fields.kind.to_string(),
            order: binding.order,
            result: match &v {
                Verdict::Fail(m) => format!("skipped: {m}"),
                _ => "shown".into(),
            },
            bindings: explained.into_iter().map(wire).collect(),
        });
    }
    Ok(Json(FlowExplanation {
        flow: slug,
        user: user.map(|u| u.fields.username).unwrap_or_default(),
        ip,
        result: verdict(&flow_verdict),
        bindings: flow_bindings.into_iter().map(wire).collect(),
        stages,
    }))
}
