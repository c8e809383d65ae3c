//! The embedded forward-auth outpost, on the server's own port, serving every proxy provider:
//! Authentik's `/outpost.goauthentik.io/` surface, so existing ingress manifests work
//! unchanged. nginx asks `auth/nginx` on every request and gets 200 with identity headers or
//! 401 (which it turns into a redirect to `start`); Traefik and Caddy ask their endpoints and
//! get 302 straight to the login. An unknown host gets 403 with the host and the fix, never a
//! 404 that nginx would turn into a bare 500 (T5).
//!
//! The provider table and each session are read from the database at most twice a second and
//! cached in between, so a valid session costs no database round-trip on most requests, and
//! revocation, deactivation, policy and configuration changes apply within a second. (A change
//! feed that evicts at once, as DESIGN.md describes, is the next step.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{HOST, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use chrono::Utc;
use gatehouse_core::kinds::{ProxyMode, SigningAlgorithm, TokenIntent};
use gatehouse_core::secret;
use gatehouse_flow::policy::{self, Context, Verdict};
use gatehouse_outpost::headers::{identity_headers, Identity, Meta};
use gatehouse_outpost::hosts::{authority, Route, Table};
use gatehouse_outpost::{cookie_name, redirect, CALLBACK};
use gatehouse_store::oauth::{self, Redeemed};
use gatehouse_store::providers::{Provider, ProviderKind, ProxySettings};
use gatehouse_store::{
    applications, groups, providers, proxy_sessions, tokens, users, Conn, Filter, ListSpec,
};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pages::{error_page, escape};
use crate::AppState;
use prometheus_client::metrics::counter::Counter;

/// How long cached providers and sessions are trusted before they are read again: half the
/// one second in which revocations and configuration changes must reach every outpost.
const REVALIDATE: Duration = Duration::from_millis(500);
/// How long a started login may take before its pending session expires.
const PENDING_MINUTES: i64 = 15;

/// One proxy provider as the outpost uses it.
#[derive(Debug, Clone)]
pub struct ProxyProvider {
    provider: Provider,
    cookie: String,
    counters: Counters,
    settings: ProxySettings,
    skip: Vec<regex::Regex>,
    validity: i64,
    app: Option<applications::Application>,
}

/// A provider's decision counters, resolved once per provider table.
#[derive(Debug, Clone)]
struct Counters {
    allow: Counter,
    skip: Counter,
    login: Counter,
    forbidden: Counter,
}

impl Counters {
    fn new(metrics: &Metrics, provider: &str) -> Counters {
        Counters {
            allow: metrics.decision(provider, "allow"),
            skip: metrics.decision(provider, "skip"),
            login: metrics.decision(provider, "login"),
            forbidden: metrics.decision(provider, "forbidden"),
        }
    }
}

/// Providers by id with the host table.
#[derive(Debug, Default)]
pub struct Snapshot {
    table: Table,
    providers: HashMap<i64, ProxyProvider>,
    /// Providers in proxy mode by the exact authority of their external host: only these
    /// hosts are answered by Gatehouse on the application's behalf.
    proxied: HashMap<String, i64>,
}

/// A session as the outpost checks it.
#[derive(Debug)]
struct SessionView {
    provider: i64,
    /// The identity headers, as the map an allowed answer carries (cloned, never rebuilt).
    headers: HeaderMap,
    allowed: Result<(), String>,
}

/// A cached answer from the database.
#[derive(Clone)]
struct Cached<T> {
    /// When a request last took it upon itself to read it again (or it was read).
    stamp: Instant,
    /// When the database last confirmed it: while the database is unreachable it is honoured
    /// until the grace period after this runs out.
    verified: Instant,
    value: T,
}

/// How a cached answer may serve a request now.
enum Usable {
    /// Confirmed within [`REVALIDATE`]: use it.
    Fresh,
    /// A little older (or the database is down and it is within the grace period): use it
    /// while one request reads it again in the background.
    WhileRevalidating,
    /// Too old to answer with: read it now.
    Reread,
}

impl<T> Cached<T> {
    /// How this answer may be used. Staleness stays bounded by [`STALE_LIMIT`] however sparse
    /// the traffic, so a revocation or a configuration change is seen within it.
    fn usable(&self, state: &AppState) -> Usable {
        let age = self.verified.elapsed();
        let degraded = state
            .outpost
            .degraded
            .load(std::sync::atomic::Ordering::Acquire);
        if age < REVALIDATE {
            Usable::Fresh
        } else if (degraded && age < state.settings.outpost_grace)
            || (!degraded && age < STALE_LIMIT)
        {
            Usable::WhileRevalidating
        } else {
            Usable::Reread
        }
    }

    fn fresh(value: T) -> Cached<T> {
        let now = Instant::now();
        Cached {
            stamp: now,
            verified: now,
            value,
        }
    }
}

/// What a request presents to be let in.
#[derive(Clone)]
enum Credential {
    /// The value of the provider's session cookie.
    Cookie(String),
    /// `Authorization: Basic` with a username and one of that user's app-password tokens, for
    /// a provider that intercepts the header (scripts and API clients behind forward auth).
    AppPassword {
        provider: i64,
        username: String,
        password: String,
    },
}

/// A cached session lookup (`None`: no valid session).
type CachedSession = Cached<Option<Arc<SessionView>>>;

/// The oldest answer a request may get while a fresher one is read in the background.
const STALE_LIMIT: Duration = Duration::from_secs(1);

/// How long a revalidating read may wait for the database before the cached answer is used
/// (within the grace period) or the request is refused.
const DATABASE_PATIENCE: Duration = Duration::from_secs(2);

/// The outpost's caches.
#[derive(Default)]
pub struct Outpost {
    /// Clients for proxy mode's upstreams.
    upstreams: crate::reverse_proxy::Upstreams,
    snapshot: RwLock<Option<Cached<Arc<Snapshot>>>>,
    sessions: RwLock<HashMap<String, CachedSession>>,
    /// Set while the database is unreachable (logged once per outage).
    degraded: std::sync::atomic::AtomicBool,
}

/// The outpost routes.
pub fn router() -> Router<AppState> {
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
        .route("/outpost.goauthentik.io/sign_out", get(sign_out))
}

async fn load_snapshot(conn: &mut Conn, metrics: &Metrics) -> Result<Snapshot, ApiError> {
    let spec = ListSpec {
        filters: vec![Filter::Equals("p.kind", "proxy".into())],
        ordering: vec![("p.id", false)],
        page: 1,
        page_size: 1000,
    };
    let mut routes = Vec::new();
    let mut map = HashMap::new();
    let mut proxied = HashMap::new();
    for p in providers::list(conn, &spec).await?.items {
        let ProviderKind::Proxy(settings) = p.fields.kind.clone() else {
            continue;
        };
        let skip = settings
            .skip_path_regex
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| regex::Regex::new(l).ok())
            .collect();
        let host = authority(&settings.external_host).unwrap_or_default();
        if settings.mode == ProxyMode::Proxy {
            proxied.insert(host.clone(), p.id);
        }
        routes.push(Route {
            provider: p.id,
            authority: host,
            mode: settings.mode,
            cookie_domain: settings
                .cookie_domain
                .trim_start_matches('.')
                .to_ascii_lowercase(),
        });
        let validity = p
            .fields
            .access_token_validity
            .parse::<gatehouse_core::Duration>()
            .map(|d| d.seconds())
            .unwrap_or(86_400);
        let app = applications::find_by_provider(conn, p.id).await?;
        map.insert(
            p.id,
            ProxyProvider {
                cookie: cookie_name(&p.fields.client_id),
                counters: Counters::new(metrics, &p.fields.name),
                provider: p,
                settings,
                skip,
                validity,
                app,
            },
        );
    }
    Ok(Snapshot {
        table: Table::new(routes),
        providers: map,
        proxied,
    })
}

impl Outpost {
    /// Forgets the provider table and the checked sessions, so the next requests read them
    /// again: an administrator's change applies at once on this replica (other replicas see
    /// it within a second).
    pub fn invalidate(&self) {
        if let Ok(mut slot) = self.snapshot.write() {
            *slot = None;
        }
        if let Ok(mut map) = self.sessions.write() {
            map.clear();
        }
    }

    /// Records the outcome of a database read: an outage is logged once and shown by the
    /// `gatehouse_outpost_degraded` gauge until a read succeeds again.
    fn database_reached(&self, state: &AppState, reached: Result<(), &ApiError>) {
        use std::sync::atomic::Ordering;
        match reached {
            Ok(()) => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    state.metrics.degraded.set(0);
                    tracing::info!("the database answers again; the outpost left degraded mode");
                }
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    state.metrics.degraded.set(1);
                    tracing::error!(error = %e, grace_s = state.settings.outpost_grace.as_secs(),
                        "the database is unreachable: sessions checked in the last grace period keep passing, new logins wait");
                }
            }
        }
    }

    /// Whether a cached answer last confirmed at `verified` may stand in for the database.
    fn within_grace(state: &AppState, verified: Instant) -> bool {
        verified.elapsed() < state.settings.outpost_grace
    }

    /// The routing table and providers. While fresh it comes from memory; once stale, one
    /// request starts a reload in the background and every request keeps using the current
    /// table meanwhile, so no request waits on the database (nor on an unreachable one).
    async fn snapshot(&self, state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
        let current = self.snapshot.read().ok().and_then(|g| g.clone());
        let Some(current) = current else {
            return self.reload_snapshot(state).await;
        };
        match current.usable(state) {
            Usable::Fresh => Ok(current.value),
            Usable::WhileRevalidating => {
                if self.claim_snapshot() {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _ = state.outpost.reload_snapshot(&state).await;
                    });
                }
                Ok(current.value)
            }
            Usable::Reread => self.reload_snapshot(state).await,
        }
    }

    /// Marks the snapshot as being reloaded; false when another request already did.
    fn claim_snapshot(&self) -> bool {
        self.snapshot
            .write()
            .ok()
            .is_some_and(|mut slot| match slot.as_mut() {
                Some(c) if c.stamp.elapsed() >= REVALIDATE => {
                    c.stamp = Instant::now();
                    true
                }
                _ => false,
            })
    }

    /// Reads the snapshot from the database. When the database cannot be reached, the
    /// current snapshot stands in until the grace period after it was read runs out.
    async fn reload_snapshot(&self, state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
        let loaded = patiently(state, async {
            let mut conn = state.store.conn().await?;
            load_snapshot(&mut conn, &state.metrics).await
        })
        .await;
        let Ok(mut slot) = self.snapshot.write() else {
            return Err(ApiError::Internal("outpost cache poisoned".into()));
        };
        match loaded {
            Ok(snap) => {
                let snap = Arc::new(snap);
                *slot = Some(Cached::fresh(snap.clone()));
                Ok(snap)
            }
            Err(e) => match slot
                .as_ref()
                .filter(|c| Self::within_grace(state, c.verified))
            {
                Some(c) => Ok(c.value.clone()),
                None => {
                    *slot = None;
                    Err(e)
                }
            },
        }
    }

    /// The session under cookie value `key`: from memory while fresh (the hot path: no
    /// database, no hashing); once stale, one request starts a re-read in the background and
    /// the cached answer stands meanwhile; a cookie never seen is read at once. `request` is
    /// built only when the database is read.
    async fn session(
        &self,
        state: &AppState,
        snap: &Arc<Snapshot>,
        key: &str,
        credential: impl FnOnce() -> Credential,
        request: impl FnOnce() -> gatehouse_flow::RequestInfo,
    ) -> Result<Option<Arc<SessionView>>, ApiError> {
        let cached = self.sessions.read().ok().and_then(|m| m.get(key).cloned());
        let Some(cached) = cached else {
            return self
                .reread_session(state, snap, key, &credential(), &request())
                .await;
        };
        match cached.usable(state) {
            Usable::Fresh => Ok(cached.value),
            Usable::WhileRevalidating => {
                if self.claim_session(key) {
                    let (state, snap, key) = (state.clone(), snap.clone(), key.to_owned());
                    let (credential, req) = (credential(), request());
                    tokio::spawn(async move {
                        let _ = state
                            .outpost
                            .reread_session(&state, &snap, &key, &credential, &req)
                            .await;
                    });
                }
                Ok(cached.value)
            }
            Usable::Reread => {
                self.reread_session(state, snap, key, &credential(), &request())
                    .await
            }
        }
    }

    /// Marks session `key` as being re-read; false when another request already did.
    fn claim_session(&self, key: &str) -> bool {
        self.sessions
            .write()
            .ok()
            .is_some_and(|mut map| match map.get_mut(key) {
                Some(c) if c.stamp.elapsed() >= REVALIDATE => {
                    c.stamp = Instant::now();
                    true
                }
                _ => false,
            })
    }

    /// Reads session `key` from the database and caches the answer. When the database cannot
    /// be reached, a cached answer stands in until the grace period after it was last
    /// confirmed runs out; then it is dropped and the session no longer passes.
    async fn reread_session(
        &self,
        state: &AppState,
        snap: &Snapshot,
        key: &str,
        credential: &Credential,
        req: &gatehouse_flow::RequestInfo,
    ) -> Result<Option<Arc<SessionView>>, ApiError> {
        let read = patiently(state, async {
            let mut conn = state.store.conn().await?;
            let (user, provider, data) = match credential {
                Credential::Cookie(value) => {
                    match proxy_sessions::find(&mut conn, value, Utc::now()).await? {
                        Some(s) => match s.user {
                            Some(user) => (user, s.provider, s.data),
                            None => return Ok(None),
                        },
                        None => return Ok(None),
                    }
                }
                Credential::AppPassword {
                    provider, password, ..
                } => match tokens::find_by_key(&mut conn, password).await? {
                    Some(t)
                        if t.fields.intent == TokenIntent::AppPassword
                            && !t.is_expired(Utc::now()) =>
                    {
                        (t.fields.user, *provider, Value::Null)
                    }
                    _ => return Ok(None),
                },
            };
            let user = users::get(&mut conn, user).await?;
            if let Credential::AppPassword { username, .. } = credential {
                if user.fields.username != *username {
                    return Ok(None);
                }
            }
            Ok(match snap.providers.get(&provider) {
                Some(p) if user.fields.is_active => Some(Arc::new(
                    view_of(&mut conn, state, p, &user, &data, req).await?,
                )),
                _ => None,
            })
        })
        .await;
        let Ok(mut map) = self.sessions.write() else {
            return Err(ApiError::Internal("outpost cache poisoned".into()));
        };
        let view = match read {
            Ok(view) => view,
            Err(e) => {
                let standing = map
                    .get(key)
                    .filter(|c| Self::within_grace(state, c.verified))
                    .map(|c| c.value.clone());
                if standing.is_none() {
                    map.remove(key);
                }
                return standing.ok_or(e);
            }
        };
        if map.len() > 100_000 {
            // Keep what degraded mode may need: real sessions within the grace period.
            // Answers of "no session" (forged or expired cookies) go once stale.
            let grace = state.settings.outpost_grace;
            map.retain(|_, c| match c.value {
                Some(_) => c.verified.elapsed() < grace.max(REVALIDATE),
                None => c.stamp.elapsed() < REVALIDATE,
            });
        }
        map.insert(key.to_owned(), Cached::fresh(view.clone()));
        state
            .metrics
            .cached_sessions
            .set(i64::try_from(map.len()).unwrap_or(i64::MAX));
        Ok(view)
    }
}

/// Runs a database round, giving up after [`DATABASE_PATIENCE`] (an unreachable database can
/// otherwise hold a request for the whole pool timeout), and records whether the database
/// answered (degraded mode).
async fn patiently<T>(
    state: &AppState,
    round: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let outcome = tokio::time::timeout(DATABASE_PATIENCE, round)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Internal(format!(
                "the database did not answer within {} s",
                DATABASE_PATIENCE.as_secs()
            )))
        });
    state
        .outpost
        .database_reached(state, outcome.as_ref().map(|_| ()));
    outcome
}

async fn view_of(
    conn: &mut Conn,
    state: &AppState,
    p: &ProxyProvider,
    user: &users::User,
    data: &Value,
    req: &gatehouse_flow::RequestInfo,
) -> Result<SessionView, ApiError> {
    let allowed = match &p.app {
        None => Err(format!(
            "The provider {} is not assigned to an application.",
            p.provider.fields.name
        )),
        Some(app) => {
            let ctx = Context {
                user: Some(user),
                identifier: None,
                request: req,
                flow: None,
            };
            match policy::evaluate_target(conn, app.uuid, app.fields.policy_engine_mode, ctx).await
            {
                Ok((Verdict::Fail(message), _)) => Err(message),
                Ok(_) => Ok(()),
                Err(e) => return Err(ApiError::Internal(e.to_string())),
            }
        }
    };
    let names: Vec<String> = groups::effective_of_user(conn, user.id)
        .await?
        .into_iter()
        .map(|g| g.fields.name)
        .collect();
    let identity = Identity {
        username: user.fields.username.clone(),
        groups: names,
        email: user.fields.email.clone(),
        name: user.fields.name.clone(),
        uid: crate::api::users::uid(user),
        jwt: data["id_token"].as_str().unwrap_or_default().to_owned(),
    };
    let slug = p
        .app
        .as_ref()
        .map(|a| a.fields.slug.clone())
        .unwrap_or_default();
    let meta = Meta {
        jwks: format!("{}/application/o/{slug}/jwks/", state.settings.external_url),
        outpost: "gatehouse Embedded Outpost".into(),
        provider: p.provider.fields.name.clone(),
        app: slug,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let mut headers: HeaderMap = identity_headers(&identity, &meta)
        .into_iter()
        .filter_map(|(n, v)| {
            Some((
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(&v).ok()?,
            ))
        })
        .collect();
    if p.settings.basic_auth_enabled {
        let attr = |name: &str| {
            user.fields
                .attributes
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let pair = format!(
            "{}:{}",
            attr(&p.settings.basic_auth_user_attribute),
            attr(&p.settings.basic_auth_password_attribute)
        );
        use base64::Engine;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )) {
            headers.insert(axum::http::header::AUTHORIZATION, v);
        }
    }
    Ok(SessionView {
        provider: p.provider.id,
        headers,
        allowed,
    })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The host a forward-auth request is about.
fn request_host(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-forwarded-host")
        .or_else(|| header(headers, HOST.as_str()))
        .map(str::to_owned)
}

fn unknown_host(state: &AppState, host: &str, wants_json: bool) -> Response {
    state.metrics.unknown_hosts.inc();
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
            &escape(&hint),
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

/// The URL the visitor asked for, from the proxy's headers.
fn original_url(
    headers: &HeaderMap,
    p: &ProxyProvider,
    host: &str,
    endpoint: Endpoint<'_>,
) -> Result<String, &'static str> {
    let scheme = header(headers, "x-forwarded-proto").unwrap_or(
        if p.settings.external_host.starts_with("https") {
            "https"
        } else {
            "http"
        },
    );
    if let Endpoint::Direct(path) = endpoint {
        let path = if path.starts_with('/') { path } else { "/" };
        return Ok(format!("{scheme}://{host}{path}"));
    }
    if let Endpoint::Nginx = endpoint {
        if let Some(full) = header(headers, "x-original-url") {
            return Ok(full.to_owned());
        }
        if let Some(path) = header(headers, "x-original-uri") {
            return Ok(format!("{scheme}://{host}{path}"));
        }
        return Err("The nginx endpoint needs X-Original-URL or X-Original-URI: add `proxy_set_header X-Original-URL $scheme://$http_host$request_uri;` to the auth location.");
    }
    match header(headers, "x-forwarded-uri") {
        Some(uri) => Ok(format!("{scheme}://{host}{uri}")),
        None => Err("This endpoint needs X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri (Traefik and Caddy send them)."),
    }
}

/// The configuration error for a request without the headers its endpoint needs.
fn check_forwarded(headers: &HeaderMap, endpoint: Endpoint<'_>) -> Result<(), &'static str> {
    let has = |name: &str| headers.contains_key(name);
    match endpoint {
        Endpoint::Nginx if !(has("x-original-url") || has("x-original-uri")) => Err(
            "The nginx endpoint needs X-Original-URL or X-Original-URI: add `proxy_set_header X-Original-URL $scheme://$http_host$request_uri;` to the auth location.",
        ),
        Endpoint::Forwarded if !has("x-forwarded-uri") => {
            Err("This endpoint needs X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-Uri (Traefik and Caddy send them).")
        }
        _ => Ok(()),
    }
}

fn skip(p: &ProxyProvider, url: &str) -> bool {
    if p.skip.is_empty() {
        return false;
    }
    let subject = match p.settings.mode {
        ProxyMode::ForwardDomain => url.to_owned(),
        _ => url::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default(),
    };
    p.skip.iter().any(|re| re.is_match(&subject))
}

fn cookie(p: &ProxyProvider, value: &str, max_age: i64) -> HeaderValue {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}",
        p.cookie
    );
    if p.settings.external_host.starts_with("https://") {
        c.push_str("; Secure");
    }
    if p.settings.mode == ProxyMode::ForwardDomain && !p.settings.cookie_domain.is_empty() {
        c.push_str(&format!(
            "; Domain={}",
            p.settings.cookie_domain.trim_start_matches('.')
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

async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    endpoint: Endpoint<'_>,
) -> Decided {
    let Some(host) = request_host(headers) else {
        return Ok(Err(config_error(
            "The request has neither X-Forwarded-Host nor Host.",
        )));
    };
    let snap = state.outpost.snapshot(state).await?;
    let Some(route) = snap.table.select(&host) else {
        let json = header(headers, "accept").is_some_and(|a| a.contains("json"));
        return Ok(Err(unknown_host(state, &host, json)));
    };
    let Some(p) = snap.providers.get(&route.provider) else {
        return Ok(Err(unknown_host(state, &host, false)));
    };
    // The original URL is needed only for skip paths and logins: check the headers cheaply
    // now, build the URL when it is used.
    let url = || original_url(headers, p, &host, endpoint);
    if let Err(message) = check_forwarded(headers, endpoint) {
        return Ok(Err(config_error(message)));
    }
    if !p.skip.is_empty() && skip(p, &url().unwrap_or_default()) {
        return Ok(Ok((Decision::Skip, snap.clone(), p.provider.id)));
    }
    let name = p.cookie.as_str();
    let had_cookie = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(name));
    let request = || {
        crate::session::request_info(
            headers,
            peer,
            &axum::http::Method::GET,
            &axum::http::Uri::from_static("/"),
        )
    };
    let settled = |view: Arc<SessionView>| -> Decided {
        Ok(Ok((
            match &view.allowed {
                Ok(()) => Decision::Allow(view.clone()),
                Err(message) => Decision::Forbidden(message.clone()),
            },
            snap.clone(),
            p.provider.id,
        )))
    };
    if p.settings.intercept_header_auth {
        if let Some((username, password)) = crate::extract::basic_credentials(headers) {
            // Keyed by a hash: the cache never holds the password itself.
            let key = format!(
                "basic:{}:{}",
                p.provider.id,
                secret::token_hash(&format!("{username}:{password}"))
            );
            let credential = || Credential::AppPassword {
                provider: p.provider.id,
                username,
                password,
            };
            if let Some(view) = state
                .outpost
                .session(state, &snap, &key, credential, request)
                .await?
            {
                return settled(view);
            }
        }
    }
    if let Some(key) = crate::session::read_cookie(headers, name) {
        let credential = || Credential::Cookie(key.to_owned());
        if let Some(view) = state
            .outpost
            .session(state, &snap, key, credential, request)
            .await?
        {
            if view.provider == p.provider.id {
                return settled(view);
            }
        }
    }
    let url = match url() {
        Ok(u) => u,
        Err(message) => return Ok(Err(config_error(message))),
    };
    Ok(Ok((
        Decision::Login {
            url,
            stale_cookie: had_cookie,
        },
        snap.clone(),
        p.provider.id,
    )))
}

async fn nginx(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let decided = decide(&state, &headers, peer, Endpoint::Nginx).await;
    count(&state, &decided, started);
    match decided {
        Ok(Ok((decision, snap, provider))) => match decision {
            Decision::Allow(view) => allow(&view),
            Decision::Skip => StatusCode::OK.into_response(),
            Decision::Forbidden(message) => (StatusCode::FORBIDDEN, message).into_response(),
            // No WWW-Authenticate: the browser must never see a Basic prompt; nginx turns
            // this 401 into its redirect to `start`.
            Decision::Login { stale_cookie, .. } => {
                if let Some(h) = fallback(&state, &headers).await {
                    return passed(h);
                }
                let mut r = StatusCode::UNAUTHORIZED.into_response();
                if let (true, Some(p)) = (stale_cookie, snap.providers.get(&provider)) {
                    r.headers_mut().append(SET_COOKIE, cookie(p, "", 0));
                }
                r
            }
        },
        Ok(Err(r)) => r,
        // nginx shows its own 500 for a failed auth subrequest; a 401 instead sends the
        // browser to `start`, which explains the outage (and still lets nobody through).
        Err(e) => {
            tracing::error!(error = %e, "forward auth could not reach the database");
            match fallback(&state, &headers).await {
                Some(h) => passed(h),
                None => StatusCode::UNAUTHORIZED.into_response(),
            }
        }
    }
}

/// While degraded, the headers to pass a break-glass user with (fallback cookie or Basic
/// credentials): marked `X-Auth-Fallback: true`, counted and logged. `None` otherwise.
async fn fallback(state: &AppState, headers: &HeaderMap) -> Option<HeaderMap> {
    use std::sync::atomic::Ordering;
    let glass = state.break_glass.as_ref()?;
    if !state.outpost.degraded.load(Ordering::Acquire) {
        return None;
    }
    let user = match glass.cookie_user(headers) {
        Some(user) => user,
        None => {
            glass
                .basic_user(headers, state.settings.outpost_grace)
                .await?
        }
    };
    state.metrics.fallbacks.inc();
    tracing::warn!(user = %user, "break-glass access while the database is unreachable");
    let mut h = HeaderMap::new();
    h.insert("x-auth-fallback", HeaderValue::from_static("true"));
    if let Ok(v) = HeaderValue::from_str(&user) {
        h.insert("x-authentik-username", v);
    }
    Some(h)
}

/// While degraded with break-glass users configured, the Basic challenge (with the outage
/// page as its body, shown when the prompt is dismissed); the plain outage page otherwise.
fn challenge_or_unavailable(state: &AppState, e: ApiError) -> Response {
    let mut r = unavailable(e);
    if state.break_glass.is_some() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(crate::break_glass::CHALLENGE),
        );
        r.headers_mut()
            .insert("x-auth-fallback", HeaderValue::from_static("true"));
    }
    r
}

type Decided = Result<Result<(Decision, Arc<Snapshot>, i64), Response>, ApiError>;

/// Counts a decision by provider and outcome, and how long it took.
fn count(state: &AppState, decided: &Decided, started: Instant) {
    state
        .metrics
        .decision_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Ok(Ok((decision, snap, provider))) = decided {
        if let Some(c) = snap.providers.get(provider).map(|p| &p.counters) {
            match decision {
                Decision::Allow(_) => c.allow.inc(),
                Decision::Skip => c.skip.inc(),
                Decision::Forbidden(_) => c.forbidden.inc(),
                Decision::Login { .. } => c.login.inc(),
            };
        }
    }
}

/// 200 with the session's identity headers.
fn allow(view: &SessionView) -> Response {
    passed(view.headers.clone())
}

/// 200 carrying `identity` (the headers the proxy copies onto the request).
fn passed(identity: HeaderMap) -> Response {
    let mut r = StatusCode::OK.into_response();
    *r.headers_mut() = identity;
    r
}

/// The answer when the database is needed and cannot be reached: 503 with a page that says
/// so. Never fail open: without an answer, nobody passes.
fn unavailable(e: ApiError) -> Response {
    tracing::error!(error = %e, "forward auth could not reach the database");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable for a moment",
        "Gatehouse cannot reach its database, so it cannot sign you in right now. People who are already signed in keep their access for a while.",
        "Try again in a minute. Administrators: check the database and the gatehouse_outpost_degraded metric.",
    )
}

async fn forwarded(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    redirecting(state, peer, headers, Endpoint::Forwarded).await
}

async fn envoy(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
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
    redirecting(state, peer, headers, Endpoint::Direct(&original)).await
}

/// Proxy mode, in front of every route: a request for the external host of a provider in
/// `proxy` mode (outpost paths aside) is decided like a Traefik request and, when allowed,
/// passed on to the provider's internal host. Other hosts, and every host while no provider is
/// in proxy mode, go on to Gatehouse's own routes.
pub async fn proxy_mode(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().path().starts_with("/outpost.goauthentik.io/") {
        return next.run(req).await;
    }
    let Some(host) = request_host(req.headers()) else {
        return next.run(req).await;
    };
    let Ok(snap) = state.outpost.snapshot(&state).await else {
        return next.run(req).await;
    };
    let Some(p) = snap
        .proxied
        .get(&host)
        .and_then(|id| snap.providers.get(id))
    else {
        return next.run(req).await;
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |q| q.as_str())
        .to_owned();
    match pass_or_answer(&state, req.headers(), peer, Endpoint::Direct(&path)).await {
        Ok(identity) => {
            crate::reverse_proxy::forward(
                &state.outpost.upstreams,
                &p.settings.internal_host,
                p.settings.internal_host_ssl_validation,
                req,
                identity,
                peer,
            )
            .await
        }
        Err(answer) => answer,
    }
}

async fn redirecting(
    state: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    endpoint: Endpoint<'_>,
) -> Response {
    match pass_or_answer(&state, &headers, peer, endpoint).await {
        Ok(identity) => passed(identity),
        Err(r) => r,
    }
}

/// The decision for an endpoint that answers the browser itself (Traefik, Caddy, Envoy, proxy
/// mode): `Ok` with the headers to pass the request on with (none for a skipped path), or the
/// answer to send instead (403, the redirect to log in, the outage page or challenge).
async fn pass_or_answer(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    endpoint: Endpoint<'_>,
) -> Result<HeaderMap, Response> {
    let started = Instant::now();
    let decided = decide(state, headers, peer, endpoint).await;
    count(state, &decided, started);
    let failed = |e| async move {
        match fallback(state, headers).await {
            Some(h) => Ok(h),
            None => Err(challenge_or_unavailable(state, e)),
        }
    };
    match decided {
        Ok(Ok((decision, snap, provider))) => match decision {
            Decision::Allow(view) => Ok(view.headers.clone()),
            Decision::Skip => Ok(HeaderMap::new()),
            Decision::Forbidden(message) => Err((StatusCode::FORBIDDEN, message).into_response()),
            Decision::Login { url, .. } => match snap.providers.get(&provider) {
                Some(p) => match begin_login(state, p, &url).await {
                    Ok(r) => Err(r),
                    Err(e) => failed(e).await,
                },
                None => Err(StatusCode::FORBIDDEN.into_response()),
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
        &p.settings.external_host,
        p.settings.mode,
        &p.settings.cookie_domain,
    )
    .unwrap_or_else(|| p.settings.external_host.clone())
}

/// Starts a login for `p` returning to `rd`: a pending session cookie and a redirect to the
/// IdP's authorize endpoint.
async fn begin_login(state: &AppState, p: &ProxyProvider, rd: &str) -> Result<Response, ApiError> {
    let target = return_target(p, rd);
    let key = secret::new_token();
    let login_state = secret::new_token();
    patiently(state, async {
        let mut conn = state.store.conn().await?;
        Ok(proxy_sessions::create(
            &mut conn,
            &key,
            p.provider.id,
            &json!({"state": login_state, "rd": target}),
            Utc::now() + chrono::Duration::minutes(PENDING_MINUTES),
        )
        .await?)
    })
    .await?;
    let callback = format!(
        "{}{CALLBACK}",
        p.settings.external_host.trim_end_matches('/')
    );
    let authorize = crate::oidc::url_with(
        &format!("{}/application/o/authorize/", state.settings.external_url),
        &[
            ("client_id", &p.provider.fields.client_id),
            ("redirect_uri", &callback),
            ("response_type", "code"),
            ("scope", "openid profile email groups"),
            ("state", &login_state),
        ],
    );
    let mut r = (StatusCode::FOUND, [(LOCATION, authorize)]).into_response();
    r.headers_mut()
        .append(SET_COOKIE, cookie(p, &key, PENDING_MINUTES * 60));
    Ok(r)
}

async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(host) = request_host(&headers) else {
        return config_error("The request has neither X-Forwarded-Host nor Host.");
    };
    let snap = match state.outpost.snapshot(&state).await {
        Ok(s) => s,
        Err(e) => return unavailable(e),
    };
    let Some(p) = snap
        .table
        .select(&host)
        .and_then(|r| snap.providers.get(&r.provider))
    else {
        return unknown_host(&state, &host, false);
    };
    let rd = q.get("rd").cloned().unwrap_or_default();
    match begin_login(&state, p, &rd).await {
        Ok(r) => r,
        Err(e) => break_glass_start(&state, p, &headers, &rd)
            .await
            .unwrap_or_else(|| challenge_or_unavailable(&state, e)),
    }
}

/// `start` while degraded, for browsers behind nginx (whose auth subrequest cannot show them a
/// Basic prompt): valid break-glass credentials get a fallback cookie and go back to `rd`.
async fn break_glass_start(
    state: &AppState,
    p: &ProxyProvider,
    headers: &HeaderMap,
    rd: &str,
) -> Option<Response> {
    let glass = state.break_glass.as_ref()?;
    let user = glass
        .basic_user(headers, state.settings.outpost_grace)
        .await?;
    let secure = p.settings.external_host.starts_with("https://");
    let cookie = glass.cookie(&user, state.settings.outpost_grace, secure)?;
    let target = return_target(p, rd);
    state.metrics.fallbacks.inc();
    tracing::warn!(user = %user, "break-glass sign-in while the database is unreachable");
    let mut r = (StatusCode::FOUND, [(LOCATION, target)]).into_response();
    r.headers_mut().append(SET_COOKIE, cookie);
    r.headers_mut()
        .insert("x-auth-fallback", HeaderValue::from_static("true"));
    Some(r)
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(host) = request_host(&headers) else { return Ok(config_error("The request has neither X-Forwarded-Host nor Host.")) };
        let snap = state.outpost.snapshot(&state).await?;
        let Some(p) = snap.table.select(&host).and_then(|r| snap.providers.get(&r.provider)) else {
            return Ok(unknown_host(&state, &host, false));
        };
        let expected = authority(&p.settings.external_host).unwrap_or_default();
        if host.to_ascii_lowercase() != expected && p.settings.mode != ProxyMode::ForwardDomain {
            return Ok(error_page(
                StatusCode::BAD_REQUEST,
                "Login landed on the wrong host",
                &format!("The login came back to `{host}`, but the provider's external host is `{expected}`."),
                "Set the provider's external_host to the URL users open (scheme, host and port), then log in again.",
            ));
        }
        let stale = |why: &str| {
            let mut r = error_page(
                StatusCode::BAD_REQUEST,
                "Login could not be completed",
                why,
                &format!("<a href=\"{}\">Open the application again</a> to start a new login.", escape(&p.settings.external_host)),
            );
            r.headers_mut().append(SET_COOKIE, cookie(p, "", 0));
            r
        };
        let Some(key) = crate::session::read_cookie(&headers, &p.cookie).map(str::to_owned) else {
            return Ok(stale("This browser has no login in progress for this application (cookies blocked, or the login started elsewhere)."));
        };
        let signer = state.keys.signer(&state.store, SigningAlgorithm::Rs256).await?;
        let mut tx = state.store.begin().await?;
        let Some(pending) = proxy_sessions::find(&mut tx, &key, Utc::now()).await? else {
            return Ok(stale("The login took too long or was already completed."));
        };
        let sent_state = q.get("state").map(String::as_str).unwrap_or_default();
        if pending.user.is_some() || !secret::constant_time_eq(sent_state, pending.data["state"].as_str().unwrap_or_default()) {
            return Ok(stale("The login answer does not belong to this browser's login (state mismatch)."));
        }
        let code = q.get("code").map(String::as_str).unwrap_or_default();
        let callback_url = format!("{}{CALLBACK}", p.settings.external_host.trim_end_matches('/'));
        let grant = match oauth::redeem_code(&mut tx, code, Utc::now()).await? {
            Redeemed::Valid { grant, .. } if grant.provider == p.provider.id && grant.redirect_uri == callback_url => grant,
            Redeemed::Replayed { code_hash } => {
                oauth::revoke_from_code(&mut tx, &code_hash).await?;
                gatehouse_store::commit(tx).await?;
                return Ok(stale("The login answer was already used."));
            }
            _ => return Ok(stale("The login answer is not valid or has expired.")),
        };
        let user = users::get(&mut tx, grant.user).await?;
        let slug = p.app.as_ref().map(|a| a.fields.slug.clone()).unwrap_or_default();
        let mappings = gatehouse_store::scope_mappings::of_provider(&mut tx, p.provider.id).await?;
        let mut claims = crate::oidc::user_claims(&mut tx, &user, &["openid", "profile", "email", "groups"], gatehouse_core::kinds::SubMode::HashedUserId, &mappings).await?;
        let now = Utc::now();
        claims.insert("iss".into(), crate::oidc::issuer(&state.settings.external_url, &slug).into());
        claims.insert("aud".into(), p.provider.fields.client_id.clone().into());
        claims.insert("iat".into(), now.timestamp().into());
        claims.insert("exp".into(), (now + chrono::Duration::seconds(p.validity)).timestamp().into());
        let id_token = signer.sign(Value::Object(claims)).await?;
        proxy_sessions::log_in(
            &mut tx,
            pending.uuid,
            user.id,
            grant.session,
            &json!({"id_token": id_token}),
            now + chrono::Duration::seconds(p.validity),
        )
        .await?;
        gatehouse_store::commit(tx).await?;
        let target = pending.data["rd"].as_str().map(str::to_owned).unwrap_or_else(|| p.settings.external_host.clone());
        let mut r = (StatusCode::FOUND, [(LOCATION, target)]).into_response();
        r.headers_mut().append(SET_COOKIE, cookie(p, &key, p.validity));
        Ok(r)
    }
    .await;
    result.unwrap_or_else(unavailable)
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result: Result<Response, ApiError> = async {
        let Some(host) = request_host(&headers) else {
            return Ok(config_error(
                "The request has neither X-Forwarded-Host nor Host.",
            ));
        };
        let snap = state.outpost.snapshot(&state).await?;
        let Some(p) = snap
            .table
            .select(&host)
            .and_then(|r| snap.providers.get(&r.provider))
        else {
            return Ok(unknown_host(&state, &host, false));
        };
        if let Some(key) = crate::session::read_cookie(&headers, &p.cookie) {
            let mut conn = state.store.conn().await?;
            if let Some(user) = proxy_sessions::find(&mut conn, key, Utc::now())
                .await?
                .and_then(|s| s.user)
            {
                proxy_sessions::end_all_of(&mut conn, user).await?;
            }
        }
        if let Ok(mut map) = state.outpost.sessions.write() {
            map.clear();
        }
        let slug = p
            .app
            .as_ref()
            .map(|a| a.fields.slug.clone())
            .unwrap_or_default();
        let mut r = (
            StatusCode::FOUND,
            [(
                LOCATION,
                format!(
                    "{}/application/o/{slug}/end-session/",
                    state.settings.external_url
                ),
            )],
        )
            .into_response();
        r.headers_mut().append(SET_COOKIE, cookie(p, "", 0));
        Ok(r)
    }
    .await;
    result.unwrap_or_else(unavailable)
}

/// Deletes expired outpost sessions (called by the server's reaper).
pub async fn reap(conn: &mut Conn) -> gatehouse_store::Result<u64> {
    proxy_sessions::reap(conn, Utc::now()).await
}
