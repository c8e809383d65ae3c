//! Benchmark helpers for `bench/forward-auth.sh`:
//! - `gatehouse-bench hello ADDR`: the baseline, a minimal hyper server answering 200.
//! - `gatehouse-bench session URL TOKEN HOST`: creates a forward-auth provider for `HOST`,
//!   a user allowed to use it, logs in through the outpost like a browser, and prints the
//!   `Cookie` header value of the resulting outpost session.
//! - `gatehouse-bench oidc URL TOKEN SECONDS CHAINS`: creates an OAuth2 client and a user,
//!   obtains `CHAINS` refresh tokens through real logins, then refreshes (each chain using the
//!   token the last refresh returned) and calls userinfo for `SECONDS` each; prints requests/s.

use std::convert::Infallible;

use anyhow::{bail, Context};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["hello", addr] => hello(addr).await,
        ["session", url, token, host] => session(url, token, host).await,
        ["oidc", url, token, seconds, chains, algorithm] => oidc(url, token, seconds.parse()?, chains.parse()?, algorithm).await,
        _ => bail!("usage: gatehouse-bench hello ADDR | session URL TOKEN HOST | oidc URL TOKEN SECONDS CHAINS RS256|ES256"),
    }
}

async fn hello(addr: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn api(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let r = client
        .post(format!("{url}/api/v3{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let value: Value = r.json().await?;
    if !status.is_success() {
        bail!("{path}: {status} {value}");
    }
    Ok(value)
}

async fn session(url: &str, token: &str, host: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let flow = client
        .get(format!(
            "{url}/api/v3/flows/instances/default-provider-authorization-implicit-consent/"
        ))
        .bearer_auth(token)
        .send()
        .await?
        .json::<Value>()
        .await?;
    let invalidation = client
        .get(format!(
            "{url}/api/v3/flows/instances/default-provider-invalidation-flow/"
        ))
        .bearer_auth(token)
        .send()
        .await?
        .json::<Value>()
        .await?;
    let provider = api(
        &client,
        url,
        token,
        "/providers/proxy/",
        json!({"name": "Bench", "external_host": format!("http://{host}"), "authorization_flow": flow["pk"], "invalidation_flow": invalidation["pk"]}),
    )
    .await?;
    let app = api(
        &client,
        url,
        token,
        "/core/applications/",
        json!({"name": "Bench", "slug": "bench", "provider": provider["pk"]}),
    )
    .await?;
    let group = api(
        &client,
        url,
        token,
        "/core/groups/",
        json!({"name": "Bench users"}),
    )
    .await?;
    api(
        &client,
        url,
        token,
        "/policies/bindings/",
        json!({"target": app["pk"], "group": group["pk"], "order": 0}),
    )
    .await?;
    let user = api(
        &client,
        url,
        token,
        "/core/users/",
        json!({"username": "bench", "name": "Bench", "groups": [group["pk"]]}),
    )
    .await?;
    api(
        &client,
        url,
        token,
        &format!("/core/users/{}/set_password/", user["pk"]),
        json!({"password": "bench password"}),
    )
    .await
    .ok();

    // A browser stand-in: follow redirects by hand, answer the login forms, keep cookies.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let external = format!("http://{host}");
    let local = |location: &str| {
        if location.starts_with('/') {
            format!("{url}{location}")
        } else {
            location
                .replace(&external, url)
                .replace("http://localhost:", "http://127.0.0.1:")
        }
    };
    let mut target = format!("{url}/outpost.goauthentik.io/start?rd=%2F");
    let mut response = browser.get(&target).header("Host", host).send().await?;
    for _ in 0..20 {
        if let Some(location) = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        {
            if target.contains("/outpost.goauthentik.io/callback") {
                let cookie = response
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find(|v| v.starts_with("authentik_proxy_"))
                    .and_then(|v| v.split(';').next())
                    .context("no outpost cookie at the callback")?;
                println!("{cookie}");
                return Ok(());
            }
            let on_app = location.starts_with(&external);
            target = local(&location);
            response = if on_app {
                browser.get(&target).header("Host", host).send().await?
            } else {
                browser.get(&target).send().await?
            };
            continue;
        }
        response = answer_login_form(&browser, &target, response, "bench").await?;
    }
    bail!("the outpost login did not complete")
}

/// Answers the login form `response` carries (identification or password) for `username`,
/// posting it back to `target` without its query.
async fn answer_login_form(
    browser: &reqwest::Client,
    target: &str,
    response: reqwest::Response,
    username: &str,
) -> anyhow::Result<reqwest::Response> {
    let html = response.text().await?;
    let csrf = html
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default();
    let field = if html.contains("name=uid_field") {
        ("uid_field", username)
    } else {
        ("password", "bench password")
    };
    let action = target.split('?').next().unwrap_or_default();
    Ok(browser
        .post(action)
        .form(&[field, ("csrf", csrf)])
        .send()
        .await?)
}

/// Follows redirects from `start` like a browser (answering the login forms) until one goes to
/// `callback`; returns that location.
async fn authorize(
    browser: &reqwest::Client,
    url: &str,
    start: &str,
    callback: &str,
) -> anyhow::Result<String> {
    let local = |l: &str| {
        if l.starts_with('/') {
            format!("{url}{l}")
        } else {
            l.replace("http://localhost:", "http://127.0.0.1:")
        }
    };
    let mut target = start.to_owned();
    let mut response = browser.get(&target).send().await?;
    for _ in 0..20 {
        if let Some(location) = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        {
            if location.starts_with(callback) {
                return Ok(location);
            }
            target = local(&location);
            response = browser.get(&target).send().await?;
            continue;
        }
        response = answer_login_form(browser, &target, response, "oidc-bench").await?;
    }
    bail!("no redirect to the callback")
}

/// Runs `chains` copies of `step` until `seconds` have passed; returns the rate per second.
async fn rate<S, F>(seconds: u64, states: Vec<S>, step: F) -> anyhow::Result<f64>
where
    S: Send + 'static,
    F: Fn(S) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<S>> + Send>>
        + Clone
        + Send
        + 'static,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for mut state in states {
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while std::time::Instant::now() < deadline {
                state = step(state).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / seconds as f64)
}

/// The token endpoint and userinfo of a provider signing with `algorithm`.
async fn oidc(
    url: &str,
    token: &str,
    seconds: u64,
    chains: usize,
    algorithm: &str,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let get = |path: String| {
        client
            .get(format!("{url}/api/v3{path}"))
            .bearer_auth(token)
            .send()
    };
    let flow: Value =
        get("/flows/instances/default-provider-authorization-implicit-consent/".into())
            .await?
            .json()
            .await?;
    let invalidation: Value = get("/flows/instances/default-provider-invalidation-flow/".into())
        .await?
        .json()
        .await?;
    let callback = "http://127.0.0.1:9/callback";
    let provider = api(
        &client,
        url,
        token,
        "/providers/oauth2/",
        json!({"name": format!("OIDC bench {algorithm}"), "authorization_flow": flow["pk"], "invalidation_flow": invalidation["pk"],
               "redirect_uris": [{"matching_mode": "strict", "url": callback}], "refresh_token_validity": "days=1",
               "signing_algorithm": algorithm}),
    )
    .await?;
    let slug = format!("oidc-bench-{}", algorithm.to_lowercase());
    api(
        &client,
        url,
        token,
        "/core/applications/",
        json!({"name": slug, "slug": slug, "provider": provider["pk"]}),
    )
    .await?;
    // The second algorithm's run finds the user the first one made.
    let user = match api(
        &client,
        url,
        token,
        "/core/users/",
        json!({"username": "oidc-bench", "name": "OIDC Bench"}),
    )
    .await
    {
        Ok(user) => user,
        Err(_) => get("/core/users/?username=oidc-bench".into())
            .await?
            .json::<Value>()
            .await?["results"][0]
            .clone(),
    };
    api(
        &client,
        url,
        token,
        &format!("/core/users/{}/set_password/", user["pk"]),
        json!({"password": "bench password"}),
    )
    .await
    .ok();
    let client_id = provider["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let secret = provider["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut refresh_tokens = Vec::new();
    let mut access = String::new();
    for _ in 0..chains {
        let start = format!("{url}/application/o/authorize/?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid%20profile%20offline_access");
        let location = authorize(&browser, url, &start, callback).await?;
        let code = location
            .split("code=")
            .nth(1)
            .and_then(|c| c.split('&').next())
            .unwrap_or_default()
            .to_owned();
        let tokens: Value = client
            .post(format!("{url}/application/o/token/"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", callback),
            ])
            .send()
            .await?
            .json()
            .await?;
        refresh_tokens.push(
            tokens["refresh_token"]
                .as_str()
                .context("no refresh token")?
                .to_owned(),
        );
        access = tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    let endpoint = format!("{url}/application/o/token/");
    let refresh_rate = rate(seconds, refresh_tokens, {
        let (client, endpoint, client_id, secret) = (
            client.clone(),
            endpoint.clone(),
            client_id.clone(),
            secret.clone(),
        );
        move |refresh: String| {
            let (client, endpoint, client_id, secret) = (
                client.clone(),
                endpoint.clone(),
                client_id.clone(),
                secret.clone(),
            );
            Box::pin(async move {
                let answer: Value = client
                    .post(&endpoint)
                    .basic_auth(&client_id, Some(&secret))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                    ])
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok(answer["refresh_token"]
                    .as_str()
                    .with_context(|| format!("refresh failed: {answer}"))?
                    .to_owned())
            })
        }
    })
    .await?;
    println!("{algorithm} refresh_token grants: {refresh_rate:.0} req/s ({chains} rotating chains, {seconds} s)");
    let start = format!("{url}/application/o/authorize/?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid%20profile");
    let code_rate = rate(seconds, vec![(); chains], {
        let (client, browser, endpoint, url) = (
            client.clone(),
            browser.clone(),
            endpoint.clone(),
            url.to_owned(),
        );
        move |()| {
            let (client, browser, endpoint, url, start) = (
                client.clone(),
                browser.clone(),
                endpoint.clone(),
                url.clone(),
                start.clone(),
            );
            let (client_id, secret) = (client_id.clone(), secret.clone());
            Box::pin(async move {
                let location = authorize(&browser, &url, &start, callback).await?;
                let code = location
                    .split("code=")
                    .nth(1)
                    .and_then(|c| c.split('&').next())
                    .unwrap_or_default()
                    .to_owned();
                let answer: Value = client
                    .post(&endpoint)
                    .basic_auth(&client_id, Some(&secret))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", code.as_str()),
                        ("redirect_uri", callback),
                    ])
                    .send()
                    .await?
                    .json()
                    .await?;
                answer["id_token"]
                    .as_str()
                    .with_context(|| format!("code exchange failed: {answer}"))?;
                Ok(())
            })
        }
    })
    .await?;
    println!("{algorithm} authorization codes (authorize + exchange): {code_rate:.0} logins/s ({chains} concurrent clients, {seconds} s)");
    let userinfo_rate = rate(seconds, vec![(); chains], {
        let (client, url) = (client.clone(), url.to_owned());
        move |()| {
            let (client, url, access) = (client.clone(), url.clone(), access.clone());
            Box::pin(async move {
                let r = client
                    .get(format!("{url}/application/o/userinfo/"))
                    .bearer_auth(&access)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("userinfo answered {}", r.status());
                }
                Ok(())
            })
        }
    })
    .await?;
    println!(
        "{algorithm} userinfo: {userinfo_rate:.0} req/s ({chains} concurrent clients, {seconds} s)"
    );
    Ok(())
}
