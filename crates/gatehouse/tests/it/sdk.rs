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
