//! The outpost's Prometheus metrics, registered into the registry of whichever process runs
//! it (the server's, or the standalone outpost's). The names are the ones the shipped alert
//! rules use. Per-provider counters are resolved once per provider table, and the latency
//! histogram is lock-free, so the hot path only increments atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
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

/// Labels naming how an outpost runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// `embedded` (inside `gatehouse serve`) or `standalone` (`gatehouse outpost`).
    pub mode: String,
}

/// The outpost's metrics; cloning shares them.
#[derive(Clone)]
pub struct OutpostMetrics {
    /// Forward-auth decisions by provider and outcome.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Forward-auth requests for hosts no provider serves (T5).
    pub unknown_hosts: Counter,
    /// Requests answered by the break-glass fallback (always 0 until one is configured).
    pub fallbacks: Counter,
    /// Time to decide a forward-auth request.
    pub decision_seconds: Latency,
    /// Sessions held in the outpost cache.
    pub cached_sessions: Gauge,
    /// Sessions read from the backend (cache misses and safety-bound re-reads): zero in a
    /// steady state, where changes arrive by push.
    pub backend_reads: Counter,
    /// 1 while the outpost cannot reach the database (or the server) and answers from its
    /// cache (T1).
    pub degraded: Gauge,
    /// Requests proxy mode could not pass on because the application did not answer.
    pub upstream_errors: Counter,
    /// 1 for the backend the sessions live in (T3: no silent fallback).
    pub store: Family<BackendLabels, Gauge>,
    /// Forward-auth requests no decision could be made for, because the backend did not
    /// answer (answered 503, or by the break-glass fallback).
    pub decision_errors: Counter,
    /// Calls to the session store (the database, or a standalone outpost's server) that
    /// failed.
    pub store_errors: Counter,
    /// 1 for the outpost's mode, so alerts can tell the edge outposts from embedded ones.
    pub mode: Family<ModeLabels, Gauge>,
    /// The names last given to [`OutpostMetrics::name_mode`] and
    /// [`OutpostMetrics::name_store`], for the readiness answer `gatehouse doctor` reads.
    names: Arc<std::sync::RwLock<Names>>,
}

/// How an outpost runs and where its sessions live, as its readiness check reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// `embedded` or `standalone` (empty until named).
    pub mode: String,
    /// `sqlite` or `postgres` (empty until the server has said).
    pub sessions: String,
}

impl OutpostMetrics {
    /// Registers every outpost metric in `registry`.
    pub fn register(registry: &mut Registry) -> OutpostMetrics {
        let m = OutpostMetrics {
            decisions: Family::default(),
            unknown_hosts: Counter::default(),
            fallbacks: Counter::default(),
            decision_seconds: Latency::default(),
            cached_sessions: Gauge::default(),
            backend_reads: Counter::default(),
            degraded: Gauge::default(),
            upstream_errors: Counter::default(),
            store: Family::default(),
            decision_errors: Counter::default(),
            store_errors: Counter::default(),
            mode: Family::default(),
            names: Arc::default(),
        };
        registry.register(
            "gatehouse_outpost_decisions",
            "Forward-auth decisions by provider and outcome",
            m.decisions.clone(),
        );
        registry.register(
            "gatehouse_outpost_unknown_host",
            "Forward-auth requests for hosts no proxy provider serves",
            m.unknown_hosts.clone(),
        );
        registry.register(
            "gatehouse_outpost_fallback",
            "Requests let through by the break-glass fallback",
            m.fallbacks.clone(),
        );
        registry.register(
            "gatehouse_outpost_decision_seconds",
            "Time to decide a forward-auth request",
            m.decision_seconds.clone(),
        );
        registry.register(
            "gatehouse_outpost_cached_sessions",
            "Outpost sessions held in memory",
            m.cached_sessions.clone(),
        );
        registry.register(
            "gatehouse_outpost_backend_reads",
            "Sessions the outpost read from the database or server (cache misses)",
            m.backend_reads.clone(),
        );
        registry.register(
            "gatehouse_outpost_degraded",
            "1 while the database or server is unreachable and only already-checked sessions pass",
            m.degraded.clone(),
        );
        registry.register(
            "gatehouse_outpost_upstream_errors",
            "Proxy-mode requests the application did not answer",
            m.upstream_errors.clone(),
        );
        registry.register(
            "gatehouse_session_store_info",
            "The database sessions and configuration live in",
            m.store.clone(),
        );
        registry.register(
            "gatehouse_outpost_decision_errors",
            "Forward-auth requests that could not be decided because the backend did not answer",
            m.decision_errors.clone(),
        );
        registry.register(
            "gatehouse_session_store_errors",
            "Session store calls (database, or a standalone outpost's server) that failed",
            m.store_errors.clone(),
        );
        registry.register(
            "gatehouse_outpost_info",
            "1 for the mode this outpost runs in: embedded or standalone",
            m.mode.clone(),
        );
        m
    }

    /// Names the outpost's mode (`embedded` or `standalone`), replacing any earlier one.
    pub fn name_mode(&self, mode: &str) {
        if let Ok(mut names) = self.names.write() {
            names.mode = mode.to_owned();
        }
        self.mode.clear();
        self.mode
            .get_or_create(&ModeLabels {
                mode: mode.to_owned(),
            })
            .set(1);
    }

    /// Names the backend sessions live in (`sqlite` or `postgres`), replacing any earlier one.
    pub fn name_store(&self, backend: &str) {
        if let Ok(mut names) = self.names.write() {
            names.sessions = backend.to_owned();
        }
        self.store.clear();
        self.store
            .get_or_create(&BackendLabels {
                backend: backend.to_owned(),
            })
            .set(1);
    }

    /// The mode and session backend named so far.
    pub fn names(&self) -> Names {
        self.names.read().map(|n| n.clone()).unwrap_or_default()
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
}

/// Upper bounds of the latency buckets: 50 µs doubling up to about 1.6 s.
const BOUNDS: [f64; 16] = {
    let mut b = [0.0; 16];
    let mut i = 0;
    let mut v = 0.000_05;
    while i < 16 {
        b[i] = v;
        v *= 2.0;
        i += 1;
    }
    b
};

/// A latency histogram of atomics: every request of every worker thread observes into it, so
/// it must not take a lock (prometheus-client's own histogram does).
#[derive(Clone, Default)]
pub struct Latency {
    inner: Arc<LatencyInner>,
}

#[derive(Default)]
struct LatencyInner {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; 17],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_ns: AtomicU64,
}

impl Latency {
    /// Records one decision that took `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BOUNDS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BOUNDS.len());
        let inner = &self.inner;
        inner.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        inner.count.fetch_add(1, Ordering::Relaxed);
        inner.sum_ns.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.inner;
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let sum = inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(
            sum,
            inner.count.load(Ordering::Relaxed),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("count", &self.inner.count.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_exported_as_a_cumulative_histogram() {
        let mut registry = Registry::default();
        let m = OutpostMetrics::register(&mut registry);
        m.decision_seconds.observe(Duration::from_micros(30));
        m.decision_seconds.observe(Duration::from_micros(70));
        m.decision_seconds.observe(Duration::from_secs(10));
        m.name_store("sqlite");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_default();
        assert!(
            text.contains("gatehouse_outpost_decision_seconds_count 3"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_outpost_decision_seconds_bucket{le=\"0.00005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_outpost_decision_seconds_bucket{le=\"0.0001\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_session_store_info{backend=\"sqlite\"} 1"),
            "{text}"
        );
        assert!(text.contains("le=\"+Inf\"} 3"), "{text}");
    }
}
