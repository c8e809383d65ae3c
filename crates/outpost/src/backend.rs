//! What the outpost asks of the server: the providers it serves, whether a session is valid,
//! and the steps of a login. The embedded outpost answers from the database directly (the
//! server implements this trait over its store); the standalone one through the server's
//! outpost API ([`crate::remote`]). Either way the sessions live in the server's database, so
//! any number of outposts share them.

use std::future::Future;
use std::pin::Pin;

use gatehouse_proto::outposts::{
    LoginBegin, LoginBegun, LoginComplete, LoginCompleted, ProxyOutpostConfig, SessionCheck,
    SessionGrant, SignOut, SignedOut,
};

/// A boxed future: the backend is chosen at run time (embedded or remote), and none of these
/// calls is on the hot path of a cached session.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the server could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The database, or the server, cannot be reached or did not answer in time: the outpost
    /// goes into degraded mode.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The server refused the outpost's request (a wrong token, a provider not assigned to
    /// it): a configuration error, logged; nobody passes.
    #[error("refused by the server: {0}")]
    Refused(String),
    /// The server answered, with a failure of its own (a 5xx: overloaded, or a bug). It is
    /// reachable, so this is no outage: no degraded mode and so no break-glass (#13 item 7),
    /// and nobody new passes until it answers again.
    #[error("the server failed: {0}")]
    Failed(String),
}

/// A backend result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whose session a cookie is, as one indexed read finds it (the cold path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identified {
    /// A valid session of an active user, expiring at `expires` (seconds since the epoch).
    Session {
        /// The user's pk.
        user: i64,
        /// When the session ends.
        expires: i64,
    },
    /// No valid session under that cookie for that provider.
    NoSession,
    /// This backend cannot tell cheaply: ask [`Backend::check`].
    Unknown,
}

/// The server side of every outpost decision that is not already cached.
pub trait Backend: Send + Sync + 'static {
    /// The proxy providers this outpost serves.
    fn providers(&self) -> BoxFuture<'_, Result<Vec<ProxyOutpostConfig>>>;

    /// The session (or app password) presented in `check`, if valid for its provider.
    fn check<'a>(&'a self, check: &'a SessionCheck) -> BoxFuture<'a, Result<Option<SessionGrant>>>;

    /// Whose session the cookie of `check` is, in one indexed read, so that a new session of
    /// a user whose decision is already cached costs no more (the cold path). Backends that
    /// cannot tell cheaply answer [`Identified::Unknown`].
    fn identify<'a>(&'a self, check: &'a SessionCheck) -> BoxFuture<'a, Result<Identified>> {
        let _ = check;
        Box::pin(async { Ok(Identified::Unknown) })
    }

    /// Starts a login: a pending session and the IdP's authorize URL.
    fn begin<'a>(&'a self, begin: &'a LoginBegin) -> BoxFuture<'a, Result<LoginBegun>>;

    /// Completes a login at the callback: checks the state, redeems the code.
    fn complete<'a>(&'a self, complete: &'a LoginComplete)
        -> BoxFuture<'a, Result<LoginCompleted>>;

    /// Ends every outpost session of the cookie's user.
    fn sign_out<'a>(&'a self, sign_out: &'a SignOut) -> BoxFuture<'a, Result<SignedOut>>;
}

/// A shared backend (the standalone outpost's client also follows the server's events).
impl<B: Backend> Backend for std::sync::Arc<B> {
    fn providers(&self) -> BoxFuture<'_, Result<Vec<ProxyOutpostConfig>>> {
        (**self).providers()
    }

    fn check<'a>(&'a self, check: &'a SessionCheck) -> BoxFuture<'a, Result<Option<SessionGrant>>> {
        (**self).check(check)
    }

    fn identify<'a>(&'a self, check: &'a SessionCheck) -> BoxFuture<'a, Result<Identified>> {
        (**self).identify(check)
    }

    fn begin<'a>(&'a self, begin: &'a LoginBegin) -> BoxFuture<'a, Result<LoginBegun>> {
        (**self).begin(begin)
    }

    fn complete<'a>(
        &'a self,
        complete: &'a LoginComplete,
    ) -> BoxFuture<'a, Result<LoginCompleted>> {
        (**self).complete(complete)
    }

    fn sign_out<'a>(&'a self, sign_out: &'a SignOut) -> BoxFuture<'a, Result<SignedOut>> {
        (**self).sign_out(sign_out)
    }
}
