//! The standalone outpost (`gatehouse outpost`): a client of the server with its own token,
//! in front of the same real nginx as the embedded one. Sessions live in the server's
//! database, so replicas share them and survive restarts; changes are pushed; and with the
//! server gone, checked sessions keep passing for the grace period and nothing else does. The
//! server-outage test runs the same on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use gatehouse_testkit::{
    browse_until, cookie_client, with_server, EchoApp, Nginx, TestDb, TestOutpost, TestServer,
};
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{json, Value};

use crate::outpost::{ingress, nginx_journey, only_checked_sessions_pass, protect, user, PASSWORD};

/// A standalone outpost instance named `edge` (serving nothing yet) and its token.
pub(crate) async fn edge(server: &TestServer) -> anyhow::Result<(Value, String)> {
    let (status, outpost) = server
        .post(
            "/outposts/instances/",
            json!({"name": "edge", "type": "proxy", "providers": []}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{outpost}");
    let pk = outpost["pk"].as_str().unwrap_or_default().to_owned();
    let (status, token) = server
        .post(&format!("/outposts/instances/{pk}/token/"), json!({}))
        .await?;
    anyhow::ensure!(status == 201, "{token}");
    assert_eq!(token["identifier"], format!("ak-outpost-{pk}-api"));
    Ok((
        outpost,
        token["key"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// Assigns the provider `App` to the outpost `edge`.
pub(crate) async fn assign_app(server: &TestServer, edge: &Value) -> anyhow::Result<i64> {
    let (_, providers) = server.get("/providers/proxy/?name=App").await?;
    let pk = providers["results"][0]["pk"].as_i64().unwrap_or_default();
    let (status, body) = server
        .patch(
            &format!(
                "/outposts/instances/{}/",
                edge["pk"].as_str().unwrap_or_default()
            ),
            json!({"providers": [pk]}),
        )
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(pk)
}

#[tokio::test]
async fn a_standalone_outpost_behind_nginx_logs_in_and_the_group_binding_holds(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let (instance, token) = edge(&server).await?;
        let outpost = TestOutpost::start(&server.url, &token, |_| {}).await?;
        let app = EchoApp::start().await?;
        let nginx = Nginx::start(&ingress(outpost.port, app.port)).await?;
        let app_url = format!("http://app.localhost:{}", nginx.port);
        let family = protect(&server, &app_url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        user(&server, "bob@example.com", json!([])).await?;
        assign_app(&server, &instance).await?;
        nginx_journey(&nginx, &app_url, "standalone-nginx").await?;
        let metrics = reqwest::get(&outpost.metrics_url).await?.text().await?;
        let backend = std::env::var("GATEHOUSE_TEST_DATABASE").unwrap_or_else(|_| "sqlite".into());
        assert!(
            metrics.contains(&format!(
                r#"gatehouse_session_store_info{{backend="{backend}"}} 1"#
            )),
            "the outpost names where its sessions live: {metrics}"
        );
        assert!(
            metrics
                .contains(r#"gatehouse_outpost_decisions_total{provider="App",outcome="allow"}"#),
            "{metrics}"
        );
        nginx.stop().await?;
        outpost.stop().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn the_outpost_api_takes_only_outpost_tokens_and_only_assigned_providers(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let (instance, token) = edge(&server).await?;
        protect(&server, "https://app.example.com").await?;
        let http = reqwest::Client::new();
        let api = |path: &str| format!("{}/api/v3{path}", server.url);
        // The admin token is not an outpost token.
        let r = http
            .get(api("/outposts/proxy/"))
            .bearer_auth(gatehouse_testkit::TOKEN)
            .send()
            .await?;
        assert_eq!(r.status(), 403);
        let r = http
            .get(api("/outposts/proxy/"))
            .bearer_auth("not-a-token")
            .send()
            .await?;
        assert_eq!(r.status(), 401);
        // The outpost token is no admin token either.
        let r = http
            .get(api("/core/users/"))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(r.status(), 403);
        let listed: Value = http
            .get(api("/outposts/proxy/"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(listed["results"], json!([]), "nothing assigned yet");
        let pk = assign_app(&server, &instance).await?;
        let listed: Value = http
            .get(api("/outposts/proxy/"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(
            listed["results"][0]["external_host"],
            "https://app.example.com"
        );
        assert_eq!(listed["results"][0]["assigned_application_slug"], "app");
        assert!(
            listed["results"][0].get("client_secret").is_none(),
            "the edge gets no secrets"
        );
        // Bad input: a check without credentials, an unknown field, a provider not assigned.
        let check = |body: Value| {
            http.post(api("/outposts/proxy/sessions/check/"))
                .bearer_auth(&token)
                .json(&body)
                .send()
        };
        let client = json!({"ip": "127.0.0.1", "host": "app.example.com", "user_agent": "test"});
        let r = check(json!({"provider": pk, "client": client})).await?;
        assert_eq!(r.status(), 400);
        assert!(r.text().await?.contains("cookie"));
        let r = check(json!({"provider": pk, "cookie": "x", "client": client, "extra": 1})).await?;
        assert_eq!(r.status(), 400);
        let r = check(json!({"provider": pk + 100, "cookie": "x", "client": client})).await?;
        assert_eq!(r.status(), 404);
        let r = check(json!({"provider": pk, "cookie": "forged-cookie-value", "client": client}))
            .await?;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await?["session"], Value::Null);
        // A reissued token replaces the old one.
        let (_, again) = server
            .post(
                &format!(
                    "/outposts/instances/{}/token/",
                    instance["pk"].as_str().unwrap_or_default()
                ),
                json!({}),
            )
            .await?;
        let r = http
            .get(api("/outposts/proxy/"))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(r.status(), 401, "the old token no longer works");
        let r = http
            .get(api("/outposts/proxy/"))
            .bearer_auth(again["key"].as_str().unwrap_or_default())
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        server.stop().await
    })
    .await
}

/// Logs in through the outpost at `outpost_url` (the provider's external host) over plain
/// HTTP; returns the cookie client and the callback's response.
pub(crate) async fn login_through(
    server: &TestServer,
    external: &str,
    http: reqwest::Client,
) -> anyhow::Result<(reqwest::Client, reqwest::Response)> {
    let home = format!("{external}/home");
    let start = format!("{external}/outpost.goauthentik.io/start?rd=%2Fhome");
    let callback = browse_until(
        &http,
        server,
        &start,
        ("alice@example.com", PASSWORD),
        |l| l == home,
    )
    .await?;
    Ok((http, callback))
}

/// auth/nginx at `outpost` for the app host with the client's cookies.
async fn decision(http: &reqwest::Client, outpost: &str, host: &str) -> anyhow::Result<u16> {
    Ok(http
        .get(format!("{outpost}/outpost.goauthentik.io/auth/nginx"))
        .header("X-Forwarded-Host", host)
        .header("X-Original-URI", "/home")
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn two_standalone_outposts_share_sessions_and_a_revocation_reaches_both_within_a_second(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let (instance, token) = edge(&server).await?;
        let a = TestOutpost::start(&server.url, &token, |_| {}).await?;
        let b = TestOutpost::start(&server.url, &token, |_| {}).await?;
        let app = EchoApp::start().await?;
        // Round-robin over both outposts: every other request lands on the other one.
        let upstream = format!(
            "upstream gatehouse {{ server 127.0.0.1:{}; server 127.0.0.1:{}; }}",
            a.port, b.port
        );
        let block = ingress(0, app.port).replace("http://127.0.0.1:0", "http://gatehouse");
        let nginx = Nginx::start_with_http(&upstream, &block).await?;
        let host = format!("app.localhost:{}", nginx.port);
        let app_url = format!("http://{host}");
        let family = protect(&server, &app_url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        let pk = assign_app(&server, &instance).await?;
        // app.localhost is loopback, as browsers resolve it; the URL's port picks nginx or an
        // outpost, and the cookie (per host, not port) goes to either.
        let loopback: std::net::SocketAddr = "127.0.0.1:0".parse()?;
        let browser_like = || -> anyhow::Result<reqwest::Client> {
            Ok(reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .resolve("app.localhost", loopback)
                .build()?)
        };
        let (http, _) = login_through(&server, &app_url, browser_like()?).await?;
        for i in 0..6 {
            let r = http.get(format!("{app_url}/page/{i}")).send().await?;
            assert_eq!(
                r.status(),
                200,
                "request {i}: no redirect loop\n{}",
                nginx.error_log()
            );
            let body = r.text().await?;
            assert!(
                body.contains("X-authentik-username: alice@example.com"),
                "{body}"
            );
        }

        // A lifetime change shows in the next login's cookie, without a restart.
        let (status, _) = server
            .patch(
                &format!("/providers/proxy/{pk}/"),
                json!({"access_token_validity": "hours=1"}),
            )
            .await?;
        assert_eq!(status, 200);
        let (_, callback) = login_through(&server, &app_url, browser_like()?).await?;
        let cookie = callback
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("authentik_proxy_"))
            .unwrap_or_default()
            .to_owned();
        assert!(cookie.contains("Max-Age=3600"), "{cookie}");

        // Revoking alice's sessions at the IdP reaches both outposts (pushed, not polled).
        let direct = |o: &TestOutpost| format!("http://app.localhost:{}", o.port);
        for outpost in [&a, &b] {
            assert_eq!(decision(&http, &direct(outpost), &host).await?, 200);
        }
        let (_, sessions) = server.get("/core/authenticated_sessions/").await?;
        let revoked_at = Instant::now();
        for s in sessions["results"].as_array().into_iter().flatten() {
            server
                .delete(&format!(
                    "/core/authenticated_sessions/{}/",
                    s["uuid"].as_str().unwrap_or_default()
                ))
                .await?;
        }
        let mut pending = vec![&a, &b];
        while !pending.is_empty() && revoked_at.elapsed() < Duration::from_secs(5) {
            let mut still = Vec::new();
            for outpost in pending {
                if decision(&http, &direct(outpost), &host).await? == 200 {
                    still.push(outpost);
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        println!(
            "revocation reached both standalone outposts after {:?}",
            revoked_at.elapsed()
        );
        assert!(
            pending.is_empty(),
            "an outpost still lets the revoked session in"
        );
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "took {:?}",
            revoked_at.elapsed()
        );
        nginx.stop().await?;
        a.stop().await?;
        b.stop().await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn with_the_server_unreachable_a_standalone_outpost_passes_checked_sessions_only(
) -> anyhow::Result<()> {
    const GRACE_SECONDS: i64 = 5;
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let port = server.port();
    let (instance, token) = edge(&server).await?;
    let outpost = TestOutpost::start(&server.url, &token, |s| {
        s.grace = chrono::Duration::seconds(GRACE_SECONDS)
    })
    .await?;
    let family = protect(&server, &outpost.url).await?;
    user(&server, "alice@example.com", json!([family["pk"]])).await?;
    assign_app(&server, &instance).await?;
    let host = outpost.url.trim_start_matches("http://").to_owned();
    let (http, callback) = login_through(&server, &outpost.url, cookie_client()?).await?;
    assert_eq!(
        callback
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some(format!("{}/home", outpost.url).as_str())
    );
    assert_eq!(decision(&http, &outpost.url, &host).await?, 200);

    server.stop().await?;
    // Past the revalidation interval: the outpost has to ask the server, and cannot.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        decision(&http, &outpost.url, &host).await?,
        200,
        "a session checked before the outage keeps passing"
    );
    only_checked_sessions_pass(
        &outpost.url,
        &outpost.metrics_url,
        Duration::from_secs(GRACE_SECONDS as u64),
        || decision(&http, &outpost.url, &host),
    )
    .await?;

    // The server comes back on the same URL: the session lives in its database, so it passes
    // again without a new login, and the outpost leaves degraded mode.
    let server = TestServer::restart_at(&db, port).await?;
    let back = Instant::now();
    while decision(&http, &outpost.url, &host).await? != 200
        && back.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        decision(&http, &outpost.url, &host).await?,
        200,
        "the session survived the restart"
    );
    let metrics = reqwest::get(&outpost.metrics_url).await?.text().await?;
    assert!(
        metrics.contains("gatehouse_outpost_degraded 0"),
        "{metrics}"
    );
    outpost.stop().await?;
    server.stop().await
}

#[tokio::test]
async fn a_revocation_through_another_server_replica_reaches_the_outpost_within_a_second(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = TestServer::start(&db).await?;
    let b = TestServer::start(&db).await?;
    let (instance, token) = edge(&a).await?;
    let outpost = TestOutpost::start(&a.url, &token, |_| {}).await?;
    let family = protect(&a, &outpost.url).await?;
    user(&a, "alice@example.com", json!([family["pk"]])).await?;
    assign_app(&a, &instance).await?;
    let host = outpost.url.trim_start_matches("http://").to_owned();
    let (http, _) = login_through(&a, &outpost.url, cookie_client()?).await?;
    assert_eq!(decision(&http, &outpost.url, &host).await?, 200);
    // The outpost follows replica a; the administrator deactivates alice on replica b. On
    // PostgreSQL b's notice reaches a (LISTEN/NOTIFY) and a's stream the outpost; on SQLite,
    // one process per file, the one-second bound does it.
    let (_, users) = b.get("/core/users/?username=alice@example.com").await?;
    let pk = users["results"][0]["pk"].as_i64().unwrap_or_default();
    let revoked_at = Instant::now();
    let (status, _) = b
        .patch(&format!("/core/users/{pk}/"), json!({"is_active": false}))
        .await?;
    assert_eq!(status, 200);
    let mut answer = 200;
    while answer == 200 && revoked_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        answer = decision(&http, &outpost.url, &host).await?;
    }
    println!(
        "a deactivation on another replica reached the outpost after {:?} ({})",
        revoked_at.elapsed(),
        db.backend()
    );
    assert_eq!(answer, 401);
    assert!(
        revoked_at.elapsed() < Duration::from_secs(1),
        "took {:?}",
        revoked_at.elapsed()
    );
    outpost.stop().await?;
    a.stop().await?;
    b.stop().await
}
