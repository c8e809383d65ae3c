//! HTTP surfaces of Gatehouse: the REST API, health checks and the one-time set-up page, merged
//! into one axum router that `gatehouse serve` runs.
//!
//! # Layout
//! - [`api`]: `/api/v3/` resources (Authentik-compatible) and the OpenAPI document.
//! - [`health`]: `/-/health/live/` and `/-/health/ready/`.
//! - [`pages`]: server-rendered pages: login flows, the user page, the one-time set-up page.
//! - [`session`]: the IdP session cookie.
//! - [`bootstrap`]: what an empty database gets on first start (admin, `Admins`, default flows,
//!   embedded outpost).
//! - [`outpost`]: the server side of the forward-auth outpost (the embedded one's backend and
//!   the outpost API's), [`changes`]: the notices that keep outposts' caches current.
//! - [`reconcile`]: applies a declarative config document (plan/apply).
//! - [`error`], [`extract`], [`auth`]: one error type, request parsing, token authentication.

pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod changes;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod oidc;
pub mod outpost;
pub mod pages;
pub mod passkeys;
pub mod reconcile;
pub mod session;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use gatehouse_store::Store;

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The URL browsers use to reach Gatehouse (no trailing slash).
    pub external_url: String,
    /// How long an unfinished login (anonymous visitors, bots, abandoned flows) is kept.
    pub flow_state_age: chrono::Duration,
    /// While the database is unreachable, how long the outpost keeps honouring sessions it
    /// has already checked (T1). Nothing else passes meanwhile, except break-glass users.
    pub outpost_grace: std::time::Duration,
    /// The embedded outpost's safety bound: cached answers older than this are read again
    /// even when the change feed said nothing.
    pub outpost_recheck: std::time::Duration,
    /// The embedded outpost's session cache budget, in bytes.
    pub outpost_cache_bytes: u64,
    /// Break-glass users (username, argon2id hash), let in only while degraded.
    pub break_glass: Vec<(String, String)>,
    /// The reverse proxies whose `X-Forwarded-For`/`Forwarded` name the client; from anyone
    /// else those headers are ignored.
    pub trusted_proxies: gatehouse_core::client_address::TrustedProxies,
    /// The embedded outpost's break-glass cookie key, derived from the server's secret key so
    /// that every replica given the same key accepts the same cookie.
    pub break_glass_secret: Vec<u8>,
    /// How recently the user of a session must have proved a factor to add or remove one (a
    /// stolen cookie alone must not change the user's factors).
    pub reauth_max_age: chrono::Duration,
    /// Whether a passkey login also passes TOTP stages (a passkey counted as two factors).
    pub passkey_counts_as_two_factors: bool,
    /// The key anonymous flow runs are sealed with in their cookie, derived from the server's
    /// secret key so that every replica given the same key continues the same run.
    pub flow_cookie_secret: [u8; 32],
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The flow engine (throttles live here).
    pub engine: Arc<gatehouse_flow::Engine>,
    /// The WebAuthn relying party and ceremonies in progress.
    pub passkeys: Arc<passkeys::Passkeys>,
    /// The embedded outpost.
    pub outpost: Arc<gatehouse_outpost::Outpost>,
    /// Change notices for every outpost of this server.
    pub changes: Arc<changes::Changes>,
    /// OIDC signing keys, parsed once.
    pub keys: Arc<oidc::Keyring>,
    /// OAuth2 clients recently authenticated.
    pub oidc_clients: Arc<oidc::Clients>,
    /// The login sources' OAuth2/OIDC client (one connection pool for every source).
    pub source_client: Arc<gatehouse_sources::SourceClient>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Set once start-up (migrations, bootstrap) has finished; readiness depends on it.
    pub started: Arc<AtomicBool>,
}

impl AppState {
    /// State for `store` with `settings`, not yet marked started. Fails only when the HTTP client
    /// of the login sources cannot be set up (no TLS backend).
    pub fn new(store: Store, settings: Settings) -> Result<AppState, gatehouse_sources::Error> {
        let source_client = Arc::new(gatehouse_sources::SourceClient::new()?);
        let metrics = metrics::Metrics::new(store.backend().as_str());
        let keys = Arc::<oidc::Keyring>::default();
        let changes = Arc::new(changes::Changes::new(store.clone()));
        let embedded = outpost::Sessions::new(
            store.clone(),
            keys.clone(),
            &settings.external_url,
            outpost::EMBEDDED_NAME,
            outpost::Scope::Every,
        );
        let outpost = gatehouse_outpost::Outpost::new(
            embedded,
            gatehouse_outpost::Settings {
                grace: settings.outpost_grace,
                break_glass: settings.break_glass.clone(),
                break_glass_secret: Some(settings.break_glass_secret.clone()),
                recheck: settings.outpost_recheck,
                cache_bytes: settings.outpost_cache_bytes,
            },
            metrics.outpost.clone(),
        );
        let mut engine = gatehouse_flow::Engine::new(
            store.key().clone(),
            settings.flow_state_age,
            &settings.flow_cookie_secret,
        );
        engine.passkey_counts_as_two_factors = settings.passkey_counts_as_two_factors;
        let engine = Arc::new(engine);
        Ok(AppState {
            metrics,
            store,
            engine,
            passkeys: Arc::new(passkeys::Passkeys::new(&settings.external_url)),
            outpost: Arc::new(outpost),
            changes,
            keys,
            oidc_clients: Arc::default(),
            source_client,
            settings: Arc::new(settings),
            started: Arc::new(AtomicBool::new(false)),
        })
    }

    /// After a write that may change a forward-auth answer: the store appended the change
    /// with the write; this wakes the feed reader at once (writes made outside a transaction
    /// have no commit to wake it), which tells the embedded outpost and the event streams.
    pub fn changed(&self) {
        self.store.poke();
    }

    /// Marks start-up as finished.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }
}

/// The whole HTTP surface of `gatehouse serve`.
pub fn router(state: AppState) -> Router {
    let (api, document) = api::router();
    let document = Arc::new(document);
    let schema = move |query: axum::extract::Query<Vec<(String, String)>>| {
        let document = document.clone();
        async move {
            let yaml = query.0.iter().any(|(k, v)| k == "format" && v == "yaml");
            if yaml {
                match serde_yaml::to_string(&document.0) {
                    Ok(text) => (
                        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
                        text,
                    )
                        .into_response(),
                    Err(e) => error::ApiError::Internal(e.to_string()).into_response(),
                }
            } else {
                Json(document.0.clone()).into_response()
            }
        }
    };
    Router::new()
        .nest(
            "/api/v3",
            api.route("/schema/", get(schema))
                .fallback(api_not_found)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    invalidate_after_writes,
                )),
        )
        .merge(health::router())
        .merge(pages::setup::router())
        .merge(pages::flow::router())
        .merge(pages::source::router())
        .merge(pages::user::router())
        .merge(oidc::router())
        .merge(gatehouse_outpost::router().with_state(state.outpost.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.outpost.clone(),
            gatehouse_outpost::proxy_mode,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(state.settings.trusted_proxies.clone()),
            extract::client_address,
        ))
        .with_state(state)
}

/// After an API write succeeds, every outpost reads providers and sessions afresh.
async fn invalidate_after_writes(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // The outpost API's calls (session checks, logins) change nothing an outpost caches;
    // its sign-out publishes its own notice.
    let writes = !req.method().is_safe() && !req.uri().path().contains("/outposts/proxy/");
    let response = next.run(req).await;
    if writes && response.status().is_success() {
        state.changed();
    }
    response
}

async fn api_not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::NotFound(format!(
        "API endpoint `{}` (see /api/v3/schema/ for the list)",
        uri.path()
    ))
}
