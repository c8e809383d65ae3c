//! Signing keys, made on first use and kept in the database so every replica signs with and
//! publishes the same keys. RS256 (RSA 2048) signs by default because it is what relying
//! parties accept without configuration (Kubernetes' `--oidc-signing-algs` defaults to it, as
//! does the `openidconnect` crate); ES256 (P-256) keys can be made too. Retired keys stay in
//! the JWKS until the tokens they signed have expired.

use base64::Engine;
use chrono::{Duration, Utc};
use gatehouse_core::secret;
use gatehouse_store::{oauth, Conn};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// The algorithm tokens are signed with.
pub(super) const DEFAULT_ALGORITHM: &str = "RS256";

/// How long a retired key stays published (longer than any token lifetime Gatehouse issues by
/// default).
const RETIRED_PUBLISHED_DAYS: i64 = 30;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// A fresh key of `algorithm`: (PKCS#8 PEM, public JWK without kid).
fn generate(algorithm: &str) -> Result<(String, Value), ApiError> {
    match algorithm {
        "ES256" => {
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
        _ => {
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

/// The current signing key of `algorithm`, made now when there is none.
pub(super) async fn current(
    conn: &mut Conn,
    algorithm: &str,
) -> Result<oauth::SigningKey, ApiError> {
    if let Some(key) = oauth::active_keys(conn, algorithm)
        .await?
        .into_iter()
        .next()
    {
        return Ok(key);
    }
    let alg = algorithm.to_owned();
    let (pem, mut jwk) = tokio::task::spawn_blocking(move || generate(&alg))
        .await
        .map_err(internal)??;
    let kid = secret::token_hash(&jwk.to_string())[..16].to_owned();
    jwk["kid"] = kid.clone().into();
    jwk["use"] = "sig".into();
    jwk["alg"] = algorithm.into();
    oauth::add_key(conn, &kid, algorithm, &pem, &jwk).await?;
    tracing::info!(kid = %kid, algorithm, "created a new signing key");
    oauth::active_keys(conn, algorithm)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| internal("signing key vanished"))
}

/// The JWKS document: every published key.
pub(super) async fn jwks(conn: &mut Conn) -> Result<Value, ApiError> {
    current(conn, DEFAULT_ALGORITHM).await?;
    let since = Utc::now() - Duration::days(RETIRED_PUBLISHED_DAYS);
    let keys: Vec<Value> = oauth::published_keys(conn, since)
        .await?
        .into_iter()
        .map(|k| k.public_jwk)
        .collect();
    Ok(json!({"keys": keys}))
}

fn jwt_algorithm(name: &str) -> Algorithm {
    match name {
        "ES256" => Algorithm::ES256,
        _ => Algorithm::RS256,
    }
}

/// Signs `claims` as a JWT with the current default key.
pub(crate) async fn sign<T: Serialize>(conn: &mut Conn, claims: &T) -> Result<String, ApiError> {
    let key = current(conn, DEFAULT_ALGORITHM).await?;
    let mut header = Header::new(jwt_algorithm(&key.algorithm));
    header.kid = Some(key.kid.clone());
    header.typ = Some("JWT".into());
    let encoding = match key.algorithm.as_str() {
        "ES256" => EncodingKey::from_ec_pem(key.private_pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(key.private_pem.as_bytes()),
    }
    .map_err(internal)?;
    jsonwebtoken::encode(&header, claims, &encoding).map_err(internal)
}

/// Verifies a JWT signed by one of the published keys (signature, expiry and issuer); `None`
/// when it does not verify.
pub(super) async fn verify<T: DeserializeOwned>(
    conn: &mut Conn,
    token: &str,
    issuer: &str,
) -> Result<Option<T>, ApiError> {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Ok(None);
    };
    let since = Utc::now() - Duration::days(RETIRED_PUBLISHED_DAYS);
    let Some(key) = oauth::published_keys(conn, since)
        .await?
        .into_iter()
        .find(|k| Some(&k.kid) == header.kid.as_ref())
    else {
        return Ok(None);
    };
    let jwk = &key.public_jwk;
    let decoding = match key.algorithm.as_str() {
        "ES256" => DecodingKey::from_ec_components(
            jwk["x"].as_str().unwrap_or_default(),
            jwk["y"].as_str().unwrap_or_default(),
        ),
        _ => DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap_or_default(),
            jwk["e"].as_str().unwrap_or_default(),
        ),
    };
    let Ok(decoding) = decoding else {
        return Ok(None);
    };
    let mut validation = Validation::new(jwt_algorithm(&key.algorithm));
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    Ok(jsonwebtoken::decode::<T>(token, &decoding, &validation)
        .ok()
        .map(|d| d.claims))
}
