//! Prometheus metrics, served on their own listener (`--metrics-listen`, default
//! `0.0.0.0:9300`) so they are not on the public port. The names are the ones the shipped alert
//! rules use; per-provider counters are resolved once per provider table, so the forward-auth
//! hot path only increments an atomic.

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a forward-auth decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// Provider name.
    pub provider: String,
    /// `allow`, `skip`, `login`, `forbidden`.
    pub outcome: String,
}

/// Labels naming the session store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// `sqlite` or `postgres`.
    pub backend: String,
}

/// Every metric Gatehouse exports.
pub struct Metrics {
    registry: Registry,
    /// Forward-auth decisions by provider and outcome.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Forward-auth requests for hosts no provider serves (T5).
    pub unknown_hosts: Counter,
    /// Requests answered by the break-glass fallback (always 0 until one is configured).
    pub fallbacks: Counter,
    /// Time to decide a forward-auth request.
    pub decision_seconds: Histogram,
    /// Sessions held in the outpost cache.
    pub cached_sessions: Gauge,
    /// 1 while the outpost cannot reach the database and answers from its cache (T1).
    pub degraded: Gauge,
    /// Failed password and code attempts.
    pub login_failures: Counter,
    /// 1 for the backend sessions and configuration live in (T3: no silent fallback).
    pub store: Family<BackendLabels, Gauge>,
}

impl Metrics {
    /// A registry with every metric, the store backend already named.
    pub fn new(backend: &str) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "gatehouse_outpost_decisions",
            "Forward-auth decisions by provider and outcome",
            decisions.clone(),
        );
        let unknown_hosts = Counter::default();
        registry.register(
            "gatehouse_outpost_unknown_host",
            "Forward-auth requests for hosts no proxy provider serves",
            unknown_hosts.clone(),
        );
        let fallbacks = Counter::default();
        registry.register(
            "gatehouse_outpost_fallback",
            "Requests let through by the break-glass fallback",
            fallbacks.clone(),
        );
        let decision_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "gatehouse_outpost_decision_seconds",
            "Time to decide a forward-auth request",
            decision_seconds.clone(),
        );
        let cached_sessions = Gauge::default();
        registry.register(
            "gatehouse_outpost_cached_sessions",
            "Outpost sessions held in memory",
            cached_sessions.clone(),
        );
        let degraded = Gauge::default();
        registry.register(
            "gatehouse_outpost_degraded",
            "1 while the database is unreachable and only already-checked sessions pass",
            degraded.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "gatehouse_login_failures",
            "Failed password and code attempts",
            login_failures.clone(),
        );
        let store = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "gatehouse_session_store_info",
            "The database sessions and configuration live in",
            store.clone(),
        );
        store
            .get_or_create(&BackendLabels {
                backend: backend.to_owned(),
            })
            .set(1);
        Arc::new(Metrics {
            registry,
            decisions,
            unknown_hosts,
            fallbacks,
            decision_seconds,
            cached_sessions,
            degraded,
            login_failures,
            store,
        })
    }

    /// The counter for `provider`'s `outcome`, to keep and increment without a lookup.
    pub fn decision(&self, provider: &str, outcome: &str) -> Counter {
        self.decisions
            .get_or_create(&DecisionLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .clone()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The `/metrics` router for the metrics listener.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
                    .into_response()
            }
        }),
    )
}
