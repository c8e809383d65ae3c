//! The outpost API, called by standalone outposts with their own token (Gatehouse additions
//! beside Authentik's `outposts/proxy/`): the providers an outpost serves, the session checks
//! and login steps of [`crate::outpost::Sessions`], and a stream of change notices. Plus the
//! administrator's side: issuing an outpost's token.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::Method;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use gatehouse_core::kinds::{TokenIntent, UserType};
use gatehouse_core::secret;
use gatehouse_proto::outposts::{
    FeedChange, LoginBegin, LoginBegun, LoginComplete, LoginCompleted, OutpostHello, OutpostToken,
    ProxyOutpostConfig, SessionAnswer, SessionCheck, SignOut, SignedOut,
};
use gatehouse_proto::page::Paginated;
use gatehouse_store::tokens::{self, TokenFields};
use gatehouse_store::users::{self, UserFields};
use gatehouse_store::{outposts, Listed};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{Api, Reply};
use crate::auth::{outpost_token_identifier, Admin, OutpostCaller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, ListQuery, ListRules, Path};
use crate::outpost::{Scope, Sessions};
use crate::AppState;

/// Paging only: the list is the outpost's providers, in id order.
const RULES: ListRules = ListRules {
    filters: &[],
    search: &[],
    ordering: &[("pk", "pk")],
    default_order: "pk",
    relations: &[],
};

/// How often an idle event stream carries a keep-alive comment (outposts give up on a stream
/// silent for 45 s).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn routes(mut api: Api) -> Api {
    let config = api.schema::<ProxyOutpostConfig>();
    let check = api.schema::<SessionCheck>();
    let answer = api.schema::<SessionAnswer>();
    let begin = api.schema::<LoginBegin>();
    let begun = api.schema::<LoginBegun>();
    let complete = api.schema::<LoginComplete>();
    let completed = api.schema::<LoginCompleted>();
    let sign_out_request = api.schema::<SignOut>();
    let signed_out = api.schema::<SignedOut>();
    let hello = api.schema::<OutpostHello>();
    let token = api.schema::<OutpostToken>();
    api.op(
        Method::GET,
        "/outposts/proxy/",
        "The proxy providers the calling outpost serves (outpost token)",
        providers,
        None,
        Reply::List(config),
    )
    .op(
        Method::POST,
        "/outposts/proxy/sessions/check/",
        "Whether a session cookie or app password is valid for a provider (outpost token)",
        check_session,
        Some(&check),
        Reply::Object(answer),
    )
    .op(
        Method::POST,
        "/outposts/proxy/sessions/begin/",
        "Start a login: the pending cookie and the authorize URL, nothing stored (outpost token)",
        begin_login,
        Some(&begin),
        Reply::Object(begun),
    )
    .op(
        Method::POST,
        "/outposts/proxy/sessions/complete/",
        "Complete a login at the callback (outpost token)",
        complete_login,
        Some(&complete),
        Reply::Object(completed),
    )
    .op(
        Method::POST,
        "/outposts/proxy/sessions/sign_out/",
        "End every outpost session of the cookie's user (outpost token)",
        sign_out,
        Some(&sign_out_request),
        Reply::Object(signed_out),
    )
    .op(
        Method::GET,
        "/outposts/proxy/events/",
        "Server-sent events: `hello` (with the change feed position), then one `change` per entry of the change feed; `?since=N` resumes after N (outpost token)",
        events,
        None,
        Reply::Stream(hello),
    )
    .op(
        Method::POST,
        "/outposts/instances/{uuid}/token/",
        "Issue the outpost's API token (replacing any earlier one); the key is shown once",
        issue_token,
        None,
        Reply::Created(token),
    )
}

/// The session operations on behalf of the calling outpost, limited to its providers.
fn sessions(state: &AppState, caller: &OutpostCaller) -> Sessions {
    Sessions::new(
        state.store.clone(),
        state.keys.clone(),
        &state.settings.external_url,
        &caller.outpost.fields.name,
        Scope::Only(caller.outpost.fields.providers.clone()),
    )
}

async fn providers(
    State(state): State<AppState>,
    caller: OutpostCaller,
    query: ListQuery,
) -> ApiResult<Json<Paginated<ProxyOutpostConfig>>> {
    let spec = query.spec(&RULES)?;
    let all = sessions(&state, &caller).providers().await?;
    let count = all.len() as i64;
    let skip =
        usize::try_from((spec.page - 1).saturating_mul(spec.page_size)).unwrap_or(usize::MAX);
    let results: Vec<ProxyOutpostConfig> = all
        .into_iter()
        .skip(skip)
        .take(usize::try_from(spec.page_size).unwrap_or(0))
        .collect();
    let listed = Listed::<()> {
        count,
        items: Vec::new(),
    };
    Ok(Json(super::page(&spec, &listed, results)))
}

async fn check_session(
    State(state): State<AppState>,
    caller: OutpostCaller,
    JsonBody(check): JsonBody<SessionCheck>,
) -> ApiResult<Json<SessionAnswer>> {
    let session = sessions(&state, &caller).check(&check).await?;
    Ok(Json(SessionAnswer { session }))
}

async fn begin_login(
    State(state): State<AppState>,
    caller: OutpostCaller,
    JsonBody(begin): JsonBody<LoginBegin>,
) -> ApiResult<Json<LoginBegun>> {
    Ok(Json(sessions(&state, &caller).begin(&begin).await?))
}

async fn complete_login(
    State(state): State<AppState>,
    caller: OutpostCaller,
    JsonBody(complete): JsonBody<LoginComplete>,
) -> ApiResult<Json<LoginCompleted>> {
    Ok(Json(sessions(&state, &caller).complete(&complete).await?))
}

async fn sign_out(
    State(state): State<AppState>,
    caller: OutpostCaller,
    JsonBody(sign_out): JsonBody<SignOut>,
) -> ApiResult<Json<SignedOut>> {
    Ok(Json(sessions(&state, &caller).sign_out(&sign_out).await?))
}

/// `hello` (the outpost's name, the session store and the feed position), then one `change`
/// per entry of the change feed, in order. With `?since=N` (the last position the outpost
/// applied), the changes after N are replayed first; when the feed no longer holds them, the
/// hello says `reset` and the outpost drops everything. A stream that falls behind ends (the
/// outpost resumes from its position). Ends at server shutdown.
async fn events(
    State(state): State<AppState>,
    caller: OutpostCaller,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let since = match query.get("since") {
        None => None,
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::field(
                "since",
                "Send the last change position the outpost applied, a whole number (or leave it out).",
            )
        })?),
    };
    // Subscribed before reading, so nothing between the replay and the live changes is lost.
    let (rx, position) = state.changes.subscribe();
    let replay = match since {
        Some(since) if since <= position => {
            let mut conn = state.store.conn().await?;
            gatehouse_store::changes::since(&mut conn, since, gatehouse_store::changes::KEPT)
                .await?
                .map(|batch| {
                    batch
                        .iter()
                        .filter(|c| c.seq <= position)
                        .map(crate::changes::wire)
                        .collect::<Vec<_>>()
                })
                .filter(|batch| batch.last().map_or(since, |c| c.seq) == position)
        }
        _ => None,
    };
    let (start, reset) = match (&replay, since) {
        (Some(_), Some(since)) => (since, false),
        _ => (position, since.is_some()),
    };
    let hello = Event::default()
        .event("hello")
        .json_data(OutpostHello {
            outpost: caller.outpost.fields.name.clone(),
            session_store: state.store.backend().as_str().to_owned(),
            position: start,
            reset,
        })
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(outpost = %caller.outpost.fields.name, since, position, reset, "a standalone outpost connected to the event stream");
    let change = |c: &FeedChange| Event::default().event("change").json_data(c).ok();
    let replayed: Vec<Event> = replay
        .unwrap_or_default()
        .iter()
        .filter_map(change)
        .collect();
    let live = stream::unfold((rx, position), move |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                Ok(c) if c.seq <= last => continue,
                Ok(c) => return Some((change(&c)?, (rx, c.seq))),
                // Fallen behind, or shut down: end; the outpost resumes from its position.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
            }
        }
    });
    let events = stream::once(async move { hello })
        .chain(stream::iter(replayed))
        .chain(live)
        .map(Ok)
        .take_until(state.changes.closed());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Makes (once) the outpost's service account and gives it a new token, deleting the old one:
/// reissuing is how a leaked outpost token is rotated.
async fn issue_token(
    State(state): State<AppState>,
    admin: Admin,
    Path(uuid): Path<Uuid>,
) -> ApiResult<(axum::http::StatusCode, Json<OutpostToken>)> {
    let mut tx = state.store.begin().await?;
    let outpost = outposts::get(&mut tx, uuid).await?;
    if outpost.fields.managed.as_deref() == Some(outposts::EMBEDDED) {
        return Err(ApiError::field(
            "non_field_errors",
            "The embedded outpost runs inside the server and needs no token; create a standalone outpost for the edge.",
        ));
    }
    let username = format!("ak-outpost-{uuid}");
    let user = match users::find_by_username(&mut tx, &username).await? {
        Some(user) => user,
        None => {
            users::create(
                &mut tx,
                &UserFields {
                    username,
                    name: format!("Outpost {}", outpost.fields.name),
                    email: String::new(),
                    user_type: UserType::InternalServiceAccount,
                    path: "goauthentik.io/outposts".into(),
                    is_active: true,
                    attributes: serde_json::json!({}),
                },
            )
            .await?
        }
    };
    let identifier = outpost_token_identifier(uuid);
    if let Some(old) = tokens::find_by_identifier(&mut tx, &identifier).await? {
        tokens::delete(&mut tx, old.uuid).await?;
    }
    let key = secret::new_token();
    tokens::create(
        &mut tx,
        &TokenFields {
            identifier: identifier.clone(),
            intent: TokenIntent::Api,
            user: user.id,
            description: format!("API token of the outpost {}", outpost.fields.name),
            expiring: false,
            expires: None,
            managed: Some(format!("goauthentik.io/outpost/{uuid}")),
        },
        &key,
    )
    .await?;
    gatehouse_store::commit(tx).await?;
    tracing::info!(outpost = %outpost.fields.name, by = %admin.user.fields.username, "issued a new outpost token");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(OutpostToken { identifier, key }),
    ))
}
