//! Proxy mode: for a provider in `proxy` mode Gatehouse itself stands in front of the
//! application, answering its host, and passes allowed requests on to `internal_host` with the
//! identity headers, streaming both ways, without what Gatehouse consumed (its cookies, an
//! intercepted `Authorization`). An upstream that does not answer gets a 502 page that names
//! it.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use gatehouse_html::error_page;
use gatehouse_proto::outposts::ProxyOutpostConfig;

use crate::break_glass::FALLBACK_COOKIE;
use crate::Outpost;

/// Headers that describe one connection and must not cross the proxy (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// HTTP clients for upstreams: one that verifies TLS certificates and one for providers that
/// turned `internal_host_ssl_validation` off.
pub struct Upstreams {
    verifying: reqwest::Client,
    lenient: reqwest::Client,
}

impl Default for Upstreams {
    fn default() -> Self {
        let build = |verify: bool| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(5))
                .danger_accept_invalid_certs(!verify)
                .build()
                .unwrap_or_default()
        };
        Upstreams {
            verifying: build(true),
            lenient: build(false),
        }
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Removes what Gatehouse consumed and the application must not see (#13, low items): the
/// outpost's session and fallback cookies and, when Gatehouse read it (app-password
/// interception, break-glass), the Basic `Authorization` header. The application's own
/// cookies pass.
fn strip_consumed(headers: &mut HeaderMap, provider: &ProxyOutpostConfig, identity: &HeaderMap) {
    let ours = [
        crate::cookie_name(&provider.client_id),
        FALLBACK_COOKIE.to_owned(),
    ];
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
            !pair.is_empty() && !ours.iter().any(|ours| ours == name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(COOKIE);
    if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
        if !kept.is_empty() {
            headers.insert(COOKIE, v);
        }
    }
    let read_by_us = provider.intercept_header_auth || identity.contains_key("x-auth-fallback");
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "));
    if read_by_us && basic {
        headers.remove(AUTHORIZATION);
    }
}

/// Passes `req` on to `internal_host` with `identity` added. Identity headers the visitor sent
/// themselves (`X-authentik-*`, `X-Auth-Fallback`) are removed first, so they cannot be forged.
pub async fn forward(
    outpost: &Outpost,
    provider: &ProxyOutpostConfig,
    req: Request,
    identity: HeaderMap,
    peer: SocketAddr,
) -> Response {
    let internal_host = provider.internal_host.as_str();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", internal_host.trim_end_matches('/'));
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-authentik-") || n.as_str() == "x-auth-fallback")
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    strip_consumed(&mut headers, provider, &identity);
    if let Some(host) = headers.get(axum::http::header::HOST).cloned() {
        headers.insert("x-forwarded-host", host);
    }
    if let Ok(ip) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.append("x-forwarded-for", ip);
    }
    headers.extend(identity);
    let client = if provider.internal_host_ssl_validation {
        &outpost.upstreams.verifying
    } else {
        &outpost.upstreams.lenient
    };
    let sent = client
        .request(parts.method, &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match sent {
        Ok(upstream) => {
            let mut response = Response::builder().status(upstream.status());
            if let Some(h) = response.headers_mut() {
                *h = upstream.headers().clone();
                strip_hop_by_hop(h);
            }
            response
                .body(Body::from_stream(upstream.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            outpost.metrics.upstream_errors.inc();
            tracing::warn!(upstream = %internal_host, error = %e, "the application behind proxy mode did not answer");
            error_page(
                StatusCode::BAD_GATEWAY,
                "The application is not answering",
                &format!("Gatehouse signed you in, but the application at {internal_host} did not answer."),
                "Try again in a moment. Administrators: check that the application runs and that the provider's internal host is right.",
            )
        }
    }
}
