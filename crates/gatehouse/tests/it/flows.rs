//! Bad input to the login pages, over plain HTTP: tampered or expired flow state restarts the
//! flow with a message, a missing anti-forgery token is refused, oversized fields are named,
//! and `next` never leaves the site.

use anyhow::Context;
use gatehouse_testkit::{with_server, TestServer};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

const FLOW: &str = "/if/flow/default-authentication-flow/";

pub(crate) fn client() -> anyhow::Result<reqwest::Client> {
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
    start_with_headers(server, http, query, &reqwest::header::HeaderMap::new()).await
}

/// The flow cookie (`gatehouse_flow=…`) a response sets: an anonymous run travels in it, so
/// each answer carries the run's new state and the next request must send it back.
pub(crate) fn flow_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse_flow="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Starts the flow with extra request headers; returns (flow cookie, csrf token).
pub(crate) async fn start_with_headers(
    server: &TestServer,
    http: &reqwest::Client,
    query: &str,
    headers: &reqwest::header::HeaderMap,
) -> anyhow::Result<(String, String)> {
    let response = http
        .get(format!("{}{FLOW}{query}", server.url))
        .headers(headers.clone())
        .send()
        .await?;
    let cookie = flow_cookie(&response).unwrap_or_default();
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
            "gatehouse_flow=s1.".to_owned(),
            format!("gatehouse_flow=s1.{}", "A".repeat(400)),
            "gatehouse_flow=s1.!!!".to_owned(),
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
            let post = |cookie: String, fields: Vec<(&'static str, String)>| {
                http.post(format!("{}{FLOW}", server.url))
                    .header(COOKIE, cookie)
                    .form(&fields)
                    .send()
            };
            let identified = post(
                cookie.clone(),
                vec![
                    ("uid_field", "bob@example.com".into()),
                    ("csrf", csrf.clone()),
                ],
            )
            .await?;
            let cookie = flow_cookie(&identified).unwrap_or(cookie);
            let r = post(
                cookie,
                vec![("password", "correct horse".into()), ("csrf", csrf.clone())],
            )
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

/// Logs in over plain HTTP; returns the session cookie (`gatehouse_session=…`).
pub(crate) async fn http_login(
    server: &TestServer,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let r = login_attempt(server, &[], username, password).await?;
    anyhow::ensure!(
        r.status() == 302,
        "login of {username} failed: {}",
        r.status()
    );
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("gatehouse_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))
}

/// One login over plain HTTP, each request carrying `headers` (e.g. a proxy's
/// `X-Forwarded-For`); returns the answer to the password: 302 when it was right.
pub(crate) async fn login_attempt(
    server: &TestServer,
    headers: &[(&str, &str)],
    username: &str,
    password: &str,
) -> anyhow::Result<reqwest::Response> {
    login_answers(
        server,
        headers,
        &[("uid_field", username), ("password", password)],
    )
    .await
}

/// Walks the default authentication flow posting one `(field, value)` answer per stage (with
/// the flow's CSRF token); returns the answer to the last one.
pub(crate) async fn login_answers(
    server: &TestServer,
    headers: &[(&str, &str)],
    answers: &[(&str, &str)],
) -> anyhow::Result<reqwest::Response> {
    let http = client()?;
    let mut extra = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        extra.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
            value.parse()?,
        );
    }
    let (mut cookie, csrf) = start_with_headers(server, &http, "", &extra).await?;
    let (last, rest) = answers.split_last().context("at least one answer")?;
    for (field, value) in rest {
        let answer = http
            .post(format!("{}{FLOW}", server.url))
            .headers(extra.clone())
            .header(COOKIE, cookie.clone())
            .form(&[(*field, *value), ("csrf", csrf.as_str())])
            .send()
            .await?;
        cookie = flow_cookie(&answer).unwrap_or(cookie);
    }
    Ok(http
        .post(format!("{}{FLOW}", server.url))
        .headers(extra.clone())
        .header(COOKIE, cookie)
        .form(&[(last.0, last.1), ("csrf", csrf.as_str())])
        .send()
        .await?)
}

async fn user_page_status(server: &TestServer, cookie: &str) -> anyhow::Result<u16> {
    Ok(client()?
        .get(format!("{}/if/user/", server.url))
        .header(COOKIE, cookie)
        .send()
        .await?
        .status()
        .as_u16())
}

pub(crate) async fn user_with_password(server: &TestServer, username: &str) -> anyhow::Result<i64> {
    let (status, user) = server
        .post(
            "/core/users/",
            json!({"username": username, "name": username}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{user}");
    let pk = user["pk"].as_i64().unwrap_or_default();
    server
        .post(
            &format!("/core/users/{pk}/set_password/"),
            json!({"password": "correct horse"}),
        )
        .await?;
    Ok(pk)
}

#[tokio::test]
async fn revocation_through_another_server_on_the_same_database_is_seen_at_once(
) -> anyhow::Result<()> {
    let db = gatehouse_testkit::TestDb::new().await?;
    let a = TestServer::start(&db).await?;
    let b = TestServer::start(&db).await?;
    user_with_password(&a, "carol@example.com").await?;
    let cookie = http_login(&a, "carol@example.com", "correct horse").await?;
    assert_eq!(user_page_status(&a, &cookie).await?, 200);
    let (_, sessions) = b
        .get("/core/authenticated_sessions/?user__username=carol%40example.com")
        .await?;
    assert_eq!(sessions["pagination"]["count"], 1, "{sessions}");
    let uuid = sessions["results"][0]["uuid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _) = b
        .delete(&format!("/core/authenticated_sessions/{uuid}/"))
        .await?;
    assert_eq!(status, 204);
    assert_eq!(
        user_page_status(&a, &cookie).await?,
        302,
        "server A no longer accepts the revoked session"
    );
    a.stop().await?;
    b.stop().await
}

#[tokio::test]
async fn deactivating_a_user_ends_their_sessions() -> anyhow::Result<()> {
    with_server(|server| async move {
        let pk = user_with_password(&server, "dan@example.com").await?;
        let cookie = http_login(&server, "dan@example.com", "correct horse").await?;
        assert_eq!(user_page_status(&server, &cookie).await?, 200);
        let (status, _) = server
            .patch(&format!("/core/users/{pk}/"), json!({"is_active": false}))
            .await?;
        assert_eq!(status, 200);
        assert_eq!(user_page_status(&server, &cookie).await?, 302);
        let (_, sessions) = server.get("/core/authenticated_sessions/").await?;
        assert_eq!(sessions["pagination"]["count"], 0);
        server.stop().await
    })
    .await
}

/// A public client `kubernetes` registered for `http://localhost:8000`; returns the start of
/// its authorize URL.
async fn kubernetes(server: &TestServer) -> anyhow::Result<String> {
    let (flow, invalidation) = crate::provider_flows(server, "implicit").await?;
    let (_, provider) = server
        .post(
            "/providers/oauth2/",
            json!({"name": "Kubernetes", "client_type": "public", "client_id": "kubernetes",
                   "authorization_flow": flow, "invalidation_flow": invalidation,
                   "redirect_uris": [{"matching_mode": "strict", "url": "http://localhost:8000"}]}),
        )
        .await?;
    server
        .post(
            "/core/applications/",
            json!({"name": "Kubernetes", "slug": "kubernetes", "provider": provider["pk"]}),
        )
        .await?;
    Ok(format!(
        "{}/application/o/authorize/?client_id=kubernetes&response_type=code",
        server.url
    ))
}

#[tokio::test]
async fn authorize_refuses_unregistered_redirect_uris_without_redirecting() -> anyhow::Result<()> {
    with_server(|server| async move {
        let base = kubernetes(&server).await?;
        let http = client()?;
        for bad in [
            "https://evil.example/cb",
            "http://localhost:8000/extra",
            "http://localhost:8000.evil.example",
        ] {
            let r = http
                .get(format!(
                    "{base}&redirect_uri={}",
                    gatehouse_testkit::url_encode(bad)
                ))
                .send()
                .await?;
            assert_eq!(r.status(), 400, "{bad}");
            assert!(
                r.headers().get(LOCATION).is_none(),
                "never redirect to {bad}"
            );
            assert!(r.text().await?.contains("is not registered"));
        }
        let r = http
            .get(format!(
                "{}/application/o/authorize/?client_id=nope&response_type=code",
                server.url
            ))
            .send()
            .await?;
        assert_eq!(r.status(), 400);
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_public_client_without_pkce_gets_an_error_at_its_redirect_uri() -> anyhow::Result<()> {
    with_server(|server| async move {
        let base = kubernetes(&server).await?;
        let r = client()?
            .get(format!(
                "{base}&redirect_uri={}&state=s1",
                gatehouse_testkit::url_encode("http://localhost:8000")
            ))
            .send()
            .await?;
        assert_eq!(r.status(), 302);
        let location = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            location.starts_with("http://localhost:8000?error=invalid_request"),
            "{location}"
        );
        assert!(location.contains("&state=s1&iss="), "{location}");
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn changing_the_password_logs_out_other_browsers() -> anyhow::Result<()> {
    with_server(|server| async move {
        user_with_password(&server, "erin@example.com").await?;
        let first = http_login(&server, "erin@example.com", "correct horse").await?;
        let second = http_login(&server, "erin@example.com", "correct horse").await?;
        let http = client()?;
        let page = http
            .get(format!("{}/if/user/password/", server.url))
            .header(COOKIE, &first)
            .send()
            .await?
            .text()
            .await?;
        let csrf = page
            .split("name=csrf value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let change = |current: &'static str| {
            http.post(format!("{}/if/user/password/", server.url))
                .header(COOKIE, &first)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("current", current),
                    ("password", "a brand new password"),
                    ("password_repeat", "a brand new password"),
                ])
                .send()
        };
        let r = change("wrong").await?;
        assert_eq!(r.status(), 400);
        assert!(r.text().await?.contains("current password is not right"));
        let r = change("correct horse").await?;
        assert_eq!(r.status(), 200);
        assert_eq!(
            user_page_status(&server, &first).await?,
            200,
            "this browser stays logged in"
        );
        assert_eq!(
            user_page_status(&server, &second).await?,
            302,
            "the other browser is logged out"
        );
        http_login(&server, "erin@example.com", "a brand new password").await?;
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn a_failing_expression_yields_the_bindings_failure_result() -> anyhow::Result<()> {
    with_server(|server| async move {
        for (failure_result, expected) in [(true, "pass"), (false, "fail")] {
            let doc = format!(
                "policies:\n  - name: broken\n    kind: expression\n    settings: {{expression: 'this is not ( cel'}}\nflows:\n  - slug: default-authentication-flow\n    designation: authentication\n    bindings: [{{policy: broken, order: 0, failure_result: {failure_result}}}]\n"
            );
            let (status, body) = server.post("/declarative/apply/", json!({"document": doc})).await?;
            assert_eq!(status, 200, "{body}");
            let (_, explained) = server.get("/flows/instances/default-authentication-flow/explain/").await?;
            let result = explained["result"].as_str().unwrap_or_default();
            assert!(result.starts_with(expected), "failure_result {failure_result}: {explained}");
            assert!(explained["bindings"][0]["reason"].as_str().unwrap_or_default().contains("failure result applies"), "{explained}");
        }
        server.stop().await
    })
    .await
}
