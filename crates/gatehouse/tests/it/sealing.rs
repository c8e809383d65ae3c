//! Secrets at rest (#13 L4): what the database holds is sealed with the server's secret key and
//! bound to its row; a server with another key refuses to start; plain text from before sealing
//! is sealed at start; `gatehouse secret-key rotate` moves everything to a new key or nothing.
//! And signing-key readiness (#13 L10): a server that says it is ready signs at once.

use std::time::Duration;

use gatehouse_store::sql::{self, RowExt};
use gatehouse_testkit::{TestDb, TestServer};
use serde_json::json;

use crate::oidc::{setup, token_request, App};

/// One text column of every row `query` returns (the column is named `v`), read behind the
/// server's back.
async fn raw(db: &TestDb, query: &str) -> anyhow::Result<Vec<String>> {
    let store = db.store().await?;
    let mut conn = store.conn().await?;
    let rows = sql::fetch_all(&mut conn, query, Vec::new()).await?;
    let values = rows.iter().map(|r| r.text("v")).collect::<Result<_, _>>()?;
    drop(conn);
    store.close().await;
    Ok(values)
}

/// Runs `statement` on the database behind the server's back.
async fn execute(db: &TestDb, statement: &str, values: Vec<sql::Value>) -> anyhow::Result<u64> {
    let store = db.store().await?;
    let mut conn = store.conn().await?;
    let changed = sql::execute(&mut conn, statement, values).await?;
    drop(conn);
    store.close().await;
    Ok(changed)
}

async fn stored_secret(db: &TestDb, client_id: &str) -> anyhow::Result<String> {
    let rows = raw(
        db,
        &format!("SELECT client_secret AS v FROM providers WHERE client_id = '{client_id}'"),
    )
    .await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no provider with client id {client_id}"))
}

/// A client-credentials exchange: the status and whether a token came back.
async fn client_credentials(
    server: &TestServer,
    app: &App,
    secret: &str,
) -> anyhow::Result<(u16, bool)> {
    let (status, body) = token_request(
        server,
        app,
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        secret,
    )
    .await?;
    Ok((status, body["access_token"].is_string()))
}

/// A second confidential client next to `setup`'s.
async fn other_client(server: &TestServer) -> anyhow::Result<App> {
    let (flow, invalidation) = crate::provider_flows(server, "implicit").await?;
    let (status, provider) = server
        .post(
            "/providers/oauth2/",
            json!({"name": "Wiki", "client_type": "confidential", "authorization_flow": flow, "invalidation_flow": invalidation,
                   "redirect_uris": [{"matching_mode": "strict", "url": "https://wiki.example.com/callback"}]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{provider}");
    let (status, app) = server
        .post(
            "/core/applications/",
            json!({"name": "Wiki", "slug": "wiki", "provider": provider["pk"]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{app}");
    Ok(App {
        provider: provider["pk"].as_i64().unwrap_or_default(),
        client_id: provider["client_id"].as_str().unwrap_or_default().into(),
        client_secret: provider["client_secret"]
            .as_str()
            .unwrap_or_default()
            .into(),
        callback: String::new(),
        issuer: String::new(),
    })
}

/// `gatehouse ARGS` against `db` (its data directory holds the key file), with no secret key
/// from the environment unless `key` is given; bounded by a minute.
async fn gatehouse(
    db: &TestDb,
    key: Option<&str>,
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    let dir = db.dir.path().to_string_lossy().into_owned();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .args(["--database", &db.url, "--data-dir", &dir])
        .env_remove("GATEHOUSE_SECRET_KEY")
        .env_remove("GATEHOUSE_SECRET_KEY_FILE")
        .env_remove("GATEHOUSE_NEW_SECRET_KEY")
        .env_remove("GATEHOUSE_BOOTSTRAP_PASSWORD")
        .env_remove("GATEHOUSE_BOOTSTRAP_TOKEN")
        .kill_on_drop(true);
    if let Some(key) = key {
        command.env("GATEHOUSE_SECRET_KEY", key);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .map_err(|_| anyhow::anyhow!("`gatehouse {args:?}` did not finish within 60 s"))?
        .map_err(Into::into)
}

/// `gatehouse serve` with `key` must exit non-zero before serving, naming the fix.
async fn assert_start_refused(db: &TestDb, key: &str) -> anyhow::Result<()> {
    let out = gatehouse(
        db,
        Some(key),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ],
    )
    .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a server with another key started");
    assert!(
        stderr.contains("sealed with secret key")
            && stderr.contains("GATEHOUSE_SECRET_KEY")
            && stderr.contains("restore it from the backup"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_and_clients_still_authenticate() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let app = setup(&server, "confidential").await?;
    let source_secret = "github-client-secret-0123456789";
    let (status, source) = server
        .post(
            "/sources/oauth/",
            json!({"name": "GitHub", "slug": "github", "provider_type": "github",
                   "consumer_key": "gh-client", "consumer_secret": source_secret}),
        )
        .await?;
    assert_eq!(status, 201, "{source}");
    // A TOTP device, added the way the account page adds one.
    let seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let store = db.store().await?;
    let mut tx = store.begin().await?;
    let admin = gatehouse_store::users::find_by_username(&mut tx, gatehouse_web::bootstrap::ADMIN)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no admin user"))?;
    gatehouse_store::devices::add_totp(&mut tx, store.key(), admin.id, "Phone", seed, 0).await?;
    gatehouse_store::commit(tx).await?;
    let mut conn = store.conn().await?;
    let devices = gatehouse_store::devices::totp_of(&mut conn, store.key(), admin.id).await?;
    assert_eq!(devices.first().map(|d| d.secret.as_str()), Some(seed));
    drop(conn);
    store.close().await;
    let seeds = raw(&db, "SELECT secret AS v FROM totp_devices").await?;
    assert!(
        seeds.len() == 1
            && seeds
                .iter()
                .all(|s| gatehouse_sealing::is_sealed(s) && !s.contains(seed)),
        "{seeds:?}"
    );

    let stored = stored_secret(&db, &app.client_id).await?;
    assert!(
        gatehouse_sealing::is_sealed(&stored) && !stored.contains(&app.client_secret),
        "client secret stored as {stored}"
    );
    let sources = raw(&db, "SELECT consumer_secret AS v FROM sources").await?;
    assert!(
        sources
            .iter()
            .all(|s| gatehouse_sealing::is_sealed(s) && !s.contains(source_secret)),
        "{sources:?}"
    );
    let keys = raw(&db, "SELECT private_pem AS v FROM signing_keys").await?;
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| gatehouse_sealing::is_sealed(k) && !k.contains("PRIVATE KEY")),
        "{keys:?}"
    );

    // Callers see plain text: the API shows the secret, the client authenticates, tokens sign.
    let (_, shown) = server
        .get(&format!("/providers/oauth2/{}/", app.provider))
        .await?;
    assert_eq!(shown["client_secret"], app.client_secret.as_str());
    assert_eq!(
        client_credentials(&server, &app, &app.client_secret).await?,
        (200, true)
    );
    assert!(!client_credentials(&server, &app, "not-the-secret").await?.1);
    server.stop().await
}

#[tokio::test]
async fn a_client_secret_copied_into_another_row_does_not_open() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let app = setup(&server, "confidential").await?;
    let other = other_client(&server).await?;
    assert_eq!(
        client_credentials(&server, &other, &other.client_secret).await?,
        (200, true)
    );
    // The attack: whoever can write the database but not read the key copies a client's
    // sealed secret into another client's row, hoping to log in as that client with it.
    let sealed = stored_secret(&db, &app.client_id).await?;
    let changed = execute(
        &db,
        "UPDATE providers SET client_secret = $1 WHERE client_id = $2",
        vec![sealed.into(), other.client_id.clone().into()],
    )
    .await?;
    assert_eq!(changed, 1);
    // Past the token endpoint's one-second client cache, so the row is read again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for secret in [&app.client_secret, &other.client_secret] {
        let (status, token) = client_credentials(&server, &other, secret).await?;
        assert!(!token && status >= 400, "moved secret opened: {status}");
    }
    // An error for that row only: the server and the intact client carry on.
    assert_eq!(
        client_credentials(&server, &app, &app.client_secret).await?,
        (200, true)
    );
    server.stop().await
}

#[tokio::test]
async fn a_server_started_with_another_secret_key_is_refused_with_the_fix() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    setup(&server, "confidential").await?;
    server.stop().await?;
    let other = gatehouse_sealing::SecretKey::generate_text()?;
    assert_start_refused(&db, &other).await?;
    // The right key still opens everything.
    let server = TestServer::start(&db).await?;
    server.stop().await
}

#[tokio::test]
async fn secrets_stored_in_plain_text_before_sealing_are_sealed_at_start() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let app = setup(&server, "confidential").await?;
    server.stop().await?;
    // A database from before sealing: plain secrets and private keys, no key recorded.
    let store = db.store().await?;
    let mut conn = store.conn().await?;
    let keys = gatehouse_store::oauth::all_keys(&mut conn, store.key()).await?;
    for key in &keys {
        sql::execute(
            &mut conn,
            "UPDATE signing_keys SET private_pem = $1 WHERE kid = $2",
            vec![key.private_pem.clone().into(), key.kid.clone().into()],
        )
        .await?;
    }
    sql::execute(
        &mut conn,
        "UPDATE providers SET client_secret = $1 WHERE client_id = $2",
        vec![
            app.client_secret.clone().into(),
            app.client_id.clone().into(),
        ],
    )
    .await?;
    sql::execute(&mut conn, "DELETE FROM secret_key", Vec::new()).await?;
    drop(conn);
    store.close().await;
    assert_eq!(stored_secret(&db, &app.client_id).await?, app.client_secret);

    let server = TestServer::start(&db).await?;
    let stored = stored_secret(&db, &app.client_id).await?;
    assert!(gatehouse_sealing::is_sealed(&stored), "{stored}");
    let pems = raw(&db, "SELECT private_pem AS v FROM signing_keys").await?;
    assert!(
        pems.iter().all(|p| gatehouse_sealing::is_sealed(p)),
        "{pems:?}"
    );
    assert_eq!(
        client_credentials(&server, &app, &app.client_secret).await?,
        (200, true)
    );
    server.stop().await
}

#[tokio::test]
async fn rotating_the_secret_key_reseals_everything_and_the_old_key_is_refused(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let app = setup(&server, "confidential").await?;
    server.stop().await?;
    let old = std::fs::read_to_string(db.key_file())?;
    let before = stored_secret(&db, &app.client_id).await?;

    let out = gatehouse(&db, None, &["secret-key", "rotate"]).await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = std::fs::read_to_string(db.key_file())?;
    assert_ne!(new.trim(), old.trim());
    let mut kept = db.key_file().into_os_string();
    kept.push(".old");
    assert_eq!(std::fs::read_to_string(&kept)?, old);
    let after = stored_secret(&db, &app.client_id).await?;
    let new_id = gatehouse_sealing::SecretKey::from_text(&new)?
        .id()
        .to_owned();
    assert_ne!(after, before);
    assert_eq!(gatehouse_sealing::sealed_by(&after), Some(new_id.as_str()));

    let server = TestServer::start(&db).await?;
    assert_eq!(
        client_credentials(&server, &app, &app.client_secret).await?,
        (200, true)
    );
    server.stop().await?;
    assert_start_refused(&db, old.trim()).await
}

#[tokio::test]
async fn a_rotation_that_fails_changes_nothing() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let app = setup(&server, "confidential").await?;
    let other = other_client(&server).await?;
    server.stop().await?;
    // One damaged value (a secret moved from another row) stops the rotation part-way.
    let sealed = stored_secret(&db, &app.client_id).await?;
    execute(
        &db,
        "UPDATE providers SET client_secret = $1 WHERE client_id = $2",
        vec![sealed.clone().into(), other.client_id.clone().into()],
    )
    .await?;
    let snapshot = "SELECT client_secret AS v FROM providers UNION ALL SELECT private_pem AS v FROM signing_keys UNION ALL SELECT key_id AS v FROM secret_key";
    let mut before = raw(&db, snapshot).await?;
    let key_before = std::fs::read_to_string(db.key_file())?;

    let out = gatehouse(&db, None, &["secret-key", "rotate"]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a rotation over a damaged value succeeded"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let mut after = raw(&db, snapshot).await?;
    before.sort();
    after.sort();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_to_string(db.key_file())?, key_before);
    let mut staged = db.key_file().into_os_string();
    staged.push(".new");
    assert!(!std::path::Path::new(&staged).exists());

    let server = TestServer::start(&db).await?;
    assert_eq!(
        client_credentials(&server, &app, &app.client_secret).await?,
        (200, true)
    );
    server.stop().await
}

#[tokio::test]
async fn a_ready_server_has_its_signing_keys_and_answers_the_first_token_request(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    // `start` returns at the first ready answer: the keys must exist by then.
    let server = TestServer::start(&db).await?;
    let algorithms = raw(&db, "SELECT algorithm AS v FROM signing_keys").await?;
    assert!(
        algorithms.iter().any(|a| a == "RS256") && algorithms.iter().any(|a| a == "ES256"),
        "ready before the signing keys were made: {algorithms:?}"
    );
    let app = setup(&server, "confidential").await?;
    assert_eq!(
        client_credentials(&server, &app, &app.client_secret).await?,
        (200, true)
    );
    server.stop().await
}
