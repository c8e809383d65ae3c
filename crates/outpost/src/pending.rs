//! A login in progress, kept by the browser rather than the database (#13, low items): an
//! anonymous forward-auth hit or `start` writes nothing, so a flood of them costs no rows and
//! no storage. `start` sets a random value as the pending cookie and sends the return URL and
//! expiry in the OAuth `state`, sealed with an HMAC keyed by that cookie value: the callback
//! accepts the state only from the browser holding the cookie (RFC 9700 §4.7, CSRF), and
//! nobody can alter it without the cookie. The server seals and opens (`web/src/outpost.rs`);
//! the session row is written once, at a completed login, under a fresh value.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// What the pending state carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The proxy provider the login is for.
    #[serde(rename = "p")]
    pub provider: i64,
    /// Where the browser goes afterwards (already checked by [`crate::redirect`]).
    #[serde(rename = "rd")]
    pub return_to: String,
    /// When the login expires, in seconds since the epoch.
    #[serde(rename = "exp")]
    pub expires: i64,
}

/// Why a state was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not sealed with this browser's cookie, or altered.
    #[error("the login answer does not belong to this browser's login (state mismatch)")]
    Mismatch,
    /// Sealed, but too old.
    #[error("the login took too long")]
    Expired,
}

const CONTEXT: &[u8] = b"gatehouse outpost pending login v1\0";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn tag(cookie: &str, payload: &str) -> ring::hmac::Tag {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, cookie.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(CONTEXT);
    ctx.update(payload.as_bytes());
    ctx.sign()
}

/// The `state` for `pending`, sealed with the pending cookie's value `cookie` (a fresh
/// [`gatehouse_core::secret::new_token`]).
pub fn seal(cookie: &str, pending: &Pending) -> String {
    let payload = b64(serde_json::to_string(pending)
        .unwrap_or_default()
        .as_bytes());
    format!("{payload}.{}", b64(tag(cookie, &payload).as_ref()))
}

/// The login of `state` if it was sealed with `cookie` and has not expired at `now`.
pub fn open(cookie: &str, state: &str, now: i64) -> Result<Pending, Refusal> {
    let (payload, sealed) = state.split_once('.').ok_or(Refusal::Mismatch)?;
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| Refusal::Mismatch)
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, cookie.as_bytes());
    let mut signed = CONTEXT.to_vec();
    signed.extend_from_slice(payload.as_bytes());
    ring::hmac::verify(&key, &signed, &decode(sealed)?).map_err(|_| Refusal::Mismatch)?;
    let pending: Pending =
        serde_json::from_slice(&decode(payload)?).map_err(|_| Refusal::Mismatch)?;
    if pending.expires <= now {
        return Err(Refusal::Expired);
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_browser_holding_the_cookie_opens_an_unaltered_unexpired_state() {
        let pending = Pending {
            provider: 7,
            return_to: "https://app.example.com/home".into(),
            expires: 1_000,
        };
        let state = seal("cookie-a", &pending);
        assert_eq!(open("cookie-a", &state, 999), Ok(pending.clone()));
        assert_eq!(open("cookie-b", &state, 999), Err(Refusal::Mismatch));
        assert_eq!(open("cookie-a", &state, 1_000), Err(Refusal::Expired));
        let forged = Pending {
            return_to: "https://evil.example.com/".into(),
            ..pending
        };
        let (_, sealed) = state.split_once('.').unwrap_or_default();
        let altered = format!(
            "{}.{sealed}",
            seal("x", &forged).split('.').next().unwrap_or_default()
        );
        assert_eq!(open("cookie-a", &altered, 999), Err(Refusal::Mismatch));
        for junk in ["", ".", "a.b", "no-dot"] {
            assert_eq!(open("cookie-a", junk, 0), Err(Refusal::Mismatch));
        }
    }
}
