//! Signing keys. They are made on first use and kept in the database so every replica signs with
//! and publishes the same keys, and held parsed in memory ([`Keyring`]) so issuing a token costs
//! signatures, not database round-trips. Each provider signs with its own algorithm: RS256 (RSA
//! 2048) by default because every relying party accepts it without configuration (Kubernetes'
//! `--oidc-signing-algs` defaults to it, as does the `openidconnect` crate), or ES256 (P-256),
//! which signs some fifty times faster. Rotation retires the active key; a retired key stays in
//! the JWKS until the last token it signed has expired.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use gatehouse_core::kinds::SigningAlgorithm;
use gatehouse_core::secret;
use gatehouse_store::{oauth, Store};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::error::ApiError;

/// How long the keyring trusts what it loaded before looking again, so a rotation made through
/// another replica is picked up (tokens signed by a retired key stay valid meanwhile).
const FRESH_FOR: StdDuration = StdDuration::from_secs(10);

/// The least time between two reloads forced by tokens naming an unknown `kid`, so forged
/// tokens cannot turn into a database query each.
const UNKNOWN_KID_RELOAD_EVERY: StdDuration = StdDuration::from_secs(1);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn jwt_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::Es256 => Algorithm::ES256,
        SigningAlgorithm::Rs256 => Algorithm::RS256,
    }
}

/// A fresh key of `algorithm`: (PKCS#8 PEM, public JWK without kid).
fn generate(algorithm: SigningAlgorithm) -> Result<(String, Value), ApiError> {
    match algorithm {
        SigningAlgorithm::Es256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            use p256::pkcs8::{EncodePrivateKey, LineEnding};
            let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(internal)?
                .to_string();
            let point = key.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(internal("generated key has no affine coordinates"));
            };
            Ok((
                pem,
                json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}),
            ))
        }
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(internal)?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(internal)?
                .to_string();
            let public = key.to_public_key();
            Ok((
                pem,
                json!({"kty": "RSA", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}),
            ))
        }
    }
}

/// Makes and stores a new key of `algorithm` in its own transaction; returns its kid.
async fn create(store: &Store, algorithm: SigningAlgorithm) -> Result<String, ApiError> {
    let (pem, mut jwk) = tokio::task::spawn_blocking(move || generate(algorithm))
        .await
        .map_err(internal)??;
    let kid = secret::token_hash(&jwk.to_string())[..16].to_owned();
    jwk["kid"] = kid.clone().into();
    jwk["use"] = "sig".into();
    jwk["alg"] = algorithm.as_str().into();
    let mut tx = store.begin().await?;
    oauth::add_key(&mut tx, &kid, algorithm.as_str(), &pem, &jwk).await?;
    gatehouse_store::commit(tx).await?;
    tracing::info!(kid = %kid, algorithm = %algorithm, "created a new signing key");
    Ok(kid)
}

/// The active key of one algorithm, parsed and ready to sign.
pub(crate) struct Signer {
    kid: String,
    algorithm: SigningAlgorithm,
    key: EncodingKey,
}

impl Signer {
    /// Signs `claims` as a JWT. RSA signatures take milliseconds, so they run off the async
    /// workers; ECDSA ones are cheaper than the hand-over.
    pub(crate) async fn sign(self: &Arc<Self>, claims: Value) -> Result<String, ApiError> {
        let mut header = Header::new(jwt_algorithm(self.algorithm));
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        match self.algorithm {
            SigningAlgorithm::Es256 => {
                jsonwebtoken::encode(&header, &claims, &self.key).map_err(internal)
            }
            SigningAlgorithm::Rs256 => {
                let signer = Arc::clone(self);
                tokio::task::spawn_blocking(move || {
                    jsonwebtoken::encode(&header, &claims, &signer.key).map_err(internal)
                })
                .await
                .map_err(internal)?
            }
        }
    }
}

/// What one load of the keys table yields.
struct Loaded {
    at: Instant,
    signers: HashMap<SigningAlgorithm, Arc<Signer>>,
    verifiers: HashMap<String, (Algorithm, DecodingKey)>,
    jwks: Value,
}

/// The signing keys, parsed once and shared by every request.
#[derive(Default)]
pub struct Keyring {
    loaded: RwLock<Option<Arc<Loaded>>>,
    reload: tokio::sync::Mutex<()>,
}

impl Keyring {
    fn snapshot(&self) -> Option<Arc<Loaded>> {
        self.loaded.read().ok().and_then(|l| l.clone())
    }

    /// The keys as loaded within `max_age`, loading them again (once, for all waiters) if not.
    async fn keys(&self, store: &Store, max_age: StdDuration) -> Result<Arc<Loaded>, ApiError> {
        let fresh = |l: &Arc<Loaded>| l.at.elapsed() < max_age;
        if let Some(l) = self.snapshot().filter(fresh) {
            return Ok(l);
        }
        let _single = self.reload.lock().await;
        if let Some(l) = self.snapshot().filter(fresh) {
            return Ok(l);
        }
        let mut conn = store.conn().await?;
        let rows = oauth::published_keys(&mut conn, Utc::now()).await?;
        drop(conn);
        let mut signers = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        for row in rows {
            let Ok(algorithm) = row.algorithm.parse::<SigningAlgorithm>() else {
                tracing::warn!(kid = %row.kid, algorithm = %row.algorithm, "skipping a signing key of an unknown algorithm");
                continue;
            };
            let jwk = &row.public_jwk;
            let text = |k: &str| jwk[k].as_str().unwrap_or_default().to_owned();
            let parsed = match algorithm {
                SigningAlgorithm::Es256 => DecodingKey::from_ec_components(&text("x"), &text("y"))
                    .and_then(|d| Ok((d, EncodingKey::from_ec_pem(row.private_pem.as_bytes())?))),
                SigningAlgorithm::Rs256 => DecodingKey::from_rsa_components(&text("n"), &text("e"))
                    .and_then(|d| Ok((d, EncodingKey::from_rsa_pem(row.private_pem.as_bytes())?))),
            };
            let (decoding, encoding) = parsed
                .map_err(|e| internal(format!("signing key {} does not parse: {e}", row.kid)))?;
            // Rows come newest first: the first active key of an algorithm signs.
            if row.retired.is_none() && !signers.contains_key(&algorithm) {
                signers.insert(
                    algorithm,
                    Arc::new(Signer {
                        kid: row.kid.clone(),
                        algorithm,
                        key: encoding,
                    }),
                );
            }
            verifiers.insert(row.kid.clone(), (jwt_algorithm(algorithm), decoding));
            published.push(row.public_jwk);
        }
        let loaded = Arc::new(Loaded {
            at: Instant::now(),
            signers,
            verifiers,
            jwks: json!({ "keys": published }),
        });
        if let Ok(mut slot) = self.loaded.write() {
            *slot = Some(Arc::clone(&loaded));
        }
        Ok(loaded)
    }

    /// The key that signs for `algorithm`, made now when there is none. Call it before opening
    /// a write transaction: making a key writes in a transaction of its own.
    pub(crate) async fn signer(
        &self,
        store: &Store,
        algorithm: SigningAlgorithm,
    ) -> Result<Arc<Signer>, ApiError> {
        if let Some(s) = self.keys(store, FRESH_FOR).await?.signers.get(&algorithm) {
            return Ok(Arc::clone(s));
        }
        let _single = self.reload.lock().await;
        let mut conn = store.conn().await?;
        let exists = !oauth::active_keys(&mut conn, algorithm.as_str())
            .await?
            .is_empty();
        drop(conn);
        if !exists {
            create(store, algorithm).await?;
        }
        drop(_single);
        self.keys(store, StdDuration::ZERO)
            .await?
            .signers
            .get(&algorithm)
            .cloned()
            .ok_or_else(|| internal("a signing key was made but does not load"))
    }

    /// The JWKS document: every published key (both algorithms always have one).
    pub(crate) async fn jwks(&self, store: &Store) -> Result<Value, ApiError> {
        for algorithm in SigningAlgorithm::ALL {
            self.signer(store, *algorithm).await?;
        }
        Ok(self.keys(store, FRESH_FOR).await?.jwks.clone())
    }

    /// Retires the active key of `algorithm` and makes its successor. The retired key stays
    /// published until `published_until` (the longest token lifetime from now).
    pub(crate) async fn rotate(
        &self,
        store: &Store,
        algorithm: SigningAlgorithm,
        published_until: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        let _single = self.reload.lock().await;
        let mut tx = store.begin().await?;
        oauth::retire_keys(&mut tx, algorithm.as_str(), published_until).await?;
        gatehouse_store::commit(tx).await?;
        let kid = create(store, algorithm).await?;
        drop(_single);
        self.keys(store, StdDuration::ZERO).await?;
        Ok(kid)
    }

    /// Verifies a JWT signed by one of the published keys (signature, expiry and issuer);
    /// `None` when it does not verify.
    pub(crate) async fn verify<T: DeserializeOwned>(
        &self,
        store: &Store,
        token: &str,
        issuer: &str,
    ) -> Result<Option<T>, ApiError> {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(None);
        };
        let Some(kid) = header.kid else {
            return Ok(None);
        };
        let mut keys = self.keys(store, FRESH_FOR).await?;
        if !keys.verifiers.contains_key(&kid) && keys.at.elapsed() >= UNKNOWN_KID_RELOAD_EVERY {
            keys = self.keys(store, UNKNOWN_KID_RELOAD_EVERY).await?;
        }
        let Some((algorithm, decoding)) = keys.verifiers.get(&kid) else {
            return Ok(None);
        };
        let mut validation = Validation::new(*algorithm);
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        Ok(jsonwebtoken::decode::<T>(token, decoding, &validation)
            .ok()
            .map(|d| d.claims))
    }
}
