//! Password hashes in Django's encoded form, the form Authentik stores, so that people moved
//! over from Authentik keep their passwords. Such a hash is only ever verified: the password
//! stage replaces it with Gatehouse's argon2id at the first successful login
//! ([`crate::secret::needs_rehash`] is true for all of them).
//!
//! Layouts, from Django's `contrib/auth/hashers.py` (the algorithm is the text before the first
//! `$`):
//! - `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` and `pbkdf2_sha1$…`: PBKDF2-HMAC over the
//!   salt's text;
//! - `argon2$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`: a PHC string behind the `argon2` prefix;
//! - `bcrypt_sha256$$2b$<cost>$…`: bcrypt of the lowercase hex SHA-256 of the password;
//! - `bcrypt$$2b$<cost>$…`: bcrypt of the password itself.

use std::num::NonZeroU32;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Most PBKDF2 iterations accepted: Django 5.2 uses 1,000,000; far more would let one imported
/// hash tie up a CPU at every login attempt.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// Why an encoded hash is not one Gatehouse can verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// `!…` or empty: Django's mark for "no usable password".
    #[error("this is Django's mark for an unusable password, not a hash: leave the password unset instead")]
    Unusable,
    /// An algorithm this module does not know.
    #[error("unknown hash algorithm `{0}`: use pbkdf2_sha256, pbkdf2_sha1, argon2, bcrypt_sha256, bcrypt or an argon2id PHC string")]
    Unknown(String),
    /// The right algorithm, but the fields do not fit its layout.
    #[error("malformed {0} hash: {1}")]
    Malformed(&'static str, &'static str),
}

/// A parsed Django hash, ready to verify.
enum Encoded<'a> {
    Pbkdf2 {
        algorithm: ring::pbkdf2::Algorithm,
        iterations: NonZeroU32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    Argon2(PasswordHash<'a>),
    Bcrypt {
        prehash: bool,
        hash: &'a str,
    },
}

fn parse(encoded: &str) -> Result<Encoded<'_>, FormatError> {
    if encoded.is_empty() || encoded.starts_with('!') {
        return Err(FormatError::Unusable);
    }
    let (algorithm, rest) = encoded
        .split_once('$')
        .ok_or_else(|| FormatError::Unknown(encoded.chars().take(20).collect()))?;
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" => {
            let name = if algorithm == "pbkdf2_sha256" {
                "pbkdf2_sha256"
            } else {
                "pbkdf2_sha1"
            };
            let mut parts = rest.splitn(3, '$');
            let (Some(iterations), Some(salt), Some(hash)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(FormatError::Malformed(
                    name,
                    "expected <iterations>$<salt>$<hash>",
                ));
            };
            let iterations = iterations
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_PBKDF2_ITERATIONS)
                .and_then(NonZeroU32::new)
                .ok_or(FormatError::Malformed(
                    name,
                    "iterations must be a number from 1 to 10000000",
                ))?;
            if salt.is_empty() || salt.contains('$') {
                return Err(FormatError::Malformed(
                    name,
                    "the salt is empty or holds `$`",
                ));
            }
            let hash = base64::engine::general_purpose::STANDARD
                .decode(hash)
                .map_err(|_| FormatError::Malformed(name, "the hash is not base64"))?;
            let (algorithm, len) = if name == "pbkdf2_sha256" {
                (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32)
            } else {
                (ring::pbkdf2::PBKDF2_HMAC_SHA1, 20)
            };
            if hash.len() != len {
                return Err(FormatError::Malformed(
                    name,
                    "the hash has the wrong length",
                ));
            }
            Ok(Encoded::Pbkdf2 {
                algorithm,
                iterations,
                salt,
                hash,
            })
        }
        "argon2" => {
            // `rest` is the PHC string without its leading `$`; re-slice to keep it.
            let phc = &encoded[algorithm.len()..];
            let parsed = PasswordHash::new(phc)
                .map_err(|_| FormatError::Malformed("argon2", "not a PHC string"))?;
            match parsed.algorithm.as_str() {
                "argon2id" | "argon2i" | "argon2d" => Ok(Encoded::Argon2(parsed)),
                _ => Err(FormatError::Malformed("argon2", "not an argon2 variant")),
            }
        }
        "bcrypt_sha256" | "bcrypt" => {
            let hash = rest;
            if !(hash.starts_with("$2b$") || hash.starts_with("$2a$") || hash.starts_with("$2y$"))
                || hash.len() != 60
            {
                return Err(FormatError::Malformed(
                    "bcrypt",
                    "expected a 60-character $2b$ hash after the algorithm",
                ));
            }
            Ok(Encoded::Bcrypt {
                prehash: algorithm == "bcrypt_sha256",
                hash,
            })
        }
        other => Err(FormatError::Unknown(other.chars().take(20).collect())),
    }
}

/// Whether `encoded` is a Django hash this module can verify; the error names what is wrong.
pub fn check(encoded: &str) -> Result<(), FormatError> {
    parse(encoded).map(|_| ())
}

/// Checks `password` against a Django-encoded hash, in constant time where the algorithm
/// allows. `Err` when `encoded` is not a Django hash this module knows.
pub fn verify(password: &str, encoded: &str) -> Result<bool, FormatError> {
    Ok(match parse(encoded)? {
        Encoded::Pbkdf2 {
            algorithm,
            iterations,
            salt,
            hash,
        } => ring::pbkdf2::verify(
            algorithm,
            iterations,
            salt.as_bytes(),
            password.as_bytes(),
            &hash,
        )
        .is_ok(),
        Encoded::Argon2(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Encoded::Bcrypt { prehash, hash } => {
            let input = if prehash {
                crate::secret::hex_encode(&Sha256::digest(password.as_bytes()))
            } else {
                password.to_owned()
            };
            bcrypt::verify(input, hash).unwrap_or(false)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test hashes of the Authentik import fixture (crates/gatehouse/tests/it/fixtures/
    // authentik/reference.sql), made by Django's own hashers.
    const PBKDF2: &str =
        "pbkdf2_sha256$600000$n1nByNHoJ1tuwHabqcAaCp$+sF6BoRQyI+EZX+HmXmFl+3GsaJxiDJTxmHjUw06Ol4=";
    const ARGON2: &str = "argon2$argon2id$v=19$m=102400,t=2,p=8$THlrUTVudkk2bEhBNW9KTnBPQml1Uw$+LqY3ap+GVGAsal3ITVD91jb2K4ZiXm2rEQJdJQAjtw";
    const BCRYPT_SHA256: &str =
        "bcrypt_sha256$$2b$12$hntU2O6xZwpgRRVyIfIM0ee2Zl33W3/DLJmd8aNdpE0ZVw.vYZh.G";

    #[test]
    fn django_hashes_verify_the_right_password_only() {
        assert_eq!(verify("fixture-erin-old-pbkdf2-password", PBKDF2), Ok(true));
        assert_eq!(
            verify("fixture-erin-old-pbkdf2-passwore", PBKDF2),
            Ok(false)
        );
        assert_eq!(verify("fixture-alice-argon2-password", ARGON2), Ok(true));
        assert_eq!(verify("fixture-alice-argon2-passwor", ARGON2), Ok(false));
        assert_eq!(
            verify("fixture-bob-bcrypt-password", BCRYPT_SHA256),
            Ok(true)
        );
        assert_eq!(
            verify("fixture-bob-bcrypt-Password", BCRYPT_SHA256),
            Ok(false)
        );
    }

    #[test]
    fn malformed_and_unusable_hashes_are_named() {
        assert_eq!(check("!abcdef"), Err(FormatError::Unusable));
        assert_eq!(check(""), Err(FormatError::Unusable));
        assert!(matches!(check("md5$x$y"), Err(FormatError::Unknown(a)) if a == "md5"));
        assert!(matches!(
            check("pbkdf2_sha256$0$salt$AAAA"),
            Err(FormatError::Malformed(_, _))
        ));
        assert!(matches!(
            check("pbkdf2_sha256$99999999$salt$AAAA"),
            Err(FormatError::Malformed(_, _))
        ));
        assert!(matches!(
            check("pbkdf2_sha256$1000$salt$AAAA"),
            Err(FormatError::Malformed(_, "the hash has the wrong length"))
        ));
        assert!(matches!(
            check("bcrypt$$2b$12$short"),
            Err(FormatError::Malformed(_, _))
        ));
        assert!(matches!(
            check("argon2$nonsense"),
            Err(FormatError::Malformed(_, _))
        ));
    }
}
