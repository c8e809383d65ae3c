//! OpenID Connect sources (Google and generic) through the `openidconnect` crate: the discovery
//! document, the signing keys, the code exchange, the `id_token` checks and userinfo. No JWT or
//! signature code lives here; the crate verifies the signature against the JWKS (with the
//! algorithms the discovery document lists), `iss` against the document's issuer, `aud` against
//! the consumer key, `exp`, and the `nonce` kept at start.
//!
//! The discovery document is read on every start and finish (two small requests per login), so a
//! key rotation at the upstream is picked up without a restart. Overrides from the settings
//! replace single endpoints after discovery.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreJsonWebKeySet,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::url::Url;
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, JsonWebKeySetUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse, TokenUrl, UserInfoUrl,
};

use gatehouse_core::kinds::SourceProviderType;

use crate::identity::text;
use crate::oauth::token_error;
use crate::settings::OidcEndpoints;
use crate::{Error, Identity, PendingLogin, Result, SourceSettings};

/// The discovery document with the overrides applied, and the signing keys if `with_keys`.
async fn metadata(
    http: &reqwest::Client,
    endpoints: &OidcEndpoints,
    with_keys: bool,
) -> Result<CoreProviderMetadata> {
    const STEP: &str = "read the OpenID Connect discovery document";
    let response = http
        .get(endpoints.well_known.clone())
        .send()
        .await
        .map_err(|e| Error::upstream(STEP, e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::upstream(
            STEP,
            format!("{} answered HTTP {status}", endpoints.well_known),
        ));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::upstream(STEP, e))?;
    let mut metadata: CoreProviderMetadata = serde_json::from_slice(&body).map_err(|e| {
        Error::upstream(
            STEP,
            format!("{} is not a discovery document ({e})", endpoints.well_known),
        )
    })?;
    if let Some(url) = &endpoints.authorization {
        metadata = metadata.set_authorization_endpoint(AuthUrl::from_url(url.clone()));
    }
    if let Some(url) = &endpoints.token {
        metadata = metadata.set_token_endpoint(Some(TokenUrl::from_url(url.clone())));
    }
    if let Some(url) = &endpoints.userinfo {
        metadata = metadata.set_userinfo_endpoint(Some(UserInfoUrl::from_url(url.clone())));
    }
    if with_keys {
        let jwks_url = match &endpoints.jwks {
            Some(url) => JsonWebKeySetUrl::from_url(url.clone()),
            None => metadata.jwks_uri().clone(),
        };
        let jwks = CoreJsonWebKeySet::fetch_async(&jwks_url, http)
            .await
            .map_err(|e| Error::upstream("read the signing keys (JWKS)", e))?;
        metadata = metadata.set_jwks(jwks);
    }
    Ok(metadata)
}

/// Client authentication as the discovery document offers it: `client_secret_basic` (the
/// OIDC default when nothing is listed) or else `client_secret_post`.
fn auth_type(metadata: &CoreProviderMetadata) -> AuthType {
    match metadata.token_endpoint_auth_methods_supported() {
        Some(methods)
            if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
        {
            AuthType::RequestBody
        }
        _ => AuthType::BasicAuth,
    }
}

fn client(
    source: &SourceSettings,
    metadata: CoreProviderMetadata,
    callback: RedirectUrl,
) -> CoreClientFromMetadata {
    let auth = auth_type(&metadata);
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(source.consumer_key.clone()),
        Some(ClientSecret::new(source.consumer_secret.clone())),
    )
    .set_redirect_uri(callback)
    .set_auth_type(auth)
}

/// The client type `from_provider_metadata` makes: authorization endpoint set, token and
/// userinfo endpoints as the document says.
type CoreClientFromMetadata = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// The authorization URL with state, nonce and PKCE S256, and what to keep.
pub(crate) async fn authorize(
    http: &reqwest::Client,
    source: &SourceSettings,
    endpoints: &OidcEndpoints,
    callback: RedirectUrl,
    scopes: &[String],
) -> Result<(Url, PendingLogin)> {
    let client = client(source, metadata(http, endpoints, false).await?, callback);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        // The client always asks for `openid` itself.
        .add_scopes(
            scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned()
                .map(Scope::new),
        )
        .set_pkce_challenge(challenge)
        .url();
    let pending = PendingLogin {
        state: state.secret().clone(),
        nonce: Some(nonce.secret().clone()),
        pkce_verifier: verifier.secret().clone(),
    };
    Ok((url, pending))
}

/// Exchanges `code`, verifies the `id_token`, reads userinfo (when the upstream has it, bound to
/// the token's subject), and normalises the result.
pub(crate) async fn finish(
    http: &reqwest::Client,
    source: &SourceSettings,
    endpoints: &OidcEndpoints,
    callback: RedirectUrl,
    pending: &PendingLogin,
    code: &str,
) -> Result<Identity> {
    let client = client(source, metadata(http, endpoints, true).await?, callback);
    let nonce = pending
        .nonce
        .clone()
        .ok_or_else(|| Error::IdToken("this sign-in was started without a nonce".into()))?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_| Error::Settings {
            field: "access_token_url",
            problem: "the discovery document names no token endpoint; set one".into(),
        })?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(http)
        .await
        .map_err(token_error)?;
    let id_token = token
        .id_token()
        .ok_or_else(|| Error::IdToken("the token response carries no id_token".into()))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce))
        .map_err(|e| Error::IdToken(e.to_string()))?;
    let userinfo: Option<CoreUserInfoClaims> =
        match client.user_info(token.access_token().clone(), Some(claims.subject().clone())) {
            Ok(request) => Some(
                request
                    .request_async(http)
                    .await
                    .map_err(|e| Error::upstream("read your profile (userinfo)", e))?,
            ),
            // No userinfo endpoint: the id_token's claims are all there is.
            Err(_) => None,
        };
    // Userinfo is the fuller, fresher source; the id_token's claims fill what it leaves out.
    // An email and its `email_verified` always come from the same document.
    let from_token =
        serde_json::to_value(claims).map_err(|e| Error::upstream("read your profile", e))?;
    let from_userinfo = match &userinfo {
        Some(u) => serde_json::to_value(u).map_err(|e| Error::upstream("read your profile", e))?,
        None => serde_json::Value::Null,
    };
    let (email, email_verified) = email_of(&from_userinfo)
        .or_else(|| email_of(&from_token))
        .map_or((None, false), |(email, verified)| (Some(email), verified));
    let mut merged = from_token;
    if let (Some(into), serde_json::Value::Object(fresh)) = (merged.as_object_mut(), from_userinfo)
    {
        into.extend(fresh);
    }
    let username = text(&merged, "nickname")
        .or_else(|| text(&merged, "preferred_username"))
        // Google gives neither; its email address is the username, as Authentik used it.
        .or_else(|| {
            (source.provider_type == SourceProviderType::Google)
                .then(|| email.clone())
                .flatten()
        });
    Ok(Identity {
        id: claims.subject().to_string(),
        username,
        name: text(&merged, "name"),
        email,
        email_verified,
        attributes: merged,
    })
}

/// The `email` claim with whether the same document marks it verified (absent: not verified).
fn email_of(claims: &serde_json::Value) -> Option<(String, bool)> {
    let verified = claims.get("email_verified") == Some(&serde_json::Value::Bool(true));
    text(claims, "email").map(|email| (email, verified))
}
