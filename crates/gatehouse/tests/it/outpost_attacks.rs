//! Attacks on the forward-auth outpost (issue #13), each performed end to end against the real
//! server: what an attacker tries, and what they must not get.

use std::sync::Arc;

use gatehouse_testkit::{browse_until, with_server};
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use crate::outpost::{decision, protect, user, PASSWORD};

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
