//! The hot path. Every request of every protected app asks the outpost, and almost all of
//! them carry a session the outpost has already checked. [`FastPath`] stands in front of the
//! whole router and answers exactly those, synchronously: no routing, no extractors, no
//! middleware, no awaiting, no database. Anything else (an unknown or dropped session, a login,
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

use crate::cache::{key_hash, SessionView};
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

/// Copies of shared views' headers kept per worker thread before they are dropped and taken
/// afresh.
const COPIES_PER_THREAD: usize = 256;

thread_local! {
    /// Each worker thread's own copies of the identity headers it answered with recently, by
    /// view: cloning them touches no reference count another thread writes (which is what the
    /// hot path costs on several cores). Each holds its view, so the address cannot be reused.
    static COPIES: RefCell<HashMap<usize, (Arc<SessionView>, HeaderMap)>> =
        RefCell::new(HashMap::new());
}

/// The identity headers of `view` (already checked to stand), from this thread's copy.
fn thread_copy(view: &Arc<SessionView>) -> HeaderMap {
    COPIES.with(|copies| {
        let Ok(mut copies) = copies.try_borrow_mut() else {
            return view.headers.clone();
        };
        let key = Arc::as_ptr(view) as usize;
        if let Some((kept, headers)) = copies.get(&key) {
            if Arc::ptr_eq(kept, view) {
                return headers.clone();
            }
        }
        if copies.len() >= COPIES_PER_THREAD {
            copies.clear();
        }
        let headers: HeaderMap = view
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
                    HeaderValue::from_bytes(value.as_bytes()).ok()?,
                ))
            })
            .collect();
        copies.insert(key, (view.clone(), headers.clone()));
        headers
    })
}

impl Outpost {
    /// The answer for a forward-auth request whose provider table and session stand in
    /// memory and let it in; `None` for everything else. No lock is held beyond a cache
    /// shard's read lock, and nothing is allocated beyond the response.
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
        let snap = self.current_snapshot(started)?;
        let p = snap.select(request_host(headers)?)?;
        if !p.skip.is_empty()
            || (p.config.intercept_header_auth && headers.contains_key(AUTHORIZATION))
        {
            return None;
        }
        let key = read_cookie(headers, &p.cookie)?;
        let view = self
            .current_session(&key_hash(key), started)
            .filter(|v| v.provider == p.config.pk && v.allowed.is_ok())?;
        p.counters.allow.inc();
        let mut response = StatusCode::OK.into_response();
        *response.headers_mut() = thread_copy(&view);
        self.metrics.decision_seconds.observe(started.elapsed());
        Some(response)
    }
}
