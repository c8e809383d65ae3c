//! The hot path. Every request of every protected app asks the outpost, and almost all of
//! them carry a session the outpost has already checked. [`FastPath`] stands in front of the
//! whole router and answers exactly those, synchronously: no routing, no extractors, no
//! middleware, no awaiting, no database. Anything else (an unknown or dropped session, a login,
//! a skip path, an Authorization header, another route) goes on to the router unchanged, which
//! decides the same way, only slower. The answers are the same either way.

use std::cell::RefCell;
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

/// Slots in each worker thread's table of header copies (direct-mapped by view; a power of
/// two).
const SLOTS: usize = 64;

/// Requests for one view that a slot sees in a row before its thread makes a copy of its own:
/// a copy pays off for a view asked for again and again (one user hammering an app); for
/// views that come and go (many users), building copies would cost more than it saves.
const HOT_AFTER: u32 = 4;

/// One slot of a thread's table: the view last asked for there (by address), how many times in
/// a row, and this thread's copy of its headers once it is hot. The copy holds its view, so
/// the address cannot be reused while it is kept.
#[derive(Default)]
struct Slot {
    view: usize,
    seen: u32,
    copy: Option<(Arc<SessionView>, HeaderMap)>,
}

thread_local! {
    /// Each worker thread's own copies of the identity headers of the views it answers with
    /// most: cloning them touches no reference count another thread writes (which is what
    /// the hot path costs on several cores when every request is the same user's). Bounded:
    /// [`SLOTS`] copies at most.
    static COPIES: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// The identity headers of `view` (already checked to stand): this thread's copy when the view
/// is hot here, else a clone of the shared headers.
fn thread_copy(view: &Arc<SessionView>) -> HeaderMap {
    COPIES.with(|copies| {
        let Ok(mut copies) = copies.try_borrow_mut() else {
            return view.headers.clone();
        };
        if copies.is_empty() {
            copies.resize_with(SLOTS, Slot::default);
        }
        let key = Arc::as_ptr(view) as usize;
        // Fibonacci hashing of the address (its low bits are alignment): its top bits.
        let index =
            key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - SLOTS.trailing_zeros());
        let Some(slot) = copies.get_mut(index) else {
            return view.headers.clone();
        };
        if slot.view != key {
            *slot = Slot {
                view: key,
                seen: 1,
                copy: None,
            };
            return view.headers.clone();
        }
        if let Some((kept, headers)) = &slot.copy {
            if Arc::ptr_eq(kept, view) {
                return headers.clone();
            }
        }
        slot.seen = slot.seen.saturating_add(1);
        if slot.seen < HOT_AFTER {
            return view.headers.clone();
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
        slot.copy = Some((view.clone(), headers.clone()));
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
