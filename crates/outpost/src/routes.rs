//! The outpost's HTTP surface, Authentik's `/outpost.goauthentik.io/` routes, so existing
//! ingress manifests work unchanged. nginx asks `auth/nginx` on every request and gets 200
//! with identity headers or 401 (which it turns into a redirect to `start`); Traefik, Caddy
//! and Envoy ask their endpoints and get 302 straight to the login. An unknown host gets 403
//! with the host and the fix, never a 404 that nginx would turn into a bare 500 (T5). Proxy
//! mode ([`proxy_mode`]) stands in front of every other route.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::header::{LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use gatehouse_core::kinds::ProxyMode;
use gatehouse_html::{confirm_page, error_page, Hint};
use gatehouse_proto::outposts::{AppPassword, LoginBegin, LoginComplete, SessionCheck, SignOut};
use serde_json::json;

use crate::backend::Error;
use crate::cache::{ProxyProvider, SessionView};
use crate::hosts::authority;
use crate::request::{
    basic_credentials, client_info, has_cookie, header, read_cookie, request_host,
};
use crate::{break_glass, redirect, Outpost};

type Shared = State<Arc<Outpost>>;

/// The outpost routes, for a router whose state is the outpost.
pub fn router() -> Router<Arc<Outpost>> {
    Router::new()
        .route(
            "/outpost.goauthentik.io/ping",
            any(|| async { StatusCode::NO_CONTENT }),
        )
        .route("/outpost.goauthentik.io/auth/nginx", any(nginx))
        .route("/outpost.goauthentik.io/auth/traefik", any(forwarded))
        .route("/outpost.goauthentik.io/auth/caddy", any(forwarded))
        .route("/outpost.goauthentik.io/auth/envoy", any(envoy))
        .route("/outpost.goauthentik.io/auth/envoy/{*path}", any(envoy))
        .route("/outpost.goauthentik.io/start", get(start))
        .route("/outpost.goauthentik.io/callback", get(callback))
        .route(
            "/outpost.goauthentik.io/sign_out",
            get(confirm_sign_out).post(sign_out),
        )
}

/// Which proxy asks, and so where the original URL comes from.
#[derive(Debug, Clone, Copy)]
enum Endpoint<'a> {
    /// nginx: `X-Original-URL`, or `X-Original-URI` with the host; answers 401 for a login.
    Nginx,
    /// Traefik and Caddy: `X-Forwarded-Proto`, `-Host`, `-Uri`; answers 302 for a login.
    Forwarded,
    /// The path is known directly and `Host` names the site: Envoy's ext_authz (the path after
    /// `/auth/envoy`) and proxy mode (the request itself); answers 302 for a login.
    Direct(&'a str),
}

const NGINX_NEEDS: &str = "The nginx endpoint needs X-Original-URL or X-Original-URI: add `proxy_set_header X-Original-URL $scheme://$http_host$request_uri;` to the auth location.";
const FORWARDED_NEEDS: &str = "This endpoint needs X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri (Traefik and Caddy send them).";
const NO_HOST: &str = "The request has neither X-Forwarded-Host nor Host.";

/// The URL the visitor asked for, from the proxy's headers.
fn original_url(
    headers: &HeaderMap,
    p: &ProxyProvider,
    host: &str,
    endpoint: Endpoint<'_>,
) -> Result<String, &'static str> {
    let scheme =
        header(headers, "x-forwarded-proto").unwrap_or(if p.secure() { "https" } else { "http" });
    match endpoint {
        Endpoint::Direct(path) => {
            let path = if path.starts_with('/') { path } else { "/" };
            Ok(format!("{scheme}://{host}{path}"))
        }
        Endpoint::Nginx => match (
            header(headers, "x-original-url"),
            header(headers, "x-original-uri"),
        ) {
            (Some(full), _) => Ok(full.to_owned()),
            (None, Some(path)) => Ok(format!("{scheme}://{host}{path}")),
            (None, None) => Err(NGINX_NEEDS),
        },
        Endpoint::Forwarded => match header(headers, "x-forwarded-uri") {
            Some(uri) => Ok(format!("{scheme}://{host}{uri}")),
            None => Err(FORWARDED_NEEDS),
        },
    }
}

/// The configuration error for a request without the headers its endpoint needs (checked
/// cheaply on every request; the URL itself is built only when needed).
fn check_forwarded(headers: &HeaderMap, endpoint: Endpoint<'_>) -> Result<(), &'static str> {
    let has = |name: &str| headers.contains_key(name);
    match endpoint {
        Endpoint::Nginx if !(has("x-original-url") || has("x-original-uri")) => Err(NGINX_NEEDS),
        Endpoint::Forwarded if !has("x-forwarded-uri") => Err(FORWARDED_NEEDS),
        _ => Ok(()),
    }
}

/// The provider's session cookie with `value`, or its deletion when `max_age` is 0.
fn cookie(p: &ProxyProvider, value: &str, max_age: i64) -> HeaderValue {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}",
        p.cookie
    );
    if p.secure() {
        c.push_str("; Secure");
    }
    if p.config.mode == ProxyMode::ForwardDomain && !p.config.cookie_domain.is_empty() {
        c.push_str(&format!(
            "; Domain={}",
            p.config.cookie_domain.trim_start_matches('.')
        ));
    }
    HeaderValue::from_str(&c)
        .unwrap_or_else(|_| HeaderValue::from_static("authentik_proxy_invalid=; Max-Age=0"))
}

/// What a forward-auth request decided.
enum Decision {
    Allow(Arc<SessionView>),
    Skip,
    Forbidden(String),
    Login { url: String, stale_cookie: bool },
}

/// A decision with the provider it was made for, or the answer already due (a configuration
/// error, an unknown host), or the backend's failure.
type Decided = Result<Result<(Decision, Arc<ProxyProvider>), Response>, Error>;

async fn decide(
    outpost: &Arc<Outpost>,
    headers: &HeaderMap,
    peer: SocketAddr,
    endpoint: Endpoint<'_>,
) -> Decided {
    let Some(host) = request_host(headers) else {
        return Ok(Err(config_error(NO_HOST)));
    };
    let snap = outpost.snapshot().await?;
    let Some(p) = snap.select(host) else {
        let json = header(headers, "accept").is_some_and(|a| a.contains("json"));
        return Ok(Err(unknown_host(outpost, host, json)));
    };
    if let Err(message) = check_forwarded(headers, endpoint) {
        return Ok(Err(config_error(message)));
    }
    let url = || original_url(headers, p, host, endpoint);
    let decided = |decision| Ok(Ok((decision, p.clone())));
    if !p.skip.is_empty() && crate::skip::matches(p, &url().unwrap_or_default()) {
        return decided(Decision::Skip);
    }
    let settled = |view: Arc<SessionView>| {
        decided(match &view.allowed {
            Ok(()) => Decision::Allow(view.clone()),
            Err(message) => Decision::Forbidden(message.clone()),
        })
    };
    let check = |cookie, app_password| SessionCheck {
        provider: p.config.pk,
        cookie,
        app_password,
        client: client_info(headers, peer),
    };
    if p.config.intercept_header_auth {
        if let Some((username, password)) = basic_credentials(headers) {
            // Keyed by a hash: the cache never holds the password itself.
            let key = format!(
                "basic:{}:{}",
                p.config.pk,
                gatehouse_core::secret::token_hash(&format!("{username}:{password}"))
            );
            let app_password = AppPassword { username, password };
            if let Some(view) = outpost
                .session(&key, || check(None, Some(app_password)))
                .await?
                .filter(|v| v.provider == p.config.pk)
            {
                return settled(view);
            }
        }
    }
    if let Some(key) = read_cookie(headers, &p.cookie) {
        // A cookie value checked for another provider (copied under this provider's cookie
        // name) does not carry that verdict here.
        if let Some(view) = outpost
            .session(key, || check(Some(key.to_owned()), None))
            .await?
            .filter(|v| v.provider == p.config.pk)
        {
            return settled(view);
        }
    }
    match url() {
        Ok(url) => decided(Decision::Login {
            url,
            stale_cookie: has_cookie(headers, &p.cookie),
        }),
        Err(message) => Ok(Err(config_error(message))),
    }
}

/// Counts a decision by provider and outcome, and how long it took.
fn count(outpost: &Outpost, decided: &Decided, started: Instant) {
    outpost.metrics.decision_seconds.observe(started.elapsed());
    if decided.is_err() {
        outpost.metrics.decision_errors.inc();
    }
    if let Ok(Ok((decision, p))) = decided {
        let c = &p.counters;
        match decision {
            Decision::Allow(_) => c.allow.inc(),
            Decision::Skip => c.skip.inc(),
            Decision::Forbidden(_) => c.forbidden.inc(),
            Decision::Login { .. } => c.login.inc(),
        };
    }
}

async fn nginx(
    State(outpost): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let decided = decide(&outpost, &headers, peer, Endpoint::Nginx).await;
    count(&outpost, &decided, started);
    match decided {
        Ok(Ok((decision, p))) => match decision {
            Decision::Allow(view) => passed(view.headers.clone()),
            Decision::Skip => StatusCode::OK.into_response(),
            Decision::Forbidden(message) => (StatusCode::FORBIDDEN, message).into_response(),
            // No WWW-Authenticate: the browser must never see a Basic prompt; nginx turns
            // this 401 into its redirect to `start`.
            Decision::Login { stale_cookie, .. } => {
                // Throttled: the 401 sends the browser to `start`, which says so.
                if let Ok(Some(h)) = fallback(&outpost, &headers, peer).await {
                    return passed(h);
                }
                let mut r = StatusCode::UNAUTHORIZED.into_response();
                if stale_cookie {
                    r.headers_mut().append(SET_COOKIE, cookie(&p, "", 0));
                }
                r
            }
        },
        Ok(Err(r)) => r,
        // nginx shows its own 500 for a failed auth subrequest; a 401 instead sends the
        // browser to `start`, which explains the outage (and still lets nobody through).
        Err(e) => {
            tracing::error!(error = %e, "forward auth could not reach its backend");
            match fallback(&outpost, &headers, peer).await {
                Ok(Some(h)) => passed(h),
                _ => StatusCode::UNAUTHORIZED.into_response(),
            }
        }
    }
}

async fn forwarded(
    State(outpost): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    redirecting(&outpost, peer, &headers, Endpoint::Forwarded).await
}

async fn envoy(
    State(outpost): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let rest = uri
        .path()
        .strip_prefix("/outpost.goauthentik.io/auth/envoy")
        .unwrap_or_default();
    let original = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    redirecting(&outpost, peer, &headers, Endpoint::Direct(&original)).await
}

async fn redirecting(
    outpost: &Arc<Outpost>,
    peer: SocketAddr,
    headers: &HeaderMap,
    endpoint: Endpoint<'_>,
) -> Response {
    match pass_or_answer(outpost, headers, peer, endpoint).await {
        Ok(identity) => passed(identity),
        Err(r) => r,
    }
}

/// Proxy mode, in front of every route: a request for the external host of a provider in
/// `proxy` mode (outpost paths aside) is decided like a Traefik request and, when allowed,
/// passed on to the provider's internal host. Other hosts, and every host while no provider is
/// in proxy mode, go on to the routes behind.
pub async fn proxy_mode(
    State(outpost): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/outpost.goauthentik.io/") {
        return next.run(req).await;
    }
    let Some(host) = request_host(req.headers()) else {
        return next.run(req).await;
    };
    let Ok(snap) = outpost.snapshot().await else {
        return next.run(req).await;
    };
    let Some(p) = snap.proxied.get(host).and_then(|id| snap.providers.get(id)) else {
        return next.run(req).await;
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |q| q.as_str())
        .to_owned();
    match pass_or_answer(&outpost, req.headers(), peer, Endpoint::Direct(&path)).await {
        Ok(identity) => {
            crate::reverse_proxy::forward(&outpost, &p.config, req, identity, peer).await
        }
        Err(answer) => answer,
    }
}

/// The decision for an endpoint that answers the browser itself (Traefik, Caddy, Envoy, proxy
/// mode): `Ok` with the headers to pass the request on with (none for a skipped path), or the
/// answer to send instead (403, the redirect to log in, the outage page or challenge).
async fn pass_or_answer(
    outpost: &Arc<Outpost>,
    headers: &HeaderMap,
    peer: SocketAddr,
    endpoint: Endpoint<'_>,
) -> Result<HeaderMap, Response> {
    let started = Instant::now();
    let decided = decide(outpost, headers, peer, endpoint).await;
    count(outpost, &decided, started);
    let failed = |e| async move {
        match fallback(outpost, headers, peer).await {
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(challenge_or_unavailable(outpost, e)),
            Err(wait) => Err(throttled(wait)),
        }
    };
    match decided {
        Ok(Ok((decision, p))) => match decision {
            Decision::Allow(view) => Ok(view.headers.clone()),
            Decision::Skip => Ok(HeaderMap::new()),
            Decision::Forbidden(message) => Err((StatusCode::FORBIDDEN, message).into_response()),
            Decision::Login { url, .. } => match begin_login(outpost, &p, &url).await {
                Ok(r) => Err(r),
                Err(e) => failed(e).await,
            },
        },
        Ok(Err(r)) => Err(r),
        Err(e) => failed(e).await,
    }
}

/// Where to send the browser after signing in: `rd` when it stays on the provider's host (or
/// its cookie domain), else the provider's external host.
fn return_target(p: &ProxyProvider, rd: &str) -> String {
    redirect::safe_return(
        rd,
        &p.config.external_host,
        p.config.mode,
        &p.config.cookie_domain,
    )
    .unwrap_or_else(|| p.config.external_host.clone())
}

/// Starts a login for `p` returning to `rd`: a pending session cookie and a redirect to the
/// IdP's authorize endpoint.
async fn begin_login(outpost: &Outpost, p: &ProxyProvider, rd: &str) -> Result<Response, Error> {
    let begin = LoginBegin {
        provider: p.config.pk,
        return_to: return_target(p, rd),
    };
    let begun = outpost.patiently(outpost.backend.begin(&begin)).await?;
    let mut r = (StatusCode::FOUND, [(LOCATION, begun.authorize_url)]).into_response();
    r.headers_mut()
        .append(SET_COOKIE, cookie(p, &begun.cookie, begun.max_age));
    Ok(r)
}

/// The provider serving the request's host, or the answer explaining why there is none.
async fn provider_for(
    outpost: &Arc<Outpost>,
    headers: &HeaderMap,
) -> Result<Arc<ProxyProvider>, Response> {
    let Some(host) = request_host(headers) else {
        return Err(config_error(NO_HOST));
    };
    let snap = outpost.snapshot().await.map_err(unavailable)?;
    match snap.select(host) {
        Some(p) => Ok(p.clone()),
        None => Err(unknown_host(outpost, host, false)),
    }
}

async fn start(
    State(outpost): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = match provider_for(&outpost, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let rd = q.get("rd").map(String::as_str).unwrap_or_default();
    match begin_login(&outpost, &p, rd).await {
        Ok(r) => r,
        Err(e) => break_glass_start(&outpost, &p, &headers, peer, rd)
            .await
            .unwrap_or_else(|| challenge_or_unavailable(&outpost, e)),
    }
}

/// `start` while degraded, for browsers behind nginx (whose auth subrequest cannot show them a
/// Basic prompt): valid break-glass credentials get a fallback cookie and go back to `rd`.
async fn break_glass_start(
    outpost: &Outpost,
    p: &ProxyProvider,
    headers: &HeaderMap,
    peer: SocketAddr,
    rd: &str,
) -> Option<Response> {
    let glass = outpost.break_glass.as_ref()?;
    if !outpost.is_degraded() {
        return None;
    }
    let grace = outpost.settings.grace;
    let user = match glass
        .basic_user(headers, &peer.ip().to_string(), grace)
        .await
    {
        break_glass::Attempt::Passed(user) => user,
        break_glass::Attempt::Refused => return None,
        break_glass::Attempt::Throttled(wait) => return Some(throttled(wait)),
    };
    let cookie = glass.cookie(&user, grace, p.secure())?;
    outpost.metrics.fallbacks.inc();
    tracing::warn!(user = %user, "break-glass sign-in while the backend is unreachable");
    let mut r = (StatusCode::FOUND, [(LOCATION, return_target(p, rd))]).into_response();
    r.headers_mut().append(SET_COOKIE, cookie);
    r.headers_mut()
        .insert("x-auth-fallback", HeaderValue::from_static("true"));
    Some(r)
}

async fn callback(
    State(outpost): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = match provider_for(&outpost, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let host = request_host(&headers).unwrap_or_default();
    let expected = authority(&p.config.external_host).unwrap_or_default();
    if host.to_ascii_lowercase() != expected && p.config.mode != ProxyMode::ForwardDomain {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Login landed on the wrong host",
            &format!("The login came back to `{host}`, but the provider's external host is `{expected}`."),
            "Set the provider's external_host to the URL users open (scheme, host and port), then log in again.",
        );
    }
    let stale = |why: &str| {
        let mut r = error_page(
            StatusCode::BAD_REQUEST,
            "Login could not be completed",
            why,
            Hint::link(&p.config.external_host, "Open the application again")
                .then(" to start a new login."),
        );
        r.headers_mut().append(SET_COOKIE, cookie(&p, "", 0));
        r
    };
    let Some(key) = read_cookie(&headers, &p.cookie) else {
        return stale("This browser has no login in progress for this application (cookies blocked, or the login started elsewhere).");
    };
    let param = |name: &str| q.get(name).cloned().unwrap_or_default();
    let complete = LoginComplete {
        provider: p.config.pk,
        cookie: key.to_owned(),
        state: param("state"),
        code: param("code"),
    };
    match outpost.patiently(outpost.backend.complete(&complete)).await {
        Ok(done) => match (done.return_to, done.cookie, done.refused) {
            // The session gets the server's fresh value, never the pending cookie's.
            (Some(target), Some(session), None) => {
                let mut r = (StatusCode::FOUND, [(LOCATION, target)]).into_response();
                r.headers_mut()
                    .append(SET_COOKIE, cookie(&p, &session, done.max_age));
                r
            }
            (_, _, refused) => stale(refused.as_deref().unwrap_or("The login was refused.")),
        },
        Err(e) => unavailable(e),
    }
}

/// The anti-forgery token of the sign-out form: bound to the session cookie, which another
/// site can neither read nor send along with its own POST (SameSite=Lax).
fn sign_out_token(headers: &HeaderMap, p: &ProxyProvider) -> String {
    let cookie = read_cookie(headers, &p.cookie).unwrap_or_default();
    gatehouse_core::secret::token_hash(&format!("gatehouse outpost sign-out\0{cookie}"))
}

/// `sign_out` on a GET (a link, or another site's image tag) only asks: the POST of its
/// button signs out (#13, low items). Authentik signs out on the GET; Keycloak asks too.
async fn confirm_sign_out(State(outpost): Shared, headers: HeaderMap) -> Response {
    let p = match provider_for(&outpost, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let token = sign_out_token(&headers, &p);
    confirm_page(
        "Sign out",
        &format!("Sign out of {}?", p.config.name),
        "/outpost.goauthentik.io/sign_out",
        &[("token", &token)],
        "Sign out",
    )
}

/// The sign-out form's fields.
#[derive(serde::Deserialize)]
struct SignOutForm {
    #[serde(default)]
    token: String,
}

async fn sign_out(
    State(outpost): Shared,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignOutForm>,
) -> Response {
    let p = match provider_for(&outpost, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !gatehouse_core::secret::constant_time_eq(&form.token, &sign_out_token(&headers, &p)) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Sign-out not confirmed",
            "The sign-out request did not come from this application's sign-out page.",
            Hint::link("/outpost.goauthentik.io/sign_out", "Open the sign-out page")
                .then(" and confirm there."),
        );
    }
    let request = SignOut {
        provider: p.config.pk,
        cookie: read_cookie(&headers, &p.cookie).map(str::to_owned),
    };
    let signed_out = outpost.patiently(outpost.backend.sign_out(&request)).await;
    // At once here; the change feed drops the user's other entries on every outpost.
    if let Some(key) = &request.cookie {
        outpost.forget(key);
    }
    match signed_out {
        Ok(out) => {
            let mut r = (StatusCode::FOUND, [(LOCATION, out.end_session_url)]).into_response();
            r.headers_mut().append(SET_COOKIE, cookie(&p, "", 0));
            r
        }
        Err(e) => unavailable(e),
    }
}

/// 200 carrying `identity` (the headers the proxy copies onto the request).
fn passed(identity: HeaderMap) -> Response {
    let mut r = StatusCode::OK.into_response();
    *r.headers_mut() = identity;
    r
}

/// While degraded, the headers to pass a break-glass user with (fallback cookie or Basic
/// credentials): marked `X-Auth-Fallback: true`, counted and logged. `Ok(None)` otherwise,
/// `Err` with the wait when wrong passwords are throttled.
async fn fallback(
    outpost: &Outpost,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Option<HeaderMap>, Duration> {
    let Some(glass) = outpost.break_glass.as_ref() else {
        return Ok(None);
    };
    if !outpost.is_degraded() {
        return Ok(None);
    }
    let user = match glass.cookie_user(headers) {
        Some(user) => user,
        None => match glass
            .basic_user(headers, &peer.ip().to_string(), outpost.settings.grace)
            .await
        {
            break_glass::Attempt::Passed(user) => user,
            break_glass::Attempt::Refused => return Ok(None),
            break_glass::Attempt::Throttled(wait) => return Err(wait),
        },
    };
    outpost.metrics.fallbacks.inc();
    tracing::warn!(user = %user, "break-glass access while the backend is unreachable");
    let mut h = HeaderMap::new();
    h.insert("x-auth-fallback", HeaderValue::from_static("true"));
    if let Ok(v) = HeaderValue::from_str(&user) {
        h.insert("x-authentik-username", v);
    }
    Ok(Some(h))
}

/// 429 for throttled break-glass attempts, with when to try again (no password was checked).
fn throttled(wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut r = error_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many wrong break-glass passwords",
        &format!("Break-glass sign-in from this address or for this account is paused for {seconds} s after several wrong passwords."),
        "Wait, then enter the break-glass credentials again. Administrators: the outpost logs every wrong attempt.",
    );
    r.headers_mut()
        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
    r
}

/// The answer when the backend is needed and cannot answer: 503 with a page that says so.
/// Never fail open: without an answer, nobody passes.
fn unavailable(e: Error) -> Response {
    tracing::error!(error = %e, "forward auth could not reach its backend");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable for a moment",
        "Gatehouse cannot reach its database, so it cannot sign you in right now. People who are already signed in keep their access for a while.",
        "Try again in a minute. Administrators: check the database (and, for a standalone outpost, the server) and the gatehouse_outpost_degraded metric.",
    )
}

/// While degraded with break-glass users configured, the Basic challenge (with the outage
/// page as its body, shown when the prompt is dismissed); the plain outage page otherwise.
fn challenge_or_unavailable(outpost: &Outpost, e: Error) -> Response {
    let mut r = unavailable(e);
    if outpost.break_glass.is_some() && outpost.is_degraded() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(break_glass::CHALLENGE),
        );
        r.headers_mut()
            .insert("x-auth-fallback", HeaderValue::from_static("true"));
    }
    r
}

fn unknown_host(outpost: &Outpost, host: &str, wants_json: bool) -> Response {
    outpost.metrics.unknown_hosts.inc();
    tracing::warn!(host, "forward auth for a host no proxy provider serves");
    let hint = format!(
        "No proxy provider has the external host `{host}`. Create one with external_host https://{host} (or a forward_domain provider whose cookie domain covers it), or send the right X-Forwarded-Host."
    );
    if wants_json {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "unknown_host", "host": host, "detail": hint})),
        )
            .into_response()
    } else {
        error_page(
            StatusCode::FORBIDDEN,
            "Unknown application",
            &format!("Gatehouse does not protect `{host}`."),
            hint.as_str(),
        )
    }
}

fn config_error(message: &str) -> Response {
    tracing::warn!(message, "forward auth request misses headers");
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "configuration", "detail": message})),
    )
        .into_response()
}
