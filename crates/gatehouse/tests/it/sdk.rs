//! The `authentik-client` SDK from PyPI (strict models) drives the API; a response it rejects
//! fails the test. `scripts/test` installs it and sets `GATEHOUSE_TEST_PYTHON`.

use anyhow::Context;
use gatehouse_testkit::{with_server, TOKEN};

#[tokio::test]
async fn authentik_client_sdk_accepts_every_response() -> anyhow::Result<()> {
    with_server(|server| async move {
        let python = std::env::var("GATEHOUSE_TEST_PYTHON").context(
            "GATEHOUSE_TEST_PYTHON is not set: run scripts/test, which installs authentik-client into target/test-venv",
        )?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/authentik_client_check.py");
        let output = tokio::process::Command::new(&python)
            .arg(script)
            .arg(&server.url)
            .arg(TOKEN)
            .output()
            .await
            .with_context(|| format!("running {python}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "SDK check failed\n{stdout}\n{stderr}");
        assert!(stdout.contains("authentik-client check passed"), "{stdout}");
        server.stop().await
    })
    .await
}

/// Runs one phase of `sdk/policies_stages_check.py` against `server`.
async fn policies_stages_phase(
    server: &gatehouse_testkit::TestServer,
    phase: &str,
) -> anyhow::Result<()> {
    let python = std::env::var("GATEHOUSE_TEST_PYTHON").context(
        "GATEHOUSE_TEST_PYTHON is not set: run scripts/test, which installs authentik-client into target/test-venv",
    )?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/policies_stages_check.py"
    );
    let output = tokio::process::Command::new(&python)
        .args([script, phase, &server.url, TOKEN])
        .output()
        .await
        .with_context(|| format!("running {python}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(
        output.status.success() && stdout.contains(&format!("{phase} passed")),
        "SDK phase {phase} failed\n{stdout}\n{stderr}"
    );
    Ok(())
}

/// The SDK creates a reputation policy, binds it at the password stage it finds by listing the
/// flow's stage bindings, and the next login feels it; deleting the scores it lists unblocks at
/// once, and deleting the policy ends it. Stages of each kind and a flow built from them are
/// created, changed and deleted on the way.
#[tokio::test]
async fn authentik_client_sdk_binds_a_reputation_policy_at_a_stage_and_the_login_feels_it(
) -> anyhow::Result<()> {
    use crate::flows::{login_attempt, user_with_password};
    with_server(|server| async move {
        user_with_password(&server, "alice@example.com").await?;
        policies_stages_phase(&server, "bind").await?;
        let right = login_attempt(&server, &[], "alice@example.com", "correct horse").await?;
        assert_eq!(
            right.status(),
            302,
            "no failures yet: the password is asked and accepted"
        );
        let wrong = login_attempt(&server, &[], "alice@example.com", "wrong horse").await?;
        assert_ne!(wrong.status(), 302);
        let blocked = login_attempt(&server, &[], "alice@example.com", "correct horse").await?;
        assert_ne!(
            blocked.status(),
            302,
            "one failure reaches the threshold of -1: the password stage is closed"
        );
        policies_stages_phase(&server, "unblock").await?;
        let unblocked = login_attempt(&server, &[], "alice@example.com", "correct horse").await?;
        assert_eq!(
            unblocked.status(),
            302,
            "deleting the scores unblocks at once"
        );
        policies_stages_phase(&server, "unbind").await?;
        policies_stages_phase(&server, "read").await?;
        for _ in 0..3 {
            login_attempt(&server, &[], "alice@example.com", "wrong horse").await?;
        }
        let free = login_attempt(&server, &[], "alice@example.com", "correct horse").await?;
        assert_eq!(
            free.status(),
            302,
            "without the policy, failures close nothing"
        );
        server.stop().await
    })
    .await
}
