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
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// The embedded outpost's (decisions, latency, degraded mode, session store).
    pub outpost: OutpostMetrics,
    /// Failed password and code attempts.
    pub login_failures: Counter,
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
        Arc::new(Metrics {
            registry,
            outpost,
            login_failures,
        })
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
