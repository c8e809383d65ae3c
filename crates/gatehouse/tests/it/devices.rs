//! Authenticator lifecycle (#13 item 6): adding or removing a passkey or authenticator app needs a
//! recent proof of a factor, so a stolen session cookie alone changes nothing; the last way to
//! sign in stays; a passkey is one factor unless the server counts it as two; and the
//! authentik-client SDK lists, renames and deletes devices without ever seeing a secret.
//!
//! "Stolen" sessions are made old by moving their proof time back in the database: a cookie
//! copied from a browser that logged in a while ago, as an attacker would hold it.

use anyhow::Context;
use gatehouse_store::sql;
use gatehouse_testkit::fantoccini::Locator;
use gatehouse_testkit::{Browser, TestDb, TestServer, TOKEN};
use gatehouse_web::bootstrap::BootstrapSettings;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::{json, Value};

use crate::browser::{create_user, login, PASSWORD};
use crate::enrollment::csrf_of;
use crate::flows::{client, http_login, user_with_password};

/// Moves every session's last proof of a factor an hour back: each cookie is now one whose
/// login was long ago.
async fn age_proofs(db: &TestDb) -> anyhow::Result<()> {
    let store = db.store().await?;
    let mut conn = store.conn().await?;
    let long_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    sql::execute(
        &mut conn,
        "UPDATE sessions SET authenticated_at = $1",
        vec![long_ago.into()],
    )
    .await?;
    Ok(())
}

/// GET `path` with `cookie`: (status, Location, body).
async fn get(
    server: &TestServer,
    cookie: &str,
    path: &str,
) -> anyhow::Result<(u16, String, String)> {
    let r = client()?
        .get(format!("{}{path}", server.url))
        .header(COOKIE, cookie)
        .send()
        .await?;
    let location = header(&r, LOCATION);
    Ok((r.status().as_u16(), location, r.text().await?))
}

/// POST a form to `path` with `cookie`: (status, Location, body).
async fn post_form(
    server: &TestServer,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<(u16, String, String)> {
    let r = client()?
        .post(format!("{}{path}", server.url))
        .header(COOKIE, cookie)
        .form(form)
        .send()
        .await?;
    let location = header(&r, LOCATION);
    Ok((r.status().as_u16(), location, r.text().await?))
}

/// POST JSON to `path` with `cookie`: (status, JSON).
async fn post_json(
    server: &TestServer,
    cookie: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let r = client()?
        .post(format!("{}{path}", server.url))
        .header(COOKIE, cookie)
        .json(&body)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The user's devices as the admin API lists them.
async fn devices_of(server: &TestServer, user: i64) -> anyhow::Result<Vec<Value>> {
    let (status, body) = server
        .get(&format!("/authenticators/admin/all/?user={user}"))
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body.as_array().cloned().unwrap_or_default())
}

/// Sets up an authenticator app on the user page with `cookie`: (status, page).
async fn add_totp(server: &TestServer, cookie: &str) -> anyhow::Result<(u16, String)> {
    let (status, location, form) = get(server, cookie, "/if/user/totp/").await?;
    if status != 200 {
        return Ok((status, location));
    }
    let secret = form
        .split("<span id=secret>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .context("no key on the set-up page")?
        .to_owned();
    let code = gatehouse_flow::totp_for(&secret)
        .map_err(anyhow::Error::msg)?
        .generate_current()
        .to_string();
    let csrf = csrf_of(&form);
    let (status, _, page) = post_form(
        server,
        cookie,
        "/if/user/totp/",
        &[("csrf", &csrf), ("secret", &secret), ("code", &code)],
    )
    .await?;
    Ok((status, page))
}

/// The anti-forgery token of the user page for `cookie` (derived from the cookie: anyone
/// holding it can read it off the page).
async fn user_page_csrf(server: &TestServer, cookie: &str) -> anyhow::Result<String> {
    let (status, _, page) = get(server, cookie, "/if/user/").await?;
    anyhow::ensure!(status == 200, "user page: {status}");
    Ok(csrf_of(&page))
}

#[tokio::test]
async fn a_stolen_session_cookie_cannot_add_a_passkey_or_an_authenticator_app() -> anyhow::Result<()>
{
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let pk = user_with_password(&server, "alice@example.com").await?;
    let cookie = http_login(&server, "alice@example.com", "correct horse").await?;
    age_proofs(&db).await?;
    let csrf = user_page_csrf(&server, &cookie).await?;

    // The passkey ceremony does not even start.
    let (status, body) = post_json(
        &server,
        &cookie,
        "/if/user/passkeys/begin",
        json!({"csrf": csrf}),
    )
    .await?;
    assert_eq!(
        status, 403,
        "a passkey ceremony started for a stolen cookie: {body}"
    );
    assert!(body.get("publicKey").is_none(), "{body}");
    assert_eq!(
        body["reauth"], "/if/user/reauth/?next=%2Fif%2Fuser%2Fpasskeys%2F",
        "{body}"
    );
    let (status, _) = post_json(
        &server,
        &cookie,
        "/if/user/passkeys/finish",
        json!({"csrf": csrf, "credential": {}}),
    )
    .await?;
    assert_eq!(status, 403);

    // The authenticator-app page sends the visitor to confirm first; posting anyway is refused.
    let (status, location) = add_totp(&server, &cookie).await?;
    assert_eq!(status, 303);
    assert_eq!(location, "/if/user/reauth/?next=%2Fif%2Fuser%2Ftotp%2F");
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let code = gatehouse_flow::totp_for(secret)
        .map_err(anyhow::Error::msg)?
        .generate_current()
        .to_string();
    let (status, _, page) = post_form(
        &server,
        &cookie,
        "/if/user/totp/",
        &[("csrf", &csrf), ("secret", secret), ("code", &code)],
    )
    .await?;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Confirm it"), "{page}");
    assert!(
        devices_of(&server, pk).await?.is_empty(),
        "no device was added"
    );

    // A wrong password does not help; the right one does.
    let (_, _, form) = get(&server, &cookie, "/if/user/reauth/?next=/if/user/totp/").await?;
    assert!(form.contains("id=password"), "{form}");
    let (status, _, page) = post_form(
        &server,
        &cookie,
        "/if/user/reauth/",
        &[
            ("csrf", &csrf),
            ("next", "/if/user/totp/"),
            ("password", "wrong"),
        ],
    )
    .await?;
    assert_eq!(status, 400);
    assert!(page.contains("That password is not right."), "{page}");
    let (status, location, _) = post_form(
        &server,
        &cookie,
        "/if/user/reauth/",
        &[
            ("csrf", &csrf),
            ("next", "/if/user/totp/"),
            ("password", "correct horse"),
        ],
    )
    .await?;
    assert_eq!((status, location.as_str()), (303, "/if/user/totp/"));
    let (status, page) = add_totp(&server, &cookie).await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Authenticator app added"), "{page}");
    let (status, body) = post_json(
        &server,
        &cookie,
        "/if/user/passkeys/begin",
        json!({"csrf": csrf}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("publicKey").is_some(), "{body}");

    let (_, events) = server.get("/events/events/?action=model_created").await?;
    let created: Vec<&Value> = events["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["context"]["model"]["model_name"] == "totpdevice")
        .collect();
    assert_eq!(created.len(), 1, "{events}");
    assert_eq!(created[0]["user"]["username"], "alice@example.com");
    server.stop().await
}

#[tokio::test]
async fn removing_a_device_needs_a_recent_proof_and_the_last_passkey_stays() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let pk = user_with_password(&server, "alice@example.com").await?;
    let cookie = http_login(&server, "alice@example.com", "correct horse").await?;
    let (status, page) = add_totp(&server, &cookie).await?;
    assert_eq!(status, 200, "right after logging in, adding works: {page}");
    let device = devices_of(&server, pk).await?[0]["pk"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let remove = format!("/if/user/devices/totp/{device}/remove");
    let csrf = user_page_csrf(&server, &cookie).await?;

    age_proofs(&db).await?;
    let (status, _, page) = post_form(&server, &cookie, &remove, &[("csrf", &csrf)]).await?;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("/if/user/reauth/?next=%2Fif%2Fuser%2F"),
        "{page}"
    );
    assert_eq!(
        devices_of(&server, pk).await?.len(),
        1,
        "the device is still there"
    );

    let (status, _, _) = post_form(
        &server,
        &cookie,
        "/if/user/reauth/",
        &[
            ("csrf", &csrf),
            ("next", "/if/user/"),
            ("password", "correct horse"),
        ],
    )
    .await?;
    assert_eq!(status, 303);
    let (status, location, _) = post_form(&server, &cookie, &remove, &[("csrf", &csrf)]).await?;
    assert_eq!((status, location.as_str()), (303, "/if/user/"));
    assert!(devices_of(&server, pk).await?.is_empty());
    let (_, events) = server.get("/events/events/?action=model_deleted").await?;
    assert_eq!(
        events["results"][0]["context"]["model"]["model_name"], "totpdevice",
        "{events}"
    );

    // A passkey-only user's one passkey is their only way in: it stays, with a message.
    let (status, bob) = server
        .post(
            "/core/users/",
            json!({"username": "bob@example.com", "name": "Bob"}),
        )
        .await?;
    assert_eq!(status, 201, "{bob}");
    let bob = bob["pk"].as_i64().unwrap_or_default();
    let store = db.store().await?;
    let mut conn = store.conn().await?;
    let passkey =
        gatehouse_store::devices::add_passkey(&mut conn, bob, "Phone", "credential-1", "{}")
            .await?;
    let key = gatehouse_core::secret::new_token();
    gatehouse_store::sessions::create(
        &mut conn,
        &key,
        bob,
        chrono::Utc::now() + chrono::Duration::hours(1),
        "127.0.0.1",
        "test",
    )
    .await?;
    drop(conn);
    let bob_cookie = format!("gatehouse_session={key}");
    let csrf = user_page_csrf(&server, &bob_cookie).await?;
    let (_, _, page) = get(&server, &bob_cookie, "/if/user/").await?;
    assert!(page.contains("(your only way to sign in)"), "{page}");
    let (status, _, page) = post_form(
        &server,
        &bob_cookie,
        &format!("/if/user/devices/passkey/{}/remove", passkey.id),
        &[("csrf", &csrf)],
    )
    .await?;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("your only way to sign in"), "{page}");
    assert_eq!(devices_of(&server, bob).await?.len(), 1);
    // Someone else's device is not found, whoever asks.
    let (status, _, _) = post_form(
        &server,
        &bob_cookie,
        &format!("/if/user/devices/totp/{device}/remove"),
        &[("csrf", &csrf)],
    )
    .await?;
    assert_eq!(status, 404);
    server.stop().await
}

/// Logs `alice` in with her password in `browser`, adds a passkey and an authenticator app,
/// logs out, and logs in with the passkey; returns the page the passkey login lands on.
async fn passkey_login_with_totp_set_up(
    browser: &Browser,
    server: &TestServer,
) -> anyhow::Result<String> {
    let c = &browser.client;
    create_user(server, "alice@example.com").await?;
    browser.add_virtual_authenticator().await?;
    login(browser, server, "alice@example.com", PASSWORD, None).await?;
    c.goto(&format!("{}/if/user/passkeys/", server.external_url))
        .await?;
    browser
        .element(Locator::Id("passkey-add"))
        .await?
        .click()
        .await?;
    browser.element(Locator::Css("#passkeys li")).await?;
    c.goto(&format!("{}/if/user/totp/", server.external_url))
        .await?;
    let secret = browser.element(Locator::Id("secret")).await?.text().await?;
    let totp = gatehouse_flow::totp_for(&secret).map_err(anyhow::Error::msg)?;
    browser
        .element(Locator::Id("code"))
        .await?
        .send_keys(&totp.generate_current().to_string())
        .await?;
    browser.submit().await?;
    browser.element(Locator::Id("recovery-codes")).await?;
    c.goto(&format!(
        "{}/if/flow/default-invalidation-flow/",
        server.external_url
    ))
    .await?;
    c.goto(&format!(
        "{}/if/flow/default-authentication-flow/?next=/if/user/",
        server.external_url
    ))
    .await?;
    browser
        .element(Locator::Id("passkey-login"))
        .await?
        .click()
        .await?;
    // The script navigates when the ceremony is done: wait until the login page is left or
    // asks for the code.
    let user_page = format!("{}/if/user/", server.external_url);
    for _ in 0..200 {
        let url = c.current_url().await?.to_string();
        if url == user_page || c.find(Locator::Id("code")).await.is_ok() {
            return Ok(url);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("the passkey login went nowhere within 10 s")
}

#[tokio::test]
async fn a_passkey_login_still_asks_for_the_totp_code_by_default() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let browser = Browser::start().await?;
    let url = passkey_login_with_totp_set_up(&browser, &server).await?;
    browser.screenshot("passkey-one-factor-totp-asked").await?;
    assert!(
        url.contains("/if/flow/default-authentication-flow/"),
        "a passkey alone passed the TOTP stage: {url}"
    );
    browser.element(Locator::Id("code")).await?;
    browser.close().await?;
    server.stop().await
}

#[tokio::test]
async fn a_passkey_login_passes_the_totp_stage_when_the_server_counts_it_as_two_factors(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let bootstrap = BootstrapSettings {
        token: Some(TOKEN.into()),
        ..Default::default()
    };
    let server = TestServer::start_on(&db, &db.url, bootstrap, |s| {
        s.passkey_counts_as_two_factors = true;
    })
    .await?;
    let browser = Browser::start().await?;
    let url = passkey_login_with_totp_set_up(&browser, &server).await?;
    assert_eq!(url, format!("{}/if/user/", server.external_url));
    browser.close().await?;
    server.stop().await
}

#[tokio::test]
async fn authentik_client_sdk_lists_renames_and_deletes_authenticators() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let pk = user_with_password(&server, "alice@example.com").await?;
    let cookie = http_login(&server, "alice@example.com", "correct horse").await?;
    for _ in 0..2 {
        let (status, page) = add_totp(&server, &cookie).await?;
        assert_eq!(status, 200, "{page}");
    }
    let store = db.store().await?;
    let mut conn = store.conn().await?;
    gatehouse_store::devices::add_passkey(
        &mut conn,
        pk,
        "Laptop",
        "credential-a",
        "{\"secret\":1}",
    )
    .await?;
    drop(conn);
    let (status, token) = server
        .post(
            "/core/tokens/",
            json!({"identifier": "alice-api", "user": pk, "intent": "api", "expiring": false}),
        )
        .await?;
    assert_eq!(status, 201, "{token}");
    let key = token["key"].as_str().unwrap_or_default();

    let python = std::env::var("GATEHOUSE_TEST_PYTHON").context(
        "GATEHOUSE_TEST_PYTHON is not set: run scripts/test, which installs authentik-client into target/test-venv",
    )?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/authenticators_check.py"
    );
    let output = tokio::process::Command::new(&python)
        .args([script, &server.url, TOKEN, key, &pk.to_string()])
        .output()
        .await
        .with_context(|| format!("running {python}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK check failed\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("authenticators check passed"), "{stdout}");

    // What the SDK did is what the server holds.
    let left = devices_of(&server, pk).await?;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().any(|d| d["name"] == "Renamed by admin"),
        "{left:?}"
    );
    let (_, raw) = server.get("/authenticators/admin/webauthn/").await?;
    let (_, totp) = server.get("/authenticators/admin/totp/").await?;
    for body in [raw.to_string(), totp.to_string()] {
        assert!(
            !body.contains("secret") && !body.contains("credential"),
            "{body}"
        );
    }
    server.stop().await
}

#[tokio::test]
async fn a_password_change_keeps_the_devices_but_lists_them_each_removable_at_once(
) -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let pk = user_with_password(&server, "alice@example.com").await?;
    let cookie = http_login(&server, "alice@example.com", "correct horse").await?;
    let (status, page) = add_totp(&server, &cookie).await?;
    assert_eq!(status, 200, "{page}");
    // The session is old by the time the password changes (a password that leaked, say).
    age_proofs(&db).await?;
    let csrf = user_page_csrf(&server, &cookie).await?;
    let (status, _, page) = post_form(
        &server,
        &cookie,
        "/if/user/password/",
        &[
            ("csrf", &csrf),
            ("current", "correct horse"),
            ("password", "a brand new password"),
            ("password_repeat", "a brand new password"),
        ],
    )
    .await?;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Remove any you do not recognise"), "{page}");
    let device = devices_of(&server, pk).await?[0]["pk"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let remove = format!("/if/user/devices/totp/{device}/remove");
    assert!(
        page.contains(&remove),
        "the page offers the remove button: {page}"
    );
    // The current password was just given: that is the proof, no second prompt.
    let (status, location, _) = post_form(&server, &cookie, &remove, &[("csrf", &csrf)]).await?;
    assert_eq!((status, location.as_str()), (303, "/if/user/"));
    assert!(devices_of(&server, pk).await?.is_empty());
    server.stop().await
}

#[tokio::test]
async fn a_passkey_of_the_user_confirms_it_is_them_when_the_session_is_old() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let browser = Browser::start().await?;
    let c = &browser.client;
    let pk = create_user(&server, "alice@example.com").await?;
    browser.add_virtual_authenticator().await?;
    login(&browser, &server, "alice@example.com", PASSWORD, None).await?;
    c.goto(&format!("{}/if/user/passkeys/", server.external_url))
        .await?;
    browser
        .element(Locator::Id("passkey-add"))
        .await?
        .click()
        .await?;
    browser.element(Locator::Css("#passkeys li")).await?;

    age_proofs(&db).await?;
    // Adding a second passkey now sends the browser to confirm first.
    c.goto(&format!("{}/if/user/passkeys/", server.external_url))
        .await?;
    browser
        .element(Locator::Id("passkey-add"))
        .await?
        .click()
        .await?;
    browser.element(Locator::Id("passkey-reauth")).await?;
    browser.screenshot("reauth-1-confirm").await?;
    let url = c.current_url().await?.to_string();
    assert!(url.contains("/if/user/reauth/?next="), "{url}");
    browser
        .element(Locator::Id("passkey-reauth"))
        .await?
        .click()
        .await?;
    c.wait()
        .at_most(std::time::Duration::from_secs(10))
        .for_url(&format!("{}/if/user/passkeys/", server.external_url).parse()?)
        .await?;
    // The proof is fresh again: the authenticator-app set-up opens instead of the prompt.
    c.goto(&format!("{}/if/user/totp/", server.external_url))
        .await?;
    browser.element(Locator::Id("secret")).await?;
    assert_eq!(
        c.current_url().await?.as_str(),
        format!("{}/if/user/totp/", server.external_url)
    );
    assert_eq!(devices_of(&server, pk).await?.len(), 1);
    browser.close().await?;
    server.stop().await
}
