//! Start-up, health, persistence across restarts, bootstrap and the one-time set-up page.

use gatehouse_testkit::{send, TestDb, TestServer, TOKEN};
use gatehouse_web::bootstrap::BootstrapSettings;
use serde_json::json;

#[tokio::test]
async fn health_endpoints_answer_with_and_without_trailing_slash() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    for path in [
        "/-/health/live/",
        "/-/health/live",
        "/-/health/ready/",
        "/-/health/ready",
    ] {
        let status = server
            .http
            .get(format!("{}{path}", server.url))
            .send()
            .await?
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }
    let (_, body) = send(server.http.get(format!("{}/-/health/ready/", server.url))).await?;
    assert_eq!(body["database"], db.backend());
    server.stop().await
}

#[tokio::test]
async fn data_survives_a_restart() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let (status, group) = server
        .post("/core/groups/", json!({"name": "Headscale Users"}))
        .await?;
    assert_eq!(status, 201, "{group}");
    let (status, user) = server
        .post(
            "/core/users/",
            json!({"username": "alice@example.com", "name": "Alice Example"}),
        )
        .await?;
    assert_eq!(status, 201, "{user}");
    let group_pk = group["pk"].as_str().unwrap_or_default().to_owned();
    let (status, _) = server
        .post(
            &format!("/core/groups/{group_pk}/add_user/"),
            json!({"pk": user["pk"]}),
        )
        .await?;
    assert_eq!(status, 204);
    server.stop().await?;

    let restarted = TestServer::start(&db).await?;
    let (status, users) = restarted
        .get("/core/users/?username=alice%40example.com")
        .await?;
    assert_eq!(status, 200);
    assert_eq!(users["pagination"]["count"], 1);
    assert_eq!(
        users["results"][0]["groups_obj"][0]["name"],
        "Headscale Users"
    );
    let (_, all) = restarted.get("/core/users/").await?;
    assert_eq!(
        all["pagination"]["count"], 2,
        "admin and alice, no second bootstrap: {all}"
    );
    restarted.stop().await
}

#[tokio::test]
async fn first_start_seeds_admin_default_flows_and_embedded_outpost() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let (_, users) = server.get("/core/users/").await?;
    assert_eq!(users["results"][0]["username"], "admin");
    assert_eq!(users["results"][0]["is_superuser"], true);
    assert_eq!(users["results"][0]["groups_obj"][0]["name"], "Admins");
    for slug in [
        "default-authentication-flow",
        "default-invalidation-flow",
        "default-provider-authorization-explicit-consent",
        "default-provider-authorization-implicit-consent",
        "default-provider-invalidation-flow",
    ] {
        let (status, flow) = server.get(&format!("/flows/instances/{slug}/")).await?;
        assert_eq!(status, 200, "{slug}: {flow}");
    }
    let (_, outposts) = server.get("/outposts/instances/").await?;
    assert_eq!(
        outposts["results"][0]["managed"],
        "goauthentik.io/outposts/embedded"
    );
    server.stop().await
}

/// Asserts the headers every page carries: never cached, never framed, no foreign scripts.
fn assert_hardened(response: &reqwest::Response, what: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("cache-control"), "no-store", "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert!(
        header("content-security-policy").contains("frame-ancestors 'none'"),
        "{what}"
    );
}

#[tokio::test]
async fn setup_link_sets_the_admin_password_once_and_hands_out_a_token() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start_with(&db, BootstrapSettings::default()).await?;
    let store = db.store().await?;
    // The server issued a link at start; issue a fresh one the way a restart would.
    let link = gatehouse_web::bootstrap::setup_link(&store, &server.url)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no set-up link although admin has no password"))?;
    let token = link.split("token=").nth(1).unwrap_or_default().to_owned();

    let page = server.http.get(&link).send().await?;
    assert_eq!(page.status(), 200);
    assert_hardened(&page, "the set-up form");
    assert!(page.text().await?.contains("Choose a password"));

    let mismatch = server
        .http
        .post(format!("{}/if/flow/initial-setup/", server.url))
        .form(&[
            ("token", token.as_str()),
            ("password", "correct horse battery"),
            ("password_repeat", "other"),
        ])
        .send()
        .await?;
    assert_eq!(mismatch.status(), 400);
    assert!(mismatch.text().await?.contains("differ"));

    let done = server
        .http
        .post(format!("{}/if/flow/initial-setup/", server.url))
        .form(&[
            ("token", token.as_str()),
            ("password", "correct horse battery"),
            ("password_repeat", "correct horse battery"),
        ])
        .send()
        .await?;
    assert_eq!(done.status(), 200);
    // The page shows the admin API token: never cached or framed (#13).
    assert_hardened(&done, "the page showing the API token");
    let html = done.text().await?;
    let api_token = html
        .split("<code id=token>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap_or_default()
        .to_owned();
    let (status, users) = send(
        server
            .http
            .get(format!("{}/api/v3/core/users/", server.url))
            .bearer_auth(&api_token),
    )
    .await?;
    assert_eq!(status, 200, "{users}");

    let reused = server.http.get(&link).send().await?;
    assert_eq!(reused.status(), 403, "a set-up link works once");
    assert_hardened(&reused, "the used link's refusal");
    assert!(gatehouse_web::bootstrap::setup_link(&store, &server.url)
        .await?
        .is_none());
    store.close().await;
    server.stop().await
}

#[tokio::test]
async fn bogus_setup_tokens_get_a_page_not_an_error() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    for query in [
        "",
        "?token=",
        "?token=nope",
        "?token=%00%ff",
        &format!("?token={TOKEN}"),
    ] {
        let r = server
            .http
            .get(format!("{}/if/flow/initial-setup/{query}", server.url))
            .send()
            .await?;
        assert_eq!(r.status(), 403, "{query}");
        assert!(r.text().await?.contains("Set-up link not valid"));
    }
    server.stop().await
}
