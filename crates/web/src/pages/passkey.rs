//! Passkey ceremonies in the browser: adding a passkey on the user page (only with a recent
//! proof of another factor, [`super::reauth`]) and logging in with one from the identification
//! stage. The pages post JSON to these endpoints from a few lines of
//! script (WebAuthn needs JavaScript); everything else on the pages works without it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_core::secret;
use gatehouse_flow::keep::{Found, Kept};
use gatehouse_flow::Outcome;
use gatehouse_store::devices::{self, DeviceKind};
use gatehouse_store::users;
use serde::Deserialize;
use serde_json::{json, Value};

use super::flow::{flow_error, forget, load, save, Call};
use super::{wide_page, Template};
use crate::error::ApiError;
use crate::passkeys::credential_key;
use crate::session::{self, read_cookie, set_cookie, SESSION_COOKIE};
use crate::AppState;

#[derive(Deserialize)]
struct Ceremony {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    credential: Value,
    #[serde(default)]
    name: String,
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn parse(body: &Bytes) -> Result<Ceremony, String> {
    serde_json::from_slice(body).map_err(|e| format!("unreadable request: {e}"))
}

/// A ceremony request of a flow page: its body, and the flow run in the cookie, whose
/// anti-forgery token the body must carry.
async fn flow_run(call: &Call, body: &Bytes) -> Result<(Ceremony, Kept), Response> {
    let request = parse(body).map_err(|message| fail(StatusCode::BAD_REQUEST, message))?;
    let csrf = request.csrf.as_str();
    let unavailable = |e: ApiError| fail(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let mut conn = call
        .state
        .store
        .conn()
        .await
        .map_err(|e| unavailable(e.into()))?;
    let flow = gatehouse_store::flows::find_by_slug(&mut conn, &call.slug)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            fail(
                StatusCode::NOT_FOUND,
                format!("no flow named `{}`", call.slug),
            )
        })?;
    let Found::Run(kept) = load(&mut conn, &call.state, &call.headers, Some(flow.uuid))
        .await
        .map_err(unavailable)?
    else {
        return Err(fail(
            StatusCode::CONFLICT,
            "This login page expired; reload it and try again.",
        ));
    };
    if !secret::constant_time_eq(csrf, &kept.run.csrf) {
        return Err(fail(
            StatusCode::FORBIDDEN,
            "The request did not come from this login page (security token missing or wrong).",
        ));
    }
    Ok((request, *kept))
}

/// Starts a passwordless login for the flow run in the cookie.
pub(super) async fn login_begin(call: Call, body: Bytes) -> Response {
    let (_, kept) = match flow_run(&call, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match call
        .state
        .passkeys
        .start_login(&secret::token_hash(kept.id()))
    {
        Ok(options) => Json(options).into_response(),
        Err(e) => fail(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Verifies a passwordless login and moves the flow on; answers where the browser goes next.
pub(super) async fn login_finish(call: Call, body: Bytes) -> Response {
    let (request, mut kept) = match flow_run(&call, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let result: Result<Response, ApiError> = async {
        let passkeys = &call.state.passkeys;
        let (handle, credential_id, credential) = match passkeys.identify(&request.credential) {
            Ok(found) => found,
            Err(e) => return Ok(fail(StatusCode::BAD_REQUEST, e.to_string())),
        };
        let mut tx = call.state.store.begin().await?;
        let stored =
            devices::passkey_by_credential(&mut tx, &credential_key(&credential_id)).await?;
        let owner = match &stored {
            Some(p) => Some(users::get(&mut tx, p.user).await?),
            None => None,
        };
        let (Some(stored), Some(user)) = (stored, owner.filter(|u| u.uuid == handle)) else {
            return Ok(fail(
                StatusCode::BAD_REQUEST,
                "This passkey is not registered here.",
            ));
        };
        let passkey: webauthn_rs::prelude::Passkey = serde_json::from_str(&stored.credential)
            .map_err(|e| ApiError::Internal(format!("stored passkey unreadable: {e}")))?;
        match passkeys.finish_login(&secret::token_hash(kept.id()), &credential, passkey) {
            Ok(Some(updated)) => {
                let text = serde_json::to_string(&updated)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                devices::update_passkey(&mut tx, stored.uuid, &text).await?;
            }
            // Same credential, but the login is its latest use.
            Ok(None) => devices::update_passkey(&mut tx, stored.uuid, &stored.credential).await?,
            Err(e) => return Ok(fail(StatusCode::BAD_REQUEST, e.to_string())),
        }
        let outcome = call
            .state
            .engine
            .passkey_login(&mut tx, &mut kept.run, &user, &call.req)
            .await
            .map_err(flow_error)?;
        let response = answer(&mut tx, &call, &mut kept, outcome).await?;
        gatehouse_store::commit(tx).await?;
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "passkey login failed");
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The passkey login could not be completed; try again.",
        )
    })
}

/// Where the page's script sends the browser after a ceremony moved the flow on, with the
/// cookie a new session needs.
async fn answer(
    tx: &mut gatehouse_store::Conn,
    call: &Call,
    kept: &mut Kept,
    outcome: Outcome,
) -> Result<Response, ApiError> {
    let secure = session::secure(&call.state);
    Ok(match outcome {
        Outcome::LoggedIn {
            session_key,
            max_age,
            redirect,
        } => {
            call.state.metrics.logins.inc();
            forget(tx, &call.state, kept).await?;
            let mut r = Json(json!({"location": redirect})).into_response();
            r.headers_mut().append(
                SET_COOKIE,
                set_cookie(SESSION_COOKIE, &session_key, max_age, secure),
            );
            r
        }
        Outcome::Finished { redirect } | Outcome::LoggedOut { redirect } => {
            Json(json!({"location": redirect})).into_response()
        }
        Outcome::Show { .. } | Outcome::Invalid { .. } => {
            let cookie = save(tx, &call.state, kept).await?;
            let mut r =
                Json(json!({"location": format!("/if/flow/{}/", call.slug)})).into_response();
            r.headers_mut().append(SET_COOKIE, cookie);
            r
        }
        Outcome::Denied { message } => fail(StatusCode::FORBIDDEN, message),
    })
}

/// Starts making the passkey of a passkey-only sign-up: its user handle is the UUID the new
/// account will have.
pub(super) async fn enroll_begin(call: Call, body: Bytes) -> Response {
    let (_, kept) = match flow_run(&call, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let run = &kept.run;
    let Some(enrollment) = &run.passkey_enrollment else {
        return fail(
            StatusCode::CONFLICT,
            "This sign-up did not ask for a passkey; reload the page.",
        );
    };
    let text = |k: &str| {
        run.prompt_data
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let username = Some(text("username"))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| text("email"));
    let display = Some(text("name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| username.clone());
    match call.state.passkeys.start_registration(
        &secret::token_hash(kept.id()),
        enrollment.user,
        &username,
        &display,
        Vec::new(),
    ) {
        Ok(options) => Json(options).into_response(),
        Err(e) => fail(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Keeps the passkey the browser made for a sign-up and moves the flow on (the user_write stage
/// stores it with the new account).
pub(super) async fn enroll_finish(call: Call, body: Bytes) -> Response {
    let (request, mut kept) = match flow_run(&call, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let passkey = match call
        .state
        .passkeys
        .finish_registration(&secret::token_hash(kept.id()), &request.credential)
    {
        Ok(p) => p,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let result: Result<Response, ApiError> = async {
        let text =
            serde_json::to_string(&passkey).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut tx = call.state.store.begin().await?;
        let outcome = call
            .state
            .engine
            .passkey_enrolled(
                &mut tx,
                &mut kept.run,
                credential_key(passkey.cred_id()),
                text,
                &call.req,
            )
            .await
            .map_err(flow_error)?;
        let response = answer(&mut tx, &call, &mut kept, outcome).await?;
        gatehouse_store::commit(tx).await?;
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "passkey sign-up failed");
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The sign-up could not be completed; try again.",
        )
    })
}

/// The passkeys page: the user's passkeys and the button that adds one.
#[derive(Template)]
#[template(path = "passkeys.html")]
struct PasskeysBody<'a> {
    /// Whether passkeys work on this server (its external URL has a host name).
    available: bool,
    passkeys: &'a [devices::Passkey],
    csrf: &'a str,
}

/// The page where a logged-in user adds a passkey.
pub async fn register_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Ok(Some(current)) = session::current(&state, &headers).await else {
        return super::user::login_redirect();
    };
    let csrf = super::user::csrf_token(&headers);
    let mut conn = match state.store.conn().await {
        Ok(c) => c,
        Err(_) => {
            return super::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database is unavailable.",
                "Try again shortly.",
            )
        }
    };
    let existing = devices::passkeys_of(&mut conn, current.user.id)
        .await
        .unwrap_or_default();
    let body = PasskeysBody {
        available: state.passkeys.available(),
        passkeys: &existing,
        csrf: &csrf,
    };
    wide_page(StatusCode::OK, "Passkeys", &body)
}

/// The session adding a passkey and the ceremony's name: refused without the page's
/// anti-forgery token, or without a recent proof of a factor (a stolen cookie alone must not
/// add a way in).
async fn registering(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(session::Current, String), Response> {
    let current = match session::current(state, headers).await {
        Ok(Some(c)) => c,
        _ => return Err(fail(StatusCode::UNAUTHORIZED, "Log in first.")),
    };
    let key = read_cookie(headers, SESSION_COOKIE).unwrap_or_default();
    if !super::user::csrf_accepted(headers, csrf) {
        return Err(fail(
            StatusCode::FORBIDDEN,
            "The request did not come from your user page (security token missing or wrong).",
        ));
    }
    if !super::reauth::recent(state, &current) {
        return Err(super::reauth::needed_json("/if/user/passkeys/"));
    }
    Ok((current, secret::token_hash(key)))
}

/// Starts adding a passkey for the logged-in user.
pub async fn register_begin(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match parse(&body) {
        Ok(r) => r,
        Err(message) => return fail(StatusCode::BAD_REQUEST, message),
    };
    let (current, ceremony) = match registering(&state, &headers, &request.csrf).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let existing: Vec<webauthn_rs::prelude::Passkey> = match state.store.conn().await {
        Ok(mut conn) => devices::passkeys_of(&mut conn, current.user.id)
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|p| serde_json::from_str(&p.credential).ok())
            .collect(),
        Err(_) => {
            return fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable.",
            )
        }
    };
    let u = &current.user;
    let display = if u.fields.name.is_empty() {
        &u.fields.username
    } else {
        &u.fields.name
    };
    match state.passkeys.start_registration(
        &ceremony,
        u.uuid,
        &u.fields.username,
        display,
        existing,
    ) {
        Ok(options) => Json(options).into_response(),
        Err(e) => fail(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// Stores the passkey the browser created.
pub async fn register_finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match parse(&body) {
        Ok(r) => r,
        Err(message) => return fail(StatusCode::BAD_REQUEST, message),
    };
    let (current, ceremony) = match registering(&state, &headers, &request.csrf).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let name: String = request
        .name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let name = if name.is_empty() {
        "Passkey".to_owned()
    } else {
        name
    };
    let passkey = match state
        .passkeys
        .finish_registration(&ceremony, &request.credential)
    {
        Ok(p) => p,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let result: Result<(), ApiError> = async {
        let text =
            serde_json::to_string(&passkey).map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut tx = state.store.begin().await?;
        let added = devices::add_passkey(
            &mut tx,
            current.user.id,
            &name,
            &credential_key(passkey.cred_id()),
            &text,
        )
        .await?;
        if let Some(device) = devices::device(&mut tx, DeviceKind::Passkey, added.id).await? {
            devices::audit(
                &mut tx,
                "model_created",
                "gatehouse.user",
                &current.user,
                &device,
                None,
            )
            .await?;
        }
        gatehouse_store::commit(tx).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "storing a passkey failed");
            fail(
                StatusCode::BAD_REQUEST,
                "The passkey could not be stored (is it already registered?).",
            )
        }
    }
}
