//! Login flows in a real headless Chromium: password login, wrong password, logout, the T4
//! regression (a reputation policy never locks out anonymous visitors), and revoking a session
//! from another browser. Screenshots land in target/test-screenshots/.

use gatehouse_testkit::fantoccini::Locator;
use gatehouse_testkit::{with_server, Browser, TestServer};
use serde_json::json;
use std::time::Duration;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) async fn create_user(server: &TestServer, username: &str) -> anyhow::Result<i64> {
    let (status, user) = server
        .post(
            "/core/users/",
            json!({"username": username, "name": "Alice Example", "email": username}),
        )
        .await?;
    anyhow::ensure!(status == 201, "creating {username}: {user}");
    let pk = user["pk"].as_i64().unwrap_or_default();
    let (status, body) = server
        .post(
            &format!("/core/users/{pk}/set_password/"),
            json!({"password": PASSWORD}),
        )
        .await?;
    anyhow::ensure!(status == 204, "setting the password: {body}");
    Ok(pk)
}

pub(crate) async fn login(
    browser: &Browser,
    server: &TestServer,
    username: &str,
    password: &str,
    shots: Option<&str>,
) -> anyhow::Result<String> {
    browser
        .client
        .goto(&format!(
            "{}/if/flow/default-authentication-flow/?next=/if/user/",
            server.external_url
        ))
        .await?;
    answer_login(browser, username, password, shots).await
}

/// Answers the identification and password pages the browser is on; returns where it lands.
async fn answer_login(
    browser: &Browser,
    username: &str,
    password: &str,
    shots: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(prefix) = shots {
        browser
            .screenshot(&format!("{prefix}-1-identification"))
            .await?;
    }
    browser
        .element(Locator::Id("uid_field"))
        .await?
        .send_keys(username)
        .await?;
    browser.submit().await?;
    browser
        .element(Locator::Id("password"))
        .await?
        .send_keys(password)
        .await?;
    if let Some(prefix) = shots {
        browser.screenshot(&format!("{prefix}-2-password")).await?;
    }
    browser.submit().await?;
    Ok(browser.client.current_url().await?.to_string())
}

#[tokio::test]
async fn password_login_lands_on_next_wrong_password_is_generic_and_logout_ends_the_session(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        create_user(&server, "alice@example.com").await?;
        let browser = Browser::start().await?;
        let c = &browser.client;

        let url = login(
            &browser,
            &server,
            "alice@example.com",
            "wrong password",
            Some("login"),
        )
        .await?;
        assert!(
            url.contains("/if/flow/default-authentication-flow/"),
            "{url}"
        );
        let error = c.find(Locator::Css("[role=alert]")).await?.text().await?;
        assert_eq!(error, "Invalid username or password.");
        browser.screenshot("login-3-wrong-password").await?;

        let url = login(&browser, &server, "nobody@example.com", "whatever", None).await?;
        assert!(url.contains("/if/flow/"), "{url}");
        let unknown = c.find(Locator::Css("[role=alert]")).await?.text().await?;
        assert_eq!(
            unknown, error,
            "unknown users get the same message as wrong passwords"
        );

        let url = login(&browser, &server, "alice@example.com", PASSWORD, None).await?;
        assert_eq!(url, format!("{}/if/user/", server.external_url));
        let greeting = c.find(Locator::Css("h1")).await?.text().await?;
        assert_eq!(greeting, "Hello, Alice Example");
        browser.screenshot("login-4-user-page").await?;

        c.goto(&format!(
            "{}/if/flow/default-invalidation-flow/",
            server.external_url
        ))
        .await?;
        let url = c.current_url().await?.to_string();
        assert!(
            url.contains("/if/flow/default-authentication-flow/"),
            "after logout the user page asks for a login: {url}"
        );
        c.goto(&format!("{}/if/user/", server.external_url)).await?;
        assert!(c
            .current_url()
            .await?
            .as_str()
            .contains("default-authentication-flow"));
        browser.screenshot("login-5-after-logout").await?;
        let (_, events) = server.get("/events/events/?action=login_failed").await?;
        assert_eq!(events["pagination"]["count"], 2, "{events}");
        browser.close().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_reputation_policy_never_locks_out_anonymous_visitors() -> anyhow::Result<()> {
    with_server(|server| async move {
        create_user(&server, "alice@example.com").await?;
        // The T4 set-up: the same reputation policy bound at flow level and at the password stage.
        let doc = r#"
policies:
  - name: brute-force-protection
    kind: reputation
    settings: {check_username: true, check_ip: true, threshold: -5}
flows:
  - slug: default-authentication-flow
    designation: authentication
    bindings: [{policy: brute-force-protection, order: 0}]
    stages:
      - {stage: default-authentication-identification, order: 10}
      - stage: default-authentication-password
        order: 20
        bindings: [{policy: brute-force-protection, order: 0}]
      - {stage: default-authentication-mfa-validation, order: 30}
      - {stage: default-authentication-login, order: 100}
"#;
        let (status, body) = server
            .post(
                "/declarative/apply/",
                json!({"document": doc, "source": "t4.yaml"}),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        let browser = Browser::start().await?;
        let url = login(&browser, &server, "alice@example.com", PASSWORD, Some("t4")).await?;
        assert_eq!(
            url,
            format!("{}/if/user/", server.external_url),
            "an anonymous visitor can start the flow and log in"
        );
        browser.screenshot("t4-logged-in").await?;
        browser.close().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn revoking_a_session_from_another_browser_logs_the_first_out() -> anyhow::Result<()> {
    with_server(|server| async move {
        create_user(&server, "alice@example.com").await?;
        let first = Browser::start().await?;
        let second = Browser::start().await?;
        login(&first, &server, "alice@example.com", PASSWORD, None).await?;
        login(&second, &server, "alice@example.com", PASSWORD, None).await?;
        let c2 = &second.client;
        c2.goto(&format!("{}/if/user/", server.external_url))
            .await?;
        second.screenshot("revoke-1-two-sessions").await?;
        let rows = c2.find_all(Locator::Css("tbody tr")).await?;
        assert_eq!(rows.len(), 2);
        for row in rows {
            if !row.text().await?.contains("this browser") {
                let button = row.find(Locator::Css("button")).await?;
                button.click().await?;
                for _ in 0..200 {
                    if button.is_displayed().await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                break;
            }
        }
        assert_eq!(
            c2.find_all(Locator::Css("tbody tr")).await?.len(),
            1,
            "one session left"
        );
        first
            .client
            .goto(&format!("{}/if/user/", server.external_url))
            .await?;
        let url = first.client.current_url().await?.to_string();
        assert!(
            url.contains("default-authentication-flow"),
            "the revoked browser must log in again: {url}"
        );
        first.screenshot("revoke-2-logged-out").await?;
        first.close().await?;
        second.close().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn totp_set_up_from_the_qr_secret_then_login_needs_the_code() -> anyhow::Result<()> {
    with_server(|server| async move {
        create_user(&server, "alice@example.com").await?;
        let browser = Browser::start().await?;
        let c = &browser.client;
        login(&browser, &server, "alice@example.com", PASSWORD, None).await?;
        c.goto(&format!("{}/if/user/totp/", server.external_url))
            .await?;
        browser.screenshot("totp-1-set-up").await?;
        let secret = browser.element(Locator::Id("secret")).await?.text().await?;
        let totp = gatehouse_flow::totp_for(&secret).map_err(anyhow::Error::msg)?;
        browser
            .element(Locator::Id("code"))
            .await?
            .send_keys(&totp.generate_current().to_string())
            .await?;
        browser.submit().await?;
        let codes = browser
            .element(Locator::Id("recovery-codes"))
            .await?
            .text()
            .await?;
        assert_eq!(codes.lines().count(), 10, "{codes}");
        browser.screenshot("totp-2-recovery-codes").await?;

        c.goto(&format!(
            "{}/if/flow/default-invalidation-flow/",
            server.external_url
        ))
        .await?;
        login(&browser, &server, "alice@example.com", PASSWORD, None).await?;
        browser
            .element(Locator::Id("code"))
            .await?
            .send_keys("000000")
            .await?;
        browser.submit().await?;
        let error = browser
            .element(Locator::Css("[role=alert]"))
            .await?
            .text()
            .await?;
        assert_eq!(error, "Invalid code.");
        browser.screenshot("totp-3-wrong-code").await?;
        // The confirmation used the current time step; a replay of it is refused, so use the next.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        browser
            .element(Locator::Id("code"))
            .await?
            .send_keys(&totp.generate(now + 30).to_string())
            .await?;
        browser.submit().await?;
        assert_eq!(
            c.current_url().await?.as_str(),
            format!("{}/if/user/", server.external_url)
        );

        // A recovery code works once, instead of the app.
        c.goto(&format!(
            "{}/if/flow/default-invalidation-flow/",
            server.external_url
        ))
        .await?;
        login(&browser, &server, "alice@example.com", PASSWORD, None).await?;
        let recovery = codes.lines().next().unwrap_or_default().trim().to_owned();
        browser
            .element(Locator::Id("code"))
            .await?
            .send_keys(&recovery)
            .await?;
        browser.submit().await?;
        assert_eq!(
            c.current_url().await?.as_str(),
            format!("{}/if/user/", server.external_url)
        );
        browser.close().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn passkey_registration_then_passwordless_login_with_a_virtual_authenticator(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        create_user(&server, "alice@example.com").await?;
        let browser = Browser::start().await?;
        let c = &browser.client;
        let authenticator = browser.add_virtual_authenticator().await?;
        login(&browser, &server, "alice@example.com", PASSWORD, None).await?;
        c.goto(&format!("{}/if/user/passkeys/", server.external_url))
            .await?;
        browser.screenshot("passkey-1-manage").await?;
        browser
            .element(Locator::Id("passkey-add"))
            .await?
            .click()
            .await?;
        browser.element(Locator::Css("#passkeys li")).await?;
        browser.screenshot("passkey-2-added").await?;
        let credentials = browser.virtual_credentials(&authenticator).await?;
        assert_eq!(
            credentials.as_array().map(Vec::len),
            Some(1),
            "{credentials}"
        );
        assert_eq!(
            credentials[0]["isResidentCredential"], true,
            "a discoverable passkey: {credentials}"
        );

        c.goto(&format!(
            "{}/if/flow/default-invalidation-flow/",
            server.external_url
        ))
        .await?;
        c.goto(&format!(
            "{}/if/flow/default-authentication-flow/?next=/if/user/",
            server.external_url
        ))
        .await?;
        browser.screenshot("passkey-3-login-page").await?;
        browser
            .element(Locator::Id("passkey-login"))
            .await?
            .click()
            .await?;
        c.wait()
            .at_most(Duration::from_secs(10))
            .for_url(&url_of(&format!("{}/if/user/", server.external_url))?)
            .await?;
        browser.screenshot("passkey-4-logged-in").await?;
        let (_, events) = server.get("/events/events/?action=login").await?;
        assert_eq!(
            events["pagination"]["count"], 2,
            "a password login, then a passkey login: {events}"
        );
        browser.close().await?;
        server.stop().await
    })
    .await
}

fn url_of(text: &str) -> anyhow::Result<gatehouse_testkit::url::Url> {
    Ok(text.parse()?)
}

/// Creates an OAuth2 provider and its application; returns the client id.
async fn oauth_app(
    server: &TestServer,
    name: &str,
    consent: &str,
    client_type: &str,
    redirect: &str,
) -> anyhow::Result<String> {
    let (flow, invalidation) = crate::provider_flows(server, consent).await?;
    let (status, provider) = server
        .post(
            "/providers/oauth2/",
            json!({"name": name, "client_type": client_type, "authorization_flow": flow, "invalidation_flow": invalidation,
                   "redirect_uris": [{"matching_mode": "strict", "url": redirect}]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{provider}");
    let slug = name.to_lowercase();
    let (status, app) = server
        .post(
            "/core/applications/",
            json!({"name": name, "slug": slug, "provider": provider["pk"]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{app}");
    Ok(provider["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Opens `authorize` in a browser without a session, signs in as `username`, and returns the
/// heading of the page that follows (the consent screen or an error page).
async fn authorize_signed_in(
    browser: &Browser,
    authorize: &str,
    username: &str,
) -> anyhow::Result<String> {
    browser.client.goto(authorize).await?;
    answer_login(browser, username, PASSWORD, None).await?;
    Ok(browser.element(Locator::Css("h1")).await?.text().await?)
}

fn authorize_url(server: &TestServer, client_id: &str, redirect: &str, scope: &str) -> String {
    format!(
        "{}/application/o/authorize/?client_id={}&redirect_uri={}&response_type=code&scope={}&state=xyz",
        server.external_url,
        gatehouse_testkit::url_encode(client_id),
        gatehouse_testkit::url_encode(redirect),
        gatehouse_testkit::url_encode(scope)
    )
}

#[tokio::test]
async fn explicit_consent_is_shown_once_then_remembered_and_implicit_never() -> anyhow::Result<()> {
    with_server(|server| async move {
        create_user(&server, "alice@example.com").await?;
        let explicit_cb = format!("{}/test-callback/forgejo", server.external_url);
        let implicit_cb = format!("{}/test-callback/grafana", server.external_url);
        let forgejo =
            oauth_app(&server, "Forgejo", "explicit", "confidential", &explicit_cb).await?;
        let grafana =
            oauth_app(&server, "Grafana", "implicit", "confidential", &implicit_cb).await?;
        let browser = Browser::start().await?;
        let c = &browser.client;

        // Not logged in yet: authorize sends the browser to log in, then on to consent.
        let heading = authorize_signed_in(
            &browser,
            &authorize_url(&server, &forgejo, &explicit_cb, "openid profile email"),
            "alice@example.com",
        )
        .await?;
        assert_eq!(heading, "Allow Forgejo to use your account?");
        browser.screenshot("consent-1-explicit").await?;
        browser.submit().await?;
        let url = c.current_url().await?.to_string();
        assert!(
            url.starts_with(&format!("{explicit_cb}?code=")) && url.contains("&state=xyz&iss="),
            "{url}"
        );

        // The second time, consent is remembered.
        c.goto(&authorize_url(
            &server,
            &forgejo,
            &explicit_cb,
            "openid profile email",
        ))
        .await?;
        let url = c.current_url().await?.to_string();
        assert!(
            url.starts_with(&format!("{explicit_cb}?code=")),
            "no consent page the second time: {url}"
        );

        // Asking for more scopes asks again.
        c.goto(&authorize_url(
            &server,
            &forgejo,
            &explicit_cb,
            "openid profile email groups",
        ))
        .await?;
        let heading = browser.element(Locator::Css("h1")).await?.text().await?;
        assert_eq!(heading, "Allow Forgejo to use your account?");
        let scopes = browser.element(Locator::Id("scopes")).await?.text().await?;
        assert!(scopes.contains("Your group memberships"), "{scopes}");

        // Implicit consent never shows a page.
        c.goto(&authorize_url(
            &server,
            &grafana,
            &implicit_cb,
            "openid profile",
        ))
        .await?;
        let url = c.current_url().await?.to_string();
        assert!(url.starts_with(&format!("{implicit_cb}?code=")), "{url}");
        browser.close().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn enrollment_with_prompt_and_user_write_creates_and_logs_in_the_user() -> anyhow::Result<()>
{
    with_server(|server| async move {
        let doc = r#"
groups:
  - name: Family
stages:
  - name: enrollment-prompt
    kind: prompt
    settings:
      fields:
        - {field_key: username, label: Username, type: username, required: true}
        - {field_key: name, label: Name, type: text, required: true}
        - {field_key: email, label: Email, type: email, required: true}
        - {field_key: password, label: Password, type: password, required: true}
        - {field_key: password_repeat, label: Repeat password, type: password, required: true}
  - name: enrollment-user-write
    kind: user_write
    settings: {user_creation_mode: always_create, create_users_group: Family}
  - name: enrollment-login
    kind: user_login
    settings: {session_duration: weeks=4}
flows:
  - slug: enrollment
    name: Enrollment
    title: Create your account
    designation: enrollment
    stages:
      - {stage: enrollment-prompt, order: 10}
      - {stage: enrollment-user-write, order: 20}
      - {stage: enrollment-login, order: 30}
"#;
        let (status, body) = server
            .post("/declarative/apply/", json!({"document": doc}))
            .await?;
        assert_eq!(status, 200, "{body}");
        let browser = Browser::start().await?;
        let c = &browser.client;
        c.goto(&format!("{}/if/flow/enrollment/", server.external_url))
            .await?;
        browser
            .fill(&[
                ("username", "admin"),
                ("name", "Erin"),
                ("email", "erin@example.com"),
                ("password", PASSWORD),
                ("password_repeat", "something else"),
            ])
            .await?;
        browser.screenshot("enroll-1-prompt").await?;
        browser.submit().await?;
        let error = browser
            .element(Locator::Css("[role=alert]"))
            .await?
            .text()
            .await?;
        assert_eq!(error, "The two passwords differ.");
        assert_eq!(
            browser
                .element(Locator::Id("name"))
                .await?
                .prop("value")
                .await?
                .as_deref(),
            Some("Erin"),
            "entries are kept"
        );
        browser
            .fill(&[("password", PASSWORD), ("password_repeat", PASSWORD)])
            .await?;
        browser.submit().await?;
        let error = browser
            .element(Locator::Css("[role=alert]"))
            .await?
            .text()
            .await?;
        assert!(error.contains("`admin` is already taken"), "{error}");
        browser.screenshot("enroll-2-taken").await?;
        browser
            .fill(&[
                ("username", "erin@example.com"),
                ("password", PASSWORD),
                ("password_repeat", PASSWORD),
            ])
            .await?;
        browser.submit().await?;
        assert_eq!(
            c.current_url().await?.as_str(),
            format!("{}/if/user/", server.external_url)
        );
        let session = c.get_named_cookie("gatehouse_session").await?;
        assert!(
            session.expires().is_some(),
            "a weeks=4 login stage gives a persistent cookie"
        );
        browser.screenshot("enroll-3-logged-in").await?;
        let (_, users) = server
            .get("/core/users/?username=erin%40example.com")
            .await?;
        assert_eq!(
            users["results"][0]["groups_obj"][0]["name"], "Family",
            "{users}"
        );
        browser.close().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn remember_me_makes_the_session_outlive_the_browser() -> anyhow::Result<()> {
    with_server(|server| async move {
        create_user(&server, "alice@example.com").await?;
        let doc = "stages:\n  - name: default-authentication-login\n    kind: user_login\n    settings: {session_duration: seconds=0, remember_me_offset: weeks=4}\n";
        let (status, body) = server.post("/declarative/apply/", json!({"document": doc})).await?;
        assert_eq!(status, 200, "{body}");
        let browser = Browser::start().await?;
        let c = &browser.client;
        login(&browser, &server, "alice@example.com", PASSWORD, None).await?;
        let session = c.get_named_cookie("gatehouse_session").await?;
        assert!(session.expires().is_none(), "without remember me the cookie ends with the browser");
        c.goto(&format!("{}/if/flow/default-invalidation-flow/", server.external_url)).await?;
        c.goto(&format!("{}/if/flow/default-authentication-flow/?next=/if/user/", server.external_url)).await?;
        browser.element(Locator::Id("uid_field")).await?.send_keys("alice@example.com").await?;
        browser.submit().await?;
        browser.element(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
        browser.element(Locator::Id("remember_me")).await?.click().await?;
        browser.screenshot("remember-me").await?;
        browser.submit().await?;
        let session = c.get_named_cookie("gatehouse_session").await?;
        assert!(session.expires().is_some(), "remember me makes the cookie persistent");
        browser.close().await?;
        server.stop().await
    })
    .await
}

/// Exchanges an authorization code at the token endpoint: with the client secret for a
/// confidential client, with the PKCE verifier alone for a public one.
async fn exchange(
    server: &TestServer,
    client_id: &str,
    secret: Option<&str>,
    callback_url: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let code = openidconnect::url::Url::parse(callback_url)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| anyhow::anyhow!("no code in {callback_url}"))?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("client_id", client_id),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let mut request = reqwest::Client::new().post(format!("{}/application/o/token/", server.url));
    if let Some(secret) = secret {
        request = request.basic_auth(client_id, Some(secret));
    }
    let response = request.form(&form).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(
        status == 200,
        "token exchange for {client_id}: {status} {body}"
    );
    Ok(body)
}

/// The claims of a JWT, unverified (the OIDC tests verify signatures; here only content counts).
fn claims_of(jwt: &serde_json::Value) -> serde_json::Value {
    jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(jwt.as_str().unwrap_or_default())
        .map(|d| d.claims)
        .unwrap_or_default()
}

#[tokio::test]
async fn homelab_reference_apps_log_in_through_the_browser() -> anyhow::Result<()> {
    with_server(|server| async move {
        // The reference deployment, with its callbacks pointed at this loopback server.
        let base = server.external_url.clone();
        let callback = |app: &str| format!("{base}/test-callback/{app}");
        let document = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/homelab.yaml"
        ))?
        .replace(
            "https://git.example.com/user/oauth2/gatehouse/callback",
            &callback("forgejo"),
        )
        .replace(
            "https://grafana.example.com/login/generic_oauth",
            &callback("grafana"),
        )
        .replace("http://localhost:8000", &callback("kubernetes"))
        .replace(
            "https://wrongmove.example.com/auth/callback",
            &callback("wrongmove"),
        );
        let (status, body) = server
            .post(
                "/declarative/apply/",
                json!({"document": document, "source": "homelab.yaml", "env": {}}),
            )
            .await?;
        anyhow::ensure!(status == 200, "{body}");
        for username in ["alice@example.com", "bob@example.com"] {
            let (_, users) = server
                .get(&format!("/core/users/?username={username}"))
                .await?;
            let pk = &users["results"][0]["pk"];
            let (status, body) = server
                .post(
                    &format!("/core/users/{pk}/set_password/"),
                    json!({"password": PASSWORD}),
                )
                .await?;
            anyhow::ensure!(status == 204, "{body}");
        }
        let (_, users) = server
            .get("/core/users/?username=alice@example.com")
            .await?;
        let alice = users["results"][0]["pk"].clone();
        let (_, groups) = server.get("/core/groups/?name=kubernetes-admins").await?;
        let (status, body) = server
            .post(
                &format!(
                    "/core/groups/{}/add_user/",
                    groups["results"][0]["pk"].as_str().unwrap_or_default()
                ),
                json!({"pk": alice}),
            )
            .await?;
        anyhow::ensure!(status == 204, "{body}");
        let (_, forgejo) = server.get("/providers/oauth2/?name=Forgejo").await?;
        let forgejo_secret = forgejo["results"][0]["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (_, grafana) = server.get("/providers/oauth2/?name=Grafana").await?;
        let grafana_secret = grafana["results"][0]["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

        let browser = Browser::start().await?;
        let c = &browser.client;

        // Forgejo: confidential client, explicit consent. Log in, consent, exchange the code.
        let heading = authorize_signed_in(
            &browser,
            &authorize_url(
                &server,
                "forgejo",
                &callback("forgejo"),
                "openid profile email groups",
            ),
            "alice@example.com",
        )
        .await?;
        assert_eq!(heading, "Allow Forgejo to use your account?");
        browser.screenshot("homelab-1-forgejo-consent").await?;
        browser.submit().await?;
        let landed = c.current_url().await?.to_string();
        let tokens = exchange(
            &server,
            "forgejo",
            Some(&forgejo_secret),
            &landed,
            &callback("forgejo"),
            None,
        )
        .await?;
        let id = claims_of(&tokens["id_token"]);
        assert_eq!(id["preferred_username"], "alice@example.com", "{id}");
        assert!(
            id["groups"]
                .as_array()
                .is_some_and(|g| g.contains(&json!("Allow Login Users"))),
            "parent groups are in the claim: {id}"
        );
        let (_, userinfo) =
            crate::oidc::userinfo(&server, tokens["access_token"].as_str().unwrap_or_default())
                .await?;
        assert_eq!(userinfo["email"], "alice@example.com", "{userinfo}");

        // Grafana: confidential, implicit consent: straight back with a code.
        c.goto(&authorize_url(
            &server,
            "grafana",
            &callback("grafana"),
            "openid profile email",
        ))
        .await?;
        let landed = c.current_url().await?.to_string();
        assert!(
            landed.starts_with(&format!("{}?code=", callback("grafana"))),
            "{landed}"
        );
        let tokens = exchange(
            &server,
            "grafana",
            Some(&grafana_secret),
            &landed,
            &callback("grafana"),
            None,
        )
        .await?;
        assert_eq!(claims_of(&tokens["id_token"])["email"], "alice@example.com");

        // Kubernetes: public client, PKCE required; kubectl reads the groups claim.
        let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
        let url = format!(
            "{}&code_challenge={}&code_challenge_method=S256",
            authorize_url(
                &server,
                "kubernetes",
                &callback("kubernetes"),
                "openid profile email groups"
            ),
            challenge.as_str()
        );
        c.goto(&url).await?;
        let landed = c.current_url().await?.to_string();
        let tokens = exchange(
            &server,
            "kubernetes",
            None,
            &landed,
            &callback("kubernetes"),
            Some(verifier.secret()),
        )
        .await?;
        let id = claims_of(&tokens["id_token"]);
        assert!(
            id["groups"]
                .as_array()
                .is_some_and(|g| g.contains(&json!("kubernetes-admins"))),
            "{id}"
        );

        // Bob is not in Wrongmove Users: a clear "access denied" page, no code.
        browser.close().await?;
        let browser = Browser::start().await?;
        let c = &browser.client;
        let heading = authorize_signed_in(
            &browser,
            &authorize_url(&server, "wrongmove", &callback("wrongmove"), "openid"),
            "bob@example.com",
        )
        .await?;
        assert_eq!(heading, "Access denied");
        browser.screenshot("homelab-2-wrongmove-denied").await?;
        assert!(!c.current_url().await?.as_str().contains("code="));
        browser.close().await?;
        server.stop().await
    })
    .await
}
