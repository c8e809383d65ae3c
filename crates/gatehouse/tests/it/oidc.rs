//! The OIDC provider against an independent relying-party library (the `openidconnect` crate):
//! discovery → code + PKCE → tokens → ID token verified against the JWKS → userinfo → refresh
//! → revoke → introspection says inactive → end-session; then each way a client can misbehave.

use gatehouse_testkit::{browse_until, cookie_client, with_server, TestServer};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use reqwest::header::LOCATION;
use serde_json::{json, Value};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A registered relying party: its provider and client credentials, callback and issuer.
pub(crate) struct App {
    pub(crate) provider: i64,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) callback: String,
    pub(crate) issuer: String,
}

pub(crate) async fn setup(server: &TestServer, client_type: &str) -> anyhow::Result<App> {
    let (_, user) = server.post("/core/users/", json!({"username": "alice@example.com", "name": "Alice Example", "email": "alice@example.com"})).await?;
    server
        .post(
            &format!("/core/users/{}/set_password/", user["pk"]),
            json!({"password": PASSWORD}),
        )
        .await?;
    let (_, group) = server
        .post(
            "/core/groups/",
            json!({"name": "Grafana Admins", "users": [user["pk"]]}),
        )
        .await?;
    assert!(group["pk"].is_string(), "{group}");
    let (flow, invalidation) = crate::provider_flows(server, "implicit").await?;
    let callback = format!("{}/test-callback/grafana", server.external_url);
    let (status, provider) = server
        .post(
            "/providers/oauth2/",
            json!({"name": "Grafana", "client_type": client_type, "authorization_flow": flow, "invalidation_flow": invalidation,
                   "redirect_uris": [{"matching_mode": "strict", "url": callback},
                                     {"matching_mode": "strict", "url": format!("{}/logged-out", server.external_url), "redirect_uri_type": "logout"}],
                   "logout_uri": format!("{}/logged-out", server.external_url)}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{provider}");
    server
        .post(
            "/core/applications/",
            json!({"name": "Grafana", "slug": "grafana", "provider": provider["pk"]}),
        )
        .await?;
    Ok(App {
        provider: provider["pk"].as_i64().unwrap_or_default(),
        client_id: provider["client_id"].as_str().unwrap_or_default().into(),
        client_secret: provider["client_secret"]
            .as_str()
            .unwrap_or_default()
            .into(),
        callback,
        issuer: format!("{}/application/o/grafana/", server.external_url),
    })
}

/// Logs in like a browser from `start` until the redirect to the RP's callback; returns that
/// redirect's URL.
async fn log_in_and_authorize(
    server: &TestServer,
    start: &str,
    callback: &str,
) -> anyhow::Result<String> {
    let response = browse_until(
        &cookie_client()?,
        server,
        start,
        ("alice@example.com", PASSWORD),
        |l| l.starts_with(callback),
    )
    .await?;
    Ok(response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned())
}

pub(crate) fn http() -> anyhow::Result<openidconnect::reqwest::Client> {
    Ok(openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()?)
}

/// The relying party the `openidconnect` crate makes from discovery, registered as `app`.
pub(crate) type RelyingParty = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Discovers `app`'s issuer and builds its relying party (fetching the JWKS afresh).
pub(crate) async fn relying_party(
    app: &App,
    http: &openidconnect::reqwest::Client,
) -> anyhow::Result<(CoreProviderMetadata, RelyingParty)> {
    // Discovery is fetched from 127.0.0.1 but names the external URL; both reach this server.
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer.clone())?, http).await?;
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(app.client_id.clone()),
        Some(ClientSecret::new(app.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(app.callback.clone())?);
    Ok((metadata, client))
}

/// Calls userinfo with `access_token`: (status, body).
pub(crate) async fn userinfo(
    server: &TestServer,
    access_token: &str,
) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .get(format!("{}/application/o/userinfo/", server.url))
        .bearer_auth(access_token)
        .send()
        .await?;
    Ok((
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    ))
}

/// The code flow as alice, asking for `openid` plus `scopes`: (tokens, nonce).
pub(crate) async fn code_flow(
    server: &TestServer,
    app: &App,
    client: &RelyingParty,
    http: &openidconnect::reqwest::Client,
    scopes: &[&str],
) -> anyhow::Result<(openidconnect::core::CoreTokenResponse, Nonce)> {
    let (auth_url, _, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_owned())))
        .url();
    let redirect = log_in_and_authorize(server, auth_url.as_str(), &app.callback).await?;
    let code = query_param(&redirect, "code").unwrap_or_default();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))?
        .request_async(http)
        .await?;
    Ok((tokens, nonce))
}

pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn openidconnect_relying_party_completes_the_whole_lifecycle() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let http = http()?;
        let (_, client) = relying_party(&app, &http).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, csrf, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("groups".into()))
            .add_scope(Scope::new("offline_access".into()))
            .set_pkce_challenge(challenge)
            .url();
        let redirect = log_in_and_authorize(&server, auth_url.as_str(), &app.callback).await?;
        assert_eq!(
            query_param(&redirect, "state").as_deref(),
            Some(csrf.secret().as_str())
        );
        let code = query_param(&redirect, "code").unwrap_or_default();

        let tokens = client
            .exchange_code(AuthorizationCode::new(code))?
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| anyhow::anyhow!("no ID token"))?;
        let claims = id_token.claims(&client.id_token_verifier(), &nonce)?;
        assert_eq!(
            claims.preferred_username().map(|u| u.as_str()),
            Some("alice@example.com")
        );
        assert_eq!(
            claims.email().map(|e| e.as_str()),
            Some("alice@example.com")
        );

        let verified: CoreUserInfoClaims = client
            .user_info(tokens.access_token().clone(), None)?
            .request_async(&http)
            .await?;
        assert_eq!(verified.subject(), claims.subject());
        let (_, raw) = userinfo(&server, tokens.access_token().secret()).await?;
        assert_eq!(raw["groups"], json!(["Grafana Admins"]), "{raw}");

        let refresh = tokens
            .refresh_token()
            .ok_or_else(|| anyhow::anyhow!("no refresh token with offline_access"))?
            .clone();
        let refreshed = client
            .exchange_refresh_token(&refresh)?
            .request_async(&http)
            .await?;
        let new_refresh = refreshed
            .refresh_token()
            .ok_or_else(|| anyhow::anyhow!("no rotated refresh token"))?
            .clone();
        assert_ne!(
            new_refresh.secret(),
            refresh.secret(),
            "refresh tokens rotate"
        );

        // Revoke the new access token; introspection then says inactive.
        let form = |token: &str| [("token", token.to_owned())];
        let revoked = reqwest::Client::new()
            .post(format!("{}/application/o/revoke/", server.url))
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .form(&form(refreshed.access_token().secret()))
            .send()
            .await?;
        assert_eq!(revoked.status(), 200);
        let introspected: Value = reqwest::Client::new()
            .post(format!("{}/application/o/introspect/", server.url))
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .form(&form(refreshed.access_token().secret()))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(introspected, json!({"active": false}));
        let live: Value = reqwest::Client::new()
            .post(format!("{}/application/o/introspect/", server.url))
            .basic_auth(&app.client_id, Some(&app.client_secret))
            .form(&form(&new_refresh.secret().clone()))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(live["active"], true, "{live}");

        // RP-initiated logout as the library sends it, from discovery: with the ID token as
        // hint, the browser returns to the registered post-logout URI with the state.
        let logout =
            ProviderMetadataWithLogout::discover_async(IssuerUrl::new(app.issuer.clone())?, &http)
                .await?
                .additional_metadata()
                .end_session_endpoint
                .clone()
                .ok_or_else(|| anyhow::anyhow!("discovery names no end_session_endpoint"))?;
        let back = format!("{}/logged-out", server.external_url);
        let back_url = PostLogoutRedirectUrl::new(back.clone())?;
        let request = || {
            LogoutRequest::from(logout.clone())
                .set_post_logout_redirect_uri(back_url.clone())
                .set_state(CsrfToken::new("bye-1".into()))
        };
        let local = |u: url::Url| u.as_str().replace(&server.external_url, &server.url);
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let end = no_redirects
            .get(local(request().set_id_token_hint(id_token).http_get_url()))
            .send()
            .await?;
        assert_eq!(end.status(), 302);
        let location = end
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(location, format!("{back}?state=bye-1"));
        // Without the hint (and without client_id) the request names no client: no redirect.
        let unnamed = no_redirects
            .get(local(request().http_get_url()))
            .send()
            .await?;
        assert_eq!(unnamed.status(), 200);
        assert!(unnamed.headers().get(LOCATION).is_none());
        server.stop().await
    })
    .await
}

pub(crate) async fn token_request(
    server: &TestServer,
    app: &App,
    form: &[(&str, &str)],
    secret: &str,
) -> anyhow::Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .post(format!("{}/application/o/token/", server.url))
        .basic_auth(&app.client_id, Some(secret))
        .form(form)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

async fn fresh_code(server: &TestServer, app: &App, extra: &str) -> anyhow::Result<String> {
    let url = format!(
        "{}/application/o/authorize/?client_id={}&redirect_uri={}&response_type=code&scope=openid%20offline_access{extra}",
        server.external_url,
        app.client_id,
        gatehouse_testkit::url_encode(&app.callback)
    );
    let redirect = log_in_and_authorize(server, &url, &app.callback).await?;
    query_param(&redirect, "code").ok_or_else(|| anyhow::anyhow!("no code in {redirect}"))
}

/// Exchanges `code` as a confidential client presenting `secret`: (status, body).
pub(crate) async fn redeem(
    server: &TestServer,
    app: &App,
    code: &str,
    secret: &str,
) -> anyhow::Result<(u16, Value)> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", app.callback.as_str()),
    ];
    token_request(server, app, &form, secret).await
}

/// The `error` of an OAuth error answer, with its status.
pub(crate) fn oauth_error(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let code = fresh_code(&server, &app, "").await?;
        let answer = redeem(&server, &app, &code, "wrong-secret").await?;
        assert_eq!(
            oauth_error(&answer),
            (401, Some("invalid_client")),
            "{}",
            answer.1
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_reused_code_is_invalid_grant_and_its_tokens_are_revoked() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let code = fresh_code(&server, &app, "").await?;
        let (status, first) = redeem(&server, &app, &code, &app.client_secret).await?;
        assert_eq!(status, 200, "{first}");
        let again = redeem(&server, &app, &code, &app.client_secret).await?;
        assert_eq!(
            oauth_error(&again),
            (400, Some("invalid_grant")),
            "a reused code: {}",
            again.1
        );
        let (status, _) =
            userinfo(&server, first["access_token"].as_str().unwrap_or_default()).await?;
        assert_eq!(status, 401, "tokens issued from a reused code are revoked");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let code = fresh_code(&server, &app, "").await?;
        let (_, tokens) = redeem(&server, &app, &code, &app.client_secret).await?;
        let refresh = |token: String| {
            let (server, app) = (&server, &app);
            async move {
                token_request(
                    server,
                    app,
                    &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                    &app.client_secret,
                )
                .await
            }
        };
        let r1 = tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, rotated) = refresh(r1.clone()).await?;
        assert_eq!(status, 200, "{rotated}");
        let r2 = rotated["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let reused = refresh(r1).await?;
        assert_eq!(
            oauth_error(&reused),
            (400, Some("invalid_grant")),
            "{}",
            reused.1
        );
        let newer = refresh(r2).await?;
        assert_eq!(
            oauth_error(&newer),
            (400, Some("invalid_grant")),
            "the newer token of the family is revoked too: {}",
            newer.1
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_code_sent_with_another_redirect_uri_is_invalid_grant() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let code = fresh_code(&server, &app, "").await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://evil.example/"),
        ];
        let answer = token_request(&server, &app, &form, &app.client_secret).await?;
        assert_eq!(
            oauth_error(&answer),
            (400, Some("invalid_grant")),
            "{}",
            answer.1
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn an_unsupported_grant_type_is_named() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let answer = token_request(
            &server,
            &app,
            &[("grant_type", "password")],
            &app.client_secret,
        )
        .await?;
        assert_eq!(
            oauth_error(&answer),
            (400, Some("unsupported_grant_type")),
            "{}",
            answer.1
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn client_credentials_give_an_access_token_without_a_user() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (status, body) = token_request(
            &server,
            &app,
            &[("grant_type", "client_credentials"), ("scope", "openid")],
            &app.client_secret,
        )
        .await?;
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string(), "{body}");
        assert!(
            body.get("id_token").is_none() && body.get("refresh_token").is_none(),
            "{body}"
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn an_expired_code_is_invalid_grant() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        server
            .patch(
                &format!("/providers/oauth2/{}/", app.provider),
                json!({"access_code_validity": "seconds=1"}),
            )
            .await?;
        let code = fresh_code(&server, &app, "").await?;
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let answer = redeem(&server, &app, &code, &app.client_secret).await?;
        assert_eq!(
            oauth_error(&answer),
            (400, Some("invalid_grant")),
            "{}",
            answer.1
        );
        let description = answer.1["error_description"].as_str().unwrap_or_default();
        assert!(description.contains("expired"), "{}", answer.1);
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_pkce_code_without_its_verifier_is_invalid_grant() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let code = fresh_code(
            &server,
            &app,
            &format!("&code_challenge={challenge}&code_challenge_method=S256"),
        )
        .await?;
        let answer = redeem(&server, &app, &code, &app.client_secret).await?;
        assert_eq!(
            oauth_error(&answer),
            (400, Some("invalid_grant")),
            "no verifier for a PKCE code: {}",
            answer.1
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_tampered_id_token_is_rejected_by_the_relying_party() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let http = http()?;
        let (_, client) = relying_party(&app, &http).await?;
        let (tokens, nonce) = code_flow(&server, &app, &client, &http, &[]).await?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| anyhow::anyhow!("no ID token"))?;
        assert!(id_token.claims(&client.id_token_verifier(), &nonce).is_ok());
        let text = id_token.to_string();
        let (payload_and_header, signature) = text.rsplit_once('.').unwrap_or_default();
        let flipped: String = signature.chars().rev().collect();
        let tampered: openidconnect::core::CoreIdToken =
            format!("{payload_and_header}.{flipped}").parse()?;
        assert!(
            tampered
                .claims(&client.id_token_verifier(), &nonce)
                .is_err(),
            "a tampered signature must not verify"
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn authlib_a_python_relying_party_logs_in() -> anyhow::Result<()> {
    use anyhow::Context;
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let python = std::env::var("GATEHOUSE_TEST_PYTHON")
            .context("GATEHOUSE_TEST_PYTHON is not set: run scripts/test, which installs Authlib into target/test-venv")?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/authlib_rp_check.py");
        let output = tokio::process::Command::new(&python)
            .args([script, &server.url, &app.issuer, &app.client_id, &app.client_secret, &app.callback, "alice@example.com", PASSWORD])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && stdout.contains("check passed"), "Authlib RP failed\n{stdout}\n{stderr}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn prompt_none_without_a_session_reports_login_required() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "public").await?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let url = format!(
            "{}/application/o/authorize/?client_id={}&redirect_uri={}&response_type=code&scope=openid&prompt=none&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            server.url,
            app.client_id,
            gatehouse_testkit::url_encode(&app.callback)
        );
        let r = http.get(&url).send().await?;
        let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(location.starts_with(&format!("{}?error=login_required", app.callback)), "{location}");

        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_public_client_redeems_its_code_with_the_pkce_verifier_alone() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "public").await?;
        let (status, body) = public_client_tokens(&server, &app).await?;
        assert_eq!(status, 200, "{body}");
        assert!(body["id_token"].is_string(), "{body}");
        server.stop().await
    })
    .await
}

/// The public client `app` logs alice in and redeems its code with the PKCE verifier and no
/// secret: (status, body).
pub(crate) async fn public_client_tokens(
    server: &TestServer,
    app: &App,
) -> anyhow::Result<(u16, Value)> {
    let code = fresh_code(
        server,
        app,
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
    )
    .await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", app.callback.as_str()),
        ("client_id", app.client_id.as_str()),
        (
            "code_verifier",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ),
    ];
    let r = reqwest::Client::new()
        .post(format!("{}/application/o/token/", server.url))
        .form(&form)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

/// The kid in a JWT's header.
fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt)
        .ok()
        .and_then(|h| h.kid)
        .unwrap_or_default()
}

#[tokio::test]
async fn es256_tokens_verify_and_outlive_a_key_rotation() -> anyhow::Result<()> {
    use openidconnect::core::CoreJwsSigningAlgorithm;
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (status, body) = server
            .patch(
                &format!("/providers/oauth2/{}/", app.provider),
                json!({"signing_algorithm": "ES256"}),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["signing_algorithm"], "ES256");
        let (status, body) = server
            .patch(
                &format!("/providers/oauth2/{}/", app.provider),
                json!({"signing_algorithm": "HS256"}),
            )
            .await?;
        assert_eq!(status, 400, "an unknown algorithm is refused: {body}");

        let http = http()?;
        let (metadata, client) = relying_party(&app, &http).await?;
        let advertised = serde_json::to_value(metadata.id_token_signing_alg_values_supported())?;
        assert_eq!(advertised, json!(["ES256"]));
        let (tokens, nonce) = code_flow(
            &server,
            &app,
            &client,
            &http,
            &["offline_access", "profile"],
        )
        .await?;
        let es256 = client
            .id_token_verifier()
            .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
        let id_token = tokens
            .id_token()
            .ok_or_else(|| anyhow::anyhow!("no ID token"))?;
        id_token.claims(&es256, &nonce)?;
        let old_kid = kid_of(&id_token.to_string());

        // Rotate through the CLI; the old access token keeps working, new tokens use the new key.
        let out = crate::cli::gatehouse(Some(&server), &["key", "rotate", "--algorithm", "ES256"])
            .await?;
        assert!(out.status.success(), "{out:?}");
        let jwks: Value = reqwest::get(format!("{}/application/o/grafana/jwks/", server.url))
            .await?
            .json()
            .await?;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert!(
            kids.contains(&old_kid.as_str()),
            "the retired key stays published: {jwks}"
        );
        let userinfo: CoreUserInfoClaims = client
            .user_info(tokens.access_token().clone(), None)?
            .request_async(&http)
            .await?;
        assert_eq!(
            userinfo.preferred_username().map(|u| u.as_str()),
            Some("alice@example.com")
        );
        let refresh = tokens
            .refresh_token()
            .ok_or_else(|| anyhow::anyhow!("no refresh token"))?;
        let refreshed = client
            .exchange_refresh_token(refresh)?
            .request_async(&http)
            .await?;
        let new_id = refreshed
            .id_token()
            .ok_or_else(|| anyhow::anyhow!("no ID token on refresh"))?;
        let new_kid = kid_of(&new_id.to_string());
        assert_ne!(
            new_kid, old_kid,
            "tokens are signed by the new key after rotation"
        );
        // The RP fetches the JWKS again (as it does for an unknown kid) and the new token verifies.
        let (_, client) = relying_party(&app, &http).await?;
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
        new_id.claims(&verifier, |_: Option<&Nonce>| Ok(()))?;

        let out = crate::cli::gatehouse(Some(&server), &["key", "list", "--json"]).await?;
        let listed: Value = serde_json::from_str(&crate::cli::stdout(&out))?;
        let old = listed["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["kid"] == old_kid.as_str())
            .cloned()
            .unwrap_or_default();
        assert!(
            old["retired"].is_string() && old["published_until"].is_string(),
            "{listed}"
        );
        let out = crate::cli::gatehouse(Some(&server), &["key", "rotate", "--algorithm", "HS256"])
            .await?;
        assert!(
            !out.status.success(),
            "an unknown algorithm fails the command"
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn scope_mappings_add_cel_claims_to_tokens_and_userinfo() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (status, body) = server
            .post(
                "/propertymappings/provider/scope/",
                json!({"name": "Broken", "scope_name": "headscale", "expression": "{\"a\": "}),
            )
            .await?;
        assert_eq!(status, 400, "{body}");
        assert!(crate::errors(&body, "expression").contains("does not compile"), "{body}");
        let (status, mapping) = server
            .post(
                "/propertymappings/provider/scope/",
                json!({"name": "Headscale", "scope_name": "headscale",
                       "expression": "{\"tailnet_user\": user.username, \"grafana_admin\": \"Grafana Admins\" in user.groups, \"sub\": \"forged\"}"}),
            )
            .await?;
        assert_eq!(status, 201, "{mapping}");
        // Compiles, but yields no map: skipped at issue time, never blocking the login.
        let (status, not_a_map) = server
            .post(
                "/propertymappings/provider/scope/",
                json!({"name": "Not a map", "scope_name": "headscale", "expression": "user.username"}),
            )
            .await?;
        assert_eq!(status, 201, "{not_a_map}");
        let path = format!("/providers/oauth2/{}/", app.provider);
        let (status, body) = server
            .patch(&path, json!({"property_mappings": ["00000000-0000-4000-8000-000000000000"]}))
            .await?;
        assert_eq!(status, 400, "an unknown mapping is refused: {body}");
        let (status, body) = server
            .patch(&path, json!({"property_mappings": [mapping["pk"], not_a_map["pk"]]}))
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["property_mappings"].as_array().map(Vec::len), Some(2), "{body}");

        let url = format!(
            "{}/application/o/authorize/?client_id={}&redirect_uri={}&response_type=code&scope=openid%20headscale",
            server.external_url,
            app.client_id,
            gatehouse_testkit::url_encode(&app.callback)
        );
        let redirect = log_in_and_authorize(&server, &url, &app.callback).await?;
        let code = query_param(&redirect, "code").unwrap_or_default();
        let (status, tokens) = token_request(
            &server,
            &app,
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &app.callback)],
            &app.client_secret,
        )
        .await?;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(tokens["scope"], "openid headscale", "a mapped scope is granted");
        let id = jsonwebtoken::dangerous::insecure_decode::<Value>(tokens["id_token"].as_str().unwrap_or_default())?.claims;
        assert_eq!(id["tailnet_user"], "alice@example.com", "{id}");
        assert_eq!(id["grafana_admin"], true, "{id}");
        assert_ne!(id["sub"], "forged", "a mapping cannot set reserved claims");
        let (_, userinfo) = userinfo(&server, tokens["access_token"].as_str().unwrap_or_default()).await?;
        assert_eq!(userinfo["tailnet_user"], "alice@example.com", "{userinfo}");
        server.stop().await
    })
    .await
}
