//! Invitation-only enrollment (SPEC T10, L1), end to end: the reference journey through a second
//! Gatehouse as the upstream OIDC identity provider in Chromium, passkey-only sign-up with the
//! virtual authenticator, and every way an invitation link can be wrong, over plain HTTP.

use std::time::Duration;

use chrono::Utc;
use gatehouse_testkit::fantoccini::Locator;
use gatehouse_testkit::{cookie_client, with_server, Browser, TestDb, TestServer, TOKEN};
use gatehouse_web::bootstrap::BootstrapSettings;
use reqwest::header::LOCATION;
use serde_json::{json, Value};

use crate::cli::{gatehouse, stdout};

const PASSWORD: &str = "correct horse battery staple";

fn homelab() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/homelab.yaml"
    ))
    .unwrap_or_default()
}

/// Applies a declarative document (YAML) with `env`.
pub(crate) async fn apply(server: &TestServer, document: &str, env: Value) -> anyhow::Result<()> {
    let (status, body) = server
        .post(
            "/declarative/apply/",
            json!({"document": document, "source": "test.yaml", "env": env}),
        )
        .await?;
    anyhow::ensure!(status == 200, "apply failed: {body}");
    Ok(())
}

/// A second Gatehouse, the upstream identity provider, at `127.0.0.1:<port>` (the downstream is
/// `localhost:<port>`, so the browser keeps their cookies apart), with one person who can sign in
/// and an OIDC application for the downstream's login source `slug`.
pub(crate) struct Upstream {
    pub(crate) server: TestServer,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) discovery: String,
    _db: TestDb,
}

pub(crate) async fn upstream_idp(
    downstream: &TestServer,
    slug: &str,
    person: (&str, &str, &str),
) -> anyhow::Result<Upstream> {
    let db = TestDb::new().await?;
    let url = db.url.clone();
    let server = TestServer::start_on(
        &db,
        &url,
        BootstrapSettings {
            token: Some(TOKEN.into()),
            ..Default::default()
        },
        |s| s.external_url = format!("http://{}", s.listen),
    )
    .await?;
    let (username, name, email) = person;
    let (status, user) = server
        .post(
            "/core/users/",
            json!({"username": username, "name": name, "email": email}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{user}");
    server
        .post(
            &format!("/core/users/{}/set_password/", user["pk"]),
            json!({"password": PASSWORD}),
        )
        .await?;
    let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
    let callback = format!("{}/source/oauth/callback/{slug}/", downstream.external_url);
    let (status, provider) = server
        .post(
            "/providers/oauth2/",
            json!({"name": "Downstream", "client_type": "confidential", "authorization_flow": flow,
                   "invalidation_flow": invalidation,
                   "redirect_uris": [{"matching_mode": "strict", "url": callback}]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{provider}");
    let (status, app) = server
        .post(
            "/core/applications/",
            json!({"name": "Downstream", "slug": "downstream", "provider": provider["pk"]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{app}");
    Ok(Upstream {
        discovery: format!(
            "{}/application/o/downstream/.well-known/openid-configuration",
            server.external_url
        ),
        client_id: provider["client_id"].as_str().unwrap_or_default().into(),
        client_secret: provider["client_secret"]
            .as_str()
            .unwrap_or_default()
            .into(),
        server,
        _db: db,
    })
}

/// The homelab reference plus an OIDC login source `upstream` offered on the enrollment and
/// login pages.
async fn homelab_with_upstream(server: &TestServer, upstream: &Upstream) -> anyhow::Result<()> {
    apply(server, &homelab(), json!({})).await?;
    let extra = format!(
        r#"
version: 1
sources:
  - slug: upstream
    name: Upstream IdP
    provider_type: openidconnect
    user_matching_mode: identifier
    enrollment_flow: invitation-enrollment
    consumer_key: {}
    consumer_secret: ${{UPSTREAM_SECRET}}
    oidc_well_known_url: {}
stages:
  - name: enrollment-identification
    kind: identification
    settings:
      user_fields: []
      sources: [google, github, facebook, upstream]
      show_passkey: true
  - name: default-authentication-identification
    kind: identification
    settings:
      user_fields: [username, email]
      sources: [google, github, facebook, upstream]
"#,
        upstream.client_id, upstream.discovery
    );
    apply(
        server,
        &extra,
        json!({"UPSTREAM_SECRET": upstream.client_secret}),
    )
    .await
}

/// `gatehouse invite create GROUP [extra...]` through the real binary; the link it prints.
async fn invite(server: &TestServer, group: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["invite", "create", group];
    args.extend_from_slice(extra);
    let out = gatehouse(Some(server), &args).await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout(&out).trim().to_owned())
}

async fn groups_of(server: &TestServer, username: &str) -> anyhow::Result<Vec<String>> {
    let (_, users) = server
        .get(&format!(
            "/core/users/?username={}",
            gatehouse_testkit::url_encode(username)
        ))
        .await?;
    let mut names: Vec<String> = users["results"][0]["groups_obj"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// Logs the browser out, then opens the login page.
async fn log_out_to_the_login_page(browser: &Browser, server: &TestServer) -> anyhow::Result<()> {
    let c = &browser.client;
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
    Ok(())
}

/// Waits until the browser lands on the user page; returns its greeting.
async fn greeting_on_the_user_page(
    browser: &Browser,
    server: &TestServer,
) -> anyhow::Result<String> {
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_url(&format!("{}/if/user/", server.external_url).parse()?)
        .await?;
    Ok(browser.element(Locator::Css("h1")).await?.text().await?)
}

#[tokio::test]
async fn invited_person_signs_up_through_an_upstream_idp_with_name_and_email_prefilled(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let upstream = upstream_idp(
            &server,
            "upstream",
            ("nora", "Nora Newcomer", "nora@example.com"),
        )
        .await?;
        homelab_with_upstream(&server, &upstream).await?;
        let link = invite(&server, "Headscale Users", &["--days", "7"]).await?;
        assert!(
            link.contains("/if/flow/invitation-enrollment/?itoken="),
            "{link}"
        );

        let browser = Browser::start().await?;
        let c = &browser.client;
        c.goto(&link).await?;
        browser.screenshot("enroll-1-identification").await?;
        assert!(
            c.find(Locator::Id("uid_field")).await.is_err(),
            "the reference's enrollment asks for no username or password"
        );
        browser
            .element(Locator::Id("source-upstream"))
            .await?
            .click()
            .await?;
        // The upstream's own login pages, at 127.0.0.1.
        browser
            .element(Locator::Id("uid_field"))
            .await?
            .send_keys("nora")
            .await?;
        browser.submit().await?;
        browser
            .element(Locator::Id("password"))
            .await?
            .send_keys(PASSWORD)
            .await?;
        browser.submit().await?;
        // Back at Gatehouse: the prompt, pre-filled from the upstream identity.
        let name = browser.element(Locator::Id("name")).await?;
        browser.screenshot("enroll-2-prompt-prefilled").await?;
        assert_eq!(name.prop("value").await?.as_deref(), Some("Nora Newcomer"));
        let email = c.find(Locator::Id("email")).await?;
        assert_eq!(
            email.prop("value").await?.as_deref(),
            Some("nora@example.com")
        );
        browser.submit().await?;
        let greeting = greeting_on_the_user_page(&browser, &server).await?;
        assert_eq!(greeting, "Hello, Nora Newcomer");
        browser.screenshot("enroll-3-user-page").await?;

        assert_eq!(
            groups_of(&server, "nora@example.com").await?,
            ["Allow Login Users", "Headscale Users"]
        );
        let (_, connections) = server
            .get("/sources/user_connections/oauth/?source__slug=upstream")
            .await?;
        assert_eq!(connections["pagination"]["count"], 1, "{connections}");
        let (_, invitations) = server
            .get("/stages/invitation/invitations/?ended=true")
            .await?;
        assert_eq!(invitations["results"][0]["state"], "used", "{invitations}");
        assert_eq!(
            invitations["results"][0]["uses"][0]["username"], "nora@example.com",
            "{invitations}"
        );
        let (_, events) = server.get("/events/events/?action=invitation_used").await?;
        assert_eq!(events["pagination"]["count"], 1, "{events}");

        // Later: log out, and sign in again through the upstream from the login page.
        log_out_to_the_login_page(&browser, &server).await?;
        browser.screenshot("enroll-4-login-with-source").await?;
        browser
            .element(Locator::Id("source-upstream"))
            .await?
            .click()
            .await?;
        let greeting = greeting_on_the_user_page(&browser, &server).await?;
        assert_eq!(greeting, "Hello, Nora Newcomer");

        browser.close().await?;
        upstream.server.stop().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn invited_person_signs_up_with_only_a_passkey_and_signs_in_with_it() -> anyhow::Result<()> {
    with_server(|server| async move {
        apply(&server, &homelab(), json!({})).await?;
        let link = invite(&server, "Headscale Users", &["--days", "7"]).await?;
        let browser = Browser::start().await?;
        let c = &browser.client;
        let authenticator = browser.add_virtual_authenticator().await?;
        c.goto(&link).await?;
        browser
            .element(Locator::Id("passkey-enroll"))
            .await?
            .click()
            .await?;
        browser
            .element(Locator::Id("name"))
            .await?
            .send_keys("Pat Passkey")
            .await?;
        c.find(Locator::Id("email"))
            .await?
            .send_keys("pat@example.com")
            .await?;
        browser.screenshot("enroll-passkey-1-prompt").await?;
        assert!(
            c.find(Locator::Css("input[type=password]")).await.is_err(),
            "no password is ever asked for"
        );
        browser.submit().await?;
        browser.screenshot("enroll-passkey-2-create").await?;
        browser
            .element(Locator::Id("passkey-create"))
            .await?
            .click()
            .await?;
        let greeting = greeting_on_the_user_page(&browser, &server).await?;
        assert_eq!(greeting, "Hello, Pat Passkey");
        browser.screenshot("enroll-passkey-3-user-page").await?;
        let credentials = browser.virtual_credentials(&authenticator).await?;
        assert_eq!(
            credentials.as_array().map(Vec::len),
            Some(1),
            "{credentials}"
        );
        assert_eq!(
            groups_of(&server, "pat@example.com").await?,
            ["Allow Login Users", "Headscale Users"]
        );

        log_out_to_the_login_page(&browser, &server).await?;
        browser
            .element(Locator::Id("passkey-login"))
            .await?
            .click()
            .await?;
        let greeting = greeting_on_the_user_page(&browser, &server).await?;
        assert_eq!(greeting, "Hello, Pat Passkey");
        browser.close().await?;
        server.stop().await
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The L1 cases over plain HTTP, with a test enrollment flow that asks for a username on a prompt
// (the reference's own flow needs a social login or a passkey, which the browser tests cover).

const TEST_FLOW: &str = r#"
version: 1
groups:
  - name: Allow Login Users
  - name: Headscale Users
    parents: [Allow Login Users]
stages:
  - {name: test-invitation, kind: invitation}
  - name: test-prompt
    kind: prompt
    settings:
      fields:
        - {field_key: username, label: Username, type: username, required: true}
        - {field_key: name, label: Name, type: text, required: true}
        - {field_key: email, label: Email, type: email, required: true}
  - {name: test-write, kind: user_write, settings: {create_users_group: Allow Login Users}}
  - {name: test-login, kind: user_login}
flows:
  - slug: test-enrollment
    name: test enrollment
    title: Join
    designation: enrollment
    stages:
      - {stage: test-invitation, order: 10}
      - {stage: test-prompt, order: 20}
      - {stage: test-write, order: 30}
      - {stage: test-login, order: 40}
"#;

/// Creates an invitation through the API; returns its token.
async fn invitation(server: &TestServer, body: Value) -> anyhow::Result<String> {
    let (status, created) = server.post("/stages/invitation/invitations/", body).await?;
    anyhow::ensure!(status == 201, "{created}");
    Ok(created["pk"].as_str().unwrap_or_default().to_owned())
}

fn enrollment_url(server: &TestServer, token: &str) -> String {
    format!("{}/if/flow/test-enrollment/?itoken={token}", server.url)
}

/// Opens a link with a fresh cookie jar; returns the client, the status and the page.
async fn open(url: &str) -> anyhow::Result<(reqwest::Client, u16, String)> {
    let http = cookie_client()?;
    let response = http.get(url).send().await?;
    let status = response.status().as_u16();
    Ok((http, status, response.text().await?))
}

/// The anti-forgery token of the form on `page`.
pub(crate) fn csrf_of(page: &str) -> String {
    page.split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// Posts the test flow's prompt; returns the status and where it redirects (or the page).
async fn sign_up(
    http: &reqwest::Client,
    server: &TestServer,
    page: &str,
    username: &str,
) -> anyhow::Result<(u16, String)> {
    let response = http
        .post(format!("{}/if/flow/test-enrollment/", server.url))
        .form(&[
            ("csrf", csrf_of(page).as_str()),
            ("username", username),
            ("name", "Invited Person"),
            ("email", &format!("{username}@example.com")),
        ])
        .send()
        .await?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, location.unwrap_or(response.text().await?)))
}

async fn user_exists(server: &TestServer, username: &str) -> anyhow::Result<bool> {
    let (_, users) = server
        .get(&format!("/core/users/?username={username}"))
        .await?;
    Ok(users["pagination"]["count"] == 1)
}

#[tokio::test]
async fn enrollment_without_an_invitation_or_with_a_bogus_one_is_refused_with_a_page_that_says_so(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        apply(&server, TEST_FLOW, json!({})).await?;
        let (_, status, page) = open(&format!("{}/if/flow/test-enrollment/", server.url)).await?;
        assert_eq!(status, 403);
        assert!(page.contains("Joining needs an invitation"), "{page}");
        for bogus in ["not-a-token", "5b3c1c2e-0000-4000-8000-000000000000"] {
            let (_, status, page) = open(&enrollment_url(&server, bogus)).await?;
            assert_eq!(status, 403, "{bogus}");
            assert!(page.contains("This invitation link is not valid"), "{page}");
        }
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn opening_a_link_twice_leaves_it_valid_and_a_used_single_use_link_says_it_was_used(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        apply(&server, TEST_FLOW, json!({})).await?;
        let token = invitation(
            &server,
            json!({"name": "once", "fixed_data": {"group": "Headscale Users"}}),
        )
        .await?;
        let (_, status, _) = open(&enrollment_url(&server, &token)).await?;
        assert_eq!(status, 200, "opening the link consumes nothing");
        let (http, status, page) = open(&enrollment_url(&server, &token)).await?;
        assert_eq!(status, 200, "still valid the second time");
        let (status, location) = sign_up(&http, &server, &page, "first").await?;
        assert_eq!((status, location.as_str()), (302, "/if/user/"));
        assert!(user_exists(&server, "first").await?);
        assert_eq!(
            groups_of(&server, "first").await?,
            ["Allow Login Users", "Headscale Users"],
            "fixed_data.group is joined without any policy"
        );

        let (_, status, page) = open(&enrollment_url(&server, &token)).await?;
        assert_eq!(status, 403);
        assert!(page.contains("already been used"), "{page}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn expired_and_revoked_invitations_are_refused_even_mid_enrollment() -> anyhow::Result<()> {
    with_server(|server| async move {
        apply(&server, TEST_FLOW, json!({})).await?;
        let expires = Utc::now() + chrono::Duration::seconds(2);
        let token = invitation(&server, json!({"name": "brief", "expires": expires})).await?;
        let (http, status, page) = open(&enrollment_url(&server, &token)).await?;
        assert_eq!(status, 200, "valid when opened");
        // Wait until the link has expired, then finish the form.
        while Utc::now() <= expires + chrono::Duration::milliseconds(200) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, page) = sign_up(&http, &server, &page, "late").await?;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("This invitation expired on"), "{page}");
        assert!(!user_exists(&server, "late").await?, "nothing half-written");
        let (_, status, page) = open(&enrollment_url(&server, &token)).await?;
        assert_eq!(status, 403);
        assert!(page.contains("expired"), "{page}");

        let token = invitation(&server, json!({"name": "withdrawn"})).await?;
        let (http, _, page) = open(&enrollment_url(&server, &token)).await?;
        let (status, _) = server
            .delete(&format!("/stages/invitation/invitations/{token}/"))
            .await?;
        assert_eq!(status, 204);
        let (status, page) = sign_up(&http, &server, &page, "withdrawn").await?;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("This invitation was revoked"), "{page}");
        assert!(!user_exists(&server, "withdrawn").await?);
        let (_, status, page) = open(&enrollment_url(&server, &token)).await?;
        assert_eq!(status, 403);
        assert!(page.contains("revoked"), "{page}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn two_enrollments_racing_on_one_single_use_link_exactly_one_succeeds() -> anyhow::Result<()>
{
    with_server(|server| async move {
        apply(&server, TEST_FLOW, json!({})).await?;
        let token = invitation(&server, json!({"name": "contested"})).await?;
        let (a, _, page_a) = open(&enrollment_url(&server, &token)).await?;
        let (b, _, page_b) = open(&enrollment_url(&server, &token)).await?;
        let (first, second) = tokio::join!(
            sign_up(&a, &server, &page_a, "racer-a"),
            sign_up(&b, &server, &page_b, "racer-b")
        );
        let outcomes = [first?, second?];
        let won = outcomes.iter().filter(|(s, _)| *s == 302).count();
        assert_eq!(won, 1, "{outcomes:?}");
        let lost = outcomes.iter().find(|(s, _)| *s != 302);
        assert!(
            lost.is_some_and(|(s, page)| *s == 403 && page.contains("already been used")),
            "{outcomes:?}"
        );
        let created = [
            user_exists(&server, "racer-a").await?,
            user_exists(&server, "racer-b").await?,
        ];
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn invite_list_shows_pending_used_and_expired_invitations_and_who_used_them(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        apply(&server, TEST_FLOW, json!({})).await?;
        let multi = invite(
            &server,
            "Headscale Users",
            &["--multi-use", "--name", "family"],
        )
        .await?;
        let token = multi.rsplit('=').next().unwrap_or_default().to_owned();
        for who in ["kid-one", "kid-two"] {
            let (http, _, page) = open(&enrollment_url(&server, &token)).await?;
            let (status, _) = sign_up(&http, &server, &page, who).await?;
            assert_eq!(status, 302, "a multi-use link works for {who}");
        }
        invite(&server, "Headscale Users", &["--name", "waiting"]).await?;
        let out = gatehouse(Some(&server), &["invite", "list"]).await?;
        let listing = stdout(&out);
        assert!(out.status.success(), "{listing}");
        let line = |name: &str| {
            listing
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("family").contains("pending"), "{listing}");
        assert!(line("family").contains("kid-one"), "{listing}");
        assert!(line("family").contains("kid-two"), "{listing}");
        assert!(line("waiting").contains("pending"), "{listing}");
        let out = gatehouse(Some(&server), &["invite", "revoke", "waiting"]).await?;
        assert!(out.status.success());
        let out = gatehouse(Some(&server), &["invite", "list"]).await?;
        assert!(stdout(&out)
            .lines()
            .any(|l| l.starts_with("waiting") && l.contains("revoked")));
        let out = gatehouse(Some(&server), &["invite", "revoke", "nonexistent"]).await?;
        assert!(
            !out.status.success(),
            "revoking an unknown invitation fails"
        );
        server.stop().await
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The Google, GitHub and Facebook presets through the server's own routes, against the
// testkit's stand-ins (only the base URLs differ from production, through the documented
// overrides), over plain HTTP.

use gatehouse_testkit::upstream::{self, IdTokenFlaw, Person, Service};

/// The presets, each pointed at its stand-in, on the login page and the reference's enrollment.
async fn with_presets(
    server: &TestServer,
    google: &upstream::Upstream,
    github: &upstream::Upstream,
    facebook: &upstream::Upstream,
) -> anyhow::Result<()> {
    apply(server, &homelab(), json!({})).await?;
    let source = |slug: &str, mode: &str, o: upstream::Overrides| {
        format!(
            r#"
  - slug: {slug}
    user_matching_mode: {mode}
    consumer_key: {}
    consumer_secret: ${{SECRET}}
    authorization_url: "{}"
    access_token_url: "{}"
    profile_url: "{}"
    oidc_well_known_url: "{}""#,
            upstream::CLIENT_ID,
            o.authorization_url,
            o.access_token_url,
            o.profile_url,
            o.oidc_well_known_url
        )
    };
    let document = format!(
        "version: 1\nsources:{}{}{}\n",
        source("google", "identifier", google.overrides()),
        source("github", "email_link", github.overrides()),
        source("facebook", "email_deny", facebook.overrides()),
    );
    apply(
        server,
        &document,
        json!({"SECRET": upstream::CLIENT_SECRET}),
    )
    .await?;
    let (status, user) = server
        .post(
            "/core/users/",
            json!({"username": "octo", "name": "Octo Existing", "email": "octocat@example.com"}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{user}");
    Ok(())
}

/// Follows redirects from `start` (the server's pages and the stand-ins) until a page answers;
/// returns its status, the path it was redirected to last, and its body.
async fn follow(
    http: &reqwest::Client,
    server: &TestServer,
    start: &str,
) -> anyhow::Result<(u16, String, String)> {
    let local = |location: &str| {
        if location.starts_with('/') {
            format!("{}{location}", server.url)
        } else {
            location.replace(&server.external_url, &server.url)
        }
    };
    let mut url = local(start);
    let mut last = start.to_owned();
    for _ in 0..12 {
        let response = http.get(&url).send().await?;
        match response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(location) => {
                last = location.to_owned();
                url = local(location);
            }
            None => {
                let status = response.status().as_u16();
                return Ok((status, last, response.text().await?));
            }
        }
    }
    anyhow::bail!("more than 12 redirects from {start}")
}

fn person(id: &str, email: &str, verified: bool) -> Person {
    Person {
        id: id.into(),
        login: format!("user{id}"),
        name: "Sam Social".into(),
        email: email.into(),
        email_verified: verified,
    }
}

#[tokio::test]
async fn github_email_link_connects_the_existing_account_and_signs_in() -> anyhow::Result<()> {
    with_server(|server| async move {
        let google = upstream::Upstream::start(Service::Google, Person::default()).await?;
        let github =
            upstream::Upstream::start(Service::Github, person("1001", "octocat@example.com", true))
                .await?;
        let facebook = upstream::Upstream::start(Service::Facebook, Person::default()).await?;
        with_presets(&server, &google, &github, &facebook).await?;

        let http = cookie_client()?;
        let (status, last, _) = follow(&http, &server, "/source/oauth/login/github/").await?;
        assert_eq!((status, last.as_str()), (200, "/if/user/"), "signed in");
        let (_, connections) = server
            .get("/sources/user_connections/oauth/?source__slug=github")
            .await?;
        assert_eq!(
            connections["results"][0]["identifier"], "1001",
            "{connections}"
        );
        let (_, users) = server.get("/core/users/?username=octo").await?;
        assert_eq!(
            connections["results"][0]["user"], users["results"][0]["pk"],
            "linked to the account with that verified email"
        );

        // An unverified primary email under email_link is refused and links nothing.
        github.set(|_, p| *p = person("1002", "someone@example.com", false));
        let (status, _, page) =
            follow(&cookie_client()?, &server, "/source/oauth/login/github/").await?;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("no verified email address"), "{page}");
        let (_, connections) = server.get("/sources/user_connections/oauth/").await?;
        assert_eq!(connections["pagination"]["count"], 1, "nothing linked");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn email_deny_and_unknown_identities_without_an_invitation_are_refused_with_clear_pages(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let google =
            upstream::Upstream::start(Service::Google, person("g-1", "new@example.com", true))
                .await?;
        let github = upstream::Upstream::start(Service::Github, Person::default()).await?;
        let facebook = upstream::Upstream::start(
            Service::Facebook,
            person("2001", "octocat@example.com", true),
        )
        .await?;
        with_presets(&server, &google, &github, &facebook).await?;

        let (status, _, page) =
            follow(&cookie_client()?, &server, "/source/oauth/login/facebook/").await?;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("already exists"), "email_deny: {page}");

        let (status, _, page) =
            follow(&cookie_client()?, &server, "/source/oauth/login/google/").await?;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("Joining needs an invitation"), "{page}");
        let (_, users) = server.get("/core/users/?email=new%40example.com").await?;
        assert_eq!(users["pagination"]["count"], 0, "nothing written");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn an_invited_person_signs_up_with_google_and_signs_in_with_it_again() -> anyhow::Result<()> {
    with_server(|server| async move {
        let google =
            upstream::Upstream::start(Service::Google, person("g-7", "gail@example.com", true))
                .await?;
        let github = upstream::Upstream::start(Service::Github, Person::default()).await?;
        let facebook = upstream::Upstream::start(Service::Facebook, Person::default()).await?;
        with_presets(&server, &google, &github, &facebook).await?;
        let link = invite(&server, "Wrongmove Users", &["--days", "7"]).await?;

        let http = cookie_client()?;
        let (status, _, page) = follow(&http, &server, &link).await?;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("id=\"source-google\""), "{page}");
        let (status, last, page) = follow(&http, &server, "/source/oauth/login/google/").await?;
        assert_eq!(
            (status, last.as_str()),
            (200, "/if/flow/invitation-enrollment/"),
            "{page}"
        );
        assert!(
            page.contains("value=\"Sam Social\""),
            "name pre-filled: {page}"
        );
        assert!(
            page.contains("value=\"gail@example.com\""),
            "email pre-filled: {page}"
        );
        let auth = google.last_authorization().unwrap_or_default();
        assert_eq!(
            auth.get("code_challenge_method").map(String::as_str),
            Some("S256")
        );
        assert!(
            auth.contains_key("nonce") && auth.contains_key("state"),
            "{auth:?}"
        );

        let response = http
            .post(format!("{}/if/flow/invitation-enrollment/", server.url))
            .form(&[
                ("csrf", csrf_of(&page).as_str()),
                ("name", "Gail Google"),
                ("email", "gail@example.com"),
            ])
            .send()
            .await?;
        assert_eq!(
            response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("/if/user/")
        );
        assert_eq!(
            groups_of(&server, "gail@example.com").await?,
            ["Allow Login Users", "Wrongmove Users"]
        );

        // Signed out, the same Google account signs in (identifier mode: by its `sub`).
        let (status, last, _) =
            follow(&cookie_client()?, &server, "/source/oauth/login/google/").await?;
        assert_eq!((status, last.as_str()), (200, "/if/user/"));
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn upstream_refusals_forged_state_replays_and_bad_id_tokens_sign_nobody_in(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let google = upstream::Upstream::start(Service::Google, Person::default()).await?;
        let github = upstream::Upstream::start(Service::Github, Person::default()).await?;
        let facebook = upstream::Upstream::start(Service::Facebook, Person::default()).await?;
        with_presets(&server, &google, &github, &facebook).await?;
        // A connected Google account, so a verified token would sign in.
        let (_, users) = server.get("/core/users/?username=octo").await?;
        let (_, sources) = server.get("/sources/oauth/google/").await?;
        server
            .post(
                "/sources/user_connections/oauth/",
                json!({"source": sources["pk"], "identifier": Person::default().id, "user": users["results"][0]["pk"]}),
            )
            .await?;

        google.set(|k, _| k.deny = true);
        let (status, _, page) = follow(&cookie_client()?, &server, "/source/oauth/login/google/").await?;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("You cancelled the sign-in"), "{page}");
        google.set(|k, _| k.deny = false);

        for flaw in [
            IdTokenFlaw::WrongAudience,
            IdTokenFlaw::WrongIssuer,
            IdTokenFlaw::WrongNonce,
            IdTokenFlaw::BadSignature,
        ] {
            google.set(|k, _| k.id_token = flaw);
            let (status, last, page) =
                follow(&cookie_client()?, &server, "/source/oauth/login/google/").await?;
            assert_eq!(status, 400, "{flaw:?}: {page}");
            assert!(page.contains("failed verification"), "{flaw:?}: {page}");
            assert_ne!(last, "/if/user/", "{flaw:?}");
        }
        google.set(|k, _| k.id_token = IdTokenFlaw::None);

        // Start a login, then answer its callback with a forged state, and replay a real one.
        let http = cookie_client()?;
        let start = http
            .get(format!("{}/source/oauth/login/google/", server.url))
            .send()
            .await?;
        let authorize = start
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let back = http.get(&authorize).send().await?;
        let callback = back
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .replace(&server.external_url, &server.url);
        let forged = callback.replace("state=", "state=forged");
        let response = http.get(&forged).send().await?;
        assert_eq!(response.status().as_u16(), 400);
        assert!(response.text().await?.contains("does not belong"));
        // The forged answer used the pending login up: the real one is now a replay too.
        let response = http.get(&callback).send().await?;
        assert_eq!(response.status().as_u16(), 400);
        assert!(response.text().await?.contains("already used"));
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn the_user_page_connects_another_source_and_removes_one_while_another_way_remains(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let google =
            upstream::Upstream::start(Service::Google, person("g-9", "octocat@example.com", true))
                .await?;
        let github =
            upstream::Upstream::start(Service::Github, person("1001", "octocat@example.com", true))
                .await?;
        let facebook = upstream::Upstream::start(Service::Facebook, Person::default()).await?;
        with_presets(&server, &google, &github, &facebook).await?;
        let http = cookie_client()?;
        let (_, last, _) = follow(&http, &server, "/source/oauth/login/github/").await?;
        assert_eq!(last, "/if/user/", "signed in through GitHub (email_link)");

        let (_, _, page) = follow(&http, &server, "/if/user/").await?;
        assert!(page.contains("(your only way to sign in)"), "{page}");
        assert!(page.contains("id=\"connect-google\""), "{page}");
        let (status, last, page) =
            follow(&http, &server, "/source/oauth/login/google/?link=1").await?;
        assert_eq!((status, last.as_str()), (200, "/if/user/"), "{page}");
        let (_, connections) = server.get("/sources/user_connections/oauth/").await?;
        assert_eq!(connections["pagination"]["count"], 2, "{connections}");

        let github_link = connections["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["source_obj"]["slug"] == "github")
            .map(|c| c["pk"].clone())
            .unwrap_or_default();
        let csrf = page
            .split("name=csrf value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let remove = |id: Value| {
            let http = http.clone();
            let url = format!("{}/if/user/sources/{id}/remove", server.url);
            let csrf = csrf.clone();
            async move { http.post(url).form(&[("csrf", csrf)]).send().await }
        };
        let response = remove(github_link).await?;
        assert_eq!(
            response.status().as_u16(),
            303,
            "removable while Google remains"
        );
        let (_, connections) = server.get("/sources/user_connections/oauth/").await?;
        assert_eq!(connections["pagination"]["count"], 1, "{connections}");
        let last = connections["results"][0]["pk"].clone();
        let response = remove(last).await?;
        assert_eq!(response.status().as_u16(), 400);
        assert!(response.text().await?.contains("only way to sign in"));
        let (_, connections) = server.get("/sources/user_connections/oauth/").await?;
        assert_eq!(connections["pagination"]["count"], 1, "the last one stays");
        server.stop().await
    })
    .await
}
