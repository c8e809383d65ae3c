//! Attacks on the login flow (#13): spoofed forwarding headers, one address locking everyone
//! out behind an ingress, many addresses guessing one account, and correct sign-ins that must
//! never be throttled; and a guessable bootstrap token.

use gatehouse_testkit::{TestDb, TestServer, TOKEN};
use gatehouse_web::bootstrap::BootstrapSettings;

use crate::flows::{login_attempt, user_with_password};

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
