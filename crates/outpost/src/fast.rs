//! The hot path. Every request of every protected app asks the outpost, and almost all of
//! them carry a session the outpost checked moments ago. [`FastPath`] stands in front of the
//! whole router and answers exactly those, synchronously: no routing, no extractors, no
//! middleware, no awaiting, no database. Anything else (a stale or unknown session, a login,
//! a skip path, an Authorization header, another route) goes on to the router unchanged, which
//! decides the same way, only slower. The answers are the same either way.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready};
use tower::Service;

use crate::cache::{Snapshot, REVALIDATE};
use crate::request::{read_cookie, request_host};
use crate::Outpost;

/// The router behind, with cached allowed sessions answered in front of it.
#[derive(Clone)]
pub struct FastPath<S> {
    outpost: Arc<Outpost>,
    inner: S,
}

impl<S> FastPath<S> {
    /// `inner` (the whole router, outpost routes included), fronted for `outpost`.
    pub fn new(outpost: Arc<Outpost>, inner: S) -> FastPath<S> {
        FastPath { outpost, inner }
    }
}

impl<S> Service<Request> for FastPath<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.outpost.answer_from_memory(&req) {
            Some(response) => Either::Left(futures_util::future::ready(Ok(response))),
            None => Either::Right(self.inner.call(req)),
        }
    }
}

/// Serves `app` on `listener` with the hot path of `outpost` in front, until `shutdown`:
/// the one way both `gatehouse serve` and `gatehouse outpost` answer HTTP. Connections get
/// TCP_NODELAY: answers are small and complete, and Nagle would hold some back behind a
/// delayed ACK.
pub async fn serve(
    listener: tokio::net::TcpListener,
    outpost: Arc<Outpost>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let service = FastPath::new(outpost, app);
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(
            service,
        ),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The endpoints whose allowed answer is a plain 200 with the identity headers, and the
/// header each needs for the original URL (missing: a configuration error, for the router).
fn endpoint(path: &str) -> Option<&'static str> {
    match path {
        "/outpost.goauthentik.io/auth/nginx" => Some(""),
        "/outpost.goauthentik.io/auth/traefik" | "/outpost.goauthentik.io/auth/caddy" => {
            Some("x-forwarded-uri")
        }
        _ => None,
    }
}

/// Each worker thread's own copies of the provider table and of the answers it gave
/// recently: reading them touches no cache line another thread writes (no lock, no shared
/// reference count), which is what the hot path costs under load on several cores. Copies are
/// used only while the shared answer they came from is fresh, and all go when the outpost
/// forgets its caches (its generation changes).
#[derive(Default)]
struct Front {
    /// The outpost and generation the copies belong to.
    outpost: u64,
    generation: u64,
    /// The provider table, with when the backend confirmed it.
    snapshot: Option<(Instant, Arc<Snapshot>)>,
    /// Allowed sessions by cookie value: provider, when confirmed, the identity headers
    /// (copied, so their bytes are this thread's own).
    allowed: HashMap<Box<str>, (i64, Instant, HeaderMap)>,
}

/// Copies kept per thread before they are dropped and taken afresh.
const FRONT_CAPACITY: usize = 4096;

thread_local! {
    static FRONT: RefCell<Front> = RefCell::new(Front::default());
}

/// `headers` with every name and value copied into new buffers.
fn deep_copy(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
                HeaderValue::from_bytes(value.as_bytes()).ok()?,
            ))
        })
        .collect()
}

fn fresh(now: Instant, verified: Instant) -> bool {
    now.saturating_duration_since(verified) < REVALIDATE
}

impl Outpost {
    /// The answer for a forward-auth request whose provider table and session are fresh in
    /// memory and let it in; `None` for everything else.
    fn answer_from_memory(&self, req: &Request) -> Option<Response> {
        let needs = endpoint(req.uri().path())?;
        let started = Instant::now();
        let headers = req.headers();
        if needs.is_empty() {
            if !(headers.contains_key("x-original-url") || headers.contains_key("x-original-uri")) {
                return None;
            }
        } else if !headers.contains_key(needs) {
            return None;
        }
        let identity = FRONT.with(|front| {
            let mut front = front.try_borrow_mut().ok()?;
            let generation = self.generation();
            if front.outpost != self.id || front.generation != generation {
                *front = Front {
                    outpost: self.id,
                    generation,
                    ..Front::default()
                };
            }
            let Front {
                snapshot, allowed, ..
            } = &mut *front;
            if !snapshot.as_ref().is_some_and(|(at, _)| fresh(started, *at)) {
                *snapshot = Some(self.fresh_snapshot(started)?);
            }
            let snap = &snapshot.as_ref()?.1;
            let p = snap.select(request_host(headers)?)?;
            if !p.skip.is_empty()
                || (p.config.intercept_header_auth && headers.contains_key(AUTHORIZATION))
            {
                return None;
            }
            let key = read_cookie(headers, &p.cookie)?;
            let identity = match allowed.get(key) {
                Some((provider, at, identity))
                    if *provider == p.config.pk && fresh(started, *at) =>
                {
                    identity.clone()
                }
                _ => {
                    let (at, view) = self.fresh_session(key, started)?;
                    let view = view.filter(|v| v.provider == p.config.pk && v.allowed.is_ok())?;
                    if allowed.len() >= FRONT_CAPACITY {
                        allowed.clear();
                    }
                    let identity = deep_copy(&view.headers);
                    allowed.insert(key.into(), (p.config.pk, at, identity.clone()));
                    identity
                }
            };
            p.counters.allow.inc();
            Some(identity)
        });
        let identity = identity?;
        let mut response = StatusCode::OK.into_response();
        *response.headers_mut() = identity;
        self.metrics.decision_seconds.observe(started.elapsed());
        Some(response)
    }
}
