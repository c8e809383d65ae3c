//! The real `gatehouse` binary against a running server: admin tasks, plan/apply, config
//! validation, migrations; errors print a message and exit non-zero.

use std::process::Output;

use gatehouse_testkit::{with_server, TestServer, TOKEN};

pub(crate) async fn gatehouse(
    server: Option<&TestServer>,
    args: &[&str],
) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .env_remove("GATEHOUSE_URL")
        .env_remove("GATEHOUSE_TOKEN");
    if let Some(server) = server {
        command
            .env("GATEHOUSE_URL", &server.url)
            .env("GATEHOUSE_TOKEN", TOKEN);
    }
    Ok(command.output().await?)
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn admin_tasks_from_the_command_line() -> anyhow::Result<()> {
    with_server(|server| async move {
        let s = Some(&server);
        let out = gatehouse(s, &["group", "create", "Family"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = gatehouse(
            s,
            &[
                "user",
                "create",
                "alice@example.com",
                "--name",
                "Alice Example",
                "--email",
                "alice@example.com",
            ],
        )
        .await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = gatehouse(s, &["group", "add-user", "alice@example.com", "Family"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = gatehouse(s, &["user", "list"]).await?;
        assert!(
            stdout(&out).contains("alice@example.com") && stdout(&out).contains("Family"),
            "{}",
            stdout(&out)
        );
        let out = gatehouse(s, &["user", "list", "--json"]).await?;
        let users: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(users.as_array().map(Vec::len), Some(2));

        let out = gatehouse(s, &["group", "add-user", "nobody", "Family"]).await?;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("no user named `nobody`"),
            "{}",
            stderr(&out)
        );
        let out = gatehouse(s, &["user", "create", "alice@example.com"]).await?;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("username: an object with this username already exists"),
            "{}",
            stderr(&out)
        );

        let out = gatehouse(s, &["token", "create", "ci-token", "--days", "7"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let key = stdout(&out)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        assert_eq!(key.len(), 43, "{}", stdout(&out));
        let out = gatehouse(s, &["token", "revoke", "ci-token"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = gatehouse(
            s,
            &["token", "create", "script", "--intent", "app_password"],
        )
        .await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = gatehouse(s, &["token", "create", "odd", "--intent", "sudo"]).await?;
        assert!(!out.status.success(), "an unknown intent is refused");
        assert!(stderr(&out).contains("intent"), "{}", stderr(&out));
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn plan_apply_and_invitations_from_the_command_line() -> anyhow::Result<()> {
    with_server(|server| async move {
        let s = Some(&server);
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/homelab.yaml");
        let out = gatehouse(s, &["apply", "-f", file]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("+ create application grafana"),
            "{}",
            stdout(&out)
        );
        let out = gatehouse(s, &["plan", "-f", file]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));

        let out = gatehouse(s, &["invite", "create", "Headscale Users", "--days", "7"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let link = stdout(&out).trim().to_owned();
        assert!(
            link.starts_with(&format!(
                "{}/if/flow/invitation-enrollment/?itoken=",
                server.external_url
            )),
            "{link}"
        );
        let out = gatehouse(s, &["invite", "list"]).await?;
        assert!(stdout(&out).contains("Headscale Users"), "{}", stdout(&out));
        let name = stdout(&out)
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        let out = gatehouse(s, &["invite", "revoke", &name]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = gatehouse(s, &["invite", "create", "No Such Group"]).await?;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("no group named `No Such Group`"),
            "{}",
            stderr(&out)
        );
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn client_errors_explain_the_fix() -> anyhow::Result<()> {
    let out = gatehouse(None, &["user", "list"]).await?;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no API token"), "{}", stderr(&out));
    let out = gatehouse(
        None,
        &[
            "user",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "x",
        ],
    )
    .await?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach the server"),
        "{}",
        stderr(&out)
    );
    let out = gatehouse(
        None,
        &["plan", "-f", "/nonexistent/file.yaml", "--token", "x"],
    )
    .await?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read /nonexistent/file.yaml"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[tokio::test]
async fn config_validate_names_file_line_and_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("gatehouse.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:9000\"\nexternal_url = \"https://auth.example.com\"\n",
    )?;
    let out = gatehouse(
        None,
        &["config", "validate", good.to_str().unwrap_or_default()],
    )
    .await?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is valid"));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "listen: 127.0.0.1:9000\nlisten_adress: 0.0.0.0:1\n")?;
    let out = gatehouse(
        None,
        &["config", "validate", bad.to_str().unwrap_or_default()],
    )
    .await?;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml:2") && err.contains("listen_adress"),
        "{err}"
    );
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(&wrong, "listen = \"not an address\"\n")?;
    let out = gatehouse(
        None,
        &["config", "validate", wrong.to_str().unwrap_or_default()],
    )
    .await?;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not HOST:PORT"), "{}", stderr(&out));
    Ok(())
}

#[tokio::test]
async fn migrate_check_reports_pending_migrations() -> anyhow::Result<()> {
    let db = gatehouse_testkit::TestDb::new().await?;
    let out = gatehouse(None, &["migrate", "--check", "--database", &db.url]).await?;
    assert!(
        !out.status.success(),
        "a fresh database has pending migrations"
    );
    assert!(stderr(&out).contains("pending"), "{}", stderr(&out));
    let out = gatehouse(None, &["migrate", "--database", &db.url]).await?;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = gatehouse(None, &["migrate", "--check", "--database", &db.url]).await?;
    assert!(out.status.success(), "{}", stderr(&out));
    Ok(())
}

#[tokio::test]
async fn flow_explain_shows_why_a_reputation_policy_does_not_deny_anonymous_visitors(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let doc = "policies:\n  - name: brute-force-protection\n    kind: reputation\n    settings: {threshold: -5}\nflows:\n  - slug: default-authentication-flow\n    designation: authentication\n    bindings: [{policy: brute-force-protection, order: 0}]\n";
        let (status, body) = server.post("/declarative/apply/", serde_json::json!({"document": doc})).await?;
        assert_eq!(status, 200, "{body}");
        let out = gatehouse(Some(&server), &["flow", "explain", "default-authentication-flow"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("for an anonymous visitor from 127.0.0.1: pass"), "{text}");
        assert!(text.contains("policy brute-force-protection → not applicable (no username to score yet)"), "{text}");
        assert!(text.contains("stage default-authentication-password (password, order 20): shown"), "{text}");
        let out = gatehouse(Some(&server), &["flow", "explain", "default-authentication-flow", "--user", "nobody"]).await?;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("no user named `nobody`"), "{}", stderr(&out));
        server.stop().await
    })
    .await
}

#[tokio::test]
async fn break_glass_entries_are_made_by_the_cli_and_checked_in_settings() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let hash = |username: &'static str, password: &'static str| async move {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["break-glass", "hash", username])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(format!("{password}\n").as_bytes()).await?;
        }
        anyhow::Ok(child.wait_with_output().await?)
    };
    let out = hash("rescue", "short").await?;
    assert!(!out.status.success(), "a short password is refused");
    assert!(stderr(&out).contains("at least 12"), "{}", stderr(&out));
    let out = hash("rescue", "rescue-me-in-an-outage").await?;
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = stdout(&out).trim().to_owned();
    assert!(entry.starts_with("rescue:$argon2id$"), "{entry}");

    let dir = tempfile::tempdir()?;
    let good = dir.path().join("gatehouse.toml");
    std::fs::write(&good, format!("outpost_break_glass = [{entry:?}]\n"))?;
    let out = gatehouse(
        None,
        &["config", "validate", good.to_str().unwrap_or_default()],
    )
    .await?;
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "outpost_break_glass = [\"rescue:plaintext\"]\n")?;
    let out = gatehouse(
        None,
        &["config", "validate", bad.to_str().unwrap_or_default()],
    )
    .await?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an argon2id PHC string"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[tokio::test]
async fn outposts_are_created_given_a_token_and_refuse_to_run_misconfigured() -> anyhow::Result<()>
{
    with_server(|server| async move {
        crate::outpost::protect(&server, "https://app.example.com").await?;
        let s = Some(&server);
        let out = gatehouse(s, &["outpost", "create", "edge", "--provider", "App"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("created outpost edge serving App"),
            "{}",
            stdout(&out)
        );
        let out = gatehouse(s, &["outpost", "create", "edge2", "--provider", "Nope"]).await?;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("Nope"), "{}", stderr(&out));
        let out = gatehouse(s, &["outpost", "token", "edge"]).await?;
        assert!(out.status.success(), "{}", stderr(&out));
        let key = stdout(&out).lines().nth(1).unwrap_or_default().to_owned();
        assert_eq!(key.len(), 43, "{}", stdout(&out));
        let out = gatehouse(s, &["outpost", "list"]).await?;
        let listed = stdout(&out);
        assert!(
            listed.contains("edge") && listed.contains("standalone") && listed.contains("App"),
            "{listed}"
        );
        assert!(listed.contains("embedded"), "{listed}");
        let out = gatehouse(s, &["outpost", "token", "gatehouse Embedded Outpost"]).await?;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("needs no token"), "{}", stderr(&out));

        // Running one: no token, a wrong token, a bad server URL — each a clear error.
        let run = [
            "outpost",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ];
        let out = gatehouse(None, &[&run[..], &["--server", &server.url]].concat()).await?;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("the outpost needs its token"),
            "{}",
            stderr(&out)
        );
        let out = gatehouse(
            None,
            &[&run[..], &["--server", &server.url, "--token", "wrong"]].concat(),
        )
        .await?;
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("refused the outpost"),
            "{}",
            stderr(&out)
        );
        let out = gatehouse(
            None,
            &[
                &run[..],
                &["--server", "ftp://x", &format!("--token={key}")],
            ]
            .concat(),
        )
        .await?;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("server URL"), "{}", stderr(&out));
        let out = gatehouse(
            None,
            &[
                &run[..],
                &[
                    "--server",
                    &server.url,
                    &format!("--token={key}"),
                    "--grace",
                    "soon",
                ],
            ]
            .concat(),
        )
        .await?;
        assert!(!out.status.success());
        assert!(stderr(&out).contains("grace"), "{}", stderr(&out));
        server.stop().await
    })
    .await
}
