//! `/if/flow/<slug>/`: runs a flow in the browser. GET shows the current stage (starting a run
//! when there is none); POST submits the current stage's form. The run lives server-side under
//! the `gatehouse_flow` cookie; every form carries the run's anti-forgery token.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gatehouse_core::secret;
use gatehouse_flow::run::{expiry, safe_next};
use gatehouse_flow::{Challenge, FlowRun, Outcome, RequestInfo};
use gatehouse_store::{flow_states, flows, Conn};

use super::{error_page, escape, page};
use crate::error::ApiError;
use crate::session::{self, clear_cookie, read_cookie, set_cookie, FLOW_COOKIE, SESSION_COOKIE};
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

pub(super) async fn load(
    conn: &mut Conn,
    key: Option<&str>,
    flow: uuid::Uuid,
) -> Result<Option<FlowRun>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    let data = flow_states::get(conn, key, flow, chrono::Utc::now()).await?;
    Ok(data.and_then(|d| serde_json::from_value(d).ok()))
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
            "Check the link, or start from the <a href=\"/if/user/\">user page</a>.",
        ));
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let cookie_key = read_cookie(&headers, FLOW_COOKIE).map(str::to_owned);
    // A new `next` on a GET starts over, so a stale run never sends the visitor elsewhere.
    let restart = form.is_none() && param("next").is_some();
    let existing = if restart {
        None
    } else {
        load(&mut tx, cookie_key.as_deref(), flow.uuid).await?
    };
    let mut notices = Vec::new();
    let (mut flow_run, key) = match (existing, cookie_key) {
        (Some(r), Some(key)) => (r, key),
        (_, had_cookie) => {
            if form.is_some() || (had_cookie.is_some() && !restart) {
                notices.push(
                    "This login page expired or was interrupted, so it started again.".to_owned(),
                );
            }
            let next = safe_next(param("next"), DEFAULT_NEXT);
            let application = match param("application") {
                Some(slug) => gatehouse_store::applications::find_by_slug(&mut tx, slug)
                    .await?
                    .map(|app| gatehouse_flow::run::AppContext {
                        uuid: app.uuid,
                        name: app.fields.name,
                        scopes: param("scope")
                            .unwrap_or_default()
                            .split_whitespace()
                            .take(32)
                            .map(|s| s.chars().take(64).collect())
                            .collect(),
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
                Ok(r) => (r, secret::new_token()),
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
            if !secret::constant_time_eq(sent, &flow_run.csrf) {
                return Ok(error_page(
                    StatusCode::FORBIDDEN,
                    "Form not accepted",
                    "The form did not come from this login page (its security token is missing or wrong).",
                    &format!("<a href=\"/if/flow/{}/\">Reload the page</a> and try again.", escape(&slug)),
                ));
            }
            let response = gatehouse_flow::Response {
                fields: fields.into_iter().collect(),
            };
            state
                .engine
                .submit(&mut tx, &mut flow_run, &response, &req)
                .await
                .map_err(flow_error)?
        }
        _ => state
            .engine
            .advance(&mut tx, &mut flow_run, &req)
            .await
            .map_err(flow_error)?,
    };
    let secure = session::secure(&state);
    let logged_out = matches!(outcome, Outcome::LoggedOut { .. });
    let response = match outcome {
        Outcome::Show {
            challenge,
            mut errors,
        } => {
            if errors.iter().any(|e| {
                e == gatehouse_flow::run::BAD_CREDENTIALS || e == gatehouse_flow::run::BAD_CODE
            }) {
                state.metrics.login_failures.inc();
            }
            errors.splice(0..0, notices);
            save(&mut tx, &state, &key, &flow_run).await?;
            let body = render(&flow_run, &challenge, &errors, state.passkeys.available());
            let mut response = page(StatusCode::OK, &flow_run.title, &body);
            response
                .headers_mut()
                .append(SET_COOKIE, set_cookie(FLOW_COOKIE, &key, None, secure));
            response
        }
        Outcome::Invalid { field, message } => {
            let challenge = match state
                .engine
                .advance(&mut tx, &mut flow_run, &req)
                .await
                .map_err(flow_error)?
            {
                Outcome::Show { challenge, .. } => challenge,
                _ => Challenge::Identification {
                    identifier: String::new(),
                },
            };
            save(&mut tx, &state, &key, &flow_run).await?;
            let body = render(
                &flow_run,
                &challenge,
                &[format!("{field}: {message}")],
                state.passkeys.available(),
            );
            page(StatusCode::BAD_REQUEST, &flow_run.title, &body)
        }
        Outcome::LoggedIn {
            session_key,
            max_age,
            redirect,
        } => {
            state.metrics.logins.inc();
            flow_states::delete(&mut tx, &key).await?;
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
            flow_states::delete(&mut tx, &key).await?;
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
            flow_states::delete(&mut tx, &key).await?;
            let mut response = redirect_to(&redirect);
            response
                .headers_mut()
                .append(SET_COOKIE, clear_cookie(FLOW_COOKIE, secure));
            response
        }
        Outcome::Denied { message } => {
            flow_states::delete(&mut tx, &key).await?;
            let mut response = error_page(
                StatusCode::FORBIDDEN,
                "Access denied",
                &message,
                &format!("<a href=\"/if/flow/{}/\">Start again</a>", escape(&slug)),
            );
            response
                .headers_mut()
                .append(SET_COOKIE, clear_cookie(FLOW_COOKIE, secure));
            response
        }
    };
    gatehouse_store::commit(tx).await?;
    if logged_out {
        // The session's outpost sessions ended with it (cascade): outposts must not answer
        // from their caches.
        state.changed();
    }
    Ok(response)
}

pub(super) async fn save(
    conn: &mut Conn,
    state: &AppState,
    key: &str,
    run: &FlowRun,
) -> Result<(), ApiError> {
    let data = serde_json::to_value(run).map_err(|e| ApiError::Internal(e.to_string()))?;
    flow_states::put(conn, key, run.flow, &data, expiry(&state.engine)).await?;
    Ok(())
}

fn redirect_to(target: &str) -> Response {
    (
        StatusCode::FOUND,
        [(LOCATION, safe_next(Some(target), DEFAULT_NEXT))],
    )
        .into_response()
}

/// What a scope means, in words.
fn scope_label(scope: &str) -> &str {
    match scope {
        "openid" => "Knowing who you are",
        "profile" => "Your name and username",
        "email" => "Your email address",
        "groups" => "Your group memberships",
        "offline_access" => "Staying signed in when you are not using it",
        other => other,
    }
}

fn render(run: &FlowRun, challenge: &Challenge, errors: &[String], passkeys: bool) -> String {
    let errors: String = errors
        .iter()
        .map(|e| format!("<p class=error role=alert>{}</p>", escape(e)))
        .collect();
    let csrf = format!(
        "<input type=hidden name=csrf value=\"{}\">",
        escape(&run.csrf)
    );
    let action = format!("/if/flow/{}/", escape(&run.slug));
    let (heading, fields, button) = match challenge {
        Challenge::Identification { identifier } => (
            escape(&run.title),
            format!(
                "<label for=uid_field>Username or email</label>\
                 <input id=uid_field name=uid_field type=text autocomplete=username autofocus required maxlength=254 value=\"{}\">",
                escape(identifier)
            ),
            "Continue",
        ),
        Challenge::Password { identifier, remember_me } => (
            "Enter your password".to_owned(),
            format!(
                "<p class=muted>Logging in as <strong>{}</strong>. <a href=\"{action}?next={}\">Not you?</a></p>\
                 <label for=password>Password</label>\
                 <input id=password name=password type=password autocomplete=current-password autofocus required>{}",
                escape(identifier),
                escape(&run.next),
                if *remember_me {
                    "<label class=check><input id=remember_me name=remember_me type=checkbox> Remember me on this device</label>"
                } else {
                    ""
                }
            ),
            "Log in",
        ),
        Challenge::Prompt { fields } => (
            escape(&run.title),
            fields
                .iter()
                .map(|f| {
                    let (kind, autocomplete) = match f.kind.as_str() {
                        "password" => ("password", "new-password"),
                        "email" => ("email", "email"),
                        "username" => ("text", "username"),
                        _ => ("text", "on"),
                    };
                    format!(
                        "<label for={key}>{label}</label><input id={key} name={key} type={kind} autocomplete={autocomplete} maxlength=1024{required} value=\"{value}\">",
                        key = escape(&f.field_key),
                        label = escape(&f.label),
                        required = if f.required { " required" } else { "" },
                        value = escape(&f.value),
                    )
                })
                .collect(),
            "Continue",
        ),
        Challenge::Consent { application, scopes } => (
            format!("Allow {} to use your account?", escape(application)),
            format!(
                "<p>{} asks for:</p><ul id=scopes>{}</ul><p class=muted>You will not be asked again unless it asks for more.</p><input type=hidden name=action value=allow>",
                escape(application),
                scopes.iter().map(|s| format!("<li>{}</li>", escape(scope_label(s)))).collect::<String>()
            ),
            "Allow",
        ),
        Challenge::Totp => (
            "Enter your code".to_owned(),
            "<p class=muted>Open your authenticator app and enter the 6-digit code, or one of your recovery codes.</p>\
             <label for=code>Code</label>\
             <input id=code name=code type=text autocomplete=one-time-code autofocus required maxlength=32>"
                .to_owned(),
            "Verify",
        ),
    };
    let passkey = match challenge {
        Challenge::Identification { .. } if passkeys => super::passkey::login_button(&run.csrf),
        _ => String::new(),
    };
    format!("<h1>{heading}</h1>{errors}<form method=post action=\"{action}\">{csrf}{fields}<button id=submit type=submit>{button}</button></form>{passkey}")
}
