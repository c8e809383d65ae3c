//! Prometheus metrics, served on their own listener (`--metrics-listen`, default
//! `0.0.0.0:9300`) so they are not on the public port. The names are the ones the shipped alert
//! rules use. The outpost's own metrics come from [`gatehouse_outpost::metrics`], so the
//! embedded and the standalone outpost export the same names.

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use gatehouse_outpost::metrics::OutpostMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a signing key.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    /// `RS256` or `ES256`.
    pub algorithm: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// The embedded outpost's (decisions, latency, degraded mode, session store).
    pub outpost: OutpostMetrics,
    /// Failed password and code attempts.
    pub login_failures: Counter,
    /// Logins completed (a session started).
    pub logins: Counter,
    /// 1 when the last readiness check found the database answering after start-up, 0 when
    /// not: the kubelet's probes keep it current.
    pub database_ready: Gauge,
    /// When the active signing key of each algorithm was made, so an alert can say that
    /// rotation is due.
    pub signing_key_created: Family<KeyLabels, Gauge>,
}

impl Metrics {
    /// A registry with every metric, the store backend already named.
    pub fn new(backend: &str) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let outpost = OutpostMetrics::register(&mut registry);
        outpost.name_store(backend);
        let login_failures = Counter::default();
        registry.register(
            "gatehouse_login_failures",
            "Failed password and code attempts",
            login_failures.clone(),
        );
        let logins = Counter::default();
        registry.register(
            "gatehouse_logins",
            "Logins completed (an IdP session started)",
            logins.clone(),
        );
        let database_ready = Gauge::default();
        registry.register(
            "gatehouse_database_ready",
            "1 when the last readiness check found the database answering, 0 when not",
            database_ready.clone(),
        );
        let signing_key_created = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "gatehouse_signing_key_created_timestamp_seconds",
            "When the active OIDC signing key of each algorithm was made (Unix time)",
            signing_key_created.clone(),
        );
        outpost.name_mode("embedded");
        Arc::new(Metrics {
            registry,
            outpost,
            login_failures,
            logins,
            database_ready,
            signing_key_created,
        })
    }

    /// Shows when the active key of each algorithm among `keys` was made, replacing the
    /// earlier values (the rotation alert's input).
    pub fn show_signing_keys(&self, keys: &[gatehouse_store::oauth::SigningKey]) {
        self.signing_key_created.clear();
        for k in keys.iter().filter(|k| k.retired.is_none()) {
            let gauge = self.signing_key_created.get_or_create(&KeyLabels {
                algorithm: k.algorithm.clone(),
            });
            // The newest key of an algorithm counts when several are active.
            gauge.set(gauge.get().max(k.created.timestamp()));
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// Serves `/metrics` (showing `render()`) on `listener` until the task is aborted; logs the
/// address, and the listener's failure if it stops.
pub fn spawn(
    listener: tokio::net::TcpListener,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(listen = %address, "metrics on http://{address}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(render)).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    })
}

/// The `/metrics` router for a metrics listener showing `render()`.
pub fn router(render: impl Fn() -> String + Clone + Send + Sync + 'static) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let text = render();
            async move {
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
                    .into_response()
            }
        }),
    )
}
