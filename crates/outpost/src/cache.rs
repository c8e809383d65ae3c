//! What the outpost remembers between requests: the provider table and each checked session.
//! A valid, cached session is answered from memory (the hot path: no database, no network).
//! Nothing is re-read on a timer: the server's change feed ([`Change`]) says what to drop, in
//! order, and drops exactly what a change affects (a logout: that user's entries). A consumer
//! that misses a change (a gap in sequence numbers, a stream down too long) drops everything.
//! The safety bound ([`Settings::recheck`](crate::Settings)) is kept by the feed: while it
//! confirms, within the bound, that it is in touch and missed nothing, cached answers stand
//! however old they are (a healthy feed costs no re-reads, whatever the number of sessions);
//! once it has been silent for longer than the bound, each answer older than the bound is
//! read again (and shared decisions are not reused). While the feed or backend is
//! unreachable, answers already checked keep standing for the grace period counted from the
//! feed's last confirmed contact, and nothing unchecked passes (degraded mode, T1).
//!
//! Memory: a session entry is its key's SHA-256 (fixed bytes), times and a shared reference to
//! the [`SessionView`] of its (user, provider): identity headers, the signed
//! `X-authentik-jwt` and the application's verdict are built once per user and provider, not
//! per session. Entries live in a `quick_cache` bounded by a memory budget (least recently
//! used go first); cookies that name no session are not cached at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use gatehouse_core::kinds::ProxyMode;
use gatehouse_proto::outposts::{FeedChange, ProxyOutpostConfig, SessionCheck, SessionGrant};
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

use crate::backend::{Error, Identified, Result};
use crate::hosts::{authority, Route, Table};
use crate::metrics::OutpostMetrics;
use crate::{cookie_name, Outpost};

/// How long a read may wait for the backend before the cached answer is used (within the
/// grace period) or the request is refused: an unreachable database or server can otherwise
/// hold a request for a whole connect timeout.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// What one cached session costs, for the memory budget: the entry (key, times, reference)
/// plus the cache's own bookkeeping per entry, rounded up.
pub const ENTRY_BYTES: u64 = 112;

/// Users with a shared view before unused views are looked for.
const PRUNE_VIEWS_AT: usize = 4096;

/// A [`SessionView`] is renewed this long before its `X-authentik-jwt` expires, so no
/// request carries a token about to lapse.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

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

/// The decision for one (user, provider), shared by every session of that user there: the
/// identity headers (with the signed `X-authentik-jwt`) and the application's verdict.
#[derive(Debug)]
pub struct SessionView {
    /// The provider it was checked for: a cookie value copied under another provider's
    /// cookie name must not carry this verdict there.
    pub provider: i64,
    /// Whose: a change naming this user drops it.
    pub user: i64,
    /// The identity headers, as the map an allowed answer carries (cloned, never rebuilt).
    pub headers: HeaderMap,
    /// `Err` with the reason when the application's policies refuse the user.
    pub allowed: std::result::Result<(), String>,
    /// Set when a change affects it: every entry sharing it is then a miss.
    dropped: AtomicBool,
    /// The cache generation it was made in ([`Outpost::drop_all`] moves on).
    generation: u64,
    /// When to build it again (shortly before its JWT expires).
    renew_at: Option<Instant>,
}

impl SessionView {
    /// Whether it may still answer at `now` in cache generation `generation`.
    fn current(&self, generation: u64, now: Instant) -> bool {
        !self.dropped.load(Ordering::Acquire)
            && self.generation == generation
            && self.renew_at.is_none_or(|at| now < at)
    }
}

/// A cached session: compact, and pointing at its user's shared [`SessionView`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// The decision, shared per (user, provider).
    pub view: Arc<SessionView>,
    /// When the backend checked it (for the safety bound).
    checked: Instant,
    /// When the session expires.
    expires: Instant,
}

/// Weighs every entry alike (its share of the memory budget).
#[derive(Debug, Clone, Copy)]
pub struct Weight;

impl quick_cache::Weighter<[u8; 32], Entry> for Weight {
    fn weight(&self, _key: &[u8; 32], _entry: &Entry) -> u64 {
        ENTRY_BYTES
    }
}

/// The cache of checked sessions, by the SHA-256 of the cookie (or app-password) key.
pub type SessionCache = quick_cache::sync::Cache<[u8; 32], Entry, Weight>;

/// The shared decisions by user: each user's views, one per provider and kind of key.
type Views = HashMap<i64, Vec<Arc<SessionView>>>;

/// Where the outpost stands in the server's change feed.
#[derive(Debug)]
pub struct Feed {
    /// The last change applied; `None` before the first contact.
    position: Mutex<Option<i64>>,
    /// Since when the feed is out of touch, in milliseconds after `start` plus one (0: live).
    /// Cached answers stand only until the grace period after this. An atomic: every
    /// request reads it.
    lost: std::sync::atomic::AtomicU64,
    /// When the feed last confirmed contact (it read the feed, or the server's stream spoke),
    /// in milliseconds after `start` plus one (0: never). Read by every request (the safety
    /// bound), written a few times a second.
    confirmed: std::sync::atomic::AtomicU64,
    /// The origin of `lost`.
    start: Instant,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            position: Mutex::default(),
            lost: std::sync::atomic::AtomicU64::new(0),
            confirmed: std::sync::atomic::AtomicU64::new(0),
            start: Instant::now(),
        }
    }
}

impl Feed {
    /// Since when the feed is out of touch; `None` while live.
    fn lost_since(&self) -> Option<Instant> {
        match self.lost.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.start + Duration::from_millis(ms - 1)),
        }
    }

    /// When the feed last confirmed contact; `None` before it ever did.
    fn confirmed_at(&self) -> Option<Instant> {
        match self.confirmed.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.start + Duration::from_millis(ms - 1)),
        }
    }

    /// `now` in the form of `lost` and `confirmed`.
    fn stamp(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }
}

/// The cache key of a cookie value or app-password key.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Outpost {
    /// Whether the backend is unreachable right now.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// The current cache generation: bumped whenever everything is dropped.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.0.load(Ordering::Acquire)
    }

    /// Drops every cached answer and the provider table: a change may have been missed (a
    /// gap in the feed, a stream down too long), or a change affects everything.
    pub fn drop_all(&self) {
        self.generation.0.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut slot) = self.snapshot.write() {
            *slot = None;
        }
        self.sessions.clear();
        if let Ok(mut views) = self.views.lock() {
            views.clear();
        }
        self.metrics.cached_sessions.set(0);
    }

    /// Applies one change of the feed at `seq`: drops exactly what it affects. A change that
    /// does not follow the last one applied means changes were missed: everything goes.
    pub fn apply(&self, change: &FeedChange) {
        let mut position = self.feed.position.lock().unwrap_or_else(|p| p.into_inner());
        let follows = position.is_none_or(|at| change.seq <= at + 1);
        if !follows {
            tracing::warn!(
                last = ?*position,
                seq = change.seq,
                "a gap in the change feed: dropping every cached answer"
            );
            self.drop_all();
        } else {
            match change.kind.as_str() {
                "user" => {
                    self.drop_views(|views| views.remove(&change.subject).unwrap_or_default())
                }
                "provider" => {
                    if let Ok(mut slot) = self.snapshot.write() {
                        *slot = None;
                    }
                    self.drop_views(|views| {
                        let mut dropped = Vec::new();
                        views.retain(|_, of_user| {
                            of_user.retain(|v| {
                                let hit = v.provider == change.subject;
                                if hit {
                                    dropped.push(v.clone());
                                }
                                !hit
                            });
                            !of_user.is_empty()
                        });
                        dropped
                    })
                }
                _ => self.drop_all(),
            }
        }
        *position = Some(position.map_or(change.seq, |at| at.max(change.seq)));
    }

    /// Drops the session under `key` and the decision it shares with its user's other
    /// sessions at that provider (after a sign-out through this outpost).
    pub fn forget(&self, key: &str) {
        if let Some((_, entry)) = self.sessions.remove(&key_hash(key)) {
            entry.view.dropped.store(true, Ordering::Release);
        }
    }

    /// Marks the views `pick` takes out of the map as dropped: their entries become misses
    /// (and are evicted lazily, or by the budget).
    fn drop_views(&self, pick: impl FnOnce(&mut Views) -> Vec<Arc<SessionView>>) {
        let dropped = match self.views.lock() {
            Ok(mut views) => pick(&mut views),
            Err(_) => {
                self.drop_all();
                return;
            }
        };
        for view in dropped {
            view.dropped.store(true, Ordering::Release);
        }
    }

    /// Starts following the feed at `position` (the server's hello): when the outpost was
    /// behind and the server could not replay what it missed (`reset`), or had never been in
    /// touch, it drops everything.
    pub fn feed_at(&self, position: i64, reset: bool) {
        let mut at = self.feed.position.lock().unwrap_or_else(|p| p.into_inner());
        if reset || at.is_some_and(|a| a != position) {
            if at.is_some() {
                tracing::warn!(last = ?*at, position, "the change feed cannot replay what this outpost missed: dropping every cached answer");
            }
            self.drop_all();
        }
        *at = Some(position);
        drop(at);
        self.feed_live();
    }

    /// The position of the last change applied (for resuming the feed).
    pub fn feed_position(&self) -> Option<i64> {
        *self.feed.position.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The feed is in touch: it has just applied every change up to its position (the
    /// embedded outpost's reader read the feed), or the server's stream spoke. This is the
    /// contact the safety bound counts from.
    pub fn feed_live(&self) {
        self.feed.lost.store(0, Ordering::Release);
        self.feed
            .confirmed
            .store(self.feed.stamp(), Ordering::Release);
        self.reached(Ok(()));
    }

    /// The feed lost touch (its connection dropped, or the server failed to serve it):
    /// cached answers stand for the grace period from now. Only an unreachable server makes
    /// the outpost degraded; one that answers with a failure is not an outage.
    pub fn feed_lost(&self, why: Error) {
        let _ = self.feed.lost.compare_exchange(
            0,
            self.feed.stamp(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.reached(Err(&why));
    }

    /// Whether cached answers may stand at `now`: the feed is live, or lost less than the
    /// grace period ago.
    fn feed_trusted(&self, now: Instant) -> bool {
        match self.feed.lost_since() {
            None => true,
            Some(at) => now.saturating_duration_since(at) < self.settings.grace,
        }
    }

    /// Whether the feed vouches for cached answers at `now`: live, and it confirmed contact
    /// within the safety bound. Then an answer needs no re-read however old it is, and a
    /// user's shared decision serves their other sessions; otherwise the bound applies to
    /// each answer, and each miss is checked in full.
    fn feed_vouches(&self, now: Instant) -> bool {
        self.feed.lost_since().is_none()
            && self
                .feed
                .confirmed_at()
                .is_some_and(|at| now.saturating_duration_since(at) < self.settings.recheck)
    }

    /// Whether an answer read at `read` may stand at `now` under the safety bound: the feed
    /// vouches for it, or it is younger than the bound.
    fn within_bound(&self, read: Instant, now: Instant) -> bool {
        self.feed_vouches(now) || now.saturating_duration_since(read) < self.settings.recheck
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
            // The server answered: reachable, so not (or no longer) an outage.
            Err(Error::Failed(why)) => {
                self.metrics.store_errors.inc();
                tracing::error!(error = %why, "the server failed the outpost's request");
                if self.degraded.swap(false, Ordering::AcqRel) {
                    self.metrics.degraded.set(0);
                    tracing::info!("the outpost's backend answers again (with failures); degraded mode is over");
                }
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

    /// The provider table: from memory until a change (or the safety bound) drops it, then
    /// read once (concurrent requests share the read).
    pub async fn snapshot(self: &Arc<Self>) -> Result<Arc<Snapshot>> {
        if let Some(snap) = self.current_snapshot(Instant::now()) {
            return Ok(snap);
        }
        let _reading = self.snapshot_read.lock().await;
        if let Some(snap) = self.current_snapshot(Instant::now()) {
            return Ok(snap);
        }
        let generation = self.generation();
        let loaded = self.patiently(self.backend.providers()).await;
        let Ok(mut slot) = self.snapshot.write() else {
            return Err(Error::Unreachable("outpost cache poisoned".into()));
        };
        match loaded {
            Ok(configs) => {
                let snap = Arc::new(Snapshot::new(configs, &self.metrics));
                if generation == self.generation() {
                    *slot = Some((Instant::now(), snap.clone()));
                }
                Ok(snap)
            }
            Err(e) => match slot.as_ref() {
                Some((_, snap)) if self.feed_trusted(Instant::now()) => Ok(snap.clone()),
                _ => {
                    *slot = None;
                    Err(e)
                }
            },
        }
    }

    /// The provider table while it stands (the hot path): within the safety bound, and the
    /// feed live or lost within the grace period.
    pub(crate) fn current_snapshot(&self, now: Instant) -> Option<Arc<Snapshot>> {
        let slot = self.snapshot.read().ok()?;
        let (read, snap) = slot.as_ref()?;
        (self.within_bound(*read, now) && self.feed_trusted(now)).then(|| snap.clone())
    }

    /// The cached session under `hash` while it stands (the hot path).
    pub(crate) fn current_session(
        &self,
        hash: &[u8; 32],
        now: Instant,
    ) -> Option<Arc<SessionView>> {
        let entry = self.sessions.get(hash)?;
        let standing = now < entry.expires
            && entry.view.current(self.generation(), now)
            && self.within_bound(entry.checked, now)
            && self.feed_trusted(now);
        standing.then_some(entry.view)
    }

    /// The session under key `key`: from memory while it stands; else read once from the
    /// backend (requests for the same key at the same time share that read). A key that names
    /// no session is not cached. `check` is built only when the backend is asked. While the
    /// backend is unreachable, an answer already checked stands within the grace period.
    pub(crate) async fn session(
        self: &Arc<Self>,
        key: &str,
        check: impl FnOnce() -> SessionCheck,
    ) -> Result<Option<Arc<SessionView>>> {
        let hash = key_hash(key);
        if let Some(view) = self.current_session(&hash, Instant::now()) {
            return Ok(Some(view));
        }
        let guard = match self.sessions.get_value_or_guard_async(&hash).await {
            Ok(entry) => {
                // Filled by a read in flight, or an entry that no longer stands.
                if let Some(view) = self.current_session(&hash, Instant::now()) {
                    return Ok(Some(view));
                }
                drop(entry);
                self.sessions.remove(&hash);
                match self.sessions.get_value_or_guard_async(&hash).await {
                    Ok(_) => return Ok(self.current_session(&hash, Instant::now())),
                    Err(guard) => guard,
                }
            }
            Err(guard) => guard,
        };
        let check = check();
        let generation = self.generation();
        self.metrics.backend_reads.inc();
        // Shared decisions are only as good as the feed that keeps them: while it does not
        // vouch for them, each miss is checked in full.
        if check.cookie.is_some() && self.feed_vouches(Instant::now()) {
            match self.patiently(self.backend.identify(&check)).await? {
                Identified::NoSession => return Ok(None),
                Identified::Session { user, expires } => {
                    if let Some(view) = self.shared_view(user, check.provider, true, generation) {
                        let entry = Entry {
                            view: view.clone(),
                            checked: Instant::now(),
                            expires: instant_of(expires),
                        };
                        self.keep(guard, entry, generation);
                        return Ok(Some(view));
                    }
                }
                Identified::Unknown => {}
            }
        }
        match self.patiently(self.backend.check(&check)).await {
            Ok(Some(grant)) => {
                let view = self.view_for(&check, grant.clone(), generation);
                let entry = Entry {
                    view: view.clone(),
                    checked: Instant::now(),
                    expires: expiry(&grant),
                };
                self.keep(guard, entry, generation);
                Ok(Some(view))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                drop(guard);
                Err(e)
            }
        }
    }

    /// Caches `entry` through the placeholder `guard` (waking the requests waiting for the
    /// same key), unless a change dropped it while it was read.
    fn keep(&self, guard: Guard<'_>, entry: Entry, generation: u64) {
        if generation == self.generation() && !entry.view.dropped.load(Ordering::Acquire) {
            let _ = guard.insert(entry);
            self.metrics
                .cached_sessions
                .set(i64::try_from(self.sessions.len()).unwrap_or(i64::MAX));
        }
    }

    /// The current shared view of `user` at `provider` (with a JWT: a cookie's), if any.
    fn shared_view(
        &self,
        user: i64,
        provider: i64,
        with_jwt: bool,
        generation: u64,
    ) -> Option<Arc<SessionView>> {
        let now = Instant::now();
        let views = self.views.lock().ok()?;
        views
            .get(&user)?
            .iter()
            .find(|v| {
                v.provider == provider
                    && v.renew_at.is_some() == with_jwt
                    && v.current(generation, now)
            })
            .cloned()
    }

    /// The shared view for `grant`'s (user, provider): the one already built while it is
    /// current, else a new one, which then serves the user's other sessions there too.
    fn view_for(
        &self,
        check: &SessionCheck,
        grant: SessionGrant,
        generation: u64,
    ) -> Arc<SessionView> {
        let now = Instant::now();
        let with_jwt = check.cookie.is_some();
        let Ok(mut views) = self.views.lock() else {
            return Arc::new(build_view(check, grant, generation, now));
        };
        let of_user = views.entry(grant.user).or_default();
        of_user.retain(|v| v.current(generation, now));
        let same =
            |v: &Arc<SessionView>| v.provider == check.provider && v.renew_at.is_some() == with_jwt;
        if self.feed_vouches(now) {
            if let Some(view) = of_user.iter().find(|v| same(v)) {
                return view.clone();
            }
        } else {
            // The feed may have missed a change to it: this fresh answer replaces it.
            for v in of_user.iter().filter(|v| same(v)) {
                v.dropped.store(true, Ordering::Release);
            }
            of_user.retain(|v| !same(v));
        }
        let view = Arc::new(build_view(check, grant, generation, now));
        of_user.push(view.clone());
        // Views outlive their sessions only until the map has doubled: then those no cached
        // entry points at any more (evicted, expired) go, so the budget bounds them too.
        if views.len() >= PRUNE_VIEWS_AT.max(2 * self.views_kept.load(Ordering::Relaxed)) {
            views.retain(|_, of_user| {
                of_user.retain(|v| Arc::strong_count(v) > 1);
                !of_user.is_empty()
            });
            self.views_kept.store(views.len(), Ordering::Relaxed);
        }
        view
    }
}

/// A placeholder for a key being read, held while the backend answers.
type Guard<'a> = quick_cache::sync::PlaceholderGuard<
    'a,
    [u8; 32],
    Entry,
    Weight,
    quick_cache::DefaultHashBuilder,
    quick_cache::sync::DefaultLifecycle<[u8; 32], Entry>,
>;

/// When the session of `grant` expires, as an instant.
fn expiry(grant: &SessionGrant) -> Instant {
    instant_of(grant.expires)
}

/// `epoch_seconds` as an instant (0, unknown: a day from now).
fn instant_of(epoch_seconds: i64) -> Instant {
    let left = epoch_seconds - chrono::Utc::now().timestamp();
    let left = if epoch_seconds == 0 {
        86_400
    } else {
        left.max(0)
    };
    Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0))
}

/// A new view of `grant`; renewed shortly before its JWT (if any) expires.
fn build_view(
    check: &SessionCheck,
    grant: SessionGrant,
    generation: u64,
    now: Instant,
) -> SessionView {
    let headers: HeaderMap = grant
        .headers
        .iter()
        .filter_map(|h| {
            Some((
                HeaderName::from_bytes(h.name.as_bytes()).ok()?,
                HeaderValue::from_str(&h.value).ok()?,
            ))
        })
        .collect();
    let renew_at = check.cookie.as_ref().map(|_| {
        let left = jwt_expiry(&headers).map_or(86_400, |exp| exp - chrono::Utc::now().timestamp());
        let left = Duration::from_secs(u64::try_from(left).unwrap_or(0));
        now + left.saturating_sub(RENEW_BEFORE)
    });
    SessionView {
        provider: check.provider,
        user: grant.user,
        headers,
        allowed: grant.denied.map_or(Ok(()), Err),
        dropped: AtomicBool::new(false),
        generation,
        renew_at,
    }
}

/// The `exp` claim of the `X-authentik-jwt` header (read, not verified: the server signed
/// it), if there is one.
fn jwt_expiry(headers: &HeaderMap) -> Option<i64> {
    use base64::Engine;
    let jwt = headers.get("x-authentik-jwt")?.to_str().ok()?;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["exp"].as_i64()
}

/// An empty session cache holding up to `budget_bytes` worth of entries.
pub(crate) fn new_cache(budget_bytes: u64) -> SessionCache {
    let entries = (budget_bytes / ENTRY_BYTES).max(1024);
    SessionCache::with_weighter(
        usize::try_from(entries)
            .unwrap_or(usize::MAX)
            .min(4_000_000),
        entries * ENTRY_BYTES,
        Weight,
    )
}
