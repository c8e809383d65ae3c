//! Attacks on the login flow (#13): spoofed forwarding headers, one address locking everyone
//! out behind an ingress, many addresses guessing one account, and correct sign-ins that must
//! never be throttled; and a guessable bootstrap token.

use gatehouse_testkit::{TestDb, TestServer, TOKEN};
use gatehouse_web::bootstrap::BootstrapSettings;

use crate::flows::{flow_cookie, login_attempt, start_with_headers, user_with_password};

/// What the password stage says once attempts must wait.
const WAIT: &str = "Too many attempts. Try again in";

/// A server that trusts the loopback address as its reverse proxy, as behind an ingress.
async fn behind_proxy(db: &TestDb) -> anyhow::Result<TestServer> {
    let bootstrap = BootstrapSettings {
        token: Some(TOKEN.into()),
        ..Default::default()
    };
    TestServer::start_on(db, &db.url, bootstrap, |s| {
        s.trusted_proxies =
            gatehouse_core::client_address::TrustedProxies::parse(&["127.0.0.1/32"])
                .unwrap_or_default();
    })
    .await
}

/// A wrong password for `username` through a proxy that reports `forwarded_for`; the page text.
async fn wrong(server: &TestServer, forwarded_for: &str, username: &str) -> anyhow::Result<String> {
    let r = login_attempt(
        server,
        &[("x-forwarded-for", forwarded_for)],
        username,
        "wrong password",
    )
    .await?;
    anyhow::ensure!(r.status() != 302, "a wrong password was accepted");
    Ok(r.text().await?)
}

/// The client addresses recorded on failed logins.
async fn failed_login_addresses(server: &TestServer) -> anyhow::Result<Vec<String>> {
    let (_, events) = server.get("/events/events/?action=login_failed").await?;
    Ok(events["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["client_ip"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() -> anyhow::Result<()> {
    gatehouse_testkit::with_server(|server| async move {
        // A fresh spoofed address and user name on every try: if the header counted, no limit
        // would ever apply.
        let mut refused = false;
        for i in 0..30 {
            let page = wrong(&server, &format!("198.51.100.{i}"), &format!("nobody{i}")).await?;
            if page.contains(WAIT) {
                refused = true;
                break;
            }
        }
        assert!(
            refused,
            "a spoofed X-Forwarded-For escaped the per-address limit"
        );
        let addresses = failed_login_addresses(&server).await?;
        assert!(!addresses.is_empty());
        assert!(
            addresses.iter().all(|a| a == "127.0.0.1"),
            "events recorded a spoofed address: {addresses:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_hammering_address_does_not_block_another() -> anyhow::Result<()>
{
    let db = TestDb::new().await?;
    let server = behind_proxy(&db).await?;
    user_with_password(&server, "carol").await?;
    // The attacker also prepends addresses of its own; the proxy appends the real one last.
    let mut refused = false;
    for i in 0..30 {
        let chain = format!("192.0.2.{i}, 203.0.113.66");
        if wrong(&server, &chain, &format!("nobody{i}"))
            .await?
            .contains(WAIT)
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "the hammering address was never slowed down");
    assert!(
        wrong(&server, "203.0.113.66", "carol")
            .await?
            .contains(WAIT),
        "the attacker's address is still being let try"
    );
    let ok = login_attempt(
        &server,
        &[("x-forwarded-for", "198.51.100.7")],
        "carol",
        "correct horse",
    )
    .await?;
    assert_eq!(
        ok.status(),
        302,
        "another client was blocked by the attacker"
    );
    let addresses = failed_login_addresses(&server).await?;
    assert!(
        addresses.iter().any(|a| a == "203.0.113.66"),
        "{addresses:?}"
    );
    assert!(!addresses
        .iter()
        .any(|a| a == "127.0.0.1" || a.starts_with("192.0.2.")));
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn many_addresses_guessing_one_account_are_backed_off_but_never_locked_out(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = behind_proxy(&db).await?;
    user_with_password(&server, "dave").await?;
    let mut wait_seconds = None;
    for i in 0..15 {
        let page = wrong(&server, &format!("203.0.113.{i}"), "dave").await?;
        if let Some(rest) = page.split(WAIT).nth(1) {
            wait_seconds = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
            break;
        }
    }
    let Some(wait) = wait_seconds else {
        anyhow::bail!("fifteen addresses guessed one account's password without any back-off");
    };
    // Backed off: even the right password from yet another address waits now…
    let early = login_attempt(
        &server,
        &[("x-forwarded-for", "198.51.100.9")],
        "dave",
        "correct horse",
    )
    .await?;
    if early.status() != 302 {
        assert!(early.text().await?.contains(WAIT));
    }
    // …and once the stated wait is over the account works: a back-off, not a lock.
    tokio::time::sleep(std::time::Duration::from_secs(wait + 1)).await;
    let later = login_attempt(
        &server,
        &[("x-forwarded-for", "198.51.100.9")],
        "dave",
        "correct horse",
    )
    .await?;
    assert_eq!(
        later.status(),
        302,
        "the account stayed locked after the wait"
    );
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn correct_sign_ins_in_a_row_are_never_throttled() -> anyhow::Result<()> {
    gatehouse_testkit::with_server(|server| async move {
        user_with_password(&server, "erin").await?;
        for i in 0..10 {
            let r = login_attempt(&server, &[], "erin", "correct horse").await?;
            let status = r.status();
            let body: String = if status == 302 {
                String::new()
            } else {
                r.text().await?
            };
            assert_eq!(status, 302, "sign-in {} was refused: {body}", i + 1);
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_guessable_bootstrap_token_stops_start_up_with_the_fix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_str().unwrap_or_default();
    let serve = |token: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
            ])
            .args(["--data-dir", data])
            .env("GATEHOUSE_BOOTSTRAP_TOKEN", token)
            .env_remove("GATEHOUSE_DATABASE_URL")
            .env_remove("GATEHOUSE_CONFIG")
            .kill_on_drop(true)
            .output()
    };
    for token in ["x", &"a".repeat(31)] {
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), serve(token)).await??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a {}-character token was accepted",
            token.len()
        );
        assert!(
            stderr.contains("GATEHOUSE_BOOTSTRAP_TOKEN") && stderr.contains("at least 32"),
            "{stderr}"
        );
    }
    Ok(())
}

/// Rows in the flow-state table.
async fn flow_state_rows(store: &gatehouse_store::Store) -> anyhow::Result<i64> {
    let mut conn = store.conn().await?;
    let row = gatehouse_store::sql::fetch_optional(
        &mut conn,
        "SELECT COUNT(*) AS n FROM flow_states",
        vec![],
    )
    .await?;
    Ok(row
        .map(|r| gatehouse_store::sql::RowExt::int(&r, "n"))
        .transpose()?
        .unwrap_or_default())
}

/// A client that shows redirects instead of following them and keeps no cookies.
fn plain_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Posts `fields` to the default login page with `cookie` (may be empty), as `client_ip`
/// through the trusted proxy.
async fn post_login(
    http: &reqwest::Client,
    server: &TestServer,
    client_ip: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .post(format!("{}{LOGIN}", server.url))
        .header("x-forwarded-for", client_ip)
        .header(reqwest::header::COOKIE, cookie)
        .form(fields)
        .send()
        .await?)
}

const LOGIN: &str = "/if/flow/default-authentication-flow/";

#[tokio::test]
async fn an_anonymous_flood_of_login_pages_and_failed_attempts_writes_no_flow_state(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = behind_proxy(&db).await?;
    let store = db.store().await?;
    user_with_password(&server, "dave@example.com").await?;
    let http = plain_client()?;
    let before = flow_state_rows(&store).await?;
    // The longest `next` accepted still travels in the cookie.
    let long_next = format!("/if/user/?{}", "x".repeat(2030));
    const N: usize = 60;
    for i in 0..N {
        let ip = format!("198.51.100.{}", i % 250);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", ip.parse()?);
        let query = if i % 3 == 0 {
            format!("?next={}", gatehouse_testkit::url_encode(&long_next))
        } else {
            String::new()
        };
        let (cookie, csrf) = start_with_headers(&server, &http, &query, &headers).await?;
        anyhow::ensure!(
            cookie.starts_with("gatehouse_flow=") && !csrf.is_empty(),
            "the login page gives a flow cookie and a form token"
        );
        let unknown = format!("nobody{i}@example.com");
        let r = post_login(
            &http,
            &server,
            &ip,
            &cookie,
            &[("uid_field", &unknown), ("csrf", &csrf)],
        )
        .await?;
        assert_eq!(r.status(), 200);
        let cookie = flow_cookie(&r).unwrap_or(cookie);
        assert!(
            r.text().await?.contains("name=password"),
            "on to the password"
        );
        if i % 6 == 0 {
            let r = post_login(
                &http,
                &server,
                &ip,
                &cookie,
                &[("password", "guess"), ("csrf", &csrf)],
            )
            .await?;
            assert_eq!(r.status(), 200, "a wrong password is not a login");
        }
        // A post with no cookie at all starts a run, and writes nothing either.
        let r = post_login(
            &http,
            &server,
            &ip,
            "",
            &[("uid_field", "x"), ("csrf", "x")],
        )
        .await?;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        flow_state_rows(&store).await?,
        before,
        "{N} anonymous login pages and {N} failed identifications wrote no flow state"
    );

    // Real logins still work: the run travels in the cookie between its pages.
    let r = login_attempt(
        &server,
        &[("x-forwarded-for", "203.0.113.7")],
        "dave@example.com",
        "correct horse",
    )
    .await?;
    assert_eq!(r.status(), 302, "the right password logs in");
    assert_eq!(flow_state_rows(&store).await?, before);

    // A replica given the same secret key continues a run another one started; a replica
    // keeping runs for a second lets one expire.
    let short = TestServer::start_on(
        &db,
        &db.url,
        BootstrapSettings {
            token: Some(TOKEN.into()),
            ..Default::default()
        },
        |s| {
            s.trusted_proxies =
                gatehouse_core::client_address::TrustedProxies::parse(&["127.0.0.1/32"])
                    .unwrap_or_default();
            s.flow_state_age = chrono::Duration::seconds(1);
        },
    )
    .await?;
    let ip = "203.0.113.8";
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse()?);
    let (cookie, csrf) = start_with_headers(&server, &http, "", &headers).await?;
    let r = post_login(
        &http,
        &short,
        ip,
        &cookie,
        &[("uid_field", "dave@example.com"), ("csrf", &csrf)],
    )
    .await?;
    assert_eq!(r.status(), 200);
    let from_short = flow_cookie(&r).unwrap_or_default();
    let html = r.text().await?;
    assert!(
        html.contains("name=password") && !html.contains("started again"),
        "another replica continues the run: {html}"
    );
    let r = post_login(
        &http,
        &server,
        ip,
        &from_short,
        &[("password", "correct horse"), ("csrf", &csrf)],
    )
    .await?;
    assert_eq!(r.status(), 302, "and the first one finishes it");

    let (cookie, csrf) = start_with_headers(&short, &http, "", &headers).await?;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let r = post_login(
        &http,
        &short,
        ip,
        &cookie,
        &[("uid_field", "dave@example.com"), ("csrf", &csrf)],
    )
    .await?;
    assert_eq!(r.status(), 200, "an expired run is a page, not an error");
    let html = r.text().await?;
    assert!(
        html.contains("expired or was interrupted") && html.contains("uid_field"),
        "an expired cookie starts again with a message: {html}"
    );
    short.stop().await?;

    // An altered cookie is refused with a message, never opened and never a login.
    let (cookie, csrf) = start_with_headers(&server, &http, "", &headers).await?;
    let r = post_login(
        &http,
        &server,
        ip,
        &cookie,
        &[("uid_field", "dave@example.com"), ("csrf", &csrf)],
    )
    .await?;
    let identified = flow_cookie(&r).unwrap_or_default();
    let mut bytes = identified.into_bytes();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes)?;
    let r = post_login(
        &http,
        &server,
        ip,
        &tampered,
        &[("password", "correct horse"), ("csrf", &csrf)],
    )
    .await?;
    assert_eq!(r.status(), 200, "a tampered cookie is a page, not a login");
    let html = r.text().await?;
    assert!(
        html.contains("could not be read") && html.contains("uid_field"),
        "a tampered cookie starts again with a message: {html}"
    );
    assert_eq!(flow_state_rows(&store).await?, before);
    server.stop().await
}
