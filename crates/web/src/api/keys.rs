//! `oauth2/signing_keys/` (a Gatehouse addition): list the OIDC signing keys and rotate one;
//! `crypto/certificatekeypairs/`: the same keys in Authentik's key-pair shape, read-only.
//! Rotation retires the active key of an algorithm and makes its successor; the retired key
//! stays in the JWKS for the longest token lifetime of any provider, so every token it signed
//! keeps verifying until it expires.

use axum::extract::State;
use axum::http::Method;
use axum::Json;
use chrono::{DateTime, Utc};
use gatehouse_proto::providers::{
    CertificateKeyPair, KeyRotationRequest, KeyType, SigningKeyInfo, SigningKeys,
};
use gatehouse_store::oauth::PublicKey;
use gatehouse_store::{oauth, providers, sql, Conn, ListSpec, Listed, SecretKey};
use uuid::Uuid;

use super::resource::{NoRequest, Operations, Resource};
use super::{Api, Reply};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, JsonBody, ListRules};
use crate::{AppState, Settings};

/// How long past the longest token lifetime a retired key stays published (clock skew).
const PUBLISHED_MARGIN_SECONDS: i64 = 300;

const RULES: ListRules = ListRules {
    filters: &[("kid", "kid", FilterKind::Text)],
    search: &["kid", "algorithm"],
    ordering: &[("name", "algorithm"), ("created", "created")],
    default_order: "created",
    relations: &[],
};

pub(super) fn routes(mut api: Api) -> Api {
    let keys = api.schema::<SigningKeys>();
    let key = api.schema::<SigningKeyInfo>();
    let request = api.schema::<KeyRotationRequest>();
    api.op(
        Method::GET,
        "/oauth2/signing_keys/",
        "List the OIDC signing keys, newest first",
        list,
        None,
        Reply::Object(keys),
    )
    .op(
        Method::POST,
        "/oauth2/signing_keys/rotate/",
        "Retire the active key of an algorithm and make its successor",
        rotate,
        Some(&request),
        Reply::Created(key),
    )
    .tag("crypto")
    .resource::<PublicKey>(
        "/crypto/certificatekeypairs/",
        "/crypto/certificatekeypairs/{kp_uuid}/",
        "signing key pair",
        Operations::ReadOnly,
    )
}

impl Resource for PublicKey {
    const MODEL: &'static str = "certificatekeypair";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = CertificateKeyPair;
    type Request = NoRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        // A handful of keys (two algorithms and their retired predecessors): read them all.
        let keys: Vec<PublicKey> = sql::select(conn, "", Vec::new(), "created").await?;
        keys.into_iter()
            .find(|k| k.uuid() == *key)
            .ok_or_else(|| ApiError::NotFound("certificate-key pair".into()))
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        Ok(sql::list(conn, spec).await?)
    }

    async fn render(
        &self,
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<CertificateKeyPair> {
        let state = if self.retired.is_some() {
            "retired"
        } else {
            "active"
        };
        Ok(CertificateKeyPair {
            pk: self.uuid(),
            name: format!("{} signing key {} ({state})", self.algorithm, self.kid),
            fingerprint_sha256: None,
            fingerprint_sha1: None,
            cert_expiry: None,
            cert_subject: None,
            private_key_available: true,
            key_type: match self.algorithm.as_str() {
                "RS256" => Some(KeyType::Rsa),
                "ES256" => Some(KeyType::Ec),
                _ => None,
            },
            certificate_download_url: String::new(),
            private_key_download_url: String::new(),
            managed: Some("gatehouse/oidc-signing-key".into()),
        })
    }

    async fn delete(self, _conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Err(ApiError::Internal(
            "signing keys are retired by rotation, never deleted".into(),
        ))
    }

    fn label(&self) -> (String, String) {
        (self.kid.clone(), format!("{} signing key", self.algorithm))
    }
}

fn wire(k: oauth::SigningKey) -> ApiResult<SigningKeyInfo> {
    Ok(SigningKeyInfo {
        algorithm: k
            .algorithm
            .parse()
            .map_err(|e| ApiError::Internal(format!("signing key {}: {e}", k.kid)))?,
        kid: k.kid,
        created: k.created,
        retired: k.retired,
        published_until: k.published_until,
    })
}

async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<SigningKeys>> {
    let mut conn = state.store.conn().await?;
    let keys = oauth::all_keys(&mut conn, state.store.key()).await?;
    state.metrics.show_signing_keys(&keys);
    let keys = keys.into_iter().map(wire).collect::<ApiResult<_>>()?;
    Ok(Json(SigningKeys { keys }))
}

/// Until when a key that stops signing now stays in the JWKS: the longest token lifetime of any
/// provider from now, plus a margin for clock skew, so every token it signed keeps verifying.
/// Rotation and carried-over keys both retire keys this way.
pub(crate) async fn retired_key_published_until(conn: &mut Conn) -> ApiResult<DateTime<Utc>> {
    let longest = providers::access_token_validities(conn)
        .await?
        .iter()
        .filter_map(|v| v.parse::<gatehouse_core::Duration>().ok())
        .map(|d| d.seconds())
        .max()
        .unwrap_or(0);
    Ok(Utc::now() + chrono::Duration::seconds(longest + PUBLISHED_MARGIN_SECONDS))
}

async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(req): JsonBody<KeyRotationRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<SigningKeyInfo>)> {
    let mut conn = state.store.conn().await?;
    let until = retired_key_published_until(&mut conn).await?;
    drop(conn);
    let kid = state
        .keys
        .rotate(&state.store, req.algorithm, until)
        .await?;
    tracing::info!(kid = %kid, algorithm = %req.algorithm, by = %admin.user.fields.username, "rotated the signing key");
    let mut conn = state.store.conn().await?;
    let keys = oauth::all_keys(&mut conn, state.store.key()).await?;
    state.metrics.show_signing_keys(&keys);
    let key = keys
        .into_iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| ApiError::Internal("the new signing key vanished".into()))?;
    Ok((axum::http::StatusCode::CREATED, Json(wire(key)?)))
}
