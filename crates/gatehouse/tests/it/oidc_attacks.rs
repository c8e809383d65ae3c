//! Attacks on the OIDC provider from the security review (issue #13): tokens that outlive the
//! login they came from, redirect URIs that send codes to another host, cross-site logout, and
//! tokens presented where another kind is expected. Each test performs the attack and asserts
//! what the attacker would see.

use gatehouse_testkit::{browse_until, cookie_client, url_encode, with_server, TestServer};
use reqwest::header::LOCATION;
use serde_json::{json, Value};

use crate::enrollment::csrf_of;
use crate::oidc::{
    oauth_error, public_client_tokens, query_param, redeem, setup, token_request, userinfo, App,
    PASSWORD,
};

/// A browser that logged in as alice and authorized `app` for `openid offline_access`, with
/// the token set its code was exchanged for. The browser keeps its session cookie.
async fn logged_in_with_tokens(
    server: &TestServer,
    app: &App,
) -> anyhow::Result<(reqwest::Client, Value)> {
    let (browser, location) = authorization_response(server, app).await?;
    let code =
        query_param(&location, "code").ok_or_else(|| anyhow::anyhow!("no code in {location}"))?;
    let (status, tokens) = redeem(server, app, &code, &app.client_secret).await?;
    anyhow::ensure!(status == 200, "{tokens}");
    Ok((browser, tokens))
}

/// A browser that logged in as alice at `app`'s authorize URL, and the redirect back to the
/// application that ended it.
async fn authorization_response(
    server: &TestServer,
    app: &App,
) -> anyhow::Result<(reqwest::Client, String)> {
    let browser = cookie_client()?;
    let start = authorize_url(server, app, "code");
    let response = browse_until(
        &browser,
        server,
        &start,
        ("alice@example.com", PASSWORD),
        |l| l.starts_with(&app.callback),
    )
    .await?;
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((browser, location))
}

/// `app`'s authorize URL asking for `openid offline_access` with `response_type`.
fn authorize_url(server: &TestServer, app: &App, response_type: &str) -> String {
    format!(
        "{}/application/o/authorize/?client_id={}&redirect_uri={}&response_type={response_type}&scope=openid%20offline_access&state=s-1",
        server.external_url,
        app.client_id,
        url_encode(&app.callback)
    )
}

/// The refresh grant with `refresh_token`: (status, body).
async fn refresh(
    server: &TestServer,
    app: &App,
    refresh_token: &str,
) -> anyhow::Result<(u16, Value)> {
    token_request(
        server,
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
        &app.client_secret,
    )
    .await
}

/// Introspects `token` as the confidential client `app`.
async fn introspect(server: &TestServer, app: &App, token: &str) -> anyhow::Result<Value> {
    Ok(reqwest::Client::new()
        .post(format!("{}/application/o/introspect/", server.url))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[("token", token)])
        .send()
        .await?
        .json()
        .await?)
}

fn text<'a>(tokens: &'a Value, name: &str) -> &'a str {
    tokens[name].as_str().unwrap_or_default()
}

/// Asserts the token set `tokens` is dead: refreshing is `invalid_grant` and introspection
/// calls both its access and refresh token inactive.
async fn assert_ended(
    server: &TestServer,
    app: &App,
    tokens: &Value,
    after: &str,
) -> anyhow::Result<()> {
    let refreshed = refresh(server, app, text(tokens, "refresh_token")).await?;
    assert_eq!(
        oauth_error(&refreshed),
        (400, Some("invalid_grant")),
        "refreshing after {after}: {}",
        refreshed.1
    );
    for kind in ["access_token", "refresh_token"] {
        let answer = introspect(server, app, text(tokens, kind)).await?;
        assert_eq!(answer, json!({"active": false}), "the {kind} after {after}");
    }
    Ok(())
}

/// Asserts the token set is alive before the attack, so the test shows the change.
async fn assert_alive(server: &TestServer, app: &App, tokens: &Value) -> anyhow::Result<()> {
    for kind in ["access_token", "refresh_token"] {
        let answer = introspect(server, app, text(tokens, kind)).await?;
        assert_eq!(answer["active"], true, "the fresh {kind}: {answer}");
    }
    Ok(())
}

#[tokio::test]
async fn refresh_tokens_end_with_the_session_at_end_session() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (browser, tokens) = logged_in_with_tokens(&server, &app).await?;
        assert_alive(&server, &app, &tokens).await?;
        let end = browser
            .get(format!(
                "{}/application/o/grafana/end-session/?id_token_hint={}",
                server.url,
                text(&tokens, "id_token")
            ))
            .send()
            .await?;
        assert_eq!(end.status(), 200);
        assert_ended(&server, &app, &tokens, "end-session").await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn refresh_tokens_end_when_the_password_changes_on_the_user_page() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (browser, tokens) = logged_in_with_tokens(&server, &app).await?;
        assert_alive(&server, &app, &tokens).await?;
        let page = browser
            .get(format!("{}/if/user/password/", server.url))
            .send()
            .await?
            .text()
            .await?;
        let changed = browser
            .post(format!("{}/if/user/password/", server.url))
            .form(&[
                ("csrf", csrf_of(&page).as_str()),
                ("current", PASSWORD),
                ("password", "a brand new password"),
                ("password_repeat", "a brand new password"),
            ])
            .send()
            .await?;
        assert_eq!(changed.status(), 200);
        assert_ended(&server, &app, &tokens, "a password change").await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn refresh_is_refused_once_the_application_binds_a_group_the_user_is_not_in(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (_, tokens) = logged_in_with_tokens(&server, &app).await?;
        assert_alive(&server, &app, &tokens).await?;
        let (_, group) = server
            .post("/core/groups/", json!({"name": "Billing"}))
            .await?;
        let (_, application) = server.get("/core/applications/grafana/").await?;
        let (status, binding) = server
            .post(
                "/policies/bindings/",
                json!({"target": application["pk"], "group": group["pk"], "order": 0}),
            )
            .await?;
        assert_eq!(status, 201, "{binding}");
        assert_ended(&server, &app, &tokens, "binding a group alice is not in").await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn refresh_tokens_end_when_the_user_is_deactivated() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (_, tokens) = logged_in_with_tokens(&server, &app).await?;
        assert_alive(&server, &app, &tokens).await?;
        let (_, users) = server
            .get("/core/users/?username=alice@example.com")
            .await?;
        let pk = &users["results"][0]["pk"];
        let (status, user) = server
            .patch(&format!("/core/users/{pk}/"), json!({"is_active": false}))
            .await?;
        assert_eq!(status, 200, "{user}");
        assert_ended(&server, &app, &tokens, "deactivation").await?;
        server.stop().await
    })
    .await
}

/// Mix-up defence (RFC 9207, RFC 9700 §4.4; #13 L8): every authorization response, success
/// or error, names its issuer in `iss`, and discovery says so, so a client registered at
/// several servers can refuse a code that did not come from the one it asked.
#[tokio::test]
async fn authorization_responses_name_their_issuer() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (browser, location) = authorization_response(&server, &app).await?;
        assert!(query_param(&location, "code").is_some(), "{location}");
        assert_eq!(query_param(&location, "state").as_deref(), Some("s-1"));
        assert_eq!(
            query_param(&location, "iss"),
            Some(app.issuer.clone()),
            "{location}"
        );
        let refused = browser
            .get(authorize_url(&server, &app, "token"))
            .send()
            .await?;
        let location = refused
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(
            query_param(location, "error").as_deref(),
            Some("unsupported_response_type"),
            "{location}"
        );
        assert_eq!(
            query_param(location, "iss"),
            Some(app.issuer.clone()),
            "{location}"
        );
        let discovery: Value =
            reqwest::get(format!("{}.well-known/openid-configuration", app.issuer))
                .await?
                .json()
                .await?;
        assert_eq!(
            discovery["authorization_response_iss_parameter_supported"],
            true
        );
        assert_eq!(discovery["issuer"], app.issuer.as_str());
        server.stop().await
    })
    .await
}

/// A public client's id is no secret, so it must not open introspection (RFC 7662 §2.1; #13
/// L8): with only the id, anyone could learn whose a live token is and what it may do.
#[tokio::test]
async fn a_public_client_id_alone_cannot_introspect_a_live_token() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "public").await?;
        let (status, tokens) = public_client_tokens(&server, &app).await?;
        assert_eq!(status, 200, "{tokens}");
        let r = reqwest::Client::new()
            .post(format!("{}/application/o/introspect/", server.url))
            .form(&[
                ("token", text(&tokens, "access_token")),
                ("client_id", app.client_id.as_str()),
            ])
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        assert_eq!(
            oauth_error(&(status, body.clone())),
            (401, Some("invalid_client")),
            "{body}"
        );
        assert!(
            body.get("sub").is_none() && body.get("active").is_none(),
            "{body}"
        );
        server.stop().await
    })
    .await
}

/// Access tokens are typed `at+jwt` (RFC 9068 §2.1; #13 L8) and ID tokens `JWT`, and an ID
/// token presented as a bearer token opens nothing: a relying party's front end that leaks
/// its ID token does not hand out API access.
#[tokio::test]
async fn access_and_id_tokens_are_typed_and_an_id_token_is_no_access_token() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (_, tokens) = logged_in_with_tokens(&server, &app).await?;
        let typ = |name: &str| {
            jsonwebtoken::decode_header(text(&tokens, name))
                .ok()
                .and_then(|h| h.typ)
        };
        assert_eq!(typ("access_token").as_deref(), Some("at+jwt"));
        assert_eq!(typ("id_token").as_deref(), Some("JWT"));
        let (status, body) = userinfo(&server, text(&tokens, "access_token")).await?;
        assert_eq!(status, 200, "{body}");
        let (status, body) = userinfo(&server, text(&tokens, "id_token")).await?;
        assert_eq!(status, 401, "an ID token is no access token: {body}");
        let answer = introspect(&server, &app, text(&tokens, "id_token")).await?;
        assert_eq!(answer, json!({"active": false}));
        server.stop().await
    })
    .await
}

/// The ID token's `auth_time` is when the browser's own session authenticated (#13 L6), not
/// the user's latest login anywhere: a relying party enforcing `max_age` must not be told a
/// day-old session is fresh because the same person just signed in on another device. Both
/// the code exchange and the refresh grant keep the session's time.
#[tokio::test]
async fn auth_time_is_the_sessions_own_login_not_the_users_latest() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (first_browser, first) = logged_in_with_tokens(&server, &app).await?;
        let auth_time = |tokens: &Value| {
            jsonwebtoken::dangerous::insecure_decode::<Value>(text(tokens, "id_token"))
                .map(|d| d.claims["auth_time"].as_i64())
                .ok()
                .flatten()
        };
        let first_login = auth_time(&first).ok_or_else(|| anyhow::anyhow!("no auth_time"))?;
        // auth_time has whole seconds: the second login must land in a later one.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let (_, second) = logged_in_with_tokens(&server, &app).await?;
        let second_login = auth_time(&second).ok_or_else(|| anyhow::anyhow!("no auth_time"))?;
        assert!(
            second_login > first_login,
            "{first_login} then {second_login}"
        );

        // The first browser authorizes again on its old session, without a new login.
        let again = first_browser
            .get(authorize_url(&server, &app, "code").replace(&server.external_url, &server.url))
            .send()
            .await?;
        let location = again
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let code = query_param(&location, "code")
            .ok_or_else(|| anyhow::anyhow!("no silent code for the live session: {location}"))?;
        let (status, tokens) = redeem(&server, &app, &code, &app.client_secret).await?;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(auth_time(&tokens), Some(first_login), "code exchange");

        let (status, refreshed) = refresh(&server, &app, text(&first, "refresh_token")).await?;
        assert_eq!(status, 200, "{refreshed}");
        assert_eq!(auth_time(&refreshed), Some(first_login), "refresh grant");
        server.stop().await
    })
    .await
}
