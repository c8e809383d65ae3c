//! What the outpost remembers between requests: the provider table and each checked session.
//! A valid, cached session is answered from memory (the hot path: no database, no network);
//! staleness stays bounded so revocations and configuration changes are seen within a second
//! even without a push; and while the backend is unreachable, answers already checked keep
//! standing for the grace period, and nothing unchecked passes (degraded mode, T1).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use gatehouse_core::kinds::ProxyMode;
use gatehouse_proto::outposts::{ProxyOutpostConfig, SessionCheck};
use prometheus_client::metrics::counter::Counter;

use crate::backend::{Error, Result};
use crate::hosts::{authority, Route, Table};
use crate::metrics::OutpostMetrics;
use crate::{cookie_name, Outpost};

/// How long cached providers and sessions are used as they are: half the one second in which
/// revocations and configuration changes must reach every outpost.
pub const REVALIDATE: Duration = Duration::from_millis(500);

/// The oldest answer a request may get while a fresher one is read in the background.
pub const STALE_LIMIT: Duration = Duration::from_secs(1);

/// How long a read may wait for the backend before the cached answer is used (within the
/// grace period) or the request is refused: an unreachable database or server can otherwise
/// hold a request for a whole connect timeout.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// Cached answers kept before the cache is pruned.
const MAX_CACHED: usize = 100_000;

/// One proxy provider as the outpost uses it: its configuration plus what is derived from it
/// once per table (cookie name, compiled skip paths, counters).
#[derive(Debug, Clone)]
pub struct ProxyProvider {
    /// The configuration from the server.
    pub config: ProxyOutpostConfig,
    /// The session cookie's name.
    pub cookie: String,
    /// Compiled `skip_path_regex` lines.
    pub skip: Vec<regex::Regex>,
    /// Decision counters.
    pub counters: Counters,
}

impl ProxyProvider {
    /// Whether cookies must be `Secure` (the external host is https).
    pub fn secure(&self) -> bool {
        self.config.external_host.starts_with("https://")
    }
}

/// A provider's decision counters, resolved once per provider table.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Allowed with a session.
    pub allow: Counter,
    /// Allowed without one (skip path).
    pub skip: Counter,
    /// Sent to log in.
    pub login: Counter,
    /// Refused by the application's policies.
    pub forbidden: Counter,
}

impl Counters {
    fn new(metrics: &OutpostMetrics, provider: &str) -> Counters {
        Counters {
            allow: metrics.decision(provider, "allow"),
            skip: metrics.decision(provider, "skip"),
            login: metrics.decision(provider, "login"),
            forbidden: metrics.decision(provider, "forbidden"),
        }
    }
}

/// The providers an outpost serves, by id, with the host table.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Provider selection by host.
    pub table: Table,
    /// Providers by id.
    pub providers: HashMap<i64, Arc<ProxyProvider>>,
    /// Providers in proxy mode by the exact authority of their external host: only these
    /// hosts are answered on the application's behalf.
    pub proxied: HashMap<String, i64>,
}

impl Snapshot {
    /// The table over `configs`. A skip-path line that is not a valid regex is left out (the
    /// API refuses them when saved).
    pub fn new(configs: Vec<ProxyOutpostConfig>, metrics: &OutpostMetrics) -> Snapshot {
        let mut routes = Vec::with_capacity(configs.len());
        let mut providers = HashMap::with_capacity(configs.len());
        let mut proxied = HashMap::new();
        for config in configs {
            let host = authority(&config.external_host).unwrap_or_default();
            if config.mode == ProxyMode::Proxy {
                proxied.insert(host.clone(), config.pk);
            }
            routes.push(Route {
                provider: config.pk,
                authority: host,
                mode: config.mode,
                cookie_domain: config
                    .cookie_domain
                    .trim_start_matches('.')
                    .to_ascii_lowercase(),
            });
            let skip = config
                .skip_path_regex
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| regex::Regex::new(l).ok())
                .collect();
            providers.insert(
                config.pk,
                Arc::new(ProxyProvider {
                    cookie: cookie_name(&config.client_id),
                    counters: Counters::new(metrics, &config.name),
                    skip,
                    config,
                }),
            );
        }
        Snapshot {
            table: Table::new(routes),
            providers,
            proxied,
        }
    }

    /// The provider serving `host`.
    pub fn select(&self, host: &str) -> Option<&Arc<ProxyProvider>> {
        self.table
            .select(host)
            .and_then(|r| self.providers.get(&r.provider))
    }
}

/// A checked session as the outpost answers with it.
#[derive(Debug)]
pub struct SessionView {
    /// The provider it was checked for: a cookie value copied under another provider's
    /// cookie name must not carry this verdict there.
    pub provider: i64,
    /// The identity headers, as the map an allowed answer carries (cloned, never rebuilt).
    pub headers: HeaderMap,
    /// `Err` with the reason when the application's policies refuse the user.
    pub allowed: std::result::Result<(), String>,
}

/// A cached answer from the backend.
#[derive(Clone)]
pub struct Cached<T> {
    /// When a request last took it upon itself to read it again (or it was read).
    stamp: Instant,
    /// When the backend last confirmed it: while the backend is unreachable it is honoured
    /// until the grace period after this runs out.
    verified: Instant,
    value: T,
}

/// A cached session lookup (`None`: no valid session).
pub type CachedSession = Cached<Option<Arc<SessionView>>>;

/// How a cached answer may serve a request now.
enum Usable {
    /// Confirmed within [`REVALIDATE`]: use it.
    Fresh,
    /// A little older (or the backend is down and it is within the grace period): use it
    /// while one request reads it again in the background.
    WhileRevalidating,
    /// Too old to answer with: read it now.
    Reread,
}

impl<T> Cached<T> {
    fn fresh(value: T) -> Cached<T> {
        let now = Instant::now();
        Cached {
            stamp: now,
            verified: now,
            value,
        }
    }
}

impl Outpost {
    /// How a cached answer last confirmed at `verified` may be used. Staleness stays bounded
    /// by [`STALE_LIMIT`] however sparse the traffic, so a revocation or a configuration
    /// change is seen within it.
    fn usable(&self, verified: Instant) -> Usable {
        let age = verified.elapsed();
        if age < REVALIDATE {
            Usable::Fresh
        } else if (self.is_degraded() && age < self.settings.grace)
            || (!self.is_degraded() && age < STALE_LIMIT)
        {
            Usable::WhileRevalidating
        } else {
            Usable::Reread
        }
    }

    /// Whether the backend is unreachable right now.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Forgets the provider table and the checked sessions, so the next requests read them
    /// again: a change pushed by the server (or made on this replica) applies at once.
    pub fn invalidate(&self) {
        if let Ok(mut slot) = self.snapshot.write() {
            *slot = None;
        }
        self.forget_sessions();
    }

    /// Bumped whenever cached answers are forgotten: the worker threads' own copies
    /// ([`crate::fast`]) are valid only for the generation they were taken in.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.0.load(Ordering::Acquire)
    }

    /// Forgets the checked sessions (after a sign-out, say), keeping the provider table.
    pub fn forget_sessions(&self) {
        if let Ok(mut map) = self.sessions.write() {
            map.clear();
        }
        // After the clearing: a thread that sees the new generation finds the cleared map.
        self.generation.0.fetch_add(1, Ordering::AcqRel);
        self.metrics.cached_sessions.set(0);
    }

    /// Records the outcome of a backend call: an outage is logged once and shown by the
    /// `gatehouse_outpost_degraded` gauge until a call succeeds again.
    fn reached(&self, outcome: std::result::Result<(), &Error>) {
        match outcome {
            Ok(()) => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    self.metrics.degraded.set(0);
                    tracing::info!("the outpost's backend answers again; degraded mode is over");
                }
            }
            Err(Error::Refused(why)) => {
                self.metrics.store_errors.inc();
                tracing::error!(error = %why, "the server refused the outpost's request");
            }
            Err(e @ Error::Unreachable(_)) => {
                self.metrics.store_errors.inc();
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    self.metrics.degraded.set(1);
                    tracing::error!(error = %e, grace_s = self.settings.grace.as_secs(),
                        "the outpost cannot reach its backend: sessions checked in the last grace period keep passing, new logins wait");
                }
            }
        }
    }

    /// Runs a backend call, giving up after [`PATIENCE`], and records whether the backend
    /// answered (degraded mode).
    pub(crate) async fn patiently<T>(
        &self,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let outcome = tokio::time::timeout(PATIENCE, call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Unreachable(format!(
                    "no answer within {} s",
                    PATIENCE.as_secs()
                )))
            });
        self.reached(outcome.as_ref().map(|_| ()));
        outcome
    }

    /// Whether an answer last confirmed at `verified` may stand in for the backend.
    fn within_grace(&self, verified: Instant) -> bool {
        verified.elapsed() < self.settings.grace
    }

    /// The provider table. While fresh it comes from memory; once stale, one request starts
    /// a reload in the background and every request keeps using the current table meanwhile,
    /// so no request waits on the backend (nor on an unreachable one).
    pub async fn snapshot(self: &Arc<Self>) -> Result<Arc<Snapshot>> {
        if let Some((_, fresh)) = self.fresh_snapshot(Instant::now()) {
            return Ok(fresh);
        }
        let current = self.snapshot.read().ok().and_then(|g| g.clone());
        let Some(current) = current else {
            return self.reload_snapshot().await;
        };
        match self.usable(current.verified) {
            Usable::Fresh => Ok(current.value),
            Usable::WhileRevalidating => {
                if self.claim_snapshot() {
                    let outpost = self.clone();
                    tokio::spawn(async move {
                        let _ = outpost.reload_snapshot().await;
                    });
                }
                Ok(current.value)
            }
            Usable::Reread => self.reload_snapshot().await,
        }
    }

    /// The provider table when it was confirmed within [`REVALIDATE`] (the hot path).
    pub(crate) fn fresh_snapshot(&self, now: Instant) -> Option<(Instant, Arc<Snapshot>)> {
        let slot = self.snapshot.read().ok()?;
        let cached = slot.as_ref()?;
        (now.saturating_duration_since(cached.verified) < REVALIDATE)
            .then(|| (cached.verified, cached.value.clone()))
    }

    /// The cached answer for session `key` when it was confirmed within [`REVALIDATE`] (the
    /// hot path): `Some(None)` is a cached "no valid session".
    pub(crate) fn fresh_session(
        &self,
        key: &str,
        now: Instant,
    ) -> Option<(Instant, Option<Arc<SessionView>>)> {
        let map = self.sessions.read().ok()?;
        let cached = map.get(key)?;
        (now.saturating_duration_since(cached.verified) < REVALIDATE)
            .then(|| (cached.verified, cached.value.clone()))
    }

    /// Marks the snapshot as being reloaded; false when another request already did.
    fn claim_snapshot(&self) -> bool {
        self.snapshot
            .write()
            .ok()
            .is_some_and(|mut slot| match slot.as_mut() {
                Some(c) => claim(c),
                None => false,
            })
    }

    /// Reads the provider table. When the backend cannot be reached, the current table
    /// stands in until the grace period after it was read runs out.
    async fn reload_snapshot(&self) -> Result<Arc<Snapshot>> {
        let loaded = self.patiently(self.backend.providers()).await;
        let Ok(mut slot) = self.snapshot.write() else {
            return Err(Error::Unreachable("outpost cache poisoned".into()));
        };
        match loaded {
            Ok(configs) => {
                let snap = Arc::new(Snapshot::new(configs, &self.metrics));
                *slot = Some(Cached::fresh(snap.clone()));
                Ok(snap)
            }
            Err(e) => match slot.as_ref().filter(|c| self.within_grace(c.verified)) {
                Some(c) => Ok(c.value.clone()),
                None => {
                    *slot = None;
                    Err(e)
                }
            },
        }
    }

    /// The session under cache key `key`: from memory while fresh (the hot path: no backend,
    /// no hashing); once stale, one request starts a re-read in the background and the cached
    /// answer stands meanwhile; a key never seen is read at once. `check` is built only when
    /// the backend is asked.
    pub(crate) async fn session(
        self: &Arc<Self>,
        key: &str,
        check: impl FnOnce() -> SessionCheck,
    ) -> Result<Option<Arc<SessionView>>> {
        if let Some((_, fresh)) = self.fresh_session(key, Instant::now()) {
            return Ok(fresh);
        }
        let cached = self.sessions.read().ok().and_then(|m| m.get(key).cloned());
        let Some(cached) = cached else {
            return self.reread_session(key, &check()).await;
        };
        match self.usable(cached.verified) {
            Usable::Fresh => Ok(cached.value),
            Usable::WhileRevalidating => {
                if self.claim_session(key) {
                    let (outpost, key, check) = (self.clone(), key.to_owned(), check());
                    tokio::spawn(async move {
                        let _ = outpost.reread_session(&key, &check).await;
                    });
                }
                Ok(cached.value)
            }
            Usable::Reread => self.reread_session(key, &check()).await,
        }
    }

    /// Marks session `key` as being re-read; false when another request already did.
    fn claim_session(&self, key: &str) -> bool {
        self.sessions
            .write()
            .ok()
            .is_some_and(|mut map| map.get_mut(key).is_some_and(claim))
    }

    /// Asks the backend about a session and caches the answer. When the backend cannot be
    /// reached, a cached answer stands in until the grace period after it was last confirmed
    /// runs out; then it is dropped and the session no longer passes.
    async fn reread_session(
        &self,
        key: &str,
        check: &SessionCheck,
    ) -> Result<Option<Arc<SessionView>>> {
        let read = self.patiently(self.backend.check(check)).await;
        let Ok(mut map) = self.sessions.write() else {
            return Err(Error::Unreachable("outpost cache poisoned".into()));
        };
        let view = match read {
            Ok(grant) => grant.map(|g| {
                Arc::new(SessionView {
                    provider: check.provider,
                    headers: g
                        .headers
                        .iter()
                        .filter_map(|h| {
                            Some((
                                HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                                HeaderValue::from_str(&h.value).ok()?,
                            ))
                        })
                        .collect(),
                    allowed: g.denied.map_or(Ok(()), Err),
                })
            }),
            Err(e) => {
                let standing = map
                    .get(key)
                    .filter(|c| self.within_grace(c.verified))
                    .map(|c| c.value.clone());
                if standing.is_none() {
                    map.remove(key);
                }
                return standing.ok_or(e);
            }
        };
        if map.len() > MAX_CACHED {
            // Keep what degraded mode may need: real sessions within the grace period.
            // Answers of "no session" (forged or expired cookies) go once stale.
            let grace = self.settings.grace.max(REVALIDATE);
            map.retain(|_, c| match c.value {
                Some(_) => c.verified.elapsed() < grace,
                None => c.stamp.elapsed() < REVALIDATE,
            });
        }
        map.insert(key.to_owned(), Cached::fresh(view.clone()));
        self.metrics
            .cached_sessions
            .set(i64::try_from(map.len()).unwrap_or(i64::MAX));
        Ok(view)
    }
}

/// Claims a stale entry for re-reading: true once per [`REVALIDATE`] interval.
fn claim<T>(c: &mut Cached<T>) -> bool {
    if c.stamp.elapsed() >= REVALIDATE {
        c.stamp = Instant::now();
        true
    } else {
        false
    }
}
