//! Reading what a proxy sends: headers, the host a request is about, cookies and Basic
//! credentials. A cookie that does not have the shape of a Gatehouse token is ignored, never
//! looked up, so malformed or oversized cookies cost nothing and reach no database.

use std::net::SocketAddr;

use axum::http::header::{AUTHORIZATION, COOKIE, HOST, USER_AGENT};
use axum::http::HeaderMap;
use base64::Engine;
use gatehouse_core::client_address::TrustedProxies;
use gatehouse_proto::outposts::ClientInfo;

/// A header's trimmed, non-empty text value.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The host a forward-auth request is about: `X-Forwarded-Host`, else `Host`.
pub fn request_host(headers: &HeaderMap) -> Option<&str> {
    header(headers, "x-forwarded-host").or_else(|| header(headers, HOST.as_str()))
}

/// The value of cookie `name`, whatever its shape (callers check it).
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether `value` is made of base64url characters only.
pub fn is_base64url(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The value of cookie `name` when it looks like a Gatehouse token (43 base64url characters).
pub fn read_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    cookie_value(headers, name).filter(|v| v.len() == 43 && is_base64url(v))
}

/// Whether the request carries a cookie called `name` at all (well-formed or not).
pub fn has_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(name))
}

/// The username and password of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?
        .trim();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
}

/// Who is asking, for the application's policies: the peer's address, the host and browser
/// (each cut at 256 characters).
pub fn client_info(headers: &HeaderMap, peer: SocketAddr) -> ClientInfo {
    let cut = |name: &str| {
        header(headers, name)
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect()
    };
    ClientInfo {
        ip: peer.ip().to_string(),
        host: cut(HOST.as_str()),
        user_agent: cut(USER_AGENT.as_str()),
    }
}

/// The TCP peer of a request, kept beside the resolved client address for the rare reader that
/// needs the hop itself.
#[derive(Debug, Clone, Copy)]
pub struct TcpPeer(pub std::net::SocketAddr);

/// Middleware over the whole router: resolves the client's address once (the TCP peer, or behind
/// a trusted proxy the right-most untrusted `X-Forwarded-For`/`Forwarded` entry) and puts it in
/// the request's `ConnectInfo`, so every handler — throttles (break-glass too), reputation, audit
/// events, the outpost's policies — reads the same answer through the extractor it already uses.
/// The server and the standalone outpost both wrap their routers in it.
pub async fn client_address(
    axum::extract::State(trusted): axum::extract::State<std::sync::Arc<TrustedProxies>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(axum::extract::ConnectInfo(peer)) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .copied()
    {
        let values = |name: &str| -> Vec<&str> {
            req.headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect()
        };
        let client = trusted.client(peer.ip(), &values("x-forwarded-for"), &values("forwarded"));
        let extensions = req.extensions_mut();
        extensions.insert(TcpPeer(peer));
        extensions.insert(axum::extract::ConnectInfo(SocketAddr::new(
            client,
            peer.port(),
        )));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(COOKIE, v);
        }
        headers
    }

    #[test]
    fn only_well_formed_cookies_are_read() {
        let token = "a".repeat(43);
        assert_eq!(
            read_cookie(&with_cookie(&format!("x=1; c={token}")), "c"),
            Some(token.as_str())
        );
        assert_eq!(read_cookie(&with_cookie("c=short"), "c"), None);
        assert_eq!(
            read_cookie(&with_cookie(&format!("c={}", "a".repeat(4000))), "c"),
            None,
            "oversized"
        );
        assert_eq!(
            read_cookie(&with_cookie(&format!("c={}%", "a".repeat(42))), "c"),
            None,
            "not base64url"
        );
        assert!(has_cookie(&with_cookie("c=short"), "c"));
    }

    #[test]
    fn basic_credentials_need_a_colon_and_base64() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6czNjcmV0"),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".into(), "s3cret".into()))
        );
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic YWxpY2U="));
        assert_eq!(basic_credentials(&headers), None, "no colon");
    }
}
