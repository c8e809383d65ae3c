//! Secrets at rest: the server's secret key (`GATEHOUSE_SECRET_KEY`) and the sealed form of the
//! values the store must be able to read back (signing private keys, OAuth client secrets,
//! login sources' client secrets).
//!
//! # Layout
//! - [`SecretKey`]: the key as configured (any string of at least 32 characters, e.g. 32 random
//!   bytes in base64 or hex), stretched through HKDF-SHA256 into an AES-256-GCM key, a public
//!   key id, and purpose-specific subkeys ([`SecretKey::derive`]) for neighbours such as the
//!   outpost's break-glass cookie.
//! - [`SecretKey::seal`] / [`SecretKey::unseal`]: AEAD with the value's place (table, column,
//!   row) as associated data, so a sealed value copied into another row or column does not open.
//! - [`carried`]: values the browser carries for the server (an anonymous flow run's cookie),
//!   sealed under a purpose subkey.
//!
//! The stored form is `sealed:v1:KEYID:BASE64URL(nonce || ciphertext || tag)`. The key id lets
//! start-up and a key rotation tell which key sealed a value, and tell a wrong key apart from a
//! damaged value. The crypto is ring's; nothing here is hand-rolled beyond the framing.

pub mod carried;

pub use carried::CarriedKey;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The prefix every sealed value starts with; anything else is plain text from before sealing.
pub const PREFIX: &str = "sealed:v1:";

/// The shortest secret key accepted: 32 characters (e.g. 32 random bytes as 43 base64url
/// characters or 64 hex digits).
pub const MIN_KEY_CHARS: usize = 32;

/// HKDF salt: fixed, so one configured key always gives the same keys on every replica.
const SALT: &[u8] = b"gatehouse secret key";

/// Why a key could not be made or a value could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The configured key is too short to be a key.
    #[error("the secret key is {0} characters long; it must have at least 32 (e.g. `openssl rand -base64 32`)")]
    KeyTooShort(usize),
    /// The value names a key other than this one.
    #[error("value was sealed with secret key {found}, but the configured key is {expected}")]
    WrongKey {
        /// The key id the value names.
        found: String,
        /// This key's id.
        expected: String,
    },
    /// The value is not in the sealed form, or it was altered or moved from its row.
    #[error("sealed value is damaged or belongs to another row")]
    Damaged,
    /// The system's random source failed.
    #[error("the system random source failed")]
    Random,
}

/// Where a sealed value lives: its table, column and row key. Sealing binds the value to it.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// Table name, e.g. `providers`.
    pub table: &'a str,
    /// Column name, e.g. `client_secret`.
    pub column: &'a str,
    /// The row's stable key, e.g. the client id or the signing key's kid.
    pub row: &'a str,
}

impl Place<'_> {
    /// The associated data: unambiguous because each part is length-prefixed.
    fn aad(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [self.table, self.column, self.row] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// The server's secret key, ready to seal and unseal. Debug output shows only its id.
pub struct SecretKey {
    /// The AES-256-GCM key and its framing, shared with values the browser carries.
    aead: CarriedKey,
    id: String,
    prk: hkdf::Prk,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey").field("id", &self.id).finish()
    }
}

/// Output length for ring's HKDF expand.
struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl SecretKey {
    /// Makes the key from its configured text (surrounding whitespace, e.g. a file's newline,
    /// is ignored).
    pub fn from_text(text: &str) -> Result<SecretKey, Error> {
        let text = text.trim();
        if text.chars().count() < MIN_KEY_CHARS {
            return Err(Error::KeyTooShort(text.chars().count()));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(text.as_bytes());
        let aead_bytes = expand(&prk, b"gatehouse sealing v1 aes-256-gcm");
        let id_bytes = expand(&prk, b"gatehouse sealing v1 key id");
        Ok(SecretKey {
            aead: CarriedKey::new(&aead_bytes),
            id: id_bytes[..8].iter().map(|b| format!("{b:02x}")).collect(),
            prk,
        })
    }

    /// A fresh random key text (32 bytes, base64url), for the first start and for rotation.
    pub fn generate_text() -> Result<String, Error> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Random)?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A fresh random key that is never written down: for tools that open a store but read
    /// no secret (`migrate`, benchmarks).
    pub fn generate() -> Result<SecretKey, Error> {
        SecretKey::from_text(&SecretKey::generate_text()?)
    }

    /// The public id of this key (16 hex digits): safe to log and to store.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A 32-byte subkey for one purpose (e.g. `outpost break-glass cookie`), so a neighbour
    /// keys its MAC or cipher from the server's secret without ever holding the sealing key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut info = b"gatehouse purpose: ".to_vec();
        info.extend_from_slice(purpose.as_bytes());
        expand(&self.prk, &info)
    }

    /// Seals `plain` for `place`.
    pub fn seal(&self, place: Place<'_>, plain: &str) -> Result<String, Error> {
        let body = self.aead.seal(&place.aad(), plain.as_bytes())?;
        Ok(format!("{PREFIX}{}:{body}", self.id))
    }

    /// Opens a value sealed for `place` by this key.
    pub fn unseal(&self, place: Place<'_>, sealed: &str) -> Result<String, Error> {
        let (id, body) = sealed_parts(sealed).ok_or(Error::Damaged)?;
        if id != self.id {
            return Err(Error::WrongKey {
                found: id.to_owned(),
                expected: self.id.clone(),
            });
        }
        let plain = self.aead.open(&place.aad(), body)?;
        String::from_utf8(plain).map_err(|_| Error::Damaged)
    }
}

/// Whether a stored value is sealed (rather than plain text from before sealing).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The key id a sealed value names, if it is sealed.
pub fn sealed_by(stored: &str) -> Option<&str> {
    sealed_parts(stored).map(|(id, _)| id)
}

fn sealed_parts(stored: &str) -> Option<(&str, &str)> {
    stored.strip_prefix(PREFIX)?.split_once(':')
}

fn expand(prk: &hkdf::Prk, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let infos = [info];
    // Expanding 32 bytes from SHA-256 is always within HKDF's limit (255 × 32), so this never
    // fails; the zero key it would leave is never reached.
    if let Ok(okm) = prk.expand(&infos, Len(32)) {
        let _ = okm.fill(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SecretKey {
        SecretKey::from_text(text).unwrap_or_else(|e| unreachable!("{e}"))
    }

    const A: Place<'static> = Place {
        table: "providers",
        column: "client_secret",
        row: "client-a",
    };
    const B: Place<'static> = Place {
        table: "providers",
        column: "client_secret",
        row: "client-b",
    };

    #[test]
    fn sealed_value_opens_in_its_place_and_hides_the_secret() {
        let k = key("0123456789abcdef0123456789abcdef");
        let sealed = k.seal(A, "hunter2-hunter2").unwrap_or_default();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(sealed_by(&sealed), Some(k.id()));
        assert_eq!(k.unseal(A, &sealed), Ok("hunter2-hunter2".to_owned()));
    }

    #[test]
    fn value_swapped_to_another_row_or_column_does_not_open() {
        let k = key("0123456789abcdef0123456789abcdef");
        let sealed = k.seal(A, "secret").unwrap_or_default();
        assert_eq!(k.unseal(B, &sealed), Err(Error::Damaged));
        let other_column = Place {
            column: "consumer_secret",
            ..A
        };
        assert_eq!(k.unseal(other_column, &sealed), Err(Error::Damaged));
    }

    #[test]
    fn tampered_value_does_not_open() {
        let k = key("0123456789abcdef0123456789abcdef");
        let sealed = k.seal(A, "secret").unwrap_or_default();
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap_or_default();
        assert_eq!(k.unseal(A, &tampered), Err(Error::Damaged));
        assert_eq!(k.unseal(A, "sealed:v1:nonsense"), Err(Error::Damaged));
    }

    #[test]
    fn another_key_is_named_as_the_wrong_key() {
        let k = key("0123456789abcdef0123456789abcdef");
        let other = key("fedcba9876543210fedcba9876543210");
        let sealed = k.seal(A, "secret").unwrap_or_default();
        assert!(matches!(
            other.unseal(A, &sealed),
            Err(Error::WrongKey { .. })
        ));
    }

    #[test]
    fn short_keys_are_refused_and_whitespace_is_ignored() {
        assert_eq!(
            SecretKey::from_text("short").map(|_| ()),
            Err(Error::KeyTooShort(5))
        );
        let text = "0123456789abcdef0123456789abcdef";
        assert_eq!(key(text).id(), key(&format!("{text}\n")).id());
    }

    #[test]
    fn purposes_get_distinct_subkeys_and_generated_keys_are_accepted() {
        let k = key("0123456789abcdef0123456789abcdef");
        assert_ne!(k.derive("outpost break-glass cookie"), k.derive("other"));
        assert_eq!(
            k.derive("x"),
            key("0123456789abcdef0123456789abcdef").derive("x")
        );
        let generated = SecretKey::generate_text().unwrap_or_default();
        assert!(SecretKey::from_text(&generated).is_ok());
    }
}
