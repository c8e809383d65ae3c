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

/// Where `response` redirects, empty when it does not.
fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Whether `browser` is still signed in: authorize answers `app` with a code at once.
async fn still_signed_in(
    server: &TestServer,
    app: &App,
    browser: &reqwest::Client,
) -> anyhow::Result<bool> {
    let url = authorize_url(server, app, "code").replace(&server.external_url, &server.url);
    let response = browser.get(url).send().await?;
    Ok(location(&response).starts_with(&format!("{}?code=", app.callback)))
}

/// An OAuth2 provider and application `slug` with one redirect URI `(mode, url)` and the
/// default flow with `consent` ("explicit" or "implicit"); returns the client id.
async fn client_with(
    server: &TestServer,
    slug: &str,
    consent: &str,
    redirect: (&str, &str),
) -> anyhow::Result<String> {
    let (flow, invalidation) = crate::provider_flows(server, consent).await?;
    let (status, provider) = server
        .post(
            "/providers/oauth2/",
            json!({"name": slug, "client_type": "confidential", "authorization_flow": flow,
                   "invalidation_flow": invalidation,
                   "redirect_uris": [{"matching_mode": redirect.0, "url": redirect.1}]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{provider}");
    let (status, app) = server
        .post(
            "/core/applications/",
            json!({"name": slug, "slug": slug, "provider": provider["pk"]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{app}");
    Ok(text(&provider, "client_id").to_owned())
}

#[tokio::test]
async fn a_regex_redirect_uri_sends_codes_only_to_its_own_origin() -> anyhow::Result<()> {
    with_server(|server| async move {
        setup(&server, "confidential").await?;
        let client_id =
            client_with(&server, "rp2", "implicit", ("regex", r"https://rp2\.example\.com.*"))
                .await?;
        let authorize = |redirect: &str| {
            format!(
                "{}/application/o/authorize/?client_id={client_id}&redirect_uri={}&response_type=code&scope=openid&state=s-1",
                server.url,
                url_encode(redirect)
            )
        };
        // Alice signs in through a URL on the registered origin: the code comes back there.
        let browser = cookie_client()?;
        let signed_in = browse_until(
            &browser,
            &server,
            &authorize("https://rp2.example.com/cb"),
            ("alice@example.com", PASSWORD),
            |l| l.starts_with("https://rp2.example.com/"),
        )
        .await?;
        let back = location(&signed_in);
        assert!(back.starts_with("https://rp2.example.com/cb?code="), "{back}");
        // The same signed-in browser, lured to look-alike redirect URIs: no code leaves.
        for attack in [
            "https://rp2.example.com.evil.net/steal",
            "https://rp2.example.com@evil.net/",
            "https://rp2.example.com:444/",
            "http://rp2.example.com/cb",
        ] {
            let response = browser.get(authorize(attack)).send().await?;
            assert_eq!(response.status(), 400, "{attack}");
            assert_eq!(location(&response), "", "{attack} must not be redirected to");
            let page = response.text().await?;
            assert!(page.contains("is not registered"), "{attack}: {page}");
        }
        // A pattern that could name another host is refused when it is registered.
        let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
        let (status, body) = server
            .post(
                "/providers/oauth2/",
                json!({"name": "wildcard", "authorization_flow": flow, "invalidation_flow": invalidation,
                       "redirect_uris": [{"matching_mode": "regex", "url": r"https://.*\.example\.com/cb"}]}),
            )
            .await?;
        assert_eq!(status, 400, "{body}");
        let message = crate::errors(&body, "redirect_uris");
        assert!(message.contains("literal origin"), "{body}");
        server.stop().await
    })
    .await
}

/// A request another site can make the browser send: what it is, its parameters, and the
/// status it must get.
type Attempt<'a> = (&'a str, Vec<(&'a str, String)>, u16);

/// The value of the hidden field `name` of a confirmation page.
fn hidden_field(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn end_session_from_another_site_logs_nobody_out_and_goes_nowhere_unregistered(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let (browser, tokens) = logged_in_with_tokens(&server, &app).await?;
        assert_alive(&server, &app, &tokens).await?;
        let end = format!("{}/application/o/grafana/end-session/", server.url);
        let registered = format!("{}/logged-out", server.external_url);
        let hint = text(&tokens, "id_token");
        let access_token = text(&tokens, "access_token");
        // What another site can make the browser send: links, image tags, auto-posted forms.
        let attempts: Vec<Attempt> = vec![
            ("a bare GET", vec![], 200),
            (
                "an unregistered post_logout_redirect_uri",
                vec![(
                    "post_logout_redirect_uri",
                    "https://rp2.example.com.evil.net/steal".into(),
                )],
                400,
            ),
            (
                "a look-alike of the registered URI with the real hint",
                vec![
                    ("id_token_hint", hint.into()),
                    (
                        "post_logout_redirect_uri",
                        format!("{registered}.evil.net/"),
                    ),
                ],
                400,
            ),
            (
                "the client_id and registered URI without a hint",
                vec![
                    ("client_id", app.client_id.clone()),
                    ("post_logout_redirect_uri", registered.clone()),
                ],
                200,
            ),
            (
                "an access token as the hint",
                vec![("id_token_hint", access_token.into())],
                200,
            ),
        ];
        for (what, query, status) in &attempts {
            for post in [false, true] {
                let request = if post {
                    browser.post(&end).form(query)
                } else {
                    browser.get(&end).query(query)
                };
                let response = request.send().await?;
                let method = if post { "POST" } else { "GET" };
                assert_eq!(response.status(), *status, "{method} with {what}");
                assert_eq!(location(&response), "", "{method} with {what} redirected");
                assert!(
                    still_signed_in(&server, &app, &browser).await?,
                    "{method} with {what} logged the browser out"
                );
            }
        }
        assert_alive(&server, &app, &tokens).await?;

        // The confirmation page's own POST logs out and returns to the registered URI.
        let page = browser
            .get(&end)
            .query(&[
                ("client_id", app.client_id.as_str()),
                ("post_logout_redirect_uri", registered.as_str()),
                ("state", "st-1"),
            ])
            .send()
            .await?
            .text()
            .await?;
        assert!(page.contains("<form method=post"), "{page}");
        let csrf = hidden_field(&page, "csrf");
        assert!(!csrf.is_empty(), "{page}");
        let confirmed = browser
            .post(&end)
            .form(&[
                ("csrf", csrf.as_str()),
                ("client_id", app.client_id.as_str()),
                ("post_logout_redirect_uri", registered.as_str()),
                ("state", "st-1"),
            ])
            .send()
            .await?;
        assert_eq!(confirmed.status(), 302);
        assert_eq!(location(&confirmed), format!("{registered}?state=st-1"));
        assert!(!still_signed_in(&server, &app, &browser).await?);
        assert_ended(&server, &app, &tokens, "the confirmed logout").await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn prompt_none_reports_consent_required_and_prompt_consent_shows_the_screen(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = setup(&server, "confidential").await?;
        let callback = format!("{}/test-callback/forgejo", server.external_url);
        let client_id = client_with(&server, "forgejo", "explicit", ("strict", &callback)).await?;
        let (browser, _) = authorization_response(&server, &app).await?;
        let authorize = |prompt: &str| {
            format!(
                "{}/application/o/authorize/?client_id={client_id}&redirect_uri={}&response_type=code&scope=openid&state=s-1{prompt}",
                server.url,
                url_encode(&callback)
            )
        };
        let consent_flow = "/if/flow/default-provider-authorization-explicit-consent/";

        // Silent authentication before consent: an error at the client, never a screen.
        let silent = browser.get(authorize("&prompt=none")).send().await?;
        let to = location(&silent);
        assert!(
            to.starts_with(&format!("{callback}?error=consent_required&")) && to.contains("&state=s-1&iss="),
            "{to}"
        );

        // Consent once.
        let asked = browser.get(authorize("")).send().await?;
        assert!(location(&asked).starts_with(consent_flow), "{}", location(&asked));
        let screen_url = format!("{}{}", server.url, location(&asked));
        let screen = browser.get(&screen_url).send().await?.text().await?;
        assert!(screen.contains("name=action value=allow"), "{screen}");
        let allowed = browser
            .post(screen_url.split('?').next().unwrap_or_default())
            .form(&[("csrf", csrf_of(&screen).as_str()), ("action", "allow")])
            .send()
            .await?;
        let back = format!("{}{}", server.url, location(&allowed));
        let code = browser.get(&back).send().await?;
        assert!(location(&code).starts_with(&format!("{callback}?code=")), "{}", location(&code));

        // Remembered: silent authentication now gets a code...
        let silent = browser.get(authorize("&prompt=none")).send().await?;
        assert!(location(&silent).starts_with(&format!("{callback}?code=")), "{}", location(&silent));
        // ...and prompt=consent still shows the screen.
        let again = browser.get(authorize("&prompt=consent")).send().await?;
        assert!(location(&again).starts_with(consent_flow), "{}", location(&again));
        let screen = browser
            .get(format!("{}{}", server.url, location(&again)))
            .send()
            .await?
            .text()
            .await?;
        assert!(screen.contains("name=action value=allow"), "prompt=consent: {screen}");

        // prompt=login asks for the login again despite the session.
        let login = browser.get(authorize("&prompt=login")).send().await?;
        assert!(location(&login).starts_with("/if/flow/default-authentication-flow/"), "{}", location(&login));
        let form = browser
            .get(format!("{}{}", server.url, location(&login)))
            .send()
            .await?
            .text()
            .await?;
        assert!(form.contains("name=uid_field"), "prompt=login: {form}");
        server.stop().await
    })
    .await
}
