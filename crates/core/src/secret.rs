//! Secrets: random tokens shown once and stored only as hashes, and people's passwords.
//!
//! Tokens (API tokens, session ids, set-up links) are 32 random bytes in base64url. They are long
//! and random, so a plain SHA-256 is the right hash at rest: a database leak hands out nothing
//! usable, and lookups stay one indexed query. Passwords are chosen by people and get argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// argon2id memory cost in KiB (19 MiB, OWASP's recommendation for argon2id).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// argon2id iterations.
pub const ARGON2_ITERATIONS: u32 = 2;
/// argon2id lanes.
pub const ARGON2_PARALLELISM: u32 = 1;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The stored hash is not a PHC string Gatehouse understands.
    #[error("stored password hash is unreadable")]
    BadHash,
    /// Hashing failed (parameters rejected by the library).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// A fresh random token: 32 bytes, base64url without padding (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A one-time recovery code such as `k7qp-3xmd`: 40 bits from an alphabet without look-alikes.
pub fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let mut pick = || ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char;
    let first: String = (0..4).map(|_| pick()).collect();
    let second: String = (0..4).map(|_| pick()).collect();
    format!("{first}-{second}")
}

/// The at-rest form of a token: lowercase hex SHA-256.
pub fn token_hash(token: &str) -> String {
    hex_encode(&Sha256::digest(token.as_bytes()))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::thread_rng());
    hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Checks a password against a stored hash: Gatehouse's PHC string, or a hash carried over in
/// Django's encoded form ([`crate::django_hash`]), which [`needs_rehash`] then replaces.
pub fn verify_password(password: &str, stored: &str) -> Result<bool, PasswordError> {
    if !stored.starts_with('$') {
        return crate::django_hash::verify(password, stored).map_err(|_| PasswordError::BadHash);
    }
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::BadHash)?;
    Ok(hasher()?
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Checks that `stored` is an argon2id PHC string (for hashes written into configuration).
pub fn check_password_hash(stored: &str) -> Result<(), PasswordError> {
    match PasswordHash::new(stored) {
        Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => Ok(()),
        _ => Err(PasswordError::BadHash),
    }
}

/// Checks that `stored` is a hash a password can be verified against: an argon2id PHC string or
/// a Django-encoded hash carried over from Authentik (`set_password_hash`, imports).
pub fn check_importable_hash(stored: &str) -> Result<(), crate::django_hash::FormatError> {
    if check_password_hash(stored).is_ok() {
        return Ok(());
    }
    crate::django_hash::check(stored)
}

/// Whether a stored hash was made with other parameters than today's, so it should be replaced
/// by a fresh hash the next time the password is known (at login).
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let param = |name: &str| parsed.params.get_decimal(name);
    parsed.algorithm.as_str() != "argon2id"
        || param("m") != Some(ARGON2_MEMORY_KIB)
        || param("t") != Some(ARGON2_ITERATIONS)
        || param("p") != Some(ARGON2_PARALLELISM)
}

/// Compares two secrets without revealing where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn password_round_trip_and_wrong_password() -> Result<(), PasswordError> {
        let stored = hash_password("correct horse")?;
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &stored)?);
        assert!(!verify_password("wrong", &stored)?);
        assert!(verify_password("x", "not a hash").is_err());
        assert!(!needs_rehash(&stored));
        assert!(needs_rehash(
            "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        ));
        Ok(())
    }
}
