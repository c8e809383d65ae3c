//! `gatehouse import authentik` against a stand-in Authentik (`fixtures/authentik/api_server.py`:
//! the reference deployment, every answer validated by the `authentik-client` SDK's models):
//! import with a dry run, apply, plan to zero, and the applications keep working unchanged —
//! same client ids and secrets, same redirect URIs, same proxy cookie name, same source
//! callback URLs — proven by an `openidconnect` relying party configured with the old values.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use anyhow::Context;
use gatehouse_testkit::{with_server, TestServer, TOKEN};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::oidc::{code_flow, relying_party, App, PASSWORD};

/// The stand-in Authentik's API token.
const AUTHENTIK_TOKEN: &str = "authentik-fixture-token";

/// The fixture API server, stopped when dropped.
struct Authentik {
    url: String,
    _child: tokio::process::Child,
}

impl Authentik {
    async fn start() -> anyhow::Result<Authentik> {
        let python = std::env::var("GATEHOUSE_TEST_PYTHON").context(
            "GATEHOUSE_TEST_PYTHON is not set: run scripts/test, which installs authentik-client into target/test-venv",
        )?;
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/fixtures/authentik/api_server.py"
        );
        let mut child = tokio::process::Command::new(&python)
            .args([script, "0", AUTHENTIK_TOKEN])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("running {python}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .context("the fixture did not start within 60 s")??
            .context("the fixture exited before listening")?;
        let url = line
            .strip_prefix("listening ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Authentik { url, _child: child })
    }

    /// Every object of one list of the stand-in.
    async fn list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let page: Value = reqwest::Client::new()
            .get(format!("{}/api/v3/{path}?page_size=1000", self.url))
            .bearer_auth(AUTHENTIK_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        Ok(page["results"].as_array().cloned().unwrap_or_default())
    }
}

/// Runs the `gatehouse` binary against `server` with `env` set.
async fn gatehouse(
    server: &TestServer,
    args: &[&str],
    env: &BTreeMap<String, String>,
) -> anyhow::Result<(bool, String)> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_URL", &server.url)
        .env("GATEHOUSE_TOKEN", TOKEN)
        .envs(env)
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

/// `NAME='value'` entries as the importer writes them (values may span lines; a quote inside
/// is written `'\''`, as POSIX shells read it).
fn read_env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("='") {
        let mut value = String::new();
        let mut tail = after;
        while let Some(end) = tail.find('\'') {
            value.push_str(&tail[..end]);
            if tail[end..].starts_with("'\\''") {
                value.push('\'');
                tail = &tail[end + 4..];
            } else {
                tail = &tail[end + 1..];
                break;
            }
        }
        out.insert(name.trim().to_owned(), value);
        rest = tail.trim_start_matches('\n');
    }
    out
}

fn by_name<'a>(objects: &'a [Value], key: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o[key] == json!(name))
}

#[tokio::test]
async fn an_imported_authentik_keeps_every_application_working() -> anyhow::Result<()> {
    with_server(|server| async move {
        let authentik = Authentik::start().await?;
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("authentik.yaml");
        let out_arg = out.display().to_string();
        let none = BTreeMap::new();
        let (ok, report) = gatehouse(
            &server,
            &[
                "import",
                "authentik",
                "--url",
                &authentik.url,
                "--token",
                AUTHENTIK_TOKEN,
                "--out",
                &out_arg,
                "--dry-run",
                "--gatehouse-url",
                &server.url,
                "--gatehouse-token",
                TOKEN,
            ],
            &none,
        )
        .await?;
        assert!(ok, "{report}");
        eprintln!("import report for the reference fixture:\n{report}");
        for line in [
            "9 groups",
            "8 users",
            "10 applications",
            "9 OAuth2 providers",
            "1 proxy providers",
            "3 OAuth sources",
            "Plan against",
        ] {
            assert!(
                report.contains(line),
                "the report lacks {line:?}:\n{report}"
            );
        }
        let env_path = dir.path().join("authentik.yaml.env");
        let mode = std::fs::metadata(&env_path)?.permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the secrets file is readable by its owner only"
        );
        let env = read_env_file(&std::fs::read_to_string(&env_path)?);
        let yaml = std::fs::read_to_string(&out)?;
        for secret in env.values().filter(|v| !v.is_empty()) {
            assert!(
                !yaml.contains(secret.as_str()),
                "no secret in the declarative file"
            );
        }

        let (ok, applied) = gatehouse(&server, &["apply", "-f", &out_arg], &env).await?;
        assert!(ok && applied.contains("Applied"), "{applied}");
        let (ok, again) = gatehouse(&server, &["plan", "-f", &out_arg], &env).await?;
        assert!(
            ok && again.contains("No changes"),
            "applying twice plans nothing:\n{again}"
        );

        // Every OAuth2 provider keeps its client id, secret and redirect URIs.
        let theirs = authentik.list("providers/oauth2/").await?;
        let (_, ours) = server.get("/providers/oauth2/?page_size=100").await?;
        let ours = ours["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(ours.len(), theirs.len());
        for p in &theirs {
            let name = p["name"].as_str().unwrap_or_default();
            let mine = by_name(&ours, "name", name).with_context(|| format!("provider {name}"))?;
            assert_eq!(mine["client_id"], p["client_id"], "{name}");
            assert_eq!(mine["client_secret"], p["client_secret"], "{name}");
            assert_eq!(mine["client_type"], p["client_type"], "{name}");
            let urls = |v: &Value| -> Vec<(Value, Value)> {
                v["redirect_uris"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| (u["matching_mode"].clone(), u["url"].clone()))
                    .collect()
            };
            let (mine, theirs) = (urls(mine), urls(p));
            let text = |u: &(Value, Value)| u.1.as_str().unwrap_or_default().to_owned();
            for uri in &theirs {
                let url = text(uri);
                let reported = report.contains(&format!(
                    "the redirect URI `{url}` became one entry per host"
                )) || report.contains(&format!(
                    "redirect URI left out: The regex redirect URI `{url}`"
                ));
                assert!(
                    mine.contains(uri) || reported,
                    "{name}: {uri:?} was neither kept nor reported"
                );
            }
            for uri in &mine {
                assert!(
                    theirs.contains(uri) || report.contains(&text(uri)),
                    "{name}: {uri:?} came from nowhere"
                );
            }
        }
        // The proxy provider keeps its client id, so the cookie keeps its name.
        let theirs = authentik.list("providers/proxy/").await?;
        let (_, ours) = server.get("/providers/proxy/").await?;
        let ours = ours["results"].as_array().cloned().unwrap_or_default();
        for p in &theirs {
            let name = p["name"].as_str().unwrap_or_default();
            let mine =
                by_name(&ours, "name", name).with_context(|| format!("proxy provider {name}"))?;
            assert_eq!(mine["client_id"], p["client_id"], "{name}");
            assert_eq!(mine["cookie_domain"], p["cookie_domain"], "{name}");
        }
        // Sources keep their slugs: the callback URLs registered at Google/GitHub/Facebook.
        let (_, sources) = server.get("/sources/oauth/").await?;
        for s in authentik.list("sources/oauth/").await? {
            let slug = s["slug"].as_str().unwrap_or_default();
            let mine = by_name(
                sources["results"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                "slug",
                slug,
            )
            .with_context(|| format!("source {slug}"))?;
            assert!(mine["callback_url"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("/source/oauth/callback/{slug}/")));
        }

        // A relying party configured with Grafana's old client id and secret logs alice in.
        let grafana = by_name(
            &authentik.list("providers/oauth2/").await?,
            "name",
            "Provider for Grafana",
        )
        .cloned()
        .context("the fixture has a Grafana provider")?;
        let (_, users) = server
            .get("/core/users/?username=alice%40example.com")
            .await?;
        let alice = users["results"][0]["pk"]
            .as_i64()
            .context("alice was imported")?;
        let (status, _) = server
            .post(
                &format!("/core/users/{alice}/set_password/"),
                json!({"password": PASSWORD}),
            )
            .await?;
        assert_eq!(status, 204);
        let app = App {
            provider: 0,
            client_id: grafana["client_id"].as_str().unwrap_or_default().into(),
            client_secret: grafana["client_secret"].as_str().unwrap_or_default().into(),
            callback: grafana["redirect_uris"][0]["url"]
                .as_str()
                .unwrap_or_default()
                .into(),
            issuer: format!("{}/application/o/grafana/", server.external_url),
        };
        let http = crate::oidc::http()?;
        let (_, client) = relying_party(&app, &http).await?;
        let (tokens, nonce) = code_flow(&server, &app, &client, &http, &["email"]).await?;
        let id_token = openidconnect::TokenResponse::id_token(&tokens).context("an ID token")?;
        let claims = id_token.claims(&client.id_token_verifier(), &nonce)?;
        assert_eq!(
            claims.email().map(|e| e.as_str()),
            Some("alice@example.com"),
            "the ID token verifies with the old client id and names alice"
        );
        server.stop().await
    })
    .await
}

/// Loads the fixture's Authentik tables (`schema.sql`, `reference.sql`) into a fresh database
/// of the test PostgreSQL server; `None` on the SQLite leg of the suite, which has none.
async fn authentik_database() -> anyhow::Result<Option<gatehouse_testkit::TestDb>> {
    let db = gatehouse_testkit::TestDb::new().await?;
    if db.backend() != "postgres" {
        return Ok(None);
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/authentik");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await?;
    for file in ["schema.sql", "reference.sql"] {
        let text = std::fs::read_to_string(format!("{dir}/{file}"))?;
        sqlx::raw_sql(&text)
            .execute(&mut conn)
            .await
            .with_context(|| format!("loading {file}"))?;
    }
    Ok(Some(db))
}

/// With `--database`, what only Authentik's tables hold comes along: each person logs in with
/// their old password (pbkdf2, argon2 and bcrypt_sha256 forms, rehashed to argon2id at that
/// login), alice with her old authenticator app, and Authentik's signing key is published under
/// its old `kid` and signs from now on, so tokens Authentik issued keep verifying. Runs on the
/// PostgreSQL leg of the suite, where a PostgreSQL server is at hand for Authentik's tables.
#[tokio::test]
async fn an_imported_authentik_database_carries_passwords_totp_devices_and_the_signing_key(
) -> anyhow::Result<()> {
    let Some(authentik_db) = authentik_database().await? else {
        eprintln!("Authentik's tables need PostgreSQL: this test runs on the PostgreSQL leg");
        return Ok(());
    };
    let db = gatehouse_testkit::TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let store = db.store().await?;
    {
        let authentik = Authentik::start().await?;
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("authentik.yaml");
        let out_arg = out.display().to_string();
        let (ok, report) = gatehouse(
            &server,
            &[
                "import",
                "authentik",
                "--url",
                &authentik.url,
                "--token",
                AUTHENTIK_TOKEN,
                "--database",
                &authentik_db.url,
                "--out",
                &out_arg,
            ],
            &BTreeMap::new(),
        )
        .await?;
        assert!(ok, "{report}");
        eprintln!("import report with --database:\n{report}");
        for line in [
            "4 password hashes",
            "1 TOTP devices",
            "passkey `bob@example.com",
        ] {
            assert!(
                report.contains(line),
                "the report lacks {line:?}:\n{report}"
            );
        }
        let env = read_env_file(&std::fs::read_to_string(
            dir.path().join("authentik.yaml.env"),
        )?);
        let (ok, applied) = gatehouse(&server, &["apply", "-f", &out_arg], &env).await?;
        assert!(
            ok && applied.contains("create credential alice@example.com"),
            "{applied}"
        );
        for (username, password) in [
            ("admin", "fixture-admin-pbkdf2-password"),
            ("bob@example.com", "fixture-bob-bcrypt-password"),
            ("erin@example.com", "fixture-erin-old-pbkdf2-password"),
        ] {
            let wrong = crate::flows::login_attempt(&server, &[], username, "wrong").await?;
            assert_ne!(wrong.status(), 302, "{username}: a wrong password passed");
            let right = crate::flows::login_attempt(&server, &[], username, password).await?;
            assert_eq!(
                right.status(),
                302,
                "{username} logs in with the old password"
            );
            let mut conn = store.conn().await?;
            let pk = gatehouse_store::users::find_by_username(&mut conn, username)
                .await?
                .context("imported")?
                .id;
            let stored = gatehouse_store::users::password_hash(&mut conn, pk)
                .await?
                .unwrap_or_default();
            assert!(
                stored.starts_with("$argon2id$"),
                "{username}: rehashed at login"
            );
        }
        // Authentik's signing key is published under the kid its tokens carry, and signs now.
        let kid = "d29c2dddd35814e3fb003017f782986b";
        let mut published = false;
        for _ in 0..30 {
            let jwks: Value = reqwest::get(format!("{}/application/o/grafana/jwks/", server.url))
                .await?
                .json()
                .await?;
            if jwks["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kid"] == json!(kid))
            {
                published = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        assert!(published, "the JWKS publishes the carried key {kid}");
        let (_, keys) = server.get("/oauth2/signing_keys/").await?;
        let rs256: Vec<&Value> = keys["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["algorithm"] == json!("RS256"))
            .collect();
        assert!(
            rs256
                .iter()
                .any(|k| k["kid"] == json!(kid) && k["retired"].is_null()),
            "the carried key signs RS256 now: {keys}"
        );
        assert!(
            rs256
                .iter()
                .filter(|k| k["kid"] != json!(kid))
                .all(|k| !k["retired"].is_null()),
            "the key it replaced is retired (and stays published): {keys}"
        );
        // Alice's authenticator app (the RFC 6238 test seed) still works.
        let code = gatehouse_flow::totp_for("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
            .map_err(anyhow::Error::msg)?
            .generate_current()
            .to_string();
        let answers = [
            ("uid_field", "alice@example.com"),
            ("password", "fixture-alice-argon2-password"),
            ("code", code.as_str()),
        ];
        let asked = crate::flows::login_answers(&server, &[], &answers[..2]).await?;
        assert_ne!(
            asked.status(),
            302,
            "alice's password alone is not enough: the code is asked"
        );
        let done = crate::flows::login_answers(&server, &[], &answers).await?;
        assert_eq!(
            done.status(),
            302,
            "alice logs in with her old authenticator app"
        );
        // Seeded once: after the logins (rehash, used step) the file still plans to zero.
        let (ok, again) = gatehouse(&server, &["plan", "-f", &out_arg], &env).await?;
        assert!(ok && again.contains("No changes"), "{again}");
    }
    server.stop().await
}
