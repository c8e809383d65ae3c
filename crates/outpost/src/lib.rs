//! The forward-auth outpost (SPEC §3.1): Authentik's `/outpost.goauthentik.io/` surface, the
//! decision for every request a proxy asks about, and the caches that keep that decision off
//! the database. The same code runs embedded in `gatehouse serve` and as the standalone
//! `gatehouse outpost` at the edge; only the [`Backend`] differs: the server's database, or
//! the server's outpost API.
//!
//! # Layout
//! - Rules, free of HTTP and storage: [`hosts`] (the provider for a host), [`redirect`] (`rd`:
//!   never an open redirect), [`skip`] (skip paths, never on an ambiguous raw path),
//!   [`headers`] (the identity headers), [`pending`] (a login in progress, sealed into its
//!   OAuth state instead of a row), [`cookie_name`].
//! - [`backend`]: what the outpost asks of the server. [`remote`]: the standalone outpost's
//!   client of the server's outpost API, with changes pushed over a stream.
//! - [`cache`]: the provider snapshot and checked sessions (compact entries sharing one view
//!   per user and provider, a memory budget), the change feed's position, degraded mode.
//! - [`routes`]: the HTTP endpoints and proxy mode. [`request`]: reading the proxy's headers.
//! - [`fast`]: the hot path in front of the router, for sessions already checked.
//! - [`break_glass`], [`reverse_proxy`], [`metrics`].

pub mod backend;
pub mod break_glass;
pub mod cache;
pub mod fast;
pub mod headers;
pub mod hosts;
pub mod metrics;
pub mod pending;
pub mod redirect;
pub mod remote;
pub mod request;
pub mod reverse_proxy;
pub mod routes;
pub mod skip;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use backend::{Backend, BoxFuture, Error, Identified};
pub use routes::{proxy_mode, router};

/// The path prefix of every outpost route.
pub const PREFIX: &str = "/outpost.goauthentik.io";

/// The callback path (with Authentik's marker parameter) under an external host.
pub const CALLBACK: &str = "/outpost.goauthentik.io/callback?X-authentik-auth-callback=true";

/// The session cookie of a provider: `authentik_proxy_` and the first 8 hex digits of the
/// SHA-256 of its client id, as Authentik names it.
pub fn cookie_name(client_id: &str) -> String {
    let digest = Sha256::digest(client_id.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("authentik_proxy_{hex}")
}

/// How an outpost behaves when the server cannot answer, and what it may hold.
#[derive(Debug, Clone)]
pub struct Settings {
    /// While the database (or, for a standalone outpost, the server) is unreachable, how long
    /// sessions already checked keep passing (T1), counted from the change feed's last
    /// confirmed contact. Nothing else passes meanwhile.
    pub grace: Duration,
    /// Break-glass users (username, argon2id hash), let in only while degraded.
    pub break_glass: Vec<(String, String)>,
    /// The secret the fallback cookie's key is derived from: a standalone outpost's API
    /// token; `None` (the embedded outpost) draws one at start (see [`break_glass`]).
    pub break_glass_secret: Option<Vec<u8>>,
    /// The safety bound: once the change feed has not confirmed contact for this long, a
    /// cached answer older than this is read again (changes arrive by push; this limits the
    /// harm of a feed that went quiet without a trace). While the feed confirms contact
    /// (the embedded reader looks every 250 ms; a standalone outpost's stream speaks at
    /// least every 15 s), answers are not re-read.
    pub recheck: Duration,
    /// The memory budget of the session cache, in bytes; the least recently used sessions
    /// go first (and are read again on their next request).
    pub cache_bytes: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            grace: Duration::ZERO,
            break_glass: Vec::new(),
            break_glass_secret: None,
            recheck: Duration::from_secs(60),
            cache_bytes: 256 << 20,
        }
    }
}

/// One outpost: its backend, caches and metrics. Shared by every request (`Arc<Outpost>` is
/// the routes' state).
pub struct Outpost {
    /// Where providers and sessions come from.
    backend: Box<dyn Backend>,
    /// Grace period, safety bound, budget and break-glass users.
    settings: Settings,
    /// Decision counters and gauges.
    metrics: metrics::OutpostMetrics,
    /// Break-glass users, when configured.
    break_glass: Option<break_glass::BreakGlass>,
    /// Clients for proxy mode's upstreams.
    upstreams: reverse_proxy::Upstreams,
    /// The provider table with when it was read; dropped by changes, read by every request.
    snapshot: RwLock<Option<(Instant, Arc<cache::Snapshot>)>>,
    /// Held while the provider table is read, so concurrent requests share one read.
    snapshot_read: tokio::sync::Mutex<()>,
    /// Checked sessions by the SHA-256 of their key, within the memory budget.
    sessions: cache::SessionCache,
    /// The shared decisions per (user, provider) that entries point at.
    views: Mutex<HashMap<i64, Vec<Arc<cache::SessionView>>>>,
    /// Users with a view after the last pruning of unused views.
    views_kept: std::sync::atomic::AtomicUsize,
    /// Where this outpost stands in the change feed.
    feed: cache::Feed,
    /// Set while the backend is unreachable (logged once per outage).
    degraded: AtomicBool,
    /// Bumped when every cached answer is dropped; on a cache line of its own, as every
    /// request reads it.
    generation: Padded,
}

/// A counter alone on its cache line, so that writes to its neighbours do not slow down the
/// threads reading it.
#[repr(align(64))]
#[derive(Default)]
struct Padded(std::sync::atomic::AtomicU64);

impl Outpost {
    /// An outpost asking `backend`, counting into `metrics`.
    pub fn new(
        backend: impl Backend,
        settings: Settings,
        metrics: metrics::OutpostMetrics,
    ) -> Outpost {
        Outpost {
            backend: Box::new(backend),
            break_glass: break_glass::BreakGlass::new(
                &settings.break_glass,
                settings.break_glass_secret.as_deref(),
            ),
            sessions: cache::new_cache(settings.cache_bytes),
            settings,
            metrics,
            upstreams: reverse_proxy::Upstreams::default(),
            snapshot: RwLock::default(),
            snapshot_read: tokio::sync::Mutex::default(),
            views: Mutex::default(),
            views_kept: std::sync::atomic::AtomicUsize::new(0),
            feed: cache::Feed::default(),
            degraded: AtomicBool::new(false),
            generation: Padded::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_follow_authentik() {
        let name = cookie_name("abc");
        assert!(name.starts_with("authentik_proxy_"));
        assert_eq!(name.len(), "authentik_proxy_".len() + 8);
        assert_eq!(name, cookie_name("abc"));
        assert_ne!(name, cookie_name("abd"));
        // sha256("abc") starts with ba7816bf.
        assert_eq!(name, "authentik_proxy_ba7816bf");
    }
}
