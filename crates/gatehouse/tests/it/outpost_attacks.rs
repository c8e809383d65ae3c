//! Attacks on the forward-auth outpost (issue #13), each performed end to end against the real
//! server: what an attacker tries, and what they must not get.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_testkit::{browse_until, with_server, EchoApp, Nginx, TestServer};
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
