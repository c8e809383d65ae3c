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
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::{Error, Result};

/// How long the keyring trusts what it loaded before looking again, so a rotation made through
/// another replica is picked up (tokens signed by a retired key stay valid meanwhile).
const FRESH_FOR: StdDuration = StdDuration::from_secs(10);

/// The least time between two reloads forced by tokens naming an unknown `kid`, so forged
/// tokens cannot turn into a database query each.
const UNKNOWN_KID_RELOAD_EVERY: StdDuration = StdDuration::from_secs(1);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

fn jwt_algorithm(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::Es256 => Algorithm::ES256,
        SigningAlgorithm::Rs256 => Algorithm::RS256,
    }
}

/// The public JWK (without kid) of a P-256 key.
fn ec_jwk(key: &p256::SecretKey) -> Result<Value> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = key.public_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(internal("the key has no affine coordinates"));
    };
    Ok(json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}))
}

/// The public JWK (without kid) of an RSA key.
fn rsa_jwk(key: &rsa::RsaPrivateKey) -> Value {
    use rsa::traits::PublicKeyParts;
    let public = key.to_public_key();
    json!({"kty": "RSA", "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())})
}

/// A fresh key of `algorithm`: (PKCS#8 PEM, public JWK without kid).
fn generate(algorithm: SigningAlgorithm) -> Result<(String, Value)> {
    match algorithm {
        SigningAlgorithm::Es256 => {
            use p256::pkcs8::{EncodePrivateKey, LineEnding};
            let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(internal)?
                .to_string();
            Ok((pem, ec_jwk(&key)?))
        }
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(internal)?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(internal)?
                .to_string();
            Ok((pem, rsa_jwk(&key)))
        }
    }
}

/// A key pair carried over from another identity provider, as Gatehouse stores keys: its
/// algorithm, the private key as PKCS#8 PEM and the public JWK with `kid`, `use` and `alg`.
/// Reads RSA keys as PKCS#1 (`BEGIN RSA PRIVATE KEY`, what Authentik writes) or PKCS#8, and
/// P-256 keys as SEC1 (`BEGIN EC PRIVATE KEY`) or PKCS#8.
pub fn carried_key(pem: &str, kid: &str) -> Result<(SigningAlgorithm, String, Value), String> {
    use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let rsa_key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
        .ok()
        .or_else(|| rsa::RsaPrivateKey::from_pkcs8_pem(pem).ok());
    let (algorithm, pkcs8, mut jwk) = if let Some(key) = rsa_key {
        let pkcs8 = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        (SigningAlgorithm::Rs256, pkcs8.to_string(), rsa_jwk(&key))
    } else {
        let key = p256::SecretKey::from_sec1_pem(pem)
            .or_else(|_| p256::SecretKey::from_pkcs8_pem(pem))
            .map_err(|_| {
                "is not an RSA (PKCS#1 or PKCS#8) or P-256 (SEC1 or PKCS#8) private key in PEM form"
                    .to_owned()
            })?;
        let pkcs8 = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let jwk = ec_jwk(&key).map_err(|e| e.to_string())?;
        (SigningAlgorithm::Es256, pkcs8.to_string(), jwk)
    };
    jwk["kid"] = kid.into();
    jwk["use"] = "sig".into();
    jwk["alg"] = algorithm.as_str().into();
    Signer::parse(kid, algorithm, &pkcs8)?;
    Ok((algorithm, pkcs8, jwk))
}

/// Makes and stores a new key of `algorithm` in its own transaction; returns its kid.
async fn create(store: &Store, algorithm: SigningAlgorithm) -> Result<String> {
    let (pem, mut jwk) = tokio::task::spawn_blocking(move || generate(algorithm))
        .await
        .map_err(internal)??;
    let kid = secret::token_hash(&jwk.to_string())[..16].to_owned();
    jwk["kid"] = kid.clone().into();
    jwk["use"] = "sig".into();
    jwk["alg"] = algorithm.as_str().into();
    let mut tx = store.begin().await?;
    oauth::add_key(&mut tx, store.key(), &kid, algorithm.as_str(), &pem, &jwk).await?;
    gatehouse_store::commit(tx).await?;
    tracing::info!(kid = %kid, algorithm = %algorithm, "created a new signing key");
    Ok(kid)
}

/// A private key in the form the signing backend wants it.
enum KeyPair {
    Es256(ring::signature::EcdsaKeyPair),
    Rs256(ring::signature::RsaKeyPair),
}

/// The active key of one algorithm, parsed once and ready to sign. Signatures come from
/// `ring` (constant-time, assembly-optimised P-256 and RSA, already linked for TLS): the
/// RustCrypto backend of `jsonwebtoken` re-parses the key for every token and signs several
/// times slower. `jsonwebtoken` still verifies.
pub struct Signer {
    kid: String,
    algorithm: SigningAlgorithm,
    /// The encoded JOSE header of ID tokens and other JWTs (`typ: JWT`).
    header: String,
    /// The encoded header of access tokens (`typ: at+jwt`, RFC 9068 §2.1), so that neither
    /// kind of token passes where the other is expected.
    access_header: String,
    pair: KeyPair,
}

/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

impl Signer {
    fn parse(kid: &str, algorithm: SigningAlgorithm, pem: &str) -> Result<Signer, String> {
        let rng = ring::rand::SystemRandom::new();
        let pair = match algorithm {
            SigningAlgorithm::Es256 => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                use p256::pkcs8::DecodePrivateKey;
                let key = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                let public = key.public_key().to_encoded_point(false);
                KeyPair::Es256(
                    ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &key.to_bytes(),
                        public.as_bytes(),
                        &rng,
                    )
                    .map_err(|e| e.to_string())?,
                )
            }
            SigningAlgorithm::Rs256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::DecodePrivateKey;
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
                let der = key.to_pkcs1_der().map_err(|e| e.to_string())?;
                KeyPair::Rs256(
                    ring::signature::RsaKeyPair::from_der(der.as_bytes())
                        .map_err(|e| e.to_string())?,
                )
            }
        };
        let header = |typ: &str| {
            let header = json!({"alg": algorithm.as_str(), "kid": kid, "typ": typ});
            b64(header.to_string().as_bytes())
        };
        Ok(Signer {
            kid: kid.to_owned(),
            algorithm,
            header: header("JWT"),
            access_header: header(ACCESS_TOKEN_TYPE),
            pair,
        })
    }

    /// The JWS compact form of `claims` under `header`: header, payload and signature,
    /// base64url-encoded.
    fn encode(&self, header: &str, claims: &Value) -> Result<String> {
        let payload = serde_json::to_vec(claims).map_err(internal)?;
        let mut token = format!("{header}.{}", b64(&payload));
        let rng = ring::rand::SystemRandom::new();
        let signature = match &self.pair {
            KeyPair::Es256(pair) => pair
                .sign(&rng, token.as_bytes())
                .map_err(|_| internal(format!("key {} failed to sign", self.kid)))?
                .as_ref()
                .to_vec(),
            KeyPair::Rs256(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    token.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| internal(format!("key {} failed to sign", self.kid)))?;
                signature
            }
        };
        token.push('.');
        token.push_str(&b64(&signature));
        Ok(token)
    }

    /// Signs `claims` as a JWT. RSA signatures take about a millisecond, so they run off the
    /// async workers; ECDSA ones are cheaper than the hand-over.
    pub async fn sign(self: &Arc<Self>, claims: Value) -> Result<String> {
        self.sign_with(false, claims).await
    }

    /// Signs `claims` as an access token (`typ: at+jwt`).
    pub async fn sign_access(self: &Arc<Self>, claims: Value) -> Result<String> {
        self.sign_with(true, claims).await
    }

    async fn sign_with(self: &Arc<Self>, access: bool, claims: Value) -> Result<String> {
        let header = move |signer: &Signer| {
            if access {
                signer.access_header.clone()
            } else {
                signer.header.clone()
            }
        };
        match self.algorithm {
            SigningAlgorithm::Es256 => self.encode(&header(self), &claims),
            SigningAlgorithm::Rs256 => {
                let signer = Arc::clone(self);
                tokio::task::spawn_blocking(move || signer.encode(&header(&signer), &claims))
                    .await
                    .map_err(internal)?
            }
        }
    }
}

/// What one load of the keys table yields.
pub struct Loaded {
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
    /// Set once [`Keyring::prepare`] found or made a key of every algorithm: readiness waits
    /// for it, so no request reaches a replica still generating its first RSA key.
    prepared: std::sync::atomic::AtomicBool,
}

impl Keyring {
    fn snapshot(&self) -> Option<Arc<Loaded>> {
        self.loaded.read().ok().and_then(|l| l.clone())
    }

    /// The keys as loaded within `max_age`, loading them again (once, for all waiters) when
    /// older. Like every method that may reach the database, it must be called while holding
    /// no pooled connection: callers queued behind a reload while each holds a connection
    /// could exhaust the pool.
    async fn keys(&self, store: &Store, max_age: StdDuration) -> Result<Arc<Loaded>> {
        let fresh = |l: &Arc<Loaded>| l.at.elapsed() < max_age;
        if let Some(l) = self.snapshot().filter(fresh) {
            return Ok(l);
        }
        let _reloading = self.reload.lock().await;
        match self.snapshot().filter(fresh) {
            Some(l) => Ok(l),
            None => self.load(store).await,
        }
    }

    /// Reads every published key and swaps the result in. The caller holds `reload`.
    async fn load(&self, store: &Store) -> Result<Arc<Loaded>> {
        let mut conn = store.conn().await?;
        let rows = oauth::published_keys(&mut conn, store.key(), Utc::now()).await?;
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
            let decoding = match algorithm {
                SigningAlgorithm::Es256 => DecodingKey::from_ec_components(&text("x"), &text("y")),
                SigningAlgorithm::Rs256 => DecodingKey::from_rsa_components(&text("n"), &text("e")),
            };
            let unparsable = |e: &dyn std::fmt::Display| {
                internal(format!("signing key {} does not parse: {e}", row.kid))
            };
            let decoding = decoding.map_err(|e| unparsable(&e))?;
            // Rows come newest first: the first active key of an algorithm signs.
            if row.retired.is_none() && !signers.contains_key(&algorithm) {
                let signer = Signer::parse(&row.kid, algorithm, &row.private_pem)
                    .map_err(|e| unparsable(&e))?;
                signers.insert(algorithm, Arc::new(signer));
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

    /// Loads the keys and makes the missing ones, so requests find them ready. `serve` runs it
    /// at start-up.
    pub async fn prepare(&self, store: &Store) -> Result<()> {
        for algorithm in SigningAlgorithm::ALL {
            self.signer(store, *algorithm).await?;
        }
        self.prepared
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Whether every algorithm's signing key is loaded ([`Keyring::prepare`] finished).
    pub fn is_prepared(&self) -> bool {
        self.prepared.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The key that signs for `algorithm`, made now when there is none. Making a key writes in
    /// a transaction of its own, so a caller must not hold a write transaction while the key
    /// may be missing; [`Keyring::prepare`] makes them at start-up.
    pub async fn signer(&self, store: &Store, algorithm: SigningAlgorithm) -> Result<Arc<Signer>> {
        if let Some(s) = self.keys(store, FRESH_FOR).await?.signers.get(&algorithm) {
            return Ok(Arc::clone(s));
        }
        let _reloading = self.reload.lock().await;
        let mut loaded = self.load(store).await?;
        if !loaded.signers.contains_key(&algorithm) {
            create(store, algorithm).await?;
            loaded = self.load(store).await?;
        }
        loaded
            .signers
            .get(&algorithm)
            .cloned()
            .ok_or_else(|| internal("a signing key was made but does not load"))
    }

    /// The JWKS document: every published key. It waits for keys still being made at first
    /// start, so a relying party never caches a JWKS without the key its tokens name.
    pub async fn jwks(&self, store: &Store) -> Result<Value> {
        self.prepare(store).await?;
        Ok(self.keys(store, FRESH_FOR).await?.jwks.clone())
    }

    /// Retires the active key of `algorithm` and makes its successor. The retired key stays
    /// published until `published_until` (the longest token lifetime from now).
    pub async fn rotate(
        &self,
        store: &Store,
        algorithm: SigningAlgorithm,
        published_until: DateTime<Utc>,
    ) -> Result<String> {
        let _reloading = self.reload.lock().await;
        let mut tx = store.begin().await?;
        oauth::retire_keys(&mut tx, algorithm.as_str(), published_until).await?;
        gatehouse_store::commit(tx).await?;
        let kid = create(store, algorithm).await?;
        self.load(store).await?;
        Ok(kid)
    }

    /// The keys to verify `token` with: reloaded first when it names a key this replica has
    /// not seen (made by another replica since the last load), at most once a second.
    pub async fn for_token(&self, store: &Store, token: &str) -> Result<Arc<Loaded>> {
        let keys = self.keys(store, FRESH_FOR).await?;
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        match kid {
            Some(kid) if !keys.verifiers.contains_key(&kid) => {
                self.keys(store, UNKNOWN_KID_RELOAD_EVERY).await
            }
            _ => Ok(keys),
        }
    }
}

impl Loaded {
    /// Verifies an access token signed by one of the published keys (type `at+jwt`,
    /// signature, expiry and issuer); `None` when it does not verify, so an ID token or any
    /// other JWT of ours never passes as an access token.
    pub fn verify_access<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return None;
        }
        let kid = header.kid?;
        let (algorithm, decoding) = self.verifiers.get(&kid)?;
        let mut validation = Validation::new(*algorithm);
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        jsonwebtoken::decode::<T>(token, decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }

    /// The subject of an ID token this provider issued to `client_id` under `issuer`, signed
    /// by one of the published keys: the `id_token_hint` of end-session, which proves the
    /// logout request comes from that client for that user. An expired ID token still counts
    /// (OpenID Connect RP-Initiated Logout 1.0 §2: the hint is often older than its
    /// lifetime); an access token never does.
    pub fn id_token_subject(&self, token: &str, issuer: &str, client_id: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Hint {
            sub: String,
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() == Some(ACCESS_TOKEN_TYPE) {
            return None;
        }
        let kid = header.kid?;
        let (algorithm, decoding) = self.verifiers.get(&kid)?;
        let mut validation = Validation::new(*algorithm);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[client_id]);
        jsonwebtoken::decode::<Hint>(token, decoding, &validation)
            .ok()
            .map(|d| d.claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `ring` signs, `jsonwebtoken` (and so any relying party) verifies, for both algorithms.
    #[test]
    fn ring_signatures_verify_against_the_published_jwk() -> Result<(), String> {
        for algorithm in SigningAlgorithm::ALL {
            let (pem, jwk) = generate(*algorithm).map_err(|e| e.to_string())?;
            let signer = Signer::parse("k1", *algorithm, &pem)?;
            let token = signer
                .encode(&signer.header, &json!({"iss": "https://id.example.com/", "exp": 4_000_000_000i64, "sub": "alice"}))
                .map_err(|e| e.to_string())?;
            let text = |k: &str| jwk[k].as_str().unwrap_or_default().to_owned();
            let decoding = match algorithm {
                SigningAlgorithm::Es256 => DecodingKey::from_ec_components(&text("x"), &text("y")),
                SigningAlgorithm::Rs256 => DecodingKey::from_rsa_components(&text("n"), &text("e")),
            }
            .map_err(|e| e.to_string())?;
            let mut validation = Validation::new(jwt_algorithm(*algorithm));
            validation.set_issuer(&["https://id.example.com/"]);
            let claims = jsonwebtoken::decode::<Value>(&token, &decoding, &validation)
                .map_err(|e| format!("{algorithm}: {e}"))?
                .claims;
            assert_eq!(claims["sub"], "alice");
        }
        Ok(())
    }
}
