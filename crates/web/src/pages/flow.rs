//! `/if/flow/<slug>/`: runs a flow in the browser. GET shows the current stage (starting a run
//! when there is none); POST submits the current stage's form. The run waits between requests
//! under the `gatehouse_flow` cookie, sealed in it while anonymous, else in a row
//! ([`gatehouse_flow::keep`]); every form carries the run's anti-forgery token.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gatehouse_core::secret;
use gatehouse_flow::keep::{Found, Kept};
use gatehouse_flow::run::safe_next;
use gatehouse_flow::{Challenge, FlowRun, Outcome, PromptField, RequestInfo};
use gatehouse_store::{flows, Conn};

use super::{error_page, page, Hint, Template};
use crate::error::ApiError;
use crate::session::{self, clear_cookie, set_cookie, FLOW_COOKIE, SESSION_COOKIE};
use crate::AppState;

/// The flow routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/if/flow/{slug}/", get(show).post(submit))
        .route(
            "/if/flow/{slug}/passkey/begin",
            axum::routing::post(super::passkey::login_begin),
        )
        .route(
            "/if/flow/{slug}/passkey/finish",
            axum::routing::post(super::passkey::login_finish),
        )
        .route(
            "/if/flow/{slug}/passkey/enroll/begin",
            axum::routing::post(super::passkey::enroll_begin),
        )
        .route(
            "/if/flow/{slug}/passkey/enroll/finish",
            axum::routing::post(super::passkey::enroll_finish),
        )
        .route(
            "/",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/if/user/")]) }),
        )
}

/// Where a finished login goes when no `next` was given.
pub const DEFAULT_NEXT: &str = "/if/user/";

/// Everything a flow request carries besides its form.
pub(super) struct Call {
    pub(super) state: AppState,
    pub(super) headers: HeaderMap,
    pub(super) req: RequestInfo,
    pub(super) slug: String,
    query: Vec<(String, String)>,
}

impl FromRequestParts<AppState> for Call {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bad = |what: &str| {
            error_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                what,
                "Check the link and try again.",
            )
        };
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|_| bad("The client address is unknown."))?;
        let Path(slug) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| bad("The flow name in the address is not readable."))?;
        let Query(query) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| bad("The query string is not readable."))?;
        Ok(Call {
            state: state.clone(),
            req: session::request_info(&parts.headers, peer, &parts.method, &parts.uri),
            headers: parts.headers.clone(),
            slug,
            query,
        })
    }
}

async fn show(call: Call) -> Response {
    run(call, None).await.unwrap_or_else(failure)
}

async fn submit(call: Call, body: Bytes) -> Response {
    let fields: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Unreadable form",
                "The form data could not be read.",
                "Reload the page and submit the form again.",
            )
        }
    };
    run(call, Some(fields)).await.unwrap_or_else(failure)
}

fn failure(e: ApiError) -> Response {
    tracing::error!(error = %e, "flow failed");
    let status = match e {
        ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(
        status,
        "Something went wrong",
        "Gatehouse could not continue this login.",
        "Try again in a moment. If it keeps happening, the server log has the details.",
    )
}

pub(super) fn flow_error(e: gatehouse_flow::Error) -> ApiError {
    match e {
        gatehouse_flow::Error::Store(s) => s.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

/// The run the visitor's flow cookie names for `flow` (`None`: whichever flow it is).
pub(super) async fn load(
    conn: &mut Conn,
    state: &AppState,
    headers: &HeaderMap,
    flow: Option<uuid::Uuid>,
) -> Result<Found, ApiError> {
    state
        .engine
        .find(conn, session::read_flow_cookie(headers), flow)
        .await
        .map_err(flow_error)
}

async fn run(call: Call, form: Option<Vec<(String, String)>>) -> Result<Response, ApiError> {
    let Call {
        state,
        headers,
        req,
        slug,
        query,
    } = call;
    // The session is read before the transaction takes a connection: holding one pooled
    // connection while waiting for another can exhaust the pool under load.
    let current = session::current(&state, &headers).await?;
    let mut tx = state.store.begin().await?;
    let Some(flow) = flows::find_by_slug(&mut tx, &slug).await? else {
        return Ok(error_page(
            StatusCode::NOT_FOUND,
            "No such flow",
            &format!("There is no flow named `{slug}`."),
            Hint::link("/if/user/", "user page")
                .after("Check the link, or start from the ")
                .then("."),
        ));
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // A new `next` or invitation on a GET starts over, so a stale run never sends the visitor
    // elsewhere or keeps an earlier invitation.
    let restart = form.is_none() && (param("next").is_some() || param("itoken").is_some());
    let found = if restart {
        Found::Nothing
    } else {
        load(&mut tx, &state, &headers, Some(flow.uuid)).await?
    };
    let mut notices = Vec::new();
    let mut kept = match found {
        Found::Run(kept) => *kept,
        other => {
            match other {
                Found::Stale(stale) => notices.push(stale.notice().to_owned()),
                _ if form.is_some() => {
                    notices.push(gatehouse_flow::keep::Stale::Interrupted.notice().to_owned())
                }
                _ => {}
            }
            let next = safe_next(param("next"), DEFAULT_NEXT);
            let application = match param("application") {
                Some(slug) => gatehouse_store::applications::find_by_slug(&mut tx, slug)
                    .await?
                    .map(|app| gatehouse_flow::AppContext {
                        uuid: app.uuid,
                        name: app.fields.name,
                        scopes: param("scope")
                            .unwrap_or_default()
                            .split_whitespace()
                            .take(32)
                            .map(|s| s.chars().take(64).collect())
                            .collect(),
                        ask_again: param("prompt") == Some("consent"),
                    }),
                None => None,
            };
            let started = state
                .engine
                .start(
                    &mut tx,
                    &flow,
                    next,
                    current.as_ref().map(|c| &c.session),
                    application,
                    &req,
                )
                .await
                .map_err(flow_error)?;
            match started {
                Ok(mut r) => {
                    r.itoken = param("itoken").map(|t| t.chars().take(64).collect());
                    Kept::new(r)
                }
                Err(message) => {
                    return Ok(error_page(
                        StatusCode::FORBIDDEN,
                        "Access denied",
                        &message,
                        "If you think this is wrong, ask your administrator.",
                    ))
                }
            }
        }
    };
    let outcome = match form {
        Some(fields) if notices.is_empty() => {
            let sent = fields
                .iter()
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            if !secret::constant_time_eq(sent, &kept.run.csrf) {
                return Ok(error_page(
                    StatusCode::FORBIDDEN,
                    "Form not accepted",
                    "The form did not come from this login page (its security token is missing or wrong).",
                    Hint::link(&format!("/if/flow/{slug}/"), "Reload the page").then(" and try again."),
                ));
            }
            let response = gatehouse_flow::Response {
                fields: fields.into_iter().collect(),
            };
            state
                .engine
                .submit(&mut tx, &mut kept.run, &response, &req)
                .await
                .map_err(flow_error)?
        }
        _ => state
            .engine
            .advance(&mut tx, &mut kept.run, &req)
            .await
            .map_err(flow_error)?,
    };
    let logged_out = matches!(outcome, Outcome::LoggedOut { .. });
    let response = match outcome {
        Outcome::Show {
            challenge,
            mut errors,
        } => {
            if errors
                .iter()
                .any(|e| e == gatehouse_flow::BAD_CREDENTIALS || e == gatehouse_flow::BAD_CODE)
            {
                state.metrics.login_failures.inc();
            }
            errors.splice(0..0, notices);
            let cookie = save(&mut tx, &state, &mut kept).await?;
            let body = StageBody::new(&kept.run, &challenge, &errors, state.passkeys.available());
            let mut response = page(StatusCode::OK, &kept.run.title, &body);
            response.headers_mut().append(SET_COOKIE, cookie);
            response
        }
        Outcome::Invalid { field, message } => {
            let challenge = match state
                .engine
                .advance(&mut tx, &mut kept.run, &req)
                .await
                .map_err(flow_error)?
            {
                Outcome::Show { challenge, .. } => challenge,
                _ => Challenge::Identification {
                    identifier: String::new(),
                    user_fields: true,
                    sources: Vec::new(),
                    enrollment: false,
                    passkey: false,
                },
            };
            let cookie = save(&mut tx, &state, &mut kept).await?;
            let errors = [format!("{field}: {message}")];
            let body = StageBody::new(&kept.run, &challenge, &errors, state.passkeys.available());
            let mut response = page(StatusCode::BAD_REQUEST, &kept.run.title, &body);
            response.headers_mut().append(SET_COOKIE, cookie);
            response
        }
        other => conclude(&mut tx, &state, &mut kept, other).await?,
    };
    gatehouse_store::commit(tx).await?;
    if logged_out {
        // The session's outpost sessions ended with it (cascade): outposts must not answer
        // from their caches.
        state.changed();
    }
    Ok(response)
}

/// What the browser gets for an outcome that does not show the run's page in place: a redirect
/// with the cookies the outcome sets, or the refusal page. A page to show (after a login
/// source's callback, which is not the flow's address) saves the run and sends the browser back
/// to the flow page, which shows it.
pub(super) async fn conclude(
    tx: &mut Conn,
    state: &AppState,
    kept: &mut Kept,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let secure = session::secure(state);
    let slug = kept.run.slug.clone();
    Ok(match outcome {
        Outcome::Show { .. } | Outcome::Invalid { .. } => {
            let cookie = save(tx, state, kept).await?;
            let mut response = redirect_to(&format!("/if/flow/{slug}/"));
            response.headers_mut().append(SET_COOKIE, cookie);
            response
        }
        Outcome::LoggedIn {
            session_key,
            max_age,
            redirect,
        } => {
            state.metrics.logins.inc();
            forget(tx, state, kept).await?;
            let mut response = redirect_to(&redirect);
            let headers = response.headers_mut();
            headers.append(
                SET_COOKIE,
                set_cookie(SESSION_COOKIE, &session_key, max_age, secure),
            );
            headers.append(SET_COOKIE, clear_cookie(FLOW_COOKIE, secure));
            response
        }
        Outcome::LoggedOut { redirect } => {
            forget(tx, state, kept).await?;
            let mut response = redirect_to(&redirect);
            response
                .headers_mut()
                .append(SET_COOKIE, clear_cookie(SESSION_COOKIE, secure));
            response
                .headers_mut()
                .append(SET_COOKIE, clear_cookie(FLOW_COOKIE, secure));
            response
        }
        Outcome::Finished { redirect } => {
            forget(tx, state, kept).await?;
            let mut response = redirect_to(&redirect);
            response
                .headers_mut()
                .append(SET_COOKIE, clear_cookie(FLOW_COOKIE, secure));
            response
        }
        Outcome::Denied { message } => {
            forget(tx, state, kept).await?;
            let mut response = error_page(
                StatusCode::FORBIDDEN,
                "Access denied",
                &message,
                Hint::link(&format!("/if/flow/{slug}/"), "Start again"),
            );
            response
                .headers_mut()
                .append(SET_COOKIE, clear_cookie(FLOW_COOKIE, secure));
            response
        }
    })
}

/// Keeps the run for its next request; returns the flow cookie that names it, living as long
/// as the run may wait.
pub(super) async fn save(
    conn: &mut Conn,
    state: &AppState,
    kept: &mut Kept,
) -> Result<HeaderValue, ApiError> {
    let value = state.engine.keep(conn, kept).await.map_err(flow_error)?;
    Ok(set_cookie(
        FLOW_COOKIE,
        &value,
        Some(state.engine.state_age.num_seconds()),
        session::secure(state),
    ))
}

/// The run ended: whatever was stored for it goes.
pub(super) async fn forget(conn: &mut Conn, state: &AppState, kept: &Kept) -> Result<(), ApiError> {
    state.engine.forget(conn, kept).await.map_err(flow_error)
}

fn redirect_to(target: &str) -> Response {
    (
        StatusCode::FOUND,
        [(LOCATION, safe_next(Some(target), DEFAULT_NEXT))],
    )
        .into_response()
}

/// One stage of a flow run as a page body: its question, the last attempt's errors, its form.
#[derive(Template)]
#[template(path = "flow.html")]
struct StageBody<'a> {
    run: &'a FlowRun,
    challenge: &'a Challenge,
    errors: &'a [String],
    /// Offer the passkey login button (a login's identification stage, passkeys available).
    passkey: bool,
    /// Offer the passkey sign-up button (a sign-up's identification stage).
    passkey_enroll: bool,
    /// The run's anti-forgery token, for the passkey button's script.
    csrf: &'a str,
}

impl<'a> StageBody<'a> {
    fn new(
        run: &'a FlowRun,
        challenge: &'a Challenge,
        errors: &'a [String],
        passkeys: bool,
    ) -> Self {
        StageBody {
            run,
            challenge,
            errors,
            passkey: passkeys
                && matches!(
                    challenge,
                    Challenge::Identification {
                        passkey: true,
                        enrollment: false,
                        ..
                    }
                ),
            passkey_enroll: passkeys
                && matches!(
                    challenge,
                    Challenge::Identification {
                        passkey: true,
                        enrollment: true,
                        ..
                    }
                ),
            csrf: &run.csrf,
        }
    }

    /// Whether the stage has a form to submit: a social/passkey-only sign-up asks for no
    /// username, and a passkey is made by the page's script.
    fn has_form(&self) -> bool {
        !matches!(
            self.challenge,
            Challenge::Identification {
                user_fields: false,
                ..
            } | Challenge::PasskeyEnrollment { .. }
        )
    }

    /// What a scope means, in words.
    fn scope_label<'s>(&self, scope: &'s str) -> &'s str {
        match scope {
            "openid" => "Knowing who you are",
            "profile" => "Your name and username",
            "email" => "Your email address",
            "groups" => "Your group memberships",
            "offline_access" => "Staying signed in when you are not using it",
            other => other,
        }
    }

    /// The input type of a prompt field.
    fn input_type(&self, field: &PromptField) -> &'static str {
        match field.kind.as_str() {
            "password" => "password",
            "email" => "email",
            _ => "text",
        }
    }

    /// What browsers may fill a prompt field with.
    fn autocomplete(&self, field: &PromptField) -> &'static str {
        match field.kind.as_str() {
            "password" => "new-password",
            "email" => "email",
            "username" => "username",
            _ => "on",
        }
    }
}
