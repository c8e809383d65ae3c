//! Attacks on the forward-auth outpost (issue #13), each performed end to end against the real
//! server: what an attacker tries, and what they must not get.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_testkit::{
    browse_until, with_server, Cuttable, EchoApp, Nginx, TestDb, TestOutpost, TestServer,
};
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use crate::outpost::{decision, ingress, protect, user, PASSWORD};

/// The value the response sets for cookie `name`, if any.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
        })
        .filter(|v| !v.is_empty())
}

/// A client that keeps cookies (starting with `planted` for `url`) and follows no redirects.
fn client_with_cookie(url: &str, planted: &str) -> anyhow::Result<reqwest::Client> {
    let jar = reqwest::cookie::Jar::default();
    jar.add_cookie_str(planted, &url.parse()?);
    Ok(reqwest::Client::builder()
        .cookie_provider(Arc::new(jar))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Session fixation (#13 item 2, ASVS 3.2.1): the attacker starts a login, plants the pending
/// cookie in the victim's browser and sends the victim to the authorize URL; the victim logs
/// in. The attacker's copy of the cookie must not be the victim's session afterwards.
#[tokio::test]
async fn a_pending_cookie_planted_before_login_is_not_the_victims_session_after_it(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let family = protect(&server, &server.url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        let name =
            gatehouse_outpost::cookie_name(&crate::outpost::app_client_id(&server, "App").await?);
        let attacker = client_with_cookie(&server.url, "unused=1")?;
        let started = attacker
            .get(format!(
                "{}/outpost.goauthentik.io/start?rd=%2Fhome",
                server.url
            ))
            .send()
            .await?;
        assert_eq!(started.status(), 302);
        let pending =
            set_cookie(&started, &name).ok_or_else(|| anyhow::anyhow!("no pending cookie"))?;
        let authorize = started
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();

        let victim = client_with_cookie(&server.url, &format!("{name}={pending}"))?;
        let home = format!("{}/home", server.url);
        let callback = browse_until(
            &victim,
            &server,
            &authorize,
            ("alice@example.com", PASSWORD),
            |l| l == home,
        )
        .await?;
        let session = set_cookie(&callback, &name)
            .ok_or_else(|| anyhow::anyhow!("the callback set no session cookie"))?;
        assert_ne!(
            session, pending,
            "the session must get a fresh cookie value"
        );
        assert_eq!(
            decision(&server, &victim).await?,
            200,
            "the victim is signed in"
        );
        assert_eq!(
            decision(&server, &attacker).await?,
            401,
            "the planted cookie must not carry the victim's session"
        );
        server.stop().await
    })
    .await
}

/// The raw paths that an application may read as `/admin` although their normalised form
/// starts with `/public/` (#13 item 4).
const AMBIGUOUS: &[&str] = &[
    "/public/..;/admin",
    "/public/..%2fadmin",
    "/public/%2E%2E%2Fadmin",
];

/// A provider for `external_host` in `mode` whose skip path is `^/public/`, assigned to an
/// application (internal host `internal` for proxy mode).
async fn skipping_public(
    server: &TestServer,
    mode: &str,
    external_host: &str,
    internal: &str,
) -> anyhow::Result<()> {
    let (flow, invalidation) = crate::provider_flows(server, "implicit").await?;
    let (status, provider) = server
        .post(
            "/providers/proxy/",
            json!({"name": "Public", "mode": mode, "external_host": external_host,
                   "internal_host": internal, "skip_path_regex": "^/public/",
                   "authorization_flow": flow, "invalidation_flow": invalidation}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{provider}");
    let (status, app) = server
        .post(
            "/core/applications/",
            json!({"name": "Public", "slug": "public", "provider": provider["pk"]}),
        )
        .await?;
    anyhow::ensure!(status == 201, "{app}");
    Ok(())
}

/// Asks `url` until it answers `status` (the provider table follows a change within a
/// second); returns the last status seen.
async fn status_until(http: &reqwest::Client, url: &str, status: u16) -> anyhow::Result<u16> {
    let mut seen = 0;
    for _ in 0..30 {
        seen = http.get(url).send().await?.status().as_u16();
        if seen == status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(seen)
}

/// Behind a real nginx (the ingress pattern), an ambiguous path under a skip path is sent to
/// log in, never to the application unauthenticated.
#[tokio::test]
async fn ambiguous_paths_under_a_skip_path_do_not_reach_the_app_behind_nginx() -> anyhow::Result<()>
{
    with_server(|server| async move {
        let app = EchoApp::start().await?;
        let nginx = Nginx::start(&ingress(server.port(), app.port)).await?;
        let app_url = format!("http://app.localhost:{}", nginx.port);
        skipping_public(&server, "forward_single", &app_url, "").await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.localhost", ([127, 0, 0, 1], nginx.port).into())
            .build()?;
        let open = format!("{app_url}/public/style.css");
        assert_eq!(
            status_until(&http, &open, 200).await?,
            200,
            "the skip path itself passes"
        );
        for path in AMBIGUOUS {
            let r = http.get(format!("{app_url}{path}")).send().await?;
            assert_eq!(
                r.status(),
                302,
                "{path} must go to log in: {}",
                nginx.error_log()
            );
            let to = r
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(to.contains("/outpost.goauthentik.io/start"), "{path}: {to}");
        }
        // The Traefik/Caddy endpoint reads X-Forwarded-Uri the same way.
        for path in AMBIGUOUS {
            let r = http
                .get(format!(
                    "{}/outpost.goauthentik.io/auth/traefik",
                    server.url
                ))
                .header("X-Forwarded-Proto", "http")
                .header("X-Forwarded-Host", format!("app.localhost:{}", nginx.port))
                .header("X-Forwarded-Uri", *path)
                .send()
                .await?;
            assert_eq!(r.status(), 302, "traefik endpoint, {path}");
        }
        nginx.stop().await?;
        server.stop().await
    })
    .await
}

/// In proxy mode, where Gatehouse forwards the raw path itself, an ambiguous path under a
/// skip path is sent to log in, never forwarded unauthenticated.
#[tokio::test]
async fn ambiguous_paths_under_a_skip_path_are_not_proxied_unauthenticated() -> anyhow::Result<()> {
    with_server(|server| async move {
        let echo = EchoApp::start().await?;
        let port = server.port();
        let external = format!("http://app.proxy.test:{port}");
        let internal = format!("http://127.0.0.1:{}", echo.port);
        skipping_public(&server, "proxy", &external, &internal).await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.proxy.test", ([127, 0, 0, 1], 0).into())
            .build()?;
        let open = format!("{external}/public/style.css");
        assert_eq!(
            status_until(&http, &open, 200).await?,
            200,
            "the skip path itself passes"
        );
        for path in AMBIGUOUS {
            let r = http.get(format!("{external}{path}")).send().await?;
            assert_eq!(r.status(), 302, "{path} must go to log in");
        }
        server.stop().await
    })
    .await
}

/// The break-glass user's password in these tests.
const RESCUE: &str = "rescue-me-in-an-outage";

/// `Authorization: Basic` for the break-glass user `rescue` with `password`.
fn rescue(password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("rescue:{password}"))
    )
}

/// A standalone outpost with the break-glass user `rescue` (its hash returned), reaching the
/// server through a link the test can cut or overload, serving the application `App`.
async fn edge_behind_a_link(
    server: &TestServer,
) -> anyhow::Result<(Cuttable, TestOutpost, String)> {
    let hash = gatehouse_core::secret::hash_password(RESCUE)?;
    let link = Cuttable::start(([127, 0, 0, 1], server.port()).into()).await?;
    let (instance, token) = crate::standalone::edge(server).await?;
    let kept = hash.clone();
    let outpost = TestOutpost::start(&format!("http://{}", link.addr), &token, move |s| {
        s.break_glass = vec![("rescue".into(), kept)];
    })
    .await?;
    protect(server, &outpost.url).await?;
    crate::standalone::assign_app(server, &instance).await?;
    let start = start_url(&outpost);
    let status = status_until(&no_redirects()?, &start, 302).await?;
    anyhow::ensure!(status == 302, "the outpost does not serve App: {status}");
    Ok((link, outpost, hash))
}

fn start_url(outpost: &TestOutpost) -> String {
    format!("{}/outpost.goauthentik.io/start?rd=%2Fhome", outpost.url)
}

fn no_redirects() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// `start` with `authorization`, polled until the outpost has noticed the outage (a 401
/// challenge or a 302 with the fallback cookie rather than a 302 to the IdP).
async fn start_while_degraded(
    outpost: &TestOutpost,
    authorization: &str,
) -> anyhow::Result<reqwest::Response> {
    let http = no_redirects()?;
    for _ in 0..50 {
        let r = start_with(&http, outpost, authorization).await?;
        let to_idp = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.contains("/application/o/authorize/"));
        if !to_idp {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the outpost never noticed the outage")
}

/// One `start` request carrying `authorization` (a break-glass attempt).
async fn start_with(
    http: &reqwest::Client,
    outpost: &TestOutpost,
    authorization: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .get(start_url(outpost))
        .header("Authorization", authorization)
        .send()
        .await?)
}

/// The forward-auth decision of the outpost's Traefik endpoint for `cookie`.
async fn traefik_with_cookie(outpost: &TestOutpost, cookie: &str) -> anyhow::Result<u16> {
    Ok(no_redirects()?
        .get(format!(
            "{}/outpost.goauthentik.io/auth/traefik",
            outpost.url
        ))
        .header("X-Forwarded-Proto", "http")
        .header(
            "X-Forwarded-Host",
            outpost.url.trim_start_matches("http://"),
        )
        .header("X-Forwarded-Uri", "/home")
        .header("Cookie", cookie)
        .send()
        .await?
        .status()
        .as_u16())
}

/// Break-glass (#13 item 7): someone who can read the settings (the user and hash) mints a
/// fallback cookie with the key the outpost used to derive from them. While the server is
/// unreachable, it must not pass; the outpost's own cookie does.
#[tokio::test]
async fn a_break_glass_cookie_forged_from_the_settings_is_refused_while_degraded(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let (link, outpost, hash) = edge_behind_a_link(&server).await?;
        link.cut();
        let signed_in = start_while_degraded(&outpost, &rescue(RESCUE)).await?;
        assert_eq!(signed_in.status(), 302, "break-glass works while degraded");
        let genuine = signed_in
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_owned();
        assert!(genuine.starts_with("gatehouse_fallback="), "{genuine}");
        assert_eq!(traefik_with_cookie(&outpost, &genuine).await?, 200);

        // The old derivation: SHA-256 over the settings, then HMAC-SHA256 over `user|expiry`.
        use base64::Engine;
        use sha2::Digest;
        let mut material = sha2::Sha256::new();
        material.update(b"gatehouse break-glass cookie v1");
        material.update(b"rescue\0");
        material.update(hash.as_bytes());
        material.update([0]);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &material.finalize());
        let payload = format!("rescue|{}", chrono::Utc::now().timestamp() + 3600);
        let tag = ring::hmac::sign(&key, payload.as_bytes());
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let forged = format!(
            "gatehouse_fallback={}.{}",
            b64(payload.as_bytes()),
            b64(tag.as_ref())
        );
        assert_ne!(
            traefik_with_cookie(&outpost, &forged).await?,
            200,
            "a cookie minted from the settings must not pass"
        );
        outpost.stop().await?;
        server.stop().await
    })
    .await
}

/// Break-glass passwords are throttled (#13 item 7, ASVS 2.2.1): after the free wrong
/// attempts, the next one is refused with 429 before any argon2 run, even with the right
/// password.
#[tokio::test]
async fn the_break_glass_attempt_after_the_free_wrong_ones_is_throttled() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (link, outpost, _) = edge_behind_a_link(&server).await?;
        link.cut();
        let first = start_while_degraded(&outpost, &rescue("guess-0")).await?;
        assert_eq!(first.status(), 401, "a wrong password is refused");
        let http = no_redirects()?;
        for n in 1..gatehouse_outpost::break_glass::FREE_ATTEMPTS {
            let r = start_with(&http, &outpost, &rescue(&format!("guess-{n}"))).await?;
            assert_eq!(r.status(), 401, "wrong password {n}");
        }
        for password in ["guess-again", RESCUE] {
            let r = start_with(&http, &outpost, &rescue(password)).await?;
            assert_eq!(r.status(), 429, "throttled after the free attempts");
            assert!(r.headers().contains_key("retry-after"));
            assert!(r
                .text()
                .await?
                .contains("Too many wrong break-glass passwords"));
        }
        outpost.stop().await?;
        server.stop().await
    })
    .await
}

/// Behind a trusted proxy, the standalone outpost throttles break-glass guesses by the client
/// the proxy names, not by the proxy (#13 item 3, ASVS 2.2.1): one address guessing usernames
/// is held back, while the rescuer at another address still gets in.
#[tokio::test]
async fn behind_a_trusted_proxy_break_glass_guesses_from_one_address_do_not_block_another(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let hash = gatehouse_core::secret::hash_password(RESCUE)?;
        let link = Cuttable::start(([127, 0, 0, 1], server.port()).into()).await?;
        let (instance, token) = crate::standalone::edge(&server).await?;
        let outpost = TestOutpost::start(&format!("http://{}", link.addr), &token, move |s| {
            s.break_glass = vec![("rescue".into(), hash)];
            s.trusted_proxies =
                gatehouse_core::client_address::TrustedProxies::parse(&["127.0.0.1/32"])
                    .unwrap_or_default();
        })
        .await?;
        protect(&server, &outpost.url).await?;
        crate::standalone::assign_app(&server, &instance).await?;
        let http = no_redirects()?;
        let start = start_url(&outpost);
        anyhow::ensure!(
            status_until(&http, &start, 302).await? == 302,
            "the outpost serves App"
        );
        link.cut();
        let guess = |client: &'static str, who: String| {
            use base64::Engine;
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{who}:wrong"))
            );
            http.get(start_url(&outpost))
                .header("Authorization", basic)
                .header("X-Forwarded-For", client)
                .send()
        };
        // Wait for the outage to be noticed, then guess from one address until it is held back.
        let mut held_back = false;
        for n in 0..50 {
            let r = guess("198.51.100.1", format!("guess{n}")).await?;
            if r.status() == 429 {
                held_back = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(held_back, "guesses from one address are throttled");
        let r = http
            .get(start_url(&outpost))
            .header("Authorization", rescue(RESCUE))
            .header("X-Forwarded-For", "203.0.113.9")
            .send()
            .await?;
        assert_eq!(
            r.status(),
            302,
            "the rescuer at another address behind the same proxy gets in"
        );
        outpost.stop().await?;
        server.stop().await
    })
    .await
}

/// An overloaded server answering 503 is reachable: no degraded mode, so no break-glass
/// (#13 item 7). Only once it is really unreachable does break-glass work.
#[tokio::test]
async fn a_server_answering_503_does_not_enable_break_glass() -> anyhow::Result<()> {
    with_server(|server| async move {
        let (link, outpost, _) = edge_behind_a_link(&server).await?;
        link.overload();
        // Let the event stream meet the 503 too.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let http = no_redirects()?;
        for _ in 0..3 {
            let r = start_with(&http, &outpost, &rescue(RESCUE)).await?;
            assert_eq!(r.status(), 503, "an overloaded server is not an outage");
            assert!(r.headers().get(SET_COOKIE).is_none());
            let r = http
                .get(format!(
                    "{}/outpost.goauthentik.io/auth/traefik",
                    outpost.url
                ))
                .header("X-Forwarded-Proto", "http")
                .header(
                    "X-Forwarded-Host",
                    outpost.url.trim_start_matches("http://"),
                )
                .header("X-Forwarded-Uri", "/home")
                .header("Authorization", rescue(RESCUE))
                .send()
                .await?;
            assert_eq!(r.status(), 503, "no break-glass pass");
            assert!(r.headers().get("x-auth-fallback").is_none());
        }
        let metrics = reqwest::get(&outpost.metrics_url).await?.text().await?;
        assert!(
            metrics.contains("gatehouse_outpost_degraded 0"),
            "{metrics}"
        );

        link.cut();
        let signed_in = start_while_degraded(&outpost, &rescue(RESCUE)).await?;
        assert_eq!(signed_in.status(), 302, "unreachable: break-glass works");
        outpost.stop().await?;
        server.stop().await
    })
    .await
}

/// The outpost sessions stored.
async fn proxy_session_rows(db: &TestDb) -> anyhow::Result<usize> {
    let store = db.store().await?;
    let mut conn = store.conn().await?;
    Ok(
        gatehouse_store::sql::fetch_all(&mut conn, "SELECT uuid FROM proxy_sessions", vec![])
            .await?
            .len(),
    )
}

/// An anonymous flood (#13, low items): 1,000 forward-auth hits and `start`s write no row; a
/// completed login writes one.
#[tokio::test]
async fn a_thousand_anonymous_hits_write_no_rows() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let server = TestServer::start(&db).await?;
    let family = protect(&server, &server.url).await?;
    user(&server, "alice@example.com", json!([family["pk"]])).await?;
    let http = no_redirects()?;
    for n in 0..1_000 {
        let r = if n % 2 == 0 {
            http.get(format!(
                "{}/outpost.goauthentik.io/start?rd=%2Fhome",
                server.url
            ))
            .send()
            .await?
        } else {
            http.get(format!(
                "{}/outpost.goauthentik.io/auth/traefik",
                server.url
            ))
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Host", server.url.trim_start_matches("http://"))
            .header("X-Forwarded-Uri", format!("/page/{n}"))
            .send()
            .await?
        };
        assert_eq!(r.status(), 302, "hit {n} is sent to log in");
    }
    assert_eq!(
        proxy_session_rows(&db).await?,
        0,
        "anonymous hits wrote rows"
    );
    let http = gatehouse_testkit::cookie_client()?;
    crate::outpost::outpost_login(&server, &http).await?;
    assert_eq!(decision(&server, &http).await?, 200);
    assert_eq!(
        proxy_session_rows(&db).await?,
        1,
        "a login writes its session"
    );
    server.stop().await
}

/// Proxy mode (#13, low items) passes the application its own cookies but neither the
/// visitor's Gatehouse session cookie nor an app password Gatehouse intercepted.
#[tokio::test]
async fn proxy_mode_keeps_gatehouse_cookies_and_intercepted_passwords_from_the_app(
) -> anyhow::Result<()> {
    use base64::Engine;
    with_server(|server| async move {
        let echo =
            EchoApp::start_echoing(&["cookie:", "authorization:", "x-authentik-username"]).await?;
        let external = format!("http://app.proxy.test:{}", server.port());
        let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
        let (status, provider) = server
            .post(
                "/providers/proxy/",
                json!({"name": "Proxied", "mode": "proxy", "external_host": external,
                       "internal_host": format!("http://127.0.0.1:{}", echo.port),
                       "intercept_header_auth": true,
                       "authorization_flow": flow, "invalidation_flow": invalidation}),
            )
            .await?;
        anyhow::ensure!(status == 201, "{provider}");
        server
            .post(
                "/core/applications/",
                json!({"name": "Proxied", "slug": "proxied", "provider": provider["pk"]}),
            )
            .await?;
        user(&server, "alice@example.com", json!([])).await?;
        let jar = Arc::new(reqwest::cookie::Jar::default());
        jar.add_cookie_str("app_pref=dark", &external.parse()?);
        let http = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("app.proxy.test", ([127, 0, 0, 1], 0).into())
            .build()?;
        let page = format!("{external}/hello");
        assert_eq!(status_until(&http, &page, 302).await?, 302);
        browse_until(
            &http,
            &server,
            &page,
            ("alice@example.com", PASSWORD),
            |l| l == page,
        )
        .await?;
        let body = http.get(&page).send().await?.text().await?;
        let session =
            gatehouse_outpost::cookie_name(provider["client_id"].as_str().unwrap_or_default());
        assert!(body.contains("alice@example.com"), "signed in: {body}");
        assert!(
            body.contains("app_pref=dark"),
            "the app's own cookie passes: {body}"
        );
        assert!(
            !body.contains(&session),
            "the Gatehouse session cookie must not reach the app: {body}"
        );

        let (_, users) = server
            .get("/core/users/?username=alice@example.com")
            .await?;
        let (status, token) = server
            .post(
                "/core/tokens/",
                json!({"identifier": "alice-app-password", "intent": "app_password",
                       "user": users["results"][0]["pk"]}),
            )
            .await?;
        anyhow::ensure!(status == 201, "{token}");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "alice@example.com:{}",
            token["key"].as_str().unwrap_or_default()
        ));
        let r = no_redirects()?
            .get(format!("http://127.0.0.1:{}/hello", server.port()))
            .header("Host", format!("app.proxy.test:{}", server.port()))
            .header("Authorization", format!("Basic {basic}"))
            .send()
            .await?;
        assert_eq!(r.status(), 200, "the app password passes");
        let body = r.text().await?;
        assert!(body.contains("alice@example.com"), "{body}");
        assert!(
            !body.to_ascii_lowercase().contains("authorization:"),
            "the intercepted app password must not reach the app: {body}"
        );
        server.stop().await
    })
    .await
}

/// Logout CSRF (#13, low items): another site's GET of `sign_out` (an image tag) or its POST
/// without the page's token signs nobody out; the confirmation page's button does.
#[tokio::test]
async fn sign_out_needs_the_confirmation_pages_post() -> anyhow::Result<()> {
    with_server(|server| async move {
        let family = protect(&server, &server.url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        let http = gatehouse_testkit::cookie_client()?;
        crate::outpost::outpost_login(&server, &http).await?;
        let sign_out = format!("{}/outpost.goauthentik.io/sign_out", server.url);
        let page = http.get(&sign_out).send().await?;
        assert_eq!(page.status(), 200, "a GET only asks");
        let html = page.text().await?;
        assert!(html.contains("Sign out of App?"), "{html}");
        assert_eq!(
            decision(&server, &http).await?,
            200,
            "still signed in after the GET"
        );
        let forged = http
            .post(&sign_out)
            .header("Origin", "https://evil.example.com")
            .form(&[("token", "guess")])
            .send()
            .await?;
        assert_eq!(forged.status(), 403);
        assert!(forged
            .text()
            .await?
            .contains("did not come from this application"));
        assert_eq!(
            decision(&server, &http).await?,
            200,
            "still signed in after a forged POST"
        );
        let token = html
            .split("name=\"token\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let done = http
            .post(&sign_out)
            .form(&[("token", token.as_str())])
            .send()
            .await?;
        assert_eq!(done.status(), 302, "the page's own POST signs out");
        assert_eq!(decision(&server, &http).await?, 401, "signed out");
        server.stop().await
    })
    .await
}

/// A proxy provider whose external host is Gatehouse's own address (T6, #13 low items) is
/// refused, through the API and in a declarative plan, with the fix; forward_domain, whose
/// external host is the shared login host, is not.
#[tokio::test]
async fn a_proxy_provider_claiming_gatehouses_own_address_is_refused_with_the_fix(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let (flow, invalidation) = crate::provider_flows(&server, "implicit").await?;
        for mode in ["forward_single", "proxy"] {
            let (status, body) = server
                .post(
                    "/providers/proxy/",
                    json!({"name": format!("Own {mode}"), "mode": mode,
                           "external_host": format!("{}/", server.external_url),
                           "internal_host": "http://127.0.0.1:9",
                           "authorization_flow": flow, "invalidation_flow": invalidation}),
                )
                .await?;
            assert_eq!(status, 400, "{mode}: {body}");
            let message = crate::errors(&body, "external_host");
            assert!(
                message.contains("Gatehouse's own address")
                    && message.contains("the application's own host"),
                "{mode}: {message}"
            );
        }
        let (status, body) = server
            .post(
                "/providers/proxy/",
                json!({"name": "Domain", "mode": "forward_domain",
                       "external_host": server.external_url, "cookie_domain": "localhost",
                       "authorization_flow": flow, "invalidation_flow": invalidation}),
            )
            .await?;
        assert_eq!(status, 201, "forward_domain may use the login host: {body}");

        let doc = format!(
            "proxy_providers:\n  - name: P\n    external_host: {}\n    authorization_flow: default-provider-authorization-implicit-consent\n    invalidation_flow: default-provider-invalidation-flow\n",
            server.external_url
        );
        let (status, body) = server
            .post(
                "/declarative/plan/",
                json!({"document": doc, "source": "homelab.yaml", "env": {}}),
            )
            .await?;
        assert_eq!(status, 400, "{body}");
        let message = crate::errors(&body, "document");
        assert!(
            message.starts_with("homelab.yaml:2") && message.contains("Gatehouse's own address"),
            "{message}"
        );
        server.stop().await
    })
    .await
}
