//! The OAuth2/OIDC provider's browser-facing side: `/application/o/authorize/`. It checks the
//! client and redirect URI before anything else (an unknown redirect URI gets an error page,
//! never a redirect), sends visitors without a session to log in, enforces the application's
//! policy bindings, runs the provider's authorization flow when it asks for consent, and issues
//! a single-use code bound to the redirect URI and the PKCE challenge.
//!
//! This module is the provider's HTTP wiring only; keys, claims, token issuance and
//! redirect-URI matching are the `gatehouse-oidc` crate (`crates/oidc`).

use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{Duration, Utc};
use gatehouse_core::kinds::{ClientType, MatchingMode, RedirectUriType, StageKind};
use gatehouse_core::secret;
use gatehouse_flow::policy::{self, Context, Verdict};
use gatehouse_store::providers::{OAuth2Settings, ProviderKind};
use gatehouse_store::{applications, flows, oauth, providers, scope_mappings, sql, Conn};
use std::collections::HashMap;

use crate::error::ApiError;
use crate::pages::error_page;
use crate::session;
use crate::AppState;

mod endpoints;

pub use endpoints::Clients;
pub use gatehouse_oidc::{issuer, redirect_allowed, url_with, user_claims, Keyring, SCOPES};

/// The OIDC routes, at Authentik's paths.
pub fn router() -> Router<AppState> {
    use axum::routing::post;
    Router::new()
        .route("/application/o/authorize/", get(authorize).post(authorize))
        .route("/application/o/token/", post(endpoints::token))
        .route(
            "/application/o/userinfo/",
            get(endpoints::userinfo).post(endpoints::userinfo),
        )
        .route("/application/o/introspect/", post(endpoints::introspect))
        .route("/application/o/revoke/", post(endpoints::revoke))
        .route(
            "/application/o/{slug}/.well-known/openid-configuration",
            get(endpoints::discovery),
        )
        .route("/application/o/{slug}/jwks/", get(endpoints::jwks))
        .route(
            "/application/o/{slug}/end-session/",
            get(endpoints::end_session).post(endpoints::end_session),
        )
}

fn bad_request(message: &str) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Invalid authorization request",
        message,
        "The application that sent you here is misconfigured; tell its administrator what this page says.",
    )
}

/// Where an authorization response goes: the validated redirect URI with the client's
/// `state` and the issuer. RFC 9207 puts `iss` on every response, success or error, so a
/// client that talks to several authorization servers can tell which one answered (its
/// defence against mix-up attacks, RFC 9700 §4.4).
struct Reply<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    issuer: String,
}

impl Reply<'_> {
    /// Redirects with `pairs`, then `state` and `iss`.
    fn send(&self, pairs: &[(&str, &str)]) -> Response {
        let mut all = pairs.to_vec();
        if let Some(state) = self.state {
            all.push(("state", state));
        }
        all.push(("iss", &self.issuer));
        (
            StatusCode::FOUND,
            [(LOCATION, url_with(self.redirect_uri, &all))],
        )
            .into_response()
    }

    /// An RFC 6749 error response.
    fn error(&self, error: &str, description: &str) -> Response {
        self.send(&[("error", error), ("error_description", description)])
    }
}

async fn authorize(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = handle(&state, peer, &headers, &uri, &params).await;
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "authorization failed");
        error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The authorization could not be completed.",
            "Try again in a moment.",
        )
    })
}

async fn handle(
    state: &AppState,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let param = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    // The session is read first, on its own connection: holding one pooled connection while
    // waiting for another can exhaust the pool under load.
    let current = session::current(state, headers).await?;
    let mut conn = state.store.conn().await?;
    let Some(client_id) = param("client_id") else {
        return Ok(bad_request("client_id is missing."));
    };
    let provider =
        sql::find::<providers::Provider>(&mut conn, "p.client_id", client_id.into()).await?;
    let Some(provider) = provider else {
        return Ok(bad_request(&format!(
            "No application uses the client_id `{client_id}`."
        )));
    };
    // Proxy providers are OAuth2 clients of Gatehouse too: their one redirect URI is the
    // outpost callback under the external host.
    let (settings, public, code_validity) =
        match providers::get(&mut conn, state.store.key(), provider.id)
            .await?
            .fields
            .kind
        {
            ProviderKind::OAuth2(o) => {
                let public = o.client_type == ClientType::Public;
                let validity = o.access_code_validity.clone();
                (o, public, validity)
            }
            ProviderKind::Proxy(x) => (
                OAuth2Settings {
                    client_type: ClientType::Confidential,
                    access_code_validity: "minutes=1".into(),
                    include_claims_in_id_token: true,
                    sub_mode: gatehouse_core::kinds::SubMode::HashedUserId,
                    signing_algorithm: gatehouse_core::kinds::SigningAlgorithm::Rs256,
                    issuer_mode: gatehouse_core::kinds::IssuerMode::PerProvider,
                    logout_uri: String::new(),
                    redirect_uris: vec![providers::RedirectUri {
                        matching_mode: MatchingMode::Strict,
                        redirect_uri_type: RedirectUriType::Authorization,
                        url: format!(
                            "{}{}",
                            x.external_host.trim_end_matches('/'),
                            gatehouse_outpost::CALLBACK
                        ),
                    }],
                },
                false,
                "minutes=1".to_owned(),
            ),
        };
    let settings = &settings;
    let callbacks: Vec<&providers::RedirectUri> = settings
        .redirect_uris
        .iter()
        .filter(|r| r.redirect_uri_type == RedirectUriType::Authorization)
        .collect();
    let redirect_uri = match (param("redirect_uri"), callbacks.as_slice()) {
        (Some(r), _) => r.to_owned(),
        (None, [only]) if only.matching_mode == MatchingMode::Strict => only.url.clone(),
        (None, _) => return Ok(bad_request("redirect_uri is missing.")),
    };
    if !redirect_allowed(settings, RedirectUriType::Authorization, &redirect_uri) {
        return Ok(bad_request(&format!(
            "The redirect URI `{redirect_uri}` is not registered for this application. Register it exactly in the provider's redirect URIs."
        )));
    }
    let Some(app) = applications::find_by_provider(&mut conn, provider.id).await? else {
        return Ok(bad_request(
            "This provider is not assigned to an application yet.",
        ));
    };
    let reply = Reply {
        redirect_uri: &redirect_uri,
        state: param("state"),
        issuer: issuer(&state.settings.external_url, &app.fields.slug),
    };
    if param("response_type") != Some("code") {
        return Ok(reply.error(
            "unsupported_response_type",
            "Only response_type=code is supported.",
        ));
    }
    let challenge = param("code_challenge").unwrap_or_default();
    let method =
        param("code_challenge_method").unwrap_or(if challenge.is_empty() { "" } else { "plain" });
    if public && challenge.is_empty() {
        return Ok(reply.error(
            "invalid_request",
            "Public clients must use PKCE (code_challenge with S256).",
        ));
    }
    if !challenge.is_empty() && method != "S256" {
        return Ok(reply.error(
            "invalid_request",
            "Only the S256 code_challenge_method is supported.",
        ));
    }
    // The built-in scopes, and those the provider's scope mappings bring; others are dropped.
    let mapped = scope_mappings::of_provider(&mut conn, provider.id).await?;
    let scopes: Vec<String> = param("scope")
        .unwrap_or("openid")
        .split_whitespace()
        .filter(|s| SCOPES.contains(s) || mapped.iter().any(|m| m.fields.scope_name == *s))
        .map(str::to_owned)
        .collect();
    let prompt: Vec<&str> = param("prompt")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if prompt.contains(&"none") && prompt.len() > 1 {
        return Ok(reply.error(
            "invalid_request",
            "prompt=none cannot be combined with other prompt values.",
        ));
    }
    // Where a login or consent screen returns to: this request without `prompt`, so the
    // screen the client asked for is not asked for again.
    let again: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "prompt")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let here = format!(
        "{}?{}",
        uri.path(),
        serde_urlencoded::to_string(&again).unwrap_or_default()
    );
    let login_flow = match provider.fields.authentication_flow {
        Some(f) => sql::get::<flows::Flow>(&mut conn, f).await?.fields.slug,
        None => "default-authentication-flow".to_owned(),
    };
    let max_age = param("max_age").and_then(|v| v.parse::<i64>().ok());
    let stale = match (&current, max_age) {
        (Some(c), Some(age)) => (Utc::now() - c.session.created).num_seconds() > age,
        _ => false,
    };
    let Some(current) = current.filter(|_| !prompt.contains(&"login") && !stale) else {
        if prompt.contains(&"none") {
            return Ok(reply.error(
                "login_required",
                "The user must log in, and prompt=none forbids asking.",
            ));
        }
        let target = url_with(&format!("/if/flow/{login_flow}/"), &[("next", &here)]);
        return Ok((StatusCode::FOUND, [(LOCATION, target)]).into_response());
    };
    let req = session::request_info(headers, peer, &axum::http::Method::GET, uri);
    let verdict = access_verdict(&mut conn, &app, &current.user, &req).await?;
    if let Verdict::Fail(message) = verdict {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Access denied",
            &format!("You may not use {}: {message}", app.fields.name),
            "Ask your administrator for access.",
        ));
    }
    let ask_again = prompt.contains(&"consent");
    if needs_consent(
        &mut conn,
        provider.fields.authorization_flow,
        current.user.id,
        app.uuid,
        &scopes,
        ask_again,
    )
    .await?
    {
        // OIDC Core §3.1.2.6: silent authentication never shows a screen.
        if prompt.contains(&"none") {
            return Ok(reply.error(
                "consent_required",
                "The user has not allowed this application yet, and prompt=none forbids asking.",
            ));
        }
        let flow = sql::get::<flows::Flow>(&mut conn, provider.fields.authorization_flow).await?;
        let scope = scopes.join(" ");
        let mut query = vec![
            ("next", here.as_str()),
            ("application", app.fields.slug.as_str()),
            ("scope", scope.as_str()),
        ];
        if ask_again {
            query.push(("prompt", "consent"));
        }
        let target = url_with(&format!("/if/flow/{}/", flow.fields.slug), &query);
        return Ok((StatusCode::FOUND, [(LOCATION, target)]).into_response());
    }
    let code = secret::new_token();
    let validity = code_validity
        .parse::<gatehouse_core::Duration>()
        .map(|d| d.seconds())
        .unwrap_or(60);
    oauth::create_code(
        &mut conn,
        &code,
        &oauth::CodeGrant {
            provider: provider.id,
            user: current.user.id,
            session: Some(current.session.uuid),
            redirect_uri: redirect_uri.clone(),
            scope: scopes.join(" "),
            nonce: param("nonce")
                .unwrap_or_default()
                .chars()
                .take(512)
                .collect(),
            code_challenge: challenge.chars().take(128).collect(),
            code_challenge_method: method.to_owned(),
            expires: Utc::now() + Duration::seconds(validity),
            auth_time: Some(current.session.created),
        },
    )
    .await?;
    Ok(reply.send(&[("code", &code)]))
}

/// Whether the application's policy bindings let `user` in. Asked at authorize and again at
/// every refresh, so a user who lost access cannot keep a token set alive.
async fn access_verdict(
    conn: &mut Conn,
    app: &applications::Application,
    user: &gatehouse_store::users::User,
    request: &gatehouse_flow::RequestInfo,
) -> Result<Verdict, ApiError> {
    let ctx = Context {
        user: Some(user),
        identifier: None,
        request,
        flow: None,
        invitation: None,
    };
    let (verdict, _) = policy::evaluate_target(conn, app.uuid, app.fields.policy_engine_mode, ctx)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(verdict)
}

/// Whether the provider's authorization flow asks for consent: always when the client asked
/// for the screen again (`ask_again`, from `prompt=consent`), otherwise when `user` has not
/// given it yet for these scopes. Flows without a consent stage (implicit consent: the
/// administrator consented for everyone) never do.
async fn needs_consent(
    conn: &mut Conn,
    flow: uuid::Uuid,
    user: i64,
    app: uuid::Uuid,
    scopes: &[String],
    ask_again: bool,
) -> Result<bool, ApiError> {
    let mut has_consent_stage = false;
    for binding in flows::stage_bindings(conn, flow).await? {
        if sql::get::<flows::Stage>(conn, binding.stage)
            .await?
            .fields
            .kind
            == StageKind::Consent
        {
            has_consent_stage = true;
        }
    }
    if !has_consent_stage || ask_again {
        return Ok(has_consent_stage);
    }
    let granted = oauth::consented_scopes(conn, user, app)
        .await?
        .unwrap_or_default();
    Ok(!scopes.iter().all(|s| granted.contains(s)))
}
