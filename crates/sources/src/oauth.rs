//! Plain OAuth2 (RFC 6749 authorization code with PKCE), shared by the GitHub and Facebook
//! presets, through the `oauth2` crate; and the reading of token refusals, which both presets and
//! OIDC need. Neighbours: `github` and `facebook` read the profile with the token this returns;
//! `oidc` uses [`token_error`].
//!
//! Both presets document `client_secret` in the request body (as Authentik sends it). Refusals
//! come in three shapes: RFC 6749 JSON with a 4xx status, GitHub's RFC-shaped JSON with status
//! 200, and Facebook's `{"error": {"message", "type", "code"}}`; all become
//! [`Error::TokenRefused`].

use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ErrorResponseType, HttpClientError, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardErrorResponse, TokenResponse,
    TokenUrl,
};
use openidconnect::url::Url;

use crate::error::shorten;
use crate::settings::OAuthEndpoints;
use crate::{Error, PendingLogin, Result, SourceSettings};

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn client(source: &SourceSettings, endpoints: &OAuthEndpoints, callback: RedirectUrl) -> Client {
    BasicClient::new(ClientId::new(source.consumer_key.clone()))
        .set_client_secret(ClientSecret::new(source.consumer_secret.clone()))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
        .set_redirect_uri(callback)
        .set_auth_type(AuthType::RequestBody)
}

/// The authorization URL with state and PKCE S256, and what to keep.
pub(crate) fn authorize(
    source: &SourceSettings,
    endpoints: &OAuthEndpoints,
    callback: RedirectUrl,
    scopes: &[String],
) -> (Url, PendingLogin) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = client(source, endpoints, callback);
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .url();
    let pending = PendingLogin {
        state: state.secret().clone(),
        nonce: None,
        pkce_verifier: verifier.secret().clone(),
    };
    (url, pending)
}

/// Exchanges `code` for an access token.
pub(crate) async fn exchange(
    http: &reqwest::Client,
    source: &SourceSettings,
    endpoints: &OAuthEndpoints,
    callback: RedirectUrl,
    pending: &PendingLogin,
    code: &str,
) -> Result<AccessToken> {
    let response = client(source, endpoints, callback)
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(http)
        .await
        .map_err(token_error)?;
    Ok(response.access_token().clone())
}

/// A failed code exchange as the user should hear of it.
pub(crate) fn token_error<T>(
    error: RequestTokenError<HttpClientError<reqwest::Error>, StandardErrorResponse<T>>,
) -> Error
where
    T: ErrorResponseType + std::fmt::Display,
{
    match error {
        RequestTokenError::ServerResponse(response) => Error::TokenRefused {
            error: shorten(&response.error().to_string()),
            description: response.error_description().map(|d| shorten(d)),
        },
        RequestTokenError::Parse(_, body) => refusal(&body).unwrap_or_else(|| {
            Error::upstream(
                "exchange the authorization code",
                "the token endpoint's answer is neither a token nor an error",
            )
        }),
        RequestTokenError::Request(e) => Error::upstream("reach the token endpoint", e),
        RequestTokenError::Other(e) => Error::upstream("exchange the authorization code", e),
    }
}

/// An error in a body that did not parse as a token response: RFC 6749 fields (GitHub sends
/// them with status 200) or Graph API's nested error object.
fn refusal(body: &[u8]) -> Option<Error> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let (error, description) = match error {
        serde_json::Value::String(code) => (
            code.clone(),
            value.get("error_description").and_then(|d| d.as_str()),
        ),
        serde_json::Value::Object(graph) => (
            graph
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("error")
                .to_owned(),
            graph.get("message").and_then(|m| m.as_str()),
        ),
        _ => return None,
    };
    Some(Error::TokenRefused {
        error: shorten(&error),
        description: description.map(shorten),
    })
}

/// GETs a JSON profile resource with the access token as a bearer token (never in the URL, so
/// it cannot leak into logs or error messages).
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: &Url,
    token: &AccessToken,
    headers: &[(&str, &str)],
) -> Result<serde_json::Value> {
    let mut request = http.get(url.clone()).bearer_auth(token.secret());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| Error::upstream("read your profile", e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(Error::upstream(
            "read your profile",
            format!("{url} answered HTTP {status}: {}", shorten(&body)),
        ));
    }
    response
        .json()
        .await
        .map_err(|e| Error::upstream("read your profile", format!("{url} sent no JSON ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_status_200_refusal_is_a_token_refusal() {
        let body = br#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com/"}"#;
        let message = refusal(body).map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("bad_verification_code: The code passed is incorrect or expired."),
            "{message}"
        );
    }

    #[test]
    fn graph_api_nested_error_is_a_token_refusal() {
        let body = br#"{"error":{"message":"This authorization code has been used.","type":"OAuthException","code":100}}"#;
        let message = refusal(body).map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("OAuthException: This authorization code has been used."),
            "{message}"
        );
    }

    #[test]
    fn a_body_without_error_is_not_a_refusal() {
        assert!(refusal(b"<html>").is_none());
        assert!(refusal(br#"{"access_token": 5}"#).is_none());
    }
}
