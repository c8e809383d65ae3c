//! Bad input to the login pages, over plain HTTP: tampered or expired flow state restarts the
//! flow with a message, a missing anti-forgery token is refused, oversized fields are named,
//! and `next` never leaves the site.

use gatehouse_testkit::{with_server, TestServer};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

const FLOW: &str = "/if/flow/default-authentication-flow/";

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(Policy::none())
        .build()?)
}

/// Starts the flow; returns (flow cookie, csrf token).
async fn start(
    server: &TestServer,
    http: &reqwest::Client,
    query: &str,
) -> anyhow::Result<(String, String)> {
    let response = http
        .get(format!("{}{FLOW}{query}", server.url))
        .send()
        .await?;
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse_flow="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let html = response.text().await?;
    let csrf = html
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    Ok((cookie, csrf))
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() -> anyhow::Result<()> {
    with_server(|server| async move {
        let http = client()?;
        let (cookie, _) = start(&server, &http, "").await?;
        let r = http
            .post(format!("{}{FLOW}", server.url))
            .header(COOKIE, &cookie)
            .form(&[("uid_field", "admin")])
            .send()
            .await?;
        assert_eq!(r.status(), 403);
        assert!(r.text().await?.contains("security token"));
        let r = http
            .post(format!("{}{FLOW}", server.url))
            .header(COOKIE, &cookie)
            .form(&[("uid_field", "admin"), ("csrf", "forged")])
            .send()
            .await?;
        assert_eq!(r.status(), 403);
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn tampered_or_unknown_flow_state_restarts_with_a_message() -> anyhow::Result<()> {
    with_server(|server| async move {
        let http = client()?;
        for cookie in [
            format!("gatehouse_flow={}", "A".repeat(43)),
            "gatehouse_flow=not-a-token".to_owned(),
            "gatehouse_flow=%00%ff; gatehouse_session=garbage".to_owned(),
        ] {
            let r = http
                .post(format!("{}{FLOW}", server.url))
                .header(COOKIE, &cookie)
                .form(&[("uid_field", "admin"), ("csrf", "x")])
                .send()
                .await?;
            assert_eq!(r.status(), 200, "{cookie}");
            let html = r.text().await?;
            assert!(html.contains("started again"), "{cookie}: {html}");
            assert!(html.contains("uid_field"), "the first stage is shown again");
        }
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn oversized_fields_are_a_400_naming_the_field() -> anyhow::Result<()> {
    with_server(|server| async move {
        let http = client()?;
        let (cookie, csrf) = start(&server, &http, "").await?;
        let r = http
            .post(format!("{}{FLOW}", server.url))
            .header(COOKIE, &cookie)
            .form(&[
                ("uid_field", "a".repeat(10_000).as_str()),
                ("csrf", csrf.as_str()),
            ])
            .send()
            .await?;
        assert_eq!(r.status(), 400);
        assert!(r
            .text()
            .await?
            .contains("uid_field: Ensure this field has no more than 254 characters."));
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn next_never_leaves_the_site() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (status, user) = server
            .post(
                "/core/users/",
                json!({"username": "bob@example.com", "name": "Bob"}),
            )
            .await?;
        assert_eq!(status, 201, "{user}");
        server
            .post(
                &format!("/core/users/{}/set_password/", user["pk"]),
                json!({"password": "correct horse"}),
            )
            .await?;
        for next in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
        ] {
            let http = client()?;
            let query = format!("?next={}", gatehouse_testkit::url_encode(next));
            let (cookie, csrf) = start(&server, &http, &query).await?;
            let post = |fields: Vec<(&'static str, String)>| {
                http.post(format!("{}{FLOW}", server.url))
                    .header(COOKIE, &cookie)
                    .form(&fields)
                    .send()
            };
            post(vec![
                ("uid_field", "bob@example.com".into()),
                ("csrf", csrf.clone()),
            ])
            .await?;
            let r = post(vec![
                ("password", "correct horse".into()),
                ("csrf", csrf.clone()),
            ])
            .await?;
            assert_eq!(r.status(), 302, "{next}");
            assert_eq!(
                r.headers().get(LOCATION).and_then(|v| v.to_str().ok()),
                Some("/if/user/"),
                "{next}"
            );
        }
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn unknown_flows_and_unauthenticated_user_pages_answer_clearly() -> anyhow::Result<()> {
    with_server(|server| async move {
        let http = client()?;
        let r = http
            .get(format!("{}/if/flow/no-such-flow/", server.url))
            .send()
            .await?;
        assert_eq!(r.status(), 404);
        assert!(r.text().await?.contains("no-such-flow"));
        let r = http.get(format!("{}/if/user/", server.url)).send().await?;
        assert_eq!(r.status(), 302);
        assert!(r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .contains("default-authentication-flow"));
        let r = http
            .get(format!("{}/if/user/", server.url))
            .header(COOKIE, format!("gatehouse_session={}", "B".repeat(43)))
            .send()
            .await?;
        assert_eq!(r.status(), 302, "an unknown session id is not a session");
        server.stop().await
    })
    .await
}
