//! Benchmark helpers for `bench/forward-auth.sh`:
//! - `gatehouse-bench hello ADDR`: the baseline, a minimal hyper server answering 200.
//! - `gatehouse-bench session URL TOKEN HOST`: creates a forward-auth provider for `HOST`,
//!   a user allowed to use it, logs in through the outpost like a browser, and prints the
//!   `Cookie` header value of the resulting outpost session.

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
        _ => bail!("usage: gatehouse-bench hello ADDR | gatehouse-bench session URL TOKEN HOST"),
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
        let html = response.text().await?;
        let csrf = html
            .split("name=csrf value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let field = if html.contains("name=uid_field") {
            ("uid_field", "bench")
        } else {
            ("password", "bench password")
        };
        let action = target.split('?').next().unwrap_or_default().to_owned();
        response = browser
            .post(&action)
            .form(&[field, ("csrf", csrf.as_str())])
            .send()
            .await?;
    }
    bail!("the outpost login did not complete")
}
