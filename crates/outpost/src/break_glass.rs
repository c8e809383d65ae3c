//! Break-glass access for the outpost (T1): a few users from the server's settings, with
//! argon2id hashes, let in only while the server (or its database) is unreachable. Every
//! answer that relies on them carries `X-Auth-Fallback: true`, is counted in
//! `gatehouse_outpost_fallback_total` and logged: a fallback is never silent.
//!
//! Browsers meet it in two ways. Behind Caddy or Traefik the Basic challenge reaches them
//! directly. Behind nginx the auth subrequest's challenge never does, so `start` (where nginx
//! sends them) challenges instead, and on success sets a short-lived fallback cookie that the
//! auth endpoint accepts. The cookie is an HMAC over the user and its expiry, keyed (HKDF) from
//! a secret the outpost holds and the settings never show (#13 item 7): anyone who can read the
//! settings could otherwise mint one while the outpost is degraded.
//!
//! Wrong passwords are throttled per address and per account with a growing back-off (never a
//! hard lock: the wait is capped), and at most [`VERIFYING`] argon2 runs (19 MiB each) happen
//! at once, so a flood of guesses costs bounded memory and gains nothing.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use chrono::Utc;
use ring::rand::SecureRandom;
use sha2::{Digest, Sha256};

/// The fallback cookie set by `start`.
pub const FALLBACK_COOKIE: &str = "gatehouse_fallback";

/// The challenge sent while degraded.
pub const CHALLENGE: &str = "Basic realm=\"Gatehouse break-glass (sign-in is degraded)\"";

/// Wrong passwords an address or account may send before the back-off starts.
pub const FREE_ATTEMPTS: u32 = 5;

/// The longest back-off: a throttled account is delayed, never locked out.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a record of wrong passwords is kept after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(900);

/// Addresses tracked at most (accounts are the configured users, always tracked): beyond it,
/// new addresses go untracked and the per-account limit still holds.
const MAX_ADDRESSES: usize = 65_536;

/// Argon2 verifications running at once at most; more wait briefly, then are throttled.
pub const VERIFYING: usize = 2;

/// How long a verification waits for its turn before it counts as throttled.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The outcome of Basic credentials presented while degraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Valid: the break-glass user.
    Passed(String),
    /// No credentials, or wrong ones.
    Refused,
    /// Too many wrong passwords from this address or for this account (or too many
    /// verifications at once): try again after the wait; no password was checked.
    Throttled(Duration),
}

/// Wrong passwords of one address or account.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long until the next attempt may be checked, if it must wait.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let over = self.count.checked_sub(FREE_ATTEMPTS)?;
        let backoff = Duration::from_secs(1u64 << over.min(16)).min(MAX_BACKOFF);
        (self.last + backoff)
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }
}

/// The configured break-glass users and what was already verified.
pub struct BreakGlass {
    /// (username, argon2id PHC hash).
    users: Vec<(String, String)>,
    key: ring::hmac::Key,
    /// SHA-256 of an Authorization header already verified → user, when: browsers resend the
    /// header with every request, and argon2 must not run for each.
    verified: RwLock<HashMap<[u8; 32], (String, Instant)>>,
    /// Wrong passwords by `ip:ADDRESS` and `user:NAME`.
    failures: Mutex<HashMap<String, Failures>>,
    /// Turns for argon2 runs ([`VERIFYING`]).
    verifying: tokio::sync::Semaphore,
}

impl BreakGlass {
    /// Break-glass for `users`, its cookies keyed from `secret` (a standalone outpost's API
    /// token; for the embedded outpost `None`: a key drawn at start, so a fallback cookie is
    /// honoured by the process that set it and another replica asks for the password again).
    /// `None` when there are no users.
    pub fn new(users: &[(String, String)], secret: Option<&[u8]>) -> Option<BreakGlass> {
        if users.is_empty() {
            return None;
        }
        let mut drawn = [0u8; 32];
        let secret = match secret {
            Some(secret) if !secret.is_empty() => secret,
            _ => {
                ring::rand::SystemRandom::new().fill(&mut drawn).ok()?;
                &drawn[..]
            }
        };
        // The users are bound in too: a cookie outlives no change of them.
        let mut info = Sha256::new();
        for (user, hash) in users {
            info.update(user.as_bytes());
            info.update([0]);
            info.update(hash.as_bytes());
            info.update([0]);
        }
        let info: [u8; 32] = info.finalize().into();
        let salt =
            ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"gatehouse break-glass cookie v2");
        let key: ring::hmac::Key = salt
            .extract(secret)
            .expand(&[&info], ring::hmac::HMAC_SHA256)
            .ok()?
            .into();
        Some(BreakGlass {
            users: users.to_vec(),
            key,
            verified: RwLock::default(),
            failures: Mutex::default(),
            verifying: tokio::sync::Semaphore::new(VERIFYING),
        })
    }

    /// The outcome of the `Authorization: Basic` header from `address`, checked against the
    /// argon2 hashes (each valid header once per `remember`), throttled per address and per
    /// account.
    pub async fn basic_user(
        &self,
        headers: &HeaderMap,
        address: &str,
        remember: Duration,
    ) -> Attempt {
        let Some(header) = headers.get(AUTHORIZATION).and_then(|h| h.to_str().ok()) else {
            return Attempt::Refused;
        };
        let digest: [u8; 32] = Sha256::digest(header.as_bytes()).into();
        let known = self
            .verified
            .read()
            .ok()
            .and_then(|v| v.get(&digest).cloned());
        if let Some((user, at)) = known {
            if at.elapsed() < remember {
                return Attempt::Passed(user);
            }
        }
        let Some((user, password)) = crate::request::basic_credentials(headers) else {
            return Attempt::Refused;
        };
        let subjects = [format!("ip:{address}"), format!("user:{user}")];
        if let Some(wait) = self.throttled(&subjects) {
            tracing::warn!(user = %user, address, "break-glass attempt throttled");
            return Attempt::Throttled(wait);
        }
        let Some(hash) = self
            .users
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, h)| h.clone())
        else {
            self.failed(&subjects[..1]);
            return Attempt::Refused;
        };
        let Ok(Ok(_turn)) = tokio::time::timeout(QUEUE_WAIT, self.verifying.acquire()).await else {
            return Attempt::Throttled(Duration::from_secs(1));
        };
        let ok = tokio::task::spawn_blocking(move || {
            gatehouse_core::secret::verify_password(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !ok {
            tracing::warn!(user = %user, address, "break-glass login with a wrong password");
            self.failed(&subjects);
            return Attempt::Refused;
        }
        if let Ok(mut failures) = self.failures.lock() {
            for subject in &subjects {
                failures.remove(subject);
            }
        }
        if let Ok(mut verified) = self.verified.write() {
            verified.retain(|_, (_, at)| at.elapsed() < remember);
            verified.insert(digest, (user.clone(), Instant::now()));
        }
        Attempt::Passed(user)
    }

    /// The longest wait any of `subjects` owes.
    fn throttled(&self, subjects: &[String]) -> Option<Duration> {
        let failures = self.failures.lock().ok()?;
        let now = Instant::now();
        subjects
            .iter()
            .filter_map(|s| failures.get(s)?.wait(now))
            .max()
    }

    /// Counts a wrong password against `subjects`.
    fn failed(&self, subjects: &[String]) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        for subject in subjects {
            let tracked = failures.contains_key(subject);
            if !tracked && subject.starts_with("ip:") && failures.len() >= MAX_ADDRESSES {
                continue;
            }
            let entry = failures.entry(subject.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(entry.last) >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
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
    fn the_back_off_starts_after_the_free_attempts_and_is_capped() {
        let now = Instant::now();
        let after = |count| Failures { count, last: now }.wait(now);
        assert_eq!(after(FREE_ATTEMPTS - 1), None);
        assert_eq!(after(FREE_ATTEMPTS), Some(Duration::from_secs(1)));
        assert_eq!(after(FREE_ATTEMPTS + 3), Some(Duration::from_secs(8)));
        assert_eq!(after(u32::MAX), Some(MAX_BACKOFF));
    }

    #[test]
    fn cookies_verify_only_unaltered_and_under_the_same_secret_and_settings() -> Result<(), String>
    {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned();
        let glass = BreakGlass::new(&[("rescue".to_owned(), hash.clone())], Some(b"token one"))
            .ok_or("no users")?;
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
        let other = BreakGlass::new(&[("other".to_owned(), hash.clone())], Some(b"token one"))
            .ok_or("no users")?;
        assert_eq!(
            other.cookie_user(&with(&value)?),
            None,
            "another configuration's key"
        );
        let other = BreakGlass::new(&[("rescue".to_owned(), hash)], Some(b"token two"))
            .ok_or("no users")?;
        assert_eq!(
            other.cookie_user(&with(&value)?),
            None,
            "another secret's key"
        );
        Ok(())
    }
}
