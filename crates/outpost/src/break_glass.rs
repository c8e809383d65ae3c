//! Break-glass access for the outpost (T1): a few users from the server's settings, with
//! argon2id hashes, let in only while the database is unreachable. Every answer that relies on
//! them carries `X-Auth-Fallback: true`, is counted in `gatehouse_outpost_fallback_total` and
//! logged: a fallback is never silent.
//!
//! Browsers meet it in two ways. Behind Caddy or Traefik the Basic challenge reaches them
//! directly. Behind nginx the auth subrequest's challenge never does, so `start` (where nginx
//! sends them) challenges instead, and on success sets a short-lived fallback cookie that the
//! auth endpoint accepts. The cookie is an HMAC over the user and its expiry, keyed from the
//! configured hashes, so every replica with the same settings accepts it.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use chrono::Utc;
use sha2::{Digest, Sha256};

/// The fallback cookie set by `start`.
pub const FALLBACK_COOKIE: &str = "gatehouse_fallback";

/// The challenge sent while degraded.
pub const CHALLENGE: &str = "Basic realm=\"Gatehouse break-glass (sign-in is degraded)\"";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The configured break-glass users and what was already verified.
pub struct BreakGlass {
    /// (username, argon2id PHC hash).
    users: Vec<(String, String)>,
    key: ring::hmac::Key,
    /// SHA-256 of an Authorization header already verified → user, when: browsers resend the
    /// header with every request, and argon2 must not run for each.
    verified: RwLock<HashMap<[u8; 32], (String, Instant)>>,
}

impl BreakGlass {
    /// Break-glass for `users`; `None` when there are none.
    pub fn new(users: &[(String, String)]) -> Option<BreakGlass> {
        if users.is_empty() {
            return None;
        }
        let mut material = Sha256::new();
        material.update(b"gatehouse break-glass cookie v1");
        for (user, hash) in users {
            material.update(user.as_bytes());
            material.update([0]);
            material.update(hash.as_bytes());
            material.update([0]);
        }
        Some(BreakGlass {
            users: users.to_vec(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &material.finalize()),
            verified: RwLock::default(),
        })
    }

    /// The user of a valid `Authorization: Basic` header, checked against the argon2 hashes
    /// (each header once per `remember`).
    pub async fn basic_user(&self, headers: &HeaderMap, remember: Duration) -> Option<String> {
        let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let digest: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        if let Some((user, at)) = self.verified.read().ok()?.get(&digest).cloned() {
            if at.elapsed() < remember {
                return Some(user);
            }
        }
        let (user, password) = crate::request::basic_credentials(headers)?;
        let hash = self.users.iter().find(|(u, _)| *u == user)?.1.clone();
        let ok = tokio::task::spawn_blocking(move || {
            gatehouse_core::secret::verify_password(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !ok {
            tracing::warn!(user = %user, "break-glass login with a wrong password");
            return None;
        }
        if let Ok(mut verified) = self.verified.write() {
            verified.retain(|_, (_, at)| at.elapsed() < remember);
            verified.insert(digest, (user.clone(), Instant::now()));
        }
        Some(user)
    }

    /// A `Set-Cookie` value letting `user` through for `lifetime` (while still degraded).
    pub fn cookie(&self, user: &str, lifetime: Duration, secure: bool) -> Option<HeaderValue> {
        let expires = Utc::now().timestamp() + i64::try_from(lifetime.as_secs()).ok()?;
        let payload = format!("{user}|{expires}");
        let tag = ring::hmac::sign(&self.key, payload.as_bytes());
        let value = format!("{}.{}", b64(payload.as_bytes()), b64(tag.as_ref()));
        let secure = if secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{FALLBACK_COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            lifetime.as_secs()
        ))
        .ok()
    }

    /// The user of a valid, unexpired fallback cookie.
    pub fn cookie_user(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix(FALLBACK_COOKIE)?.strip_prefix('='))?;
        let (payload, tag) = value.split_once('.')?;
        let decode = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        };
        let payload = decode(payload)?;
        ring::hmac::verify(&self.key, &payload, &decode(tag)?).ok()?;
        let (user, expires) = std::str::from_utf8(&payload).ok()?.rsplit_once('|')?;
        (expires.parse::<i64>().ok()? > Utc::now().timestamp()).then(|| user.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_verify_only_unaltered_and_under_the_same_settings() -> Result<(), String> {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned();
        let glass = BreakGlass::new(&[("rescue".to_owned(), hash.clone())]).ok_or("no users")?;
        let cookie = glass
            .cookie("rescue", Duration::from_secs(60), false)
            .ok_or("no cookie")?;
        let set = cookie.to_str().map_err(|e| e.to_string())?;
        let value = set.split(';').next().unwrap_or_default().to_owned();
        let with = |v: &str| -> Result<HeaderMap, String> {
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, HeaderValue::from_str(v).map_err(|e| e.to_string())?);
            Ok(headers)
        };
        assert_eq!(glass.cookie_user(&with(&value)?).as_deref(), Some("rescue"));
        // "rescue" → "admin" in the signed payload.
        let forged = value.replace("cmVzY3Vl", "YWRtaW4");
        assert_eq!(glass.cookie_user(&with(&forged)?), None);
        let other = BreakGlass::new(&[("other".to_owned(), hash)]).ok_or("no users")?;
        assert_eq!(
            other.cookie_user(&with(&value)?),
            None,
            "another configuration's key"
        );
        Ok(())
    }
}
