//! The embedded outpost behind a real nginx configured like the nginx-ingress annotations of
//! the reference deployment: auth_request to /outpost.goauthentik.io/auth/nginx, 401 → 302 to
//! start, identity headers copied to the app, the outpost path routed on the app host.

use gatehouse_testkit::fantoccini::Locator;
use gatehouse_testkit::{
    browse_until, cookie_client, with_server, Browser, Caddy, EchoApp, Nginx, TestServer,
};
use reqwest::header::{HOST, LOCATION, WWW_AUTHENTICATE};
use serde_json::json;
use std::time::Duration;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The server block of the ingress pattern: the app behind auth_request, the outpost routes on
/// the app host.
pub(crate) fn ingress(gatehouse_port: u16, app_port: u16) -> String {
    let copy: String = ["username", "groups", "email", "name", "uid"]
        .iter()
        .map(|h| {
            format!(
                "auth_request_set $authentik_{h} $upstream_http_x_authentik_{h};\n proxy_set_header X-authentik-{h} $authentik_{h};\n"
            )
        })
        .collect();
    format!(
        r#"
 location = /outpost.goauthentik.io/auth/nginx {{
   proxy_pass http://127.0.0.1:{gatehouse_port};
   proxy_pass_request_body off;
   proxy_set_header Content-Length "";
   proxy_set_header Host $http_host;
   proxy_set_header X-Forwarded-Host $http_host;
   proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
 }}
 location /outpost.goauthentik.io {{
   proxy_pass http://127.0.0.1:{gatehouse_port};
   proxy_set_header Host $http_host;
   proxy_set_header X-Forwarded-Host $http_host;
 }}
 location / {{
   auth_request /outpost.goauthentik.io/auth/nginx;
   error_page 401 = @goauthentik_proxy_signin;
   auth_request_set $auth_cookie $upstream_http_set_cookie;
   add_header Set-Cookie $auth_cookie;
   {copy}
   proxy_pass http://127.0.0.1:{app_port};
 }}
 location @goauthentik_proxy_signin {{
   internal;
   add_header Set-Cookie $auth_cookie;
   return 302 /outpost.goauthentik.io/start?rd=$scheme://$http_host$request_uri;
 }}
"#
    )
}

pub(crate) async fn user(
    server: &TestServer,
    username: &str,
    groups: serde_json::Value,
) -> anyhow::Result<()> {
    let (status, user) = server
        .post(
            "/core/users/",
            json!({"username": username, "name": username, "email": username, "groups": groups}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{user}");
    server
        .post(
            &format!("/core/users/{}/set_password/", user["pk"]),
            json!({"password": PASSWORD}),
        )
        .await?;
    Ok(())
}

/// A forward_single provider for `external_host` whose application only `Family` may use.
pub(crate) async fn protect(
    server: &TestServer,
    external_host: &str,
) -> anyhow::Result<serde_json::Value> {
    let (_, family) = server
        .post("/core/groups/", json!({"name": "Family"}))
        .await?;
    let (flow, invalidation) = crate::provider_flows(server, "implicit").await?;
    let (status, provider) = server
        .post(
            "/providers/proxy/",
            json!({"name": "App", "mode": "forward_single", "external_host": external_host, "authorization_flow": flow,
                   "invalidation_flow": invalidation, "access_token_validity": "weeks=4"}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{provider}");
    let (_, app) = server
        .post(
            "/core/applications/",
            json!({"name": "App", "slug": "app", "provider": provider["pk"]}),
        )
        .await?;
    let (status, binding) = server
        .post(
            "/policies/bindings/",
            json!({"target": app["pk"], "group": family["pk"], "order": 0}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{binding}");
    Ok(family)
}

#[tokio::test]
async fn nginx_login_lands_on_the_app_with_identity_headers_and_the_group_binding_holds(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = EchoApp::start().await?;
        let nginx = Nginx::start(&ingress(server.port(), app.port)).await?;
        let app_url = format!("http://app.localhost:{}", nginx.port);
        let family = protect(&server, &app_url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        user(&server, "bob@example.com", json!([])).await?;
        nginx_journey(&nginx, &app_url, "nginx").await?;
        nginx.stop().await?;
        server.stop().await
    })
    .await
}

/// What a visitor of the app behind `nginx` (the ingress pattern) sees: 302 to start (never
/// 401 with a Basic prompt), a login that lands back where they started with the identity
/// headers at the app, sign_out, and the group binding refusing bob.
pub(crate) async fn nginx_journey(nginx: &Nginx, app_url: &str, shots: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = http
        .get(format!("http://127.0.0.1:{}/dashboard?x=1", nginx.port))
        .header(HOST, format!("app.localhost:{}", nginx.port))
        .send()
        .await?;
    assert_eq!(r.status(), 302, "{}", nginx.error_log());
    assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
    let location = r
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        location.contains("/outpost.goauthentik.io/start?rd="),
        "{location}"
    );

    let browser = Browser::start().await?;
    let c = &browser.client;
    c.goto(&format!("{app_url}/dashboard?x=1")).await?;
    browser.screenshot(&format!("{shots}-1-login")).await?;
    browser.log_in("alice@example.com", PASSWORD).await?;
    let headers = browser
        .element(Locator::Id("headers"))
        .await?
        .text()
        .await?;
    browser.screenshot(&format!("{shots}-2-app")).await?;
    assert_eq!(
        c.current_url().await?.as_str(),
        format!("{app_url}/dashboard?x=1"),
        "back where the visitor started"
    );
    assert!(
        headers.contains("X-authentik-username: alice@example.com"),
        "{headers}"
    );
    assert!(headers.contains("X-authentik-groups: Family"), "{headers}");

    // sign_out asks first; its button ends the outpost session and the next visit needs a
    // login again.
    c.goto(&format!("{app_url}/outpost.goauthentik.io/sign_out"))
        .await?;
    browser.submit().await?;
    c.goto(&format!("{app_url}/")).await?;
    browser.element(Locator::Id("uid_field")).await?;
    browser.close().await?;

    // Bob is not in Family: after his login Gatehouse refuses to let him into the app.
    let browser = Browser::start().await?;
    browser.client.goto(&format!("{app_url}/")).await?;
    browser.log_in("bob@example.com", PASSWORD).await?;
    let source = browser.client.source().await?;
    assert!(source.contains("You may not use App"), "{source}");
    browser.screenshot(&format!("{shots}-3-denied")).await?;
    browser.close().await
}

#[tokio::test]
async fn unknown_hosts_get_403_with_the_fix_and_missing_headers_a_clear_error() -> anyhow::Result<()>
{
    with_server(|server| async move {
        protect(&server, "https://app.example.com").await?;
        server.post("/providers/proxy/", json!({})).await?;
        let http = reqwest::Client::new();
        let auth = format!("{}/outpost.goauthentik.io/auth/nginx", server.url);
        // Two providers exist, so an unknown host cannot fall back to the only one.
        let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
        server
            .post("/providers/proxy/", json!({"name": "Other", "external_host": "https://other.example.com", "authorization_flow": flow, "invalidation_flow": invalidation}))
            .await?;
        let r = http.get(&auth).header("X-Forwarded-Host", "nope.example.net").header("X-Original-URI", "/").header("Accept", "application/json").send().await?;
        assert_eq!(r.status(), 403);
        let body: serde_json::Value = r.json().await?;
        assert_eq!(body["host"], "nope.example.net");
        assert!(body["detail"].as_str().unwrap_or_default().contains("external_host"), "{body}");
        let r = http.get(&auth).header("X-Forwarded-Host", "app.example.com").send().await?;
        assert_eq!(r.status(), 400);
        assert!(r.text().await?.contains("X-Original-URL"));
        let r = http.get(&auth).header("X-Forwarded-Host", "app.example.com").header("X-Original-URI", "/").send().await?;
        assert_eq!(r.status(), 401);
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none(), "never a Basic prompt");
        let r = http
            .get(&auth)
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Original-URI", "/")
            .header("Cookie", format!("{}=garbage-value", gatehouse_outpost::cookie_name("x")))
            .send()
            .await?;
        assert_eq!(r.status(), 401, "a malformed cookie is a new login, never a 500");
        let r = http.get(format!("{}/outpost.goauthentik.io/ping", server.url)).send().await?;
        assert_eq!(r.status(), 204);
        let metrics = http.get(&server.metrics_url).send().await?.text().await?;
        assert!(metrics.contains("gatehouse_outpost_unknown_host_total 1"), "{metrics}");
        assert!(metrics.contains(r#"gatehouse_outpost_decisions_total{provider="App",outcome="login"} 2"#), "{metrics}");
        let backend = std::env::var("GATEHOUSE_TEST_DATABASE").unwrap_or_else(|_| "sqlite".into());
        assert!(metrics.contains(&format!(r#"gatehouse_session_store_info{{backend="{backend}"}} 1"#)), "{metrics}");
        assert!(metrics.contains("gatehouse_outpost_decision_seconds_bucket"), "{metrics}");
        let public = http.get(format!("{}/metrics", server.url)).send().await?;
        assert_ne!(public.status(), 200, "metrics stay off the public port");
        server.stop().await
    })
    .await
}

/// Logs in through the outpost over plain HTTP; the provider's external host is the server
/// itself. Returns the callback's response (its cookie and its redirect to `/home`).
pub(crate) async fn outpost_login(
    server: &TestServer,
    http: &reqwest::Client,
) -> anyhow::Result<reqwest::Response> {
    let home = format!("{}/home", server.url);
    let start = format!("{}/outpost.goauthentik.io/start?rd=%2Fhome", server.url);
    browse_until(http, server, &start, ("alice@example.com", PASSWORD), |l| {
        l == home
    })
    .await
}

pub(crate) async fn decision(server: &TestServer, http: &reqwest::Client) -> anyhow::Result<u16> {
    Ok(http
        .get(format!("{}/outpost.goauthentik.io/auth/nginx", server.url))
        .header("X-Original-URI", "/home")
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn logout_at_the_idp_ends_outpost_sessions_within_a_second() -> anyhow::Result<()> {
    with_server(|server| async move {
        let family = protect(&server, &server.url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        let http = cookie_client()?;
        let callback = outpost_login(&server, &http).await?;
        assert_eq!(
            callback
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some(format!("{}/home", server.url).as_str())
        );
        assert_eq!(decision(&server, &http).await?, 200);
        let (_, sessions) = server.get("/core/authenticated_sessions/").await?;
        let uuid = sessions["results"][0]["uuid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let revoked_at = std::time::Instant::now();
        server
            .delete(&format!("/core/authenticated_sessions/{uuid}/"))
            .await?;
        let mut status = 200;
        while status == 200 && revoked_at.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = decision(&server, &http).await?;
        }
        println!(
            "revocation reached the outpost after {:?}",
            revoked_at.elapsed()
        );
        assert_eq!(status, 401);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "took {:?}",
            revoked_at.elapsed()
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_session_lifetime_change_applies_to_the_next_login_without_restart() -> anyhow::Result<()>
{
    with_server(|server| async move {
        let family = protect(&server, &server.url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        let max_age = |r: &reqwest::Response| {
            r.headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with("authentik_proxy_"))
                .and_then(|v| v.split("Max-Age=").nth(1))
                .and_then(|v| v.split(';').next())
                .map(str::to_owned)
        };
        let first = outpost_login(&server, &cookie_client()?).await?;
        assert_eq!(max_age(&first).as_deref(), Some("2419200"), "weeks=4");
        let (_, providers) = server.get("/providers/proxy/?name=App").await?;
        let pk = providers["results"][0]["pk"].as_i64().unwrap_or_default();
        let (status, _) = server
            .patch(
                &format!("/providers/proxy/{pk}/"),
                json!({"access_token_validity": "hours=1"}),
            )
            .await?;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = outpost_login(&server, &cookie_client()?).await?;
        assert_eq!(
            max_age(&second).as_deref(),
            Some("3600"),
            "the new lifetime, without a restart"
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn traefik_caddy_and_envoy_endpoints_redirect_straight_to_the_idp() -> anyhow::Result<()> {
    with_server(|server| async move {
        protect(&server, "https://app.example.com").await?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        for endpoint in ["traefik", "caddy"] {
            let r = http
                .get(format!("{}/outpost.goauthentik.io/auth/{endpoint}", server.url))
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Host", "app.example.com")
                .header("X-Forwarded-Uri", "/wiki?page=1")
                .send()
                .await?;
            assert_eq!(r.status(), 302, "{endpoint}");
            let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            assert!(location.starts_with(&format!("{}/application/o/authorize/?client_id=", server.external_url)), "{location}");
            assert!(location.contains("redirect_uri=https%3A%2F%2Fapp.example.com%2Foutpost.goauthentik.io%2Fcallback"), "{location}");
            let cookie = r.headers().get(reqwest::header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(cookie.starts_with("authentik_proxy_") && cookie.contains("HttpOnly") && cookie.contains("Secure"), "{cookie}");
            let r = http
                .get(format!("{}/outpost.goauthentik.io/auth/{endpoint}", server.url))
                .header("X-Forwarded-Host", "app.example.com")
                .send()
                .await?;
            assert_eq!(r.status(), 400, "missing X-Forwarded-Uri is a configuration error");
        }
        // Envoy sends the original path after the prefix, and the original Host.
        let r = http
            .get(format!("{}/outpost.goauthentik.io/auth/envoy/wiki?page=1", server.url))
            .header(HOST, "app.example.com")
            .send()
            .await?;
        assert_eq!(r.status(), 302);
        let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(location.starts_with(&format!("{}/application/o/authorize/", server.external_url)), "{location}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn two_replicas_behind_one_nginx_share_sessions_without_a_redirect_loop() -> anyhow::Result<()>
{
    let db = gatehouse_testkit::TestDb::new().await?;
    let a = TestServer::start(&db).await?;
    let b = TestServer::start(&db).await?;
    let app = EchoApp::start().await?;
    // Round-robin over both replicas: every other request lands on the other one.
    let upstream = format!(
        "upstream gatehouse {{ server 127.0.0.1:{}; server 127.0.0.1:{}; }}",
        a.port(),
        b.port()
    );
    let server_block = ingress(0, app.port).replace("http://127.0.0.1:0", "http://gatehouse");
    let nginx = Nginx::start_with_http(&upstream, &server_block).await?;
    let app_url = format!("http://app.localhost:{}", nginx.port);
    let family = protect(&a, &app_url).await?;
    user(&a, "alice@example.com", json!([family["pk"]])).await?;
    let browser = Browser::start().await?;
    browser.client.goto(&format!("{app_url}/")).await?;
    browser.log_in("alice@example.com", PASSWORD).await?;
    for _ in 0..6 {
        browser.client.goto(&format!("{app_url}/")).await?;
        let headers = browser
            .element(Locator::Id("headers"))
            .await?
            .text()
            .await?;
        assert!(
            headers.contains("X-authentik-username: alice@example.com"),
            "{headers}\n{}",
            nginx.error_log()
        );
    }
    browser.screenshot("replicas-app").await?;
    browser.close().await?;
    nginx.stop().await?;
    a.stop().await?;
    b.stop().await
}

#[tokio::test]
async fn caddy_forward_auth_with_copy_headers_logs_in_to_the_app() -> anyhow::Result<()> {
    with_server(|server| async move {
        let app = EchoApp::start().await?;
        let gatehouse_port = server.port();
        let caddy = Caddy::start(&format!(
            r#"http://app.localhost:{{port}} {{
  bind 127.0.0.1
  route {{
    reverse_proxy /outpost.goauthentik.io/* 127.0.0.1:{gatehouse_port}
    forward_auth 127.0.0.1:{gatehouse_port} {{
      uri /outpost.goauthentik.io/auth/caddy
      copy_headers X-Authentik-Username X-Authentik-Groups X-Authentik-Email X-Authentik-Name X-Authentik-Uid
    }}
    reverse_proxy 127.0.0.1:{app}
  }}
}}
"#,
            app = app.port
        ))
        .await?;
        let app_url = format!("http://app.localhost:{}", caddy.port);
        let family = protect(&server, &app_url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        let browser = Browser::start().await?;
        browser.client.goto(&format!("{app_url}/notes?id=7")).await?;
        browser.screenshot("caddy-1-login").await?;
        browser.log_in("alice@example.com", PASSWORD).await?;
        let headers = browser.element(Locator::Id("headers")).await?.text().await?.to_ascii_lowercase();
        browser.screenshot("caddy-2-app").await?;
        assert!(headers.contains("x-authentik-username: alice@example.com"), "{headers}");
        assert!(headers.contains("x-authentik-groups: family"), "{headers}");
        assert_eq!(browser.client.current_url().await?.as_str(), format!("{app_url}/notes?id=7"));
        browser.close().await?;
        caddy.stop().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn forward_domain_protects_two_hosts_with_one_login() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
        let (status, provider) = server
            .post(
                "/providers/proxy/",
                json!({"name": "Domain wide catch all", "mode": "forward_domain", "external_host": "http://auth.example.test",
                       "cookie_domain": "example.test", "authorization_flow": flow, "invalidation_flow": invalidation}),
            )
            .await?;
        assert_eq!(status, 201, "{provider}");
        server.post("/core/applications/", json!({"name": "Catch all", "slug": "catch-all", "provider": provider["pk"]})).await?;
        user(&server, "alice@example.com", json!([])).await?;
        let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let traefik = |host: &str, cookie: Option<&str>| {
            let mut r = plain
                .get(format!("{}/outpost.goauthentik.io/auth/traefik", server.url))
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-Host", host)
                .header("X-Forwarded-Uri", "/page");
            if let Some(c) = cookie {
                r = r.header("Cookie", c);
            }
            r.send()
        };
        let first = traefik("wiki.example.test", None).await?;
        assert_eq!(first.status(), 302);
        let set_cookie = first.headers().get(reqwest::header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(set_cookie.contains("Domain=example.test"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
        let authorize = first.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().replace(&server.external_url, &server.url);

        // Log in at the IdP (its own cookie jar), up to the redirect to the outpost callback.
        let at_callback = |l: &str| l.starts_with("http://auth.example.test/outpost.goauthentik.io/callback");
        let redirect = browse_until(&cookie_client()?, &server, &authorize, ("alice@example.com", PASSWORD), at_callback).await?;
        let callback = redirect.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let path = callback.trim_start_matches("http://auth.example.test");
        let done = plain.get(format!("{}{path}", server.url)).header(HOST, "auth.example.test").header("Cookie", &cookie).send().await?;
        assert_eq!(done.status(), 302);
        assert_eq!(done.headers().get(LOCATION).and_then(|v| v.to_str().ok()), Some("http://wiki.example.test/page"));
        // The session has a value of its own, set for the whole domain; the pending one is spent.
        let session = done.headers().get(reqwest::header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(session.contains("Domain=example.test"), "{session}");
        let pending = cookie;
        let cookie = session.split(';').next().unwrap_or_default().to_owned();
        assert_ne!(cookie, pending);

        for host in ["wiki.example.test", "files.example.test"] {
            let r = traefik(host, Some(&cookie)).await?;
            assert_eq!(r.status(), 200, "{host}");
            assert_eq!(r.headers().get("X-authentik-username").and_then(|v| v.to_str().ok()), Some("alice@example.com"));
        }
        let r = traefik("files.example.test", None).await?;
        assert_eq!(r.status(), 302, "without the cookie the browser is sent to log in");
        server.stop().await
    })
    .await
}

/// A server on `db` that reaches PostgreSQL through a link the test can cut (a real network
/// failure). `None` on SQLite: an embedded file cannot become unreachable while the server
/// runs, so database outages are exercised on the PostgreSQL pass of the suite.
async fn behind_a_cuttable_link(
    db: &gatehouse_testkit::TestDb,
    configure: impl FnOnce(&mut gatehouse::config::Settings),
) -> anyhow::Result<Option<(TestServer, gatehouse_testkit::Cuttable)>> {
    if db.backend() == "sqlite" {
        println!("database outage: exercised on PostgreSQL (this run is SQLite); the standalone outpost's server-outage test runs on both");
        return Ok(None);
    }
    let (head, rest) = db.url.split_once('@').unwrap_or_default();
    let (host_port, database) = rest.split_once('/').unwrap_or_default();
    let link = gatehouse_testkit::Cuttable::start(host_port.parse()?).await?;
    let url = format!("{head}@{}/{database}", link.addr);
    let bootstrap = gatehouse_web::bootstrap::BootstrapSettings {
        token: Some(gatehouse_testkit::TOKEN.into()),
        ..Default::default()
    };
    let server = TestServer::start_on(db, &url, bootstrap, configure).await?;
    Ok(Some((server, link)))
}

#[tokio::test]
async fn with_the_database_unreachable_checked_sessions_pass_and_new_logins_get_503(
) -> anyhow::Result<()> {
    const GRACE_SECONDS: i64 = 6;
    let db = gatehouse_testkit::TestDb::new().await?;
    let Some((server, link)) = behind_a_cuttable_link(&db, |settings| {
        settings.outpost_grace = chrono::Duration::seconds(GRACE_SECONDS)
    })
    .await?
    else {
        return Ok(());
    };
    let family = protect(&server, &server.url).await?;
    user(&server, "alice@example.com", json!([family["pk"]])).await?;
    let http = cookie_client()?;
    outpost_login(&server, &http).await?;
    assert_eq!(decision(&server, &http).await?, 200);

    link.cut();
    // Past the revalidation interval: the outpost now has to ask the database, and cannot.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        decision(&server, &http).await?,
        200,
        "a session checked before the outage keeps passing within the grace period"
    );
    only_checked_sessions_pass(
        &server.url,
        &server.metrics_url,
        Duration::from_secs(GRACE_SECONDS as u64),
        || decision(&server, &http),
    )
    .await?;
    drop(server);
    Ok(())
}

/// A restarted PostgreSQL (every connection of one replica dropped at once, its `LISTEN`
/// among them) loses no change (#12): a deactivation made on another replica while this
/// replica's connections were gone still ends the session at this replica's outpost, because
/// the feed is read by sequence number after reconnecting, not only heard as a notice.
#[tokio::test]
async fn a_change_made_while_the_database_connections_drop_still_ends_the_session(
) -> anyhow::Result<()> {
    let db = gatehouse_testkit::TestDb::new().await?;
    let Some((a, link)) = behind_a_cuttable_link(&db, |_| {}).await? else {
        return Ok(());
    };
    let b = TestServer::start(&db).await?;
    let family = protect(&a, &a.url).await?;
    user(&a, "alice@example.com", json!([family["pk"]])).await?;
    let http = cookie_client()?;
    outpost_login(&a, &http).await?;
    assert_eq!(decision(&a, &http).await?, 200);

    link.drop_connections();
    let (_, users) = b.get("/core/users/?username=alice@example.com").await?;
    let pk = users["results"][0]["pk"].as_i64().unwrap_or_default();
    let changed_at = std::time::Instant::now();
    let (status, body) = b
        .patch(&format!("/core/users/{pk}/"), json!({"is_active": false}))
        .await?;
    assert_eq!(status, 200, "{body}");
    let mut answer = 200;
    while answer == 200 && changed_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = decision(&a, &http).await?;
    }
    println!(
        "a deactivation during dropped database connections reached the outpost after {:?}",
        changed_at.elapsed()
    );
    assert_eq!(
        answer, 401,
        "the deactivated user's session no longer passes"
    );
    assert!(
        changed_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        changed_at.elapsed()
    );
    b.stop().await?;
    a.stop().await
}

/// What degraded mode shows at the outpost at `base` (whose metrics are at `metrics_url`): the
/// gauge is 1, nothing unchecked passes (a forged cookie gets 401 from auth/nginx, `start`
/// the 503 outage page, Caddy's endpoint 503, never 200), and once the grace period has run
/// out, `checked()` (the decision for the session checked before the outage) stops passing.
pub(crate) async fn only_checked_sessions_pass<F, Fut>(
    base: &str,
    metrics_url: &str,
    grace: Duration,
    checked: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u16>>,
{
    let metrics = reqwest::get(metrics_url).await?.text().await?;
    assert!(
        metrics.contains("gatehouse_outpost_degraded 1"),
        "the outage shows in the metrics: {metrics}"
    );
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let forged = format!("{}={}", gatehouse_outpost::cookie_name("x"), "A".repeat(43));
    let status = anonymous
        .get(format!("{base}/outpost.goauthentik.io/auth/nginx"))
        .header("X-Original-URI", "/home")
        .header("Cookie", forged)
        .send()
        .await?
        .status();
    assert_eq!(
        status, 401,
        "nothing unchecked passes (nginx then sends the browser to start)"
    );
    let start = anonymous
        .get(format!("{base}/outpost.goauthentik.io/start?rd=%2Fhome"))
        .send()
        .await?;
    assert_eq!(start.status(), 503, "a new login gets a clear 503");
    let page = start.text().await?;
    assert!(page.contains("cannot reach its database"), "{page}");
    let caddy = anonymous
        .get(format!("{base}/outpost.goauthentik.io/auth/caddy"))
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Uri", "/home")
        .send()
        .await?;
    assert_eq!(
        caddy.status(),
        503,
        "forward_auth without a session: 503, never 200"
    );
    // Once the grace period has run out, the checked session no longer passes either.
    let deadline = std::time::Instant::now() + grace + Duration::from_secs(5);
    let mut status = 200;
    while status == 200 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        status = checked().await?;
    }
    assert_eq!(status, 401, "after the grace period nothing passes");
    Ok(())
}

#[tokio::test]
async fn break_glass_users_pass_only_while_degraded_and_every_answer_is_marked(
) -> anyhow::Result<()> {
    use base64::Engine;
    let password = "rescue-me-in-an-outage";
    let hash = gatehouse_core::secret::hash_password(password)?;
    let db = gatehouse_testkit::TestDb::new().await?;
    let Some((server, link)) = behind_a_cuttable_link(&db, |settings| {
        settings.outpost_break_glass = vec![("rescue".into(), hash)]
    })
    .await?
    else {
        return Ok(());
    };
    protect(&server, &server.url).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let basic = |secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("rescue:{secret}"))
        )
    };
    let auth = |authorization: Option<String>, cookie: Option<&str>| {
        let mut request = http
            .get(format!("{}/outpost.goauthentik.io/auth/nginx", server.url))
            .header("X-Original-URI", "/home");
        if let Some(a) = authorization {
            request = request.header("Authorization", a);
        }
        if let Some(c) = cookie {
            request = request.header("Cookie", c);
        }
        request.send()
    };
    let healthy = auth(Some(basic(password)), None).await?;
    assert_eq!(
        healthy.status(),
        401,
        "break-glass is ignored while the database answers"
    );

    link.cut();
    let start = format!("{}/outpost.goauthentik.io/start?rd=%2Fhome", server.url);
    let challenged = http.get(&start).send().await?;
    assert_eq!(challenged.status(), 401, "start challenges while degraded");
    let challenge = challenged
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    assert!(challenged
        .text()
        .await?
        .contains("cannot reach its database"));

    let wrong = auth(Some(basic("guess")), None).await?;
    assert_eq!(
        wrong.status(),
        401,
        "a wrong break-glass password does not pass"
    );
    let passed = auth(Some(basic(password)), None).await?;
    assert_eq!(passed.status(), 200);
    assert_eq!(
        passed
            .headers()
            .get("x-auth-fallback")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(
        passed
            .headers()
            .get("x-authentik-username")
            .and_then(|v| v.to_str().ok()),
        Some("rescue")
    );

    // Behind nginx the browser signs in at start and carries a fallback cookie from then on.
    let signed_in = http
        .get(&start)
        .header("Authorization", basic(password))
        .send()
        .await?;
    assert_eq!(signed_in.status(), 302);
    let set_cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    assert!(cookie.starts_with("gatehouse_fallback="), "{set_cookie}");
    let with_cookie = auth(None, Some(&cookie)).await?;
    assert_eq!(with_cookie.status(), 200);
    assert_eq!(
        with_cookie
            .headers()
            .get("x-auth-fallback")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let forged = cookie.replacen('=', "=x", 1);
    assert_eq!(
        auth(None, Some(&forged)).await?.status(),
        401,
        "an altered cookie does not pass"
    );

    let metrics = reqwest::get(&server.metrics_url).await?.text().await?;
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("gatehouse_outpost_fallback_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_default();
    assert!(counted >= 3, "every fallback answer is counted: {counted}");
    drop(server);
    Ok(())
}

#[tokio::test]
async fn app_passwords_in_an_authorization_header_pass_forward_auth() -> anyhow::Result<()> {
    use base64::Engine;
    with_server(|server| async move {
        let family = protect(&server, &server.url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        user(&server, "bob@example.com", json!([])).await?;
        let token = |username: &'static str, intent: &'static str| {
            let server = &server;
            async move {
                let (_, users) = server.get(&format!("/core/users/?username={username}")).await?;
                let (status, token) = server
                    .post(
                        "/core/tokens/",
                        json!({"identifier": format!("{intent}-{}", username.replace(['@', '.'], "-")), "intent": intent,
                               "user": users["results"][0]["pk"]}),
                    )
                    .await?;
                anyhow::ensure!(status == 201, "{token}");
                anyhow::Ok(token["key"].as_str().unwrap_or_default().to_owned())
            }
        };
        let alice = token("alice@example.com", "app_password").await?;
        let alice_api = token("alice@example.com", "api").await?;
        let bob = token("bob@example.com", "app_password").await?;
        let http = reqwest::Client::new();
        let decide = |username: &str, password: &str| {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            http.get(format!("{}/outpost.goauthentik.io/auth/nginx", server.url))
                .header("X-Original-URI", "/api/items")
                .header("Authorization", format!("Basic {basic}"))
                .send()
        };
        let passed = decide("alice@example.com", &alice).await?;
        assert_eq!(passed.status(), 200);
        assert_eq!(
            passed.headers().get("x-authentik-username").and_then(|v| v.to_str().ok()),
            Some("alice@example.com")
        );
        assert_eq!(decide("alice@example.com", "wrong").await?.status(), 401);
        assert_eq!(decide("alice@example.com", &bob).await?.status(), 401, "another user's app password");
        assert_eq!(decide("alice@example.com", &alice_api).await?.status(), 401, "an API token is not an app password");
        assert_eq!(decide("bob@example.com", &bob).await?.status(), 403, "the application's bindings still hold");

        let (_, providers) = server.get("/providers/proxy/?name=App").await?;
        let pk = providers["results"][0]["pk"].clone();
        let (status, body) = server
            .patch(&format!("/providers/proxy/{pk}/"), json!({"intercept_header_auth": false}))
            .await?;
        assert_eq!(status, 200, "{body}");
        // The provider table is revalidated within a second.
        let mut status = 200;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            status = decide("alice@example.com", &alice).await?.status().as_u16();
            if status == 401 {
                break;
            }
        }
        assert_eq!(status, 401, "without interception the header is ignored");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn proxy_mode_logs_in_then_streams_to_the_internal_host_with_identity_headers(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let echo = EchoApp::start().await?;
        let port = server.url.rsplit(':').next().unwrap_or_default().to_owned();
        let external = format!("http://app.proxy.test:{port}");
        let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
        let (status, provider) = server
            .post(
                "/providers/proxy/",
                json!({"name": "Proxied", "mode": "proxy", "external_host": external,
                       "internal_host": format!("http://127.0.0.1:{}", echo.port),
                       "authorization_flow": flow, "invalidation_flow": invalidation}),
            )
            .await?;
        assert_eq!(status, 201, "{provider}");
        server
            .post(
                "/core/applications/",
                json!({"name": "Proxied", "slug": "proxied", "provider": provider["pk"]}),
            )
            .await?;
        user(&server, "alice@example.com", json!([])).await?;
        // The application's host resolves to this server, as DNS would point it at Gatehouse.
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.proxy.test", ([127, 0, 0, 1], 0).into())
            .build()?;
        let page = format!("{external}/hello?x=1");
        // The provider table picks up the new provider within a second; the bound allows for a
        // loaded CI machine running the whole suite at once.
        let mut status = 0;
        for _ in 0..50 {
            status = http.get(&page).send().await?.status().as_u16();
            if status == 302 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 302, "no session: off to log in");
        browse_until(
            &http,
            &server,
            &page,
            ("alice@example.com", PASSWORD),
            |l| l == page,
        )
        .await?;
        let proxied = http
            .get(&page)
            .header("X-authentik-username", "admin")
            .send()
            .await?;
        assert_eq!(proxied.status(), 200);
        let body = proxied.text().await?;
        assert!(
            body.contains("alice@example.com"),
            "identity reaches the app: {body}"
        );
        assert!(
            !body.contains("admin"),
            "a visitor's own X-authentik-* header is dropped: {body}"
        );

        // Gatehouse's own host is untouched by proxy mode.
        let health = reqwest::get(format!("{}/-/health/live/", server.url)).await?;
        assert!(health.status().is_success(), "{}", health.status());

        // The application stops: a 502 page that names it.
        let internal = format!("http://127.0.0.1:{}", echo.port);
        drop(echo);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let down = http.get(&page).send().await?;
        assert_eq!(down.status(), 502);
        assert!(down.text().await?.contains(&internal));
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_session_cookie_copied_to_another_providers_cookie_name_does_not_pass_there(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let family = protect(&server, &server.url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        // A second application that only the Admins may use.
        let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
        let (_, other) = server
            .post(
                "/providers/proxy/",
                json!({"name": "Other", "external_host": "https://other.example.com",
                   "authorization_flow": flow, "invalidation_flow": invalidation}),
            )
            .await?;
        let (_, app) = server
            .post(
                "/core/applications/",
                json!({"name": "Other", "slug": "other", "provider": other["pk"]}),
            )
            .await?;
        let (_, admins) = server.get("/core/groups/?name=Admins").await?;
        server
            .post(
                "/policies/bindings/",
                json!({"target": app["pk"], "group": admins["results"][0]["pk"], "order": 0}),
            )
            .await?;
        let http = cookie_client()?;
        let callback = outpost_login(&server, &http).await?;
        let app_cookie = gatehouse_outpost::cookie_name(&app_client_id(&server, "App").await?);
        let value = callback
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.strip_prefix(&format!("{app_cookie}="))
                    .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
            })
            .unwrap_or_default();
        assert_eq!(value.len(), 43, "the App session cookie");
        // The App session is cached as allowed; under Other's cookie name at Other's host it
        // is nothing, both on the hot path and the full route.
        assert_eq!(decision(&server, &http).await?, 200);
        let other_cookie =
            gatehouse_outpost::cookie_name(other["client_id"].as_str().unwrap_or_default());
        let plain = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        for endpoint in ["nginx", "traefik"] {
            let r = plain
                .get(format!(
                    "{}/outpost.goauthentik.io/auth/{endpoint}",
                    server.url
                ))
                .header("X-Forwarded-Host", "other.example.com")
                .header("X-Forwarded-Proto", "https")
                .header("X-Original-URI", "/")
                .header("X-Forwarded-Uri", "/")
                .header("Cookie", format!("{other_cookie}={value}"))
                .send()
                .await?;
            assert_ne!(
                r.status(),
                200,
                "{endpoint}: another provider's session must not pass"
            );
            assert!(r.headers().get("x-authentik-username").is_none());
        }
        server.stop().await
    })
    .await
}

/// The client id of the proxy provider named `name`.
pub(crate) async fn app_client_id(server: &TestServer, name: &str) -> anyhow::Result<String> {
    let (_, listed) = server
        .get(&format!("/providers/proxy/?name={name}"))
        .await?;
    Ok(listed["results"][0]["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}
