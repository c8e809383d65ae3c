//! Property tests of what the outpost reads from the proxy (issue #13, fuzzing): cookies, `rd`,
//! the forwarded headers the original URL is rebuilt from, and skip paths. Requests go through
//! the real router with a backend that knows no session, so nothing may pass but a skip path,
//! and every login must return to the provider's own origin. The seed corpora under
//! `fuzz/corpus/` run first as explicit cases; `PROPTEST_CASES` bounds the generated ones.
// Test code: a failed unwrap is a failed test (helpers sit outside #[test] functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/attack.rs"]
mod attack;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use attack::{adversarial_url, normalised_path, origin_of, seeds, traversal_path};
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use gatehouse_core::kinds::ProxyMode;
use gatehouse_outpost::backend::{BoxFuture, Result};
use gatehouse_outpost::metrics::OutpostMetrics;
use gatehouse_outpost::pending::{self, Pending, Refusal};
use gatehouse_outpost::redirect::safe_return;
use gatehouse_outpost::request::{basic_credentials, read_cookie};
use gatehouse_outpost::{Backend, Error, Outpost, Settings};
use gatehouse_proto::outposts::{
    LoginBegin, LoginBegun, LoginComplete, LoginCompleted, ProxyOutpostConfig, SessionCheck,
    SessionGrant, SignOut, SignedOut,
};
use proptest::prelude::*;
use tower::ServiceExt;

const APP: &str = "https://app.example.com";
const COOKIE: &str = "authentik_proxy_0123abcd";

/// A server that knows one provider and no session, and remembers where logins return to.
struct NoSessions {
    skip: &'static str,
    returns: Arc<Mutex<Vec<String>>>,
}

impl Backend for NoSessions {
    fn providers(&self) -> BoxFuture<'_, Result<Vec<ProxyOutpostConfig>>> {
        let config = ProxyOutpostConfig {
            pk: 1,
            name: "app".into(),
            client_id: "app".into(),
            mode: ProxyMode::ForwardSingle,
            external_host: APP.into(),
            internal_host: String::new(),
            internal_host_ssl_validation: true,
            cookie_domain: String::new(),
            skip_path_regex: self.skip.into(),
            intercept_header_auth: true,
            access_token_validity: 3600,
            assigned_application_slug: String::new(),
            assigned_application_name: String::new(),
        };
        Box::pin(async move { Ok(vec![config]) })
    }
    fn check<'a>(&'a self, _: &'a SessionCheck) -> BoxFuture<'a, Result<Option<SessionGrant>>> {
        Box::pin(async { Ok(None) })
    }
    fn begin<'a>(&'a self, begin: &'a LoginBegin) -> BoxFuture<'a, Result<LoginBegun>> {
        if let Ok(mut r) = self.returns.lock() {
            r.push(begin.return_to.clone());
        }
        Box::pin(async {
            Ok(LoginBegun {
                cookie: "p".repeat(43),
                max_age: 600,
                authorize_url: "https://auth.example.com/authorize".into(),
            })
        })
    }
    fn complete<'a>(&'a self, _: &'a LoginComplete) -> BoxFuture<'a, Result<LoginCompleted>> {
        Box::pin(async { Err(Error::Refused("not in these tests".into())) })
    }
    fn sign_out<'a>(&'a self, _: &'a SignOut) -> BoxFuture<'a, Result<SignedOut>> {
        Box::pin(async { Err(Error::Refused("not in these tests".into())) })
    }
}

/// The outpost's router over [`NoSessions`], with a runtime to drive it from proptest.
struct Harness {
    runtime: tokio::runtime::Runtime,
    outpost: Arc<Outpost>,
    returns: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    fn new(skip: &'static str) -> Harness {
        let returns = Arc::new(Mutex::new(Vec::new()));
        let backend = NoSessions {
            skip,
            returns: returns.clone(),
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = OutpostMetrics::register(&mut registry);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Harness {
            runtime,
            outpost: Arc::new(Outpost::new(backend, Settings::default(), metrics)),
            returns,
        }
    }

    /// Sends a GET for `path` with `headers` (those that are not valid header values are left
    /// out, as no proxy could send them); the status and the return URLs of logins begun.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Vec<String>) {
        self.returns.lock().unwrap().clear();
        let mut request = Request::get(path).body(Body::empty()).unwrap();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                request.headers_mut().append(n, v);
            }
        }
        let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let app = gatehouse_outpost::router()
            .with_state(self.outpost.clone())
            .layer(MockConnectInfo(peer));
        let status = self
            .runtime
            .block_on(app.oneshot(request))
            .unwrap()
            .status();
        (status, self.returns.lock().unwrap().clone())
    }
}

/// Every login returns to the provider's origin.
fn assert_same_origin(returns: &[String], input: &str) {
    for r in returns {
        assert_eq!(
            origin_of(r),
            origin_of(APP),
            "{input:?} made a login return to {r:?}"
        );
    }
}

/// A login never passes without a session: the answer is a login (401 for nginx, 302 for
/// Traefik) or a refusal, and its return URL is on the provider's origin.
fn forwarded_case(h: &Harness, host: &str, uri: &str, original_url: &str) {
    let proto = if uri.len().is_multiple_of(2) {
        "https"
    } else {
        "http"
    };
    let traefik = h.get(
        "/outpost.goauthentik.io/auth/traefik",
        &[
            ("x-forwarded-proto", proto),
            ("x-forwarded-host", host),
            ("x-forwarded-uri", uri),
        ],
    );
    let nginx = h.get(
        "/outpost.goauthentik.io/auth/nginx",
        &[
            ("host", host),
            ("x-original-url", original_url),
            ("x-original-uri", uri),
        ],
    );
    for (status, returns) in [traefik, nginx] {
        assert!(
            !status.is_success() && !status.is_server_error(),
            "host {host:?}, uri {uri:?}, url {original_url:?}: {status}"
        );
        assert_same_origin(&returns, uri);
    }
}

#[test]
fn forwarded_seeds_never_pass_or_return_elsewhere() {
    let h = Harness::new("");
    for seed in seeds("forwarded") {
        forwarded_case(&h, "app.example.com", &seed, &seed);
        forwarded_case(&h, "app.example.com", &seed, &format!("{APP}{seed}"));
    }
}

#[test]
fn rd_seeds_never_leave_the_provider() {
    let h = Harness::new("");
    for seed in seeds("rd") {
        let target = safe_return(&seed, APP, ProxyMode::ForwardSingle, "");
        assert_same_origin(target.as_slice(), &seed);
        let rd = gatehouse_core::validate::url_encode(&seed);
        let (_, returns) = h.get(
            &format!("/outpost.goauthentik.io/start?rd={rd}"),
            &[("host", "app.example.com")],
        );
        assert_same_origin(&returns, &seed);
    }
}

#[test]
fn cookie_seeds_read_only_token_shaped_values() {
    for seed in seeds("cookie") {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_str(&seed).unwrap());
        if let Some(v) = read_cookie(&headers, COOKIE) {
            assert_eq!(v, "a".repeat(43), "{seed:?}");
        }
    }
}

/// What the issue #13 skip-path fix must hold: a path that an upstream may normalise to one
/// outside `^/public/` is never let through as a skip path.
fn skip_case(h: &Harness, path: &str) {
    if normalised_path(path).starts_with("/public/") {
        return;
    }
    let (status, _) = h.get(
        "/outpost.goauthentik.io/auth/traefik",
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", path),
        ],
    );
    assert!(
        !status.is_success(),
        "{path:?} (normalised {}) passed as a skip path",
        normalised_path(path)
    );
    let (status, _) = h.get(
        "/outpost.goauthentik.io/auth/nginx",
        &[
            ("host", "app.example.com"),
            ("x-original-url", &format!("{APP}{path}")),
        ],
    );
    assert!(
        !status.is_success(),
        "nginx: {path:?} passed as a skip path"
    );
}

#[test]
fn skip_path_seeds_that_climb_out_are_not_skipped() {
    let h = Harness::new("^/public/");
    for seed in seeds("skip_path") {
        skip_case(&h, &seed);
    }
}

#[test]
fn skip_path_matches_its_own_paths() {
    let h = Harness::new("^/public/");
    let (status, _) = h.get(
        "/outpost.goauthentik.io/auth/traefik",
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/public/logo.png"),
        ],
    );
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn seed_states_never_open_the_outposts_pending_login() {
    let cookie = "c".repeat(43);
    for seed in seeds("state") {
        assert_eq!(
            pending::open(&cookie, &seed, 0),
            Err(Refusal::Mismatch),
            "{seed}"
        );
    }
}

proptest! {
    /// The outpost's OAuth state (its pending login, sealed with the pending cookie) opens only
    /// for the browser holding that cookie, unaltered and unexpired: one character changed, cut,
    /// extended, another cookie, arbitrary text, all refused, never a panic.
    #[test]
    fn outpost_state_opens_only_unaltered_for_its_cookie(
        cookie in "[A-Za-z0-9_-]{43}",
        other in "[A-Za-z0-9_-]{43}",
        rd in "[ -~]{0,60}",
        at in any::<prop::sample::Index>(),
        c in any::<char>(),
        junk in ".{0,200}",
    ) {
        let issued = Pending {
            provider: 1,
            return_to: format!("{APP}/{rd}"),
            expires: 1_000,
        };
        let state = pending::seal(&cookie, &issued);
        prop_assert_eq!(pending::open(&cookie, &state, 999), Ok(issued.clone()));
        prop_assert_eq!(pending::open(&cookie, &state, 1_000), Err(Refusal::Expired));
        if other != cookie {
            prop_assert_eq!(pending::open(&other, &state, 999), Err(Refusal::Mismatch));
        }
        let i = at.index(state.len());
        let mut changed = state.clone();
        changed.replace_range(i..=i, &c.to_string());
        let cut = state[..i].to_owned();
        let extended = format!("{state}{c}");
        for candidate in [changed, cut, extended, junk] {
            if candidate != state {
                prop_assert_eq!(
                    pending::open(&cookie, &candidate, 999),
                    Err(Refusal::Mismatch),
                    "{:?}",
                    candidate
                );
            }
        }
    }

    /// Whatever a client puts in a cookie header, only a 43-character base64url value is read.
    #[test]
    fn cookie_parser_reads_only_token_shaped_values(raw in ".{0,120}", pad in "[A-Za-z0-9_-]{43}") {
        for header in [raw.clone(), format!("{raw}; {COOKIE}={pad}"), format!("{COOKIE}={raw}")] {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&header) {
                headers.insert("cookie", v);
            }
            if let Some(v) = read_cookie(&headers, COOKIE) {
                prop_assert_eq!(v.len(), 43);
                prop_assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
        }
    }

    /// Basic credentials never panic on arbitrary input.
    #[test]
    fn basic_credentials_never_panic(raw in ".{0,80}", bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        for value in [format!("Basic {raw}"), format!("Basic {encoded}"), raw.clone()] {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert("authorization", v);
            }
            let _ = basic_credentials(&headers);
        }
    }

    /// `rd` never leads off the provider's origin (forward_single) or the cookie domain
    /// (forward_domain).
    #[test]
    fn rd_never_leaves_the_provider(rd in adversarial_url(APP)) {
        let target = safe_return(&rd, APP, ProxyMode::ForwardSingle, "");
        if let Some(t) = &target {
            prop_assert_eq!(origin_of(t), origin_of(APP), "{:?} accepted as {:?}", rd, t);
        }
        if let Some(t) = safe_return(&rd, "https://auth.example.com", ProxyMode::ForwardDomain, "example.com") {
            let (_, host, _) = origin_of(&t).unwrap();
            prop_assert!(host == "example.com" || host.ends_with(".example.com"), "{:?} accepted as {:?}", rd, t);
        }
    }

    /// The URL rebuilt from X-Forwarded-* / X-Original-* never lets a request pass without a
    /// session, and a login begun from it returns to the provider's origin only, whatever the
    /// proxy (or a client talking through a careless one) put in the headers.
    #[test]
    fn forwarded_headers_never_smuggle_another_host(
        uri in prop_oneof![adversarial_url(APP), ".{0,60}"],
        url in adversarial_url(APP),
        host in prop::sample::select(&[
            "app.example.com", "APP.example.com", "app.example.com:443", "app.example.com, evil.net",
            "app.example.com@evil.net", "evil.net", "app.example.com.evil.net", "",
        ][..]),
    ) {
        let h = harness_without_skip();
        forwarded_case(h, host, &uri, &url);
    }

    /// Skip-path matching never matches a path that normalises to a protected one.
    #[test]
    fn skip_path_never_matches_a_path_that_climbs_out(path in traversal_path("/public/")) {
        skip_case(harness_with_skip(), &path);
    }
}

fn harness_without_skip() -> &'static Harness {
    static H: std::sync::OnceLock<Harness> = std::sync::OnceLock::new();
    H.get_or_init(|| Harness::new(""))
}

fn harness_with_skip() -> &'static Harness {
    static H: std::sync::OnceLock<Harness> = std::sync::OnceLock::new();
    H.get_or_init(|| Harness::new("^/public/"))
}
