//! `/if/user/`: what a logged-in user may open (applications whose policy bindings pass), their
//! sessions, each revocable, and their ways to sign in: passkeys and authenticator apps, listed
//! with a remove button. Adding or removing one needs a recent proof ([`super::reauth`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use gatehouse_core::secret;
use gatehouse_flow::policy::{self, Context, Verdict};
use gatehouse_flow::throttle::{retry_message, Attempt};
use gatehouse_store::devices::{self, DeviceKind};
use gatehouse_store::providers::ProviderKind;
use gatehouse_store::{applications, providers, sessions, sql, users, Conn, Filter, ListSpec};
use serde::Deserialize;
use uuid::Uuid;

use super::{error_page, page, reauth, wide_page, Hint, Template};
use crate::error::ApiError;
use crate::session::{self, Current};
use crate::AppState;

/// The user-page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/if/user/", get(show))
        .route("/if/user/sessions/{uuid}/revoke", post(revoke))
        .route("/if/user/sources/{id}/remove", post(remove_source))
        .route("/if/user/totp/", get(totp_form).post(totp_confirm))
        .route("/if/user/devices/{kind}/{id}/remove", post(remove_device))
        .route(
            super::reauth::PATH,
            get(super::reauth::form).post(super::reauth::confirm),
        )
        .route(
            "/if/user/reauth/passkey/begin",
            post(super::reauth::passkey_begin),
        )
        .route(
            "/if/user/reauth/passkey/finish",
            post(super::reauth::passkey_finish),
        )
        .route(
            "/if/user/password/",
            get(password_form).post(password_change),
        )
        .route("/if/user/passkeys/", get(super::passkey::register_page))
        .route(
            "/if/user/passkeys/begin",
            post(super::passkey::register_begin),
        )
        .route(
            "/if/user/passkeys/finish",
            post(super::passkey::register_finish),
        )
}

/// The anti-forgery token of forms on pages of a session: derived from the session cookie, so
/// another site cannot know it.
pub fn csrf_token(headers: &HeaderMap) -> String {
    let session_key = session::read_cookie(headers, session::SESSION_COOKIE).unwrap_or_default();
    secret::token_hash(&format!("gatehouse-csrf:{session_key}"))
}

/// Whether `presented` is the anti-forgery token of the session these headers carry.
pub fn csrf_accepted(headers: &HeaderMap, presented: &str) -> bool {
    secret::constant_time_eq(presented, &csrf_token(headers))
}

/// The page for a user-page form whose anti-forgery token is missing or wrong; `back` is the
/// page to reload.
fn form_refused(back: &str) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Form not accepted",
        "The form did not come from your user page (its security token is missing or wrong).",
        Hint::link(back, "Reload the page").then(" and try again."),
    )
}

/// Sends a visitor without a session to the login flow, back here afterwards.
pub fn login_redirect() -> Response {
    (
        StatusCode::FOUND,
        [(
            LOCATION,
            "/if/flow/default-authentication-flow/?next=%2Fif%2Fuser%2F",
        )],
    )
        .into_response()
}

/// An application on the user page.
pub struct Tile {
    /// Its name.
    pub name: String,
    /// Where it opens; empty when it has no launch URL.
    pub launch_url: String,
    /// What it is.
    pub description: String,
}

/// Applications `current` may open, with their launch URLs.
pub async fn visible_applications(
    conn: &mut Conn,
    sealing: &gatehouse_store::SecretKey,
    current: &Current,
    req: &gatehouse_flow::RequestInfo,
) -> Result<Vec<Tile>, ApiError> {
    let spec = ListSpec {
        filters: vec![Filter::Equals("meta_hide", false.into())],
        ordering: vec![("name", false)],
        page: 1,
        page_size: 1000,
    };
    let mut out = Vec::new();
    for app in sql::list::<applications::Application>(conn, &spec)
        .await?
        .items
    {
        let ctx = Context {
            user: Some(&current.user),
            identifier: None,
            request: req,
            flow: None,
            invitation: None,
        };
        let (verdict, _) =
            policy::evaluate_target(conn, app.uuid, app.fields.policy_engine_mode, ctx)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        if verdict != Verdict::Pass {
            continue;
        }
        let mut launch = app.fields.meta_launch_url.clone();
        if launch.is_empty() {
            if let Some(id) = app.fields.provider {
                if let ProviderKind::Proxy(x) = providers::get(conn, sealing, id).await?.fields.kind
                {
                    launch = x.external_host;
                }
            }
        }
        out.push(Tile {
            name: app.fields.name,
            launch_url: launch,
            description: app.fields.meta_description,
        });
    }
    Ok(out)
}

/// The user page (`templates/user.html`).
#[derive(Template)]
#[template(path = "user.html")]
struct UserBody<'a> {
    /// How the user is greeted: their name, else their username.
    name: &'a str,
    apps: &'a [Tile],
    /// Their passkeys and authenticator apps.
    devices: &'a [DeviceRow],
    sessions: &'a [sessions::Session],
    /// The session of this browser, marked in the list.
    this_session: &'a Uuid,
    csrf: &'a str,
    /// The login sources this user signs in with.
    connected: &'a [Connected],
    /// Login sources they could connect too.
    connectable: &'a [gatehouse_store::sources::Source],
}

/// A login source connected to the user, as the user page lists it.
struct Connected {
    /// The connection's id (the remove form's target).
    id: i64,
    /// The source's name.
    name: String,
    /// Whether removing it leaves the user another way to sign in.
    removable: bool,
}

/// A passkey or authenticator app as the user page lists it (`templates/devices.html`).
struct DeviceRow {
    device: devices::Device,
    /// Whether removing it leaves the user another way to sign in.
    removable: bool,
}

/// The rows of `user`'s devices, each saying whether it may be removed.
async fn device_rows(conn: &mut Conn, user: &users::User) -> Result<Vec<DeviceRow>, ApiError> {
    let mut rows = Vec::new();
    for device in devices::all_devices(conn, Some(user.id)).await? {
        let removable = !devices::is_last_way_in(conn, user, &device).await?;
        rows.push(DeviceRow { device, removable });
    }
    Ok(rows)
}

async fn show(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(current) = session::current(&state, &headers).await? else {
            return Ok(login_redirect());
        };
        let req = session::request_info(&headers, peer, &method, &uri);
        let mut conn = state.store.conn().await?;
        let apps = visible_applications(&mut conn, state.store.key(), &current, &req).await?;
        let my_sessions = sessions::of_user(&mut conn, current.user.id).await?;
        let rows = device_rows(&mut conn, &current.user).await?;
        let connections =
            gatehouse_store::sources::connections_of(&mut conn, current.user.id).await?;
        let ways = devices::sign_in_ways(&mut conn, &current.user).await?;
        let usable = gatehouse_store::sources::usable(&mut conn, state.store.key()).await?;
        let mut connected = Vec::new();
        for c in &connections {
            let name = gatehouse_store::sources::get(&mut conn, state.store.key(), c.source)
                .await?
                .fields
                .name;
            connected.push(Connected {
                id: c.id,
                name,
                removable: ways > 1,
            });
        }
        let connectable: Vec<_> = usable
            .into_iter()
            .filter(|s| !connections.iter().any(|c| c.source == s.uuid))
            .collect();
        let user = &current.user.fields;
        let body = UserBody {
            name: if user.name.is_empty() {
                &user.username
            } else {
                &user.name
            },
            apps: &apps,
            devices: &rows,
            sessions: &my_sessions,
            this_session: &current.session.uuid,
            csrf: &csrf_token(&headers),
            connected: &connected,
            connectable: &connectable,
        };
        Ok(wide_page(StatusCode::OK, "My applications", &body))
    }
    .await;
    or_went_wrong(result, "user page", "The page could not be built.")
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<Uuid>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(current) = session::current(&state, &headers).await? else { return Ok(login_redirect()) };
        if !csrf_accepted(&headers, &form.csrf) {
            return Ok(form_refused("/if/user/"));
        }
        let mut tx = state.store.begin().await?;
        let target = sql::find::<sessions::Session>(&mut tx, "uuid", uuid.into()).await?;
        match target {
            Some(s) if s.user == current.user.id => {
                sessions::revoke(&mut tx, s.uuid).await?;
                gatehouse_store::events::record(
                    &mut tx,
                    "logout",
                    "gatehouse.user",
                    serde_json::json!({"pk": current.user.id, "username": current.user.fields.username}),
                    serde_json::json!({"revoked_session": s.uuid}),
                    None,
                )
                .await?;
            }
            _ => {
                return Ok(error_page(StatusCode::NOT_FOUND, "No such session", "That session does not exist or is not yours.", Hint::link("/if/user/", "Back")))
            }
        }
        gatehouse_store::commit(tx).await?;
        state.changed();
        Ok((StatusCode::SEE_OTHER, [(LOCATION, "/if/user/")]).into_response())
    }
    .await;
    or_went_wrong(
        result,
        "revoking a session",
        "The session could not be revoked.",
    )
}

/// Removes one of the user's login-source connections, unless it is their only way to sign in.
async fn remove_source(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(current) = session::current(&state, &headers).await? else {
            return Ok(login_redirect());
        };
        if !csrf_accepted(&headers, &form.csrf) {
            return Ok(form_refused("/if/user/"));
        }
        let mut tx = state.store.begin().await?;
        let mine = gatehouse_store::sources::connections_of(&mut tx, current.user.id).await?;
        let Some(target) = mine.iter().find(|c| c.id == id) else {
            return Ok(error_page(
                StatusCode::NOT_FOUND,
                "No such connection",
                "That login source is not connected to your account.",
                Hint::link("/if/user/", "Back"),
            ));
        };
        if devices::sign_in_ways(&mut tx, &current.user).await? < 2 {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                "Still needed",
                "This login source is your only way to sign in, so it stays connected.",
                Hint::link("/if/user/passkeys/", "Add a passkey")
                    .then(" or connect another login source first, then remove this one."),
            ));
        }
        gatehouse_store::sources::disconnect(&mut tx, target.id).await?;
        gatehouse_store::events::record(
            &mut tx,
            "source_unlinked",
            "gatehouse.user",
            serde_json::json!({"pk": current.user.id, "username": current.user.fields.username}),
            serde_json::json!({"source": target.source}),
            None,
        )
        .await?;
        gatehouse_store::commit(tx).await?;
        Ok((StatusCode::SEE_OTHER, [(LOCATION, "/if/user/")]).into_response())
    }
    .await;
    or_went_wrong(
        result,
        "removing a login source",
        "The login source could not be removed.",
    )
}

/// Removes one of the user's passkeys or authenticator apps: only with a recent proof, and
/// never their last way to sign in.
async fn remove_device(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((kind, id)): Path<(String, i64)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(current) = session::current(&state, &headers).await? else {
            return Ok(login_redirect());
        };
        if !csrf_accepted(&headers, &form.csrf) {
            return Ok(form_refused("/if/user/"));
        }
        if !reauth::recent(&state, &current) {
            return Ok(reauth::needed_page("/if/user/"));
        }
        let mut tx = state.store.begin().await?;
        let found = match DeviceKind::from_segment(&kind) {
            Some(kind) => devices::device(&mut tx, kind, id).await?,
            None => None,
        };
        let Some(device) = found.filter(|d| d.user == current.user.id) else {
            return Ok(error_page(
                StatusCode::NOT_FOUND,
                "No such device",
                "That passkey or authenticator app does not exist or is not yours.",
                Hint::link("/if/user/", "Back"),
            ));
        };
        if devices::is_last_way_in(&mut tx, &current.user, &device).await? {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                "Still needed",
                "This passkey is your only way to sign in, so it stays.",
                Hint::link("/if/user/passkeys/", "Add another passkey")
                    .then(" or connect a login source first, then remove this one."),
            ));
        }
        devices::remove(&mut tx, device.kind, device.id).await?;
        devices::audit(
            &mut tx,
            "model_deleted",
            "gatehouse.user",
            &current.user,
            &device,
            Some(peer.ip().to_string()),
        )
        .await?;
        gatehouse_store::commit(tx).await?;
        Ok((StatusCode::SEE_OTHER, [(LOCATION, "/if/user/")]).into_response())
    }
    .await;
    or_went_wrong(
        result,
        "removing a device",
        "The device could not be removed.",
    )
}

#[derive(Deserialize)]
struct TotpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    code: String,
}

/// Setting up an authenticator app (`templates/totp.html`).
#[derive(Template)]
#[template(path = "totp.html")]
struct TotpBody<'a> {
    /// The QR code of the `otpauth://` URI, as base64 PNG.
    qr: String,
    /// The key, base32, also for typing in by hand.
    secret: &'a str,
    csrf: &'a str,
    /// Why the last code was not accepted.
    error: Option<&'a str>,
}

fn totp_page<'a>(
    user: &str,
    secret_b32: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
) -> Result<TotpBody<'a>, ApiError> {
    use base64::Engine;
    let totp = totp_rs::Builder::new()
        .with_secret(
            totp_rs::Secret::try_from_base32(secret_b32)
                .map_err(|e| ApiError::Internal(format!("{e:?}")))?,
        )
        .with_issuer(Some("Gatehouse"))
        .with_account_name(user)
        .build()
        .map_err(|e| ApiError::Internal(format!("{e:?}")))?;
    let png = totp
        .to_qr_png()
        .map_err(|e| ApiError::Internal(format!("{e:?}")))?;
    Ok(TotpBody {
        qr: base64::engine::general_purpose::STANDARD.encode(png),
        secret: secret_b32,
        csrf,
        error,
    })
}

async fn totp_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(current) = session::current(&state, &headers).await? else {
            return Ok(login_redirect());
        };
        if !reauth::recent(&state, &current) {
            let to = reauth::url("/if/user/totp/");
            return Ok((StatusCode::SEE_OTHER, [(LOCATION, to.as_str())]).into_response());
        }
        let secret = totp_rs::Secret::generate().to_base32();
        let csrf = csrf_token(&headers);
        let body = totp_page(&current.user.fields.username, &secret, &csrf, None)?;
        Ok(wide_page(StatusCode::OK, "Authenticator app", &body))
    }
    .await;
    or_went_wrong(
        result,
        "TOTP set-up page",
        "The set-up page could not be built.",
    )
}

/// An authenticator app was added (`templates/totp_added.html`).
#[derive(Template)]
#[template(path = "totp_added.html")]
struct TotpAdded<'a> {
    /// Recovery codes, shown only now; none after the first authenticator.
    codes: &'a [String],
}

/// How many recovery codes a user gets with their first authenticator.
const RECOVERY_CODES: usize = 10;

async fn totp_confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<TotpForm>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(current) = session::current(&state, &headers).await? else { return Ok(login_redirect()) };
        if !csrf_accepted(&headers, &form.csrf) {
            return Ok(error_page(
                StatusCode::FORBIDDEN,
                "Form not accepted",
                "The form did not come from your user page (its security token is missing or wrong).",
                Hint::link("/if/user/totp/", "Start the set-up again").then("."),
            ));
        }
        if !reauth::recent(&state, &current) {
            return Ok(reauth::needed_page("/if/user/totp/"));
        }
        let Ok(totp) = gatehouse_flow::totp_for(&form.secret) else {
            return Ok(error_page(StatusCode::BAD_REQUEST, "Invalid key", "secret: the key is not valid base32.", Hint::link("/if/user/totp/", "Start again").then(".")));
        };
        let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(step) = totp.check_current(&code) else {
            let body = totp_page(&current.user.fields.username, &form.secret, &form.csrf, Some("That code is not right; check the time on your device and try again."))?;
            return Ok(wide_page(StatusCode::BAD_REQUEST, "Authenticator app", &body));
        };
        let mut tx = state.store.begin().await?;
        let first = devices::devices(&mut tx, DeviceKind::Totp, Some(current.user.id)).await?.is_empty();
        let added = devices::add_totp(&mut tx, state.store.key(), current.user.id, DeviceKind::Totp.label(), &form.secret, i64::try_from(step).unwrap_or(i64::MAX)).await?;
        if let Some(device) = devices::device(&mut tx, DeviceKind::Totp, added.id).await? {
            devices::audit(&mut tx, "model_created", "gatehouse.user", &current.user, &device, Some(peer.ip().to_string())).await?;
        }
        let codes: Vec<String> = if first { (0..RECOVERY_CODES).map(|_| secret::new_recovery_code()).collect() } else { Vec::new() };
        if first {
            let hashes: Vec<String> = codes.iter().map(|c| secret::token_hash(c)).collect();
            devices::set_recovery_codes(&mut tx, current.user.id, &hashes).await?;
        }
        gatehouse_store::commit(tx).await?;
        Ok(page(StatusCode::OK, "Authenticator app added", &TotpAdded { codes: &codes }))
    }
    .await;
    or_went_wrong(
        result,
        "TOTP confirmation",
        "The authenticator could not be saved.",
    )
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_repeat: String,
}

/// Changing one's password (`templates/password.html`).
#[derive(Template)]
#[template(path = "password.html")]
struct PasswordBody<'a> {
    csrf: &'a str,
    /// Why the last attempt was not accepted.
    error: Option<&'a str>,
}

/// The password was changed (`templates/password_changed.html`): other browsers were logged
/// out, and the user's passkeys and authenticator apps are listed to check, each removable at
/// once (the change was a fresh proof). They stay: a password change is often routine, and
/// removing a second factor because the first changed would weaken the account; if the password
/// leaked, a device someone else added shows up here.
#[derive(Template)]
#[template(path = "password_changed.html")]
struct PasswordChanged<'a> {
    devices: &'a [DeviceRow],
    csrf: &'a str,
}

async fn password_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::current(&state, &headers).await {
        Ok(Some(_)) => page(
            StatusCode::OK,
            "Change your password",
            &PasswordBody {
                csrf: &csrf_token(&headers),
                error: None,
            },
        ),
        _ => login_redirect(),
    }
}

async fn password_change(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(current) = session::current(&state, &headers).await? else {
            return Ok(login_redirect());
        };
        let csrf = csrf_token(&headers);
        if !secret::constant_time_eq(&form.csrf, &csrf) {
            return Ok(form_refused("/if/user/password/"));
        }
        let retry = |message: &str, status: StatusCode| {
            page(
                status,
                "Change your password",
                &PasswordBody {
                    csrf: &csrf,
                    error: Some(message),
                },
            )
        };
        if form.password.chars().count() < 8 || form.password.len() > 1024 {
            return Ok(retry(
                "password: the new password must have 8 to 1024 characters.",
                StatusCode::BAD_REQUEST,
            ));
        }
        if form.password != form.password_repeat {
            return Ok(retry(
                "The two new passwords differ.",
                StatusCode::BAD_REQUEST,
            ));
        }
        let attempt = Attempt::new(Some(current.user.id), "", &peer.ip().to_string());
        if let Err(wait) = state.engine.throttle.check(&attempt) {
            return Ok(retry(&retry_message(wait), StatusCode::TOO_MANY_REQUESTS));
        }
        let mut tx = state.store.begin().await?;
        if !reauth::password_matches(&mut tx, current.user.id, &form.current).await? {
            state.engine.throttle.failed(&attempt);
            return Ok(retry(
                "The current password is not right.",
                StatusCode::BAD_REQUEST,
            ));
        }
        let hash = crate::api::users::hash_password(form.password.clone()).await?;
        gatehouse_store::users::set_password_hash(&mut tx, current.user.id, Some(&hash)).await?;
        sessions::mark_authenticated(&mut tx, current.session.uuid).await?;
        // Other browsers logged in with the old password are logged out.
        for other in sessions::of_user(&mut tx, current.user.id).await? {
            if other.uuid != current.session.uuid {
                sessions::revoke(&mut tx, other.uuid).await?;
            }
        }
        gatehouse_store::events::record(
            &mut tx,
            "password_set",
            "gatehouse.user",
            serde_json::json!({"pk": current.user.id, "username": current.user.fields.username}),
            serde_json::json!({}),
            Some(peer.ip().to_string()),
        )
        .await?;
        let rows = device_rows(&mut tx, &current.user).await?;
        gatehouse_store::commit(tx).await?;
        state.changed();
        Ok(page(
            StatusCode::OK,
            "Password changed",
            &PasswordChanged {
                devices: &rows,
                csrf: &csrf,
            },
        ))
    }
    .await;
    or_went_wrong(
        result,
        "password change",
        "The password could not be changed.",
    )
}

/// A user-page handler's answer, or, when it failed inside, a 500 page saying `what` could not
/// be done (the cause goes to the log as `doing failed`, never to the visitor).
fn or_went_wrong(result: Result<Response, ApiError>, doing: &str, what: &str) -> Response {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "{doing} failed");
        error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            what,
            "Try again in a moment.",
        )
    })
}
