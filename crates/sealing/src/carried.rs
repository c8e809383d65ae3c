//! Values the browser carries for the server (a flow run in progress in its cookie): sealed
//! with AES-256-GCM under a purpose subkey ([`crate::SecretKey::derive`]), so the browser can
//! neither read nor alter them, and any replica given the same secret key opens them. The same
//! AEAD and framing seal stored values inside [`crate::SecretKey`].
//!
//! The sealed form is `BASE64URL(nonce || ciphertext || tag)`; the caller's `context` (what the
//! value is, its format version) is the associated data, so a value sealed for one purpose never
//! opens as another. Freshness and binding to what it was issued for are the caller's: they are
//! inside the sealed value.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Error;

/// An AEAD key for values the browser carries, made from a 32-byte purpose subkey. Debug output
/// shows nothing of it.
pub struct CarriedKey {
    aead: LessSafeKey,
}

impl std::fmt::Debug for CarriedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CarriedKey(..)")
    }
}

impl CarriedKey {
    /// The key for `subkey` (e.g. `SecretKey::derive("flow run cookie")`).
    pub fn new(subkey: &[u8; 32]) -> CarriedKey {
        // A 32-byte key is exactly what AES-256-GCM takes, so `new` cannot fail; the fallback
        // only satisfies the type and is never reached.
        let unbound = UnboundKey::new(&AES_256_GCM, subkey)
            .unwrap_or_else(|_| unreachable!("AES-256-GCM takes 32-byte keys"));
        CarriedKey {
            aead: LessSafeKey::new(unbound),
        }
    }

    /// Seals `plain` for `context` under a fresh random nonce.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Random)?;
        let mut data = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut data,
            )
            .map_err(|_| Error::Damaged)?;
        let mut framed = nonce.to_vec();
        framed.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(framed))
    }

    /// Opens a value this key sealed for `context`; anything else (altered, cut, another key or
    /// context, not base64url) is [`Error::Damaged`].
    pub fn open(&self, context: &[u8], sealed: &str) -> Result<Vec<u8>, Error> {
        let framed = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| Error::Damaged)?;
        if framed.len() < NONCE_LEN {
            return Err(Error::Damaged);
        }
        let (nonce, data) = framed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Damaged)?;
        let mut data = data.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context), &mut data)
            .map_err(|_| Error::Damaged)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carried_value_opens_only_unaltered_with_its_key_and_context() {
        let key = CarriedKey::new(&[7; 32]);
        let sealed = key.seal(b"flow v1", b"index=1").unwrap_or_default();
        assert!(!sealed.contains("index"));
        assert_eq!(key.open(b"flow v1", &sealed), Ok(b"index=1".to_vec()));
        assert_eq!(key.open(b"flow v2", &sealed), Err(Error::Damaged));
        assert_eq!(
            CarriedKey::new(&[8; 32]).open(b"flow v1", &sealed),
            Err(Error::Damaged)
        );
        let mut altered = sealed.clone().into_bytes();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap_or_default();
        assert_eq!(key.open(b"flow v1", &altered), Err(Error::Damaged));
        for junk in ["", "AAAA", "!!!", &sealed[..sealed.len() - 1]] {
            assert_eq!(key.open(b"flow v1", junk), Err(Error::Damaged), "{junk}");
        }
        assert_ne!(
            key.seal(b"flow v1", b"same").unwrap_or_default(),
            key.seal(b"flow v1", b"same").unwrap_or_default(),
            "fresh nonce each time"
        );
    }
}
