//! Token issuance: what an access token claims, how a token response is minted (claims from
//! [`crate::claims`], signatures from [`crate::keys`]) and stored, and the PKCE check of the
//! authorization code grant. The HTTP side (client authentication, grants, RFC 6749 errors) is
//! in the web crate.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use gatehouse_core::secret;
use gatehouse_store::applications::Application;
use gatehouse_store::oauth;
use gatehouse_store::providers::{OAuth2Settings, Provider};
use gatehouse_store::scope_mappings::ScopeMapping;
use gatehouse_store::{users, Conn};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::claims::user_claims;
use crate::keys::Signer;
use crate::{Error, Result};

/// The issuer of the application with slug `slug`.
pub fn issuer(external_url: &str, slug: &str) -> String {
    format!("{external_url}/application/o/{slug}/")
}

/// A duration setting (`minutes=5`) in seconds, `fallback` when it does not parse.
fn seconds(text: &str, fallback: i64) -> i64 {
    text.parse::<gatehouse_core::Duration>()
        .map(|d| d.seconds())
        .unwrap_or(fallback)
}

/// A registered client as the token, introspection and revocation endpoints need it (its
/// `settings.redirect_uris` are not loaded: a code remembers the one it was issued for).
#[derive(Clone)]
pub struct Client {
    /// The OAuth2 provider.
    pub provider: Provider,
    /// Its OAuth2 settings.
    pub settings: OAuth2Settings,
    /// Its application: the slug is the issuer's path, the policy bindings decide who may
    /// keep refreshing.
    pub application: Application,
    /// The scope mappings the provider selected.
    pub mappings: Vec<ScopeMapping>,
}

/// The claims of an access token (a JWT, so resource servers can verify it themselves).
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the application's.
    pub iss: String,
    /// Subject, under the provider's subject mode.
    pub sub: String,
    /// Audience: the client id.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Token id, recorded so the token can be revoked.
    pub jti: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Authorized party: the client id.
    pub azp: String,
    /// The user's database id; [`Issue::mint`] leaves it out, older tokens may carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// The user's claims.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// What a token response is issued for.
pub struct Issue<'a> {
    /// The client it goes to.
    pub client: &'a Client,
    /// `None` for client credentials.
    pub user: Option<&'a users::User>,
    /// Granted scopes, space-separated.
    pub scope: &'a str,
    /// The relying party's nonce, echoed in the ID token.
    pub nonce: &'a str,
    /// The authorization code the tokens come from, so a replay of it can revoke them.
    pub code_hash: Option<&'a str>,
    /// The refresh family to continue (a refresh grant) instead of starting one.
    pub family: Option<Uuid>,
    /// The IdP session the grant came from: ending it ends these tokens.
    pub session: Option<Uuid>,
    /// When that session authenticated (the ID token's `auth_time`).
    pub auth_time: Option<DateTime<Utc>>,
}

/// Tokens signed but not stored yet. Minting needs only reads and signatures, so the write
/// transaction that stores the result stays a few statements long.
pub struct Minted {
    response: TokenResponse,
    jti: String,
    expires: DateTime<Utc>,
    refresh_expires: DateTime<Utc>,
}

impl Issue<'_> {
    /// Builds and signs the tokens.
    pub async fn mint(
        &self,
        conn: &mut Conn,
        external_url: &str,
        signer: &Arc<Signer>,
    ) -> Result<Minted> {
        let client = self.client;
        let now = Utc::now();
        let iss = issuer(external_url, &client.application.fields.slug);
        let client_id = client.provider.fields.client_id.clone();
        let lifetime = seconds(&client.provider.fields.access_token_validity, 300);
        let expires = now + Duration::seconds(lifetime);
        let scopes: Vec<&str> = self.scope.split_whitespace().collect();
        let mut claims = match self.user {
            Some(u) => {
                user_claims(conn, u, &scopes, client.settings.sub_mode, &client.mappings).await?
            }
            None => Map::from_iter([("sub".to_owned(), Value::from(client_id.clone()))]),
        };
        let sub = match claims.remove("sub") {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let id_token = match (self.user, scopes.contains(&"openid")) {
            (Some(u), true) => {
                let mut id = if client.settings.include_claims_in_id_token {
                    claims.clone()
                } else {
                    Map::new()
                };
                id.insert("iss".into(), iss.clone().into());
                id.insert("sub".into(), sub.clone().into());
                id.insert("aud".into(), client_id.clone().into());
                id.insert("azp".into(), client_id.clone().into());
                id.insert("exp".into(), expires.timestamp().into());
                id.insert("iat".into(), now.timestamp().into());
                let auth_time = self.auth_time.or(u.last_login).unwrap_or(now);
                id.insert("auth_time".into(), auth_time.timestamp().into());
                if !self.nonce.is_empty() {
                    id.insert("nonce".into(), self.nonce.into());
                }
                Some(signer.sign(Value::Object(id)).await?)
            }
            _ => None,
        };
        let jti = Uuid::new_v4().to_string();
        let access = AccessClaims {
            iss,
            sub,
            aud: client_id.clone(),
            exp: expires.timestamp(),
            iat: now.timestamp(),
            jti: jti.clone(),
            scope: self.scope.to_owned(),
            azp: client_id,
            uid: None,
            extra: claims,
        };
        let access_token = signer
            .sign_access(serde_json::to_value(&access).map_err(|e| Error::Internal(e.to_string()))?)
            .await?;
        let refresh_token =
            (self.user.is_some() && scopes.contains(&"offline_access")).then(secret::new_token);
        let refresh_lifetime = seconds(&client.provider.fields.refresh_token_validity, 30 * 86_400);
        Ok(Minted {
            response: TokenResponse {
                access_token,
                token_type: "Bearer",
                expires_in: lifetime,
                scope: self.scope.to_owned(),
                id_token,
                refresh_token,
            },
            jti,
            expires,
            refresh_expires: now + Duration::seconds(refresh_lifetime),
        })
    }

    /// Stores what [`Issue::mint`] made; the answer to send is what it returns.
    pub async fn store(&self, conn: &mut Conn, minted: Minted) -> Result<TokenResponse> {
        let issued = oauth::Issued {
            provider: self.client.provider.id,
            user: self.user.map(|u| u.id),
            session: self.session,
            scope: self.scope,
            code_hash: self.code_hash,
        };
        oauth::record_access_token(conn, &minted.jti, issued, minted.expires).await?;
        if let Some(token) = &minted.response.refresh_token {
            let new = oauth::NewRefresh {
                family: self.family.unwrap_or_else(Uuid::new_v4),
                issued,
                nonce: self.nonce,
                auth_time: self.auth_time,
                expires: minted.refresh_expires,
            };
            oauth::add_refresh_token(conn, token, new).await?;
        }
        Ok(minted.response)
    }
}

/// Whether `verifier` answers the PKCE `challenge` of a code (S256 only; a code issued without
/// a challenge takes no verifier).
pub fn pkce_ok(challenge: &str, method: &str, verifier: &str) -> bool {
    if challenge.is_empty() {
        return verifier.is_empty();
    }
    if method != "S256" || verifier.len() < 43 || verifier.len() > 128 {
        return false;
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    secret::constant_time_eq(&computed, challenge)
}
