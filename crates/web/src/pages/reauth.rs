//! Step-up on the user page: adding or removing a passkey or authenticator app needs a factor
//! proved within the re-authentication window (`reauth_max_age`, 5 minutes by default, as
//! Keycloak's `max_auth_age`), so a stolen session cookie alone cannot change a user's factors.
//!
//! The proof time lives on the session row ([`sessions::Session::authenticated_at`]): set by the
//! login that started the session, renewed here by the password (when the user has one), else
//! a code of their authenticator app, or one of their passkeys. Logging in again always works
//! too: it is the only way for a user who signs in through a login source alone.
//!
//! Its neighbours: [`super::user`] (the forms it guards) and [`super::passkey`] (the passkey
//! ceremonies it shares).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use gatehouse_core::secret;
use gatehouse_flow::run::safe_next;
use gatehouse_flow::throttle::{retry_message, Attempt};
use gatehouse_store::devices::{self, DeviceKind};
use gatehouse_store::{events, sessions, users};
use serde::Deserialize;
use serde_json::json;

use super::user::{csrf_accepted, csrf_token, login_redirect};
use super::{error_page, page, Hint, Template};
use crate::error::ApiError;
use crate::passkeys::credential_key;
use crate::session::{self, read_cookie, Current, SESSION_COOKIE};
use crate::AppState;

/// Where a visitor proves a factor again.
pub const PATH: &str = "/if/user/reauth/";

/// Whether `current` proved a factor within the server's window.
pub fn recent(state: &AppState, current: &Current) -> bool {
    current
        .session
        .authenticated_within(Utc::now(), state.settings.reauth_max_age)
}

/// `next=<next, URL-encoded>`.
fn next_query(next: &str) -> String {
    serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
}

/// The address of the re-authentication page that returns to `next`.
pub fn url(next: &str) -> String {
    format!("{PATH}?{}", next_query(next))
}

/// The page for a form posted without a recent proof: what is needed and where to give it.
pub fn needed_page(next: &str) -> Response {
    let href = url(next);
    error_page(
        StatusCode::FORBIDDEN,
        "Confirm it's you",
        "Adding or removing a way to sign in needs a recent proof that it is you; this session's was too long ago.",
        Hint::link(&href, "Confirm it's you").then(", then try again."),
    )
}

/// The JSON answer of a passkey ceremony started without a recent proof; the page's script
/// goes to `reauth`.
pub fn needed_json(next: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({
            "error": "Confirm it's you first: adding a passkey needs a recent proof.",
            "reauth": url(next),
        })),
    )
        .into_response()
}

/// The re-authentication page (`templates/reauth.html`).
#[derive(Template)]
#[template(path = "reauth.html")]
struct ReauthBody<'a> {
    csrf: &'a str,
    /// Where to go afterwards (a same-site path).
    next: &'a str,
    /// Ask for the password (the user has one).
    password: bool,
    /// Ask for an authenticator-app code (no password, but a TOTP device).
    code: bool,
    /// Offer the user's passkeys.
    passkey: bool,
    /// The login flow that returns to `next`: logging in again is a proof too.
    login: &'a str,
    /// How many minutes a proof lasts.
    minutes: i64,
    /// Why the last attempt was not accepted.
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ReauthForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    current: &Current,
    next: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response, ApiError> {
    let mut conn = state.store.conn().await?;
    let totp = !devices::devices(&mut conn, DeviceKind::Totp, Some(current.user.id))
        .await?
        .is_empty();
    let passkeys = !devices::devices(&mut conn, DeviceKind::Passkey, Some(current.user.id))
        .await?
        .is_empty();
    let login = format!("/if/flow/default-authentication-flow/?{}", next_query(next));
    let body = ReauthBody {
        csrf: &csrf_token(headers),
        next,
        password: current.user.has_password,
        code: !current.user.has_password && totp,
        passkey: passkeys && state.passkeys.available(),
        login: &login,
        minutes: state.settings.reauth_max_age.num_minutes().max(1),
        error,
    };
    Ok(page(status, "Confirm it's you", &body))
}

fn failed(what: &str, e: ApiError) -> Response {
    tracing::error!(error = %e, "{what} failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Your identity could not be checked.",
        "Try again in a moment.",
    )
}

/// `GET /if/user/reauth/?next=`: asks for a factor.
pub(super) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref(), "/if/user/");
    let result = async {
        let Some(current) = session::current(&state, &headers).await? else {
            return Ok(login_redirect());
        };
        render(&state, &headers, &current, &next, StatusCode::OK, None).await
    }
    .await;
    result.unwrap_or_else(|e| failed("the re-authentication page", e))
}

/// Whether `given` is `user`'s password (hashing off the async threads).
pub(super) async fn password_matches(
    conn: &mut gatehouse_store::Conn,
    user: i64,
    given: &str,
) -> Result<bool, ApiError> {
    let Some(hash) = users::password_hash(conn, user).await? else {
        return Ok(false);
    };
    let given = given.to_owned();
    tokio::task::spawn_blocking(move || secret::verify_password(&given, &hash).unwrap_or(false))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// `POST /if/user/reauth/`: checks the password (or authenticator code) and renews the proof.
pub(super) async fn confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<ReauthForm>,
) -> Response {
    let next = safe_next(Some(&form.next), "/if/user/");
    let result = async {
        let Some(current) = session::current(&state, &headers).await? else {
            return Ok(login_redirect());
        };
        if !csrf_accepted(&headers, &form.csrf) {
            return Ok(error_page(
                StatusCode::FORBIDDEN,
                "Form not accepted",
                "The form did not come from your user page (its security token is missing or wrong).",
                Hint::link(&url(&next), "Reload the page").then(" and try again."),
            ));
        }
        if form.password.len() > 1024 || form.code.len() > 16 {
            return render(&state, &headers, &current, &next, StatusCode::BAD_REQUEST, Some("The password or code is too long.")).await;
        }
        let ip = peer.ip().to_string();
        let attempt = Attempt::new(Some(current.user.id), "", &ip);
        if let Err(wait) = state.engine.throttle.check(&attempt) {
            return render(&state, &headers, &current, &next, StatusCode::TOO_MANY_REQUESTS, Some(&retry_message(wait))).await;
        }
        let mut tx = state.store.begin().await?;
        let proved = if current.user.has_password {
            password_matches(&mut tx, current.user.id, &form.password).await?
        } else {
            let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
            gatehouse_flow::check_totp_code(&mut tx, state.store.key(), current.user.id, &code)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
        };
        if !proved {
            state.engine.throttle.failed(&attempt);
            events::record(
                &mut tx,
                "login_failed",
                "gatehouse.user",
                events::user_info(Some(&current.user)),
                json!({"stage": "reauthentication"}),
                Some(ip),
            )
            .await?;
            gatehouse_store::commit(tx).await?;
            let message = if current.user.has_password {
                "That password is not right."
            } else {
                "That code is not right (or was used already); wait for the next one."
            };
            return render(&state, &headers, &current, &next, StatusCode::BAD_REQUEST, Some(message)).await;
        }
        sessions::mark_authenticated(&mut tx, current.session.uuid).await?;
        gatehouse_store::commit(tx).await?;
        Ok((StatusCode::SEE_OTHER, [(LOCATION, next.as_str())]).into_response())
    }
    .await;
    result.unwrap_or_else(|e| failed("re-authentication", e))
}

#[derive(Deserialize)]
struct Ceremony {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    credential: serde_json::Value,
    #[serde(default)]
    next: String,
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// The session and ceremony name of a passkey re-authentication request, checked.
async fn ceremony(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Current, Ceremony, String), Response> {
    let request: Ceremony = serde_json::from_slice(body)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("unreadable request: {e}")))?;
    let current = match session::current(state, headers).await {
        Ok(Some(c)) => c,
        _ => return Err(fail(StatusCode::UNAUTHORIZED, "Log in first.")),
    };
    if !csrf_accepted(headers, &request.csrf) {
        return Err(fail(
            StatusCode::FORBIDDEN,
            "The request did not come from your user page (security token missing or wrong).",
        ));
    }
    let key = read_cookie(headers, SESSION_COOKIE).unwrap_or_default();
    let name = secret::token_hash(&format!("gatehouse-reauth:{key}"));
    Ok((current, request, name))
}

/// `POST /if/user/reauth/passkey/begin`: asks the browser for one of the user's passkeys.
pub(super) async fn passkey_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, _, name) = match ceremony(&state, &headers, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.passkeys.start_login(&name) {
        Ok(options) => Json(options).into_response(),
        Err(e) => fail(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `POST /if/user/reauth/passkey/finish`: verifies the passkey, which must be the user's own,
/// and renews the proof; answers where to go next.
pub(super) async fn passkey_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (current, request, name) = match ceremony(&state, &headers, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let next = safe_next(Some(&request.next), "/if/user/");
    let result: Result<Response, ApiError> = async {
        let (handle, credential_id, credential) = match state.passkeys.identify(&request.credential)
        {
            Ok(found) => found,
            Err(e) => return Ok(fail(StatusCode::BAD_REQUEST, e.to_string())),
        };
        let mut tx = state.store.begin().await?;
        let stored =
            devices::passkey_by_credential(&mut tx, &credential_key(&credential_id)).await?;
        let Some(stored) =
            stored.filter(|p| p.user == current.user.id && handle == current.user.uuid)
        else {
            return Ok(fail(
                StatusCode::BAD_REQUEST,
                "This passkey is not one of yours; use one you added to this account.",
            ));
        };
        let passkey: webauthn_rs::prelude::Passkey = serde_json::from_str(&stored.credential)
            .map_err(|e| ApiError::Internal(format!("stored passkey unreadable: {e}")))?;
        match state.passkeys.finish_login(&name, &credential, passkey) {
            Ok(updated) => {
                let text = match updated {
                    Some(p) => {
                        serde_json::to_string(&p).map_err(|e| ApiError::Internal(e.to_string()))?
                    }
                    None => stored.credential.clone(),
                };
                devices::update_passkey(&mut tx, stored.uuid, &text).await?;
            }
            Err(e) => return Ok(fail(StatusCode::BAD_REQUEST, e.to_string())),
        }
        sessions::mark_authenticated(&mut tx, current.session.uuid).await?;
        gatehouse_store::commit(tx).await?;
        Ok(Json(json!({"location": next})).into_response())
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "passkey re-authentication failed");
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The passkey could not be checked; try again.",
        )
    })
}
