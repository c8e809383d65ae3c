//! The IdP session cookie (`gatehouse_session`, an opaque random id) and the flow cookie
//! (`gatehouse_flow`, an anonymous flow run sealed by the server, or a stored run's random id):
//! HttpOnly, SameSite=Lax, Secure over https. A cookie that is not of the expected shape is
//! ignored, never looked up.

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use chrono::Utc;
use gatehouse_flow::RequestInfo;
use gatehouse_store::{sessions, users};

use crate::error::ApiError;
use crate::AppState;

/// Name of the IdP session cookie.
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// Name of the flow-state cookie.
pub const FLOW_COOKIE: &str = "gatehouse_flow";

pub use gatehouse_outpost::request::read_cookie;

/// The flow cookie's value when it has one of its two shapes: a stored run's token, or a
/// carried run (`s1.` and base64url, no longer than a carried run may be). Anything else is
/// ignored, never opened or looked up.
pub fn read_flow_cookie(headers: &HeaderMap) -> Option<&str> {
    use gatehouse_flow::keep::{CARRIED_PREFIX, MAX_CARRIED};
    use gatehouse_outpost::request::{cookie_value, is_base64url};
    read_cookie(headers, FLOW_COOKIE).or_else(|| {
        cookie_value(headers, FLOW_COOKIE).filter(|v| {
            v.len() <= MAX_CARRIED
                && v.strip_prefix(CARRIED_PREFIX)
                    .is_some_and(|sealed| !sealed.is_empty() && is_base64url(sealed))
        })
    })
}

/// A `Set-Cookie` value for `name`; `max_age` `None` makes a browser-session cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", Some(0), secure)
}

/// Whether cookies must be `Secure` (the external URL is https).
pub fn secure(state: &AppState) -> bool {
    state.settings.external_url.starts_with("https://")
}

/// A logged-in visitor.
pub struct Current {
    /// Their session.
    pub session: sessions::Session,
    /// Who they are.
    pub user: users::User,
}

/// The visitor's live session, if the cookie names one whose user is still active.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Current>, ApiError> {
    let Some(key) = read_cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let mut conn = state.store.conn().await?;
    let Some(session) = sessions::find_by_key(&mut conn, key, Utc::now()).await? else {
        return Ok(None);
    };
    let user = users::get(&mut conn, session.user).await?;
    if !user.fields.is_active {
        return Ok(None);
    }
    Ok(Some(Current { session, user }))
}

/// What policies and audit events know about a request.
pub fn request_info(
    headers: &HeaderMap,
    peer: SocketAddr,
    method: &Method,
    uri: &Uri,
) -> RequestInfo {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect::<String>()
    };
    RequestInfo {
        ip: peer.ip().to_string(),
        host: header("host"),
        path: uri.path().to_owned(),
        method: method.as_str().to_owned(),
        user_agent: header("user-agent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_https() {
        let v = set_cookie(SESSION_COOKIE, "abc", Some(60), true);
        assert_eq!(
            v.to_str().unwrap(),
            "gatehouse_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        assert!(!clear_cookie(FLOW_COOKIE, false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
