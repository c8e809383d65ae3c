//! Benchmark helpers for `bench/forward-auth.sh`:
//! - `gatehouse-bench hello ADDR [HEADERS_FILE]`: the baseline, a minimal hyper server
//!   answering 200 (`/auth` with an empty body, as an auth service answers); with a file of
//!   `Name: value` lines it adds those headers to every answer
//!   (a diagnostic: what Gatehouse's identity headers cost by themselves).
//! - `gatehouse-bench session URL TOKEN HOST`: creates a forward-auth provider for `HOST`,
//!   a user allowed to use it, logs in through the outpost like a browser, and prints the
//!   `Cookie` header value of the resulting outpost session.
//! - `gatehouse-bench sessions DATABASE_URL COOKIE N USERS FILE` (for `bench/sessions.sh`):
//!   copies the outpost session behind `COOKIE` (made by `session`) into `N` valid sessions
//!   spread over `USERS` users of its group, written through the store in a few large
//!   transactions, and writes their `Cookie` header values to `FILE`, one a line.
//! - `gatehouse-bench visit URL HOST FILE CONNECTIONS` (for `bench/sessions.sh`): asks the
//!   outpost's nginx endpoint once for every `Cookie` header value in `FILE`, over
//!   `CONNECTIONS` keep-alive connections, so that a measured run that follows finds every
//!   session cached (a steady state); prints how many answers were 200 and how many not.
//! - `gatehouse-bench oidc URL TOKEN SECONDS CHAINS`: creates an OAuth2 client and a user,
//!   obtains `CHAINS` refresh tokens through real logins, then refreshes (each chain using the
//!   token the last refresh returned) and calls userinfo for `SECONDS` each; prints requests/s.
//! - `gatehouse-bench rate URL --rps N --duration SECS --connections C [--warmup SECS]
//!   [-H 'Name: value']...`: open-loop load at a fixed rate over `C` keep-alive HTTP/1.1
//!   connections, latencies measured from each request's scheduled time (wrk2's correction for
//!   coordinated omission, since wrk2 is not packaged); prints one line
//!   `rate=.. requests=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. errors=..
//!   pace_p99_us=..` (the last is the generator's own lag, included in the latencies).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["hello", addr] => hello(addr, HeaderMap::new()).await,
        ["hello", addr, headers_file] => hello(addr, headers_from(headers_file)?).await,
        ["session", url, token, host] => session(url, token, host).await,
        ["sessions", db, cookie, n, users, file] => sessions(db, cookie, n.parse()?, users.parse()?, file).await,
        ["visit", url, host, file, connections] => visit(url, host, file, connections.parse()?).await,
        ["oidc", url, token, seconds, chains, algorithm] => oidc(url, token, seconds.parse()?, chains.parse()?, algorithm).await,
        ["rate", rest @ ..] => fixed_rate(rest).await,
        _ => bail!("usage: gatehouse-bench hello ADDR | session URL TOKEN HOST | sessions DATABASE_URL COOKIE N USERS FILE | visit URL HOST FILE CONNECTIONS | oidc URL TOKEN SECONDS CHAINS RS256|ES256 | {RATE_USAGE}"),
    }
}

/// `Name: value` lines (as `curl -D` writes them; the status line and hop headers skipped):
/// the headers a `hello` server adds to every answer, to measure what answering with
/// Gatehouse's identity headers costs by itself.
fn headers_from(path: &str) -> anyhow::Result<HeaderMap> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut headers = HeaderMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if ["content-length", "date", "connection"].contains(&name.as_str()) {
            continue;
        }
        headers.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    Ok(headers)
}

async fn hello(addr: &str, headers: HeaderMap) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let headers = Arc::new(headers);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let headers = headers.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                // `/auth` answers with an empty body, as an auth service does: nginx's
                // auth_request keeps an upstream connection alive only then.
                let body: &'static [u8] = if req.uri().path() == "/auth" {
                    b""
                } else {
                    b"ok"
                };
                let mut response = Response::new(Full::new(Bytes::from_static(body)));
                *response.headers_mut() = (*headers).clone();
                async { Ok::<_, Infallible>(response) }
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

/// Copies the outpost session behind `cookie` (`name=value`) into `n` sessions of `users`
/// users (made, in the session user's groups, as needed), through the store in transactions of
/// multi-row inserts; writes their cookies to `file`.
async fn sessions(
    db: &str,
    cookie: &str,
    n: usize,
    users: usize,
    file: &str,
) -> anyhow::Result<()> {
    use gatehouse_store::{sql, users as store_users, Value};
    let (name, value) = cookie.split_once('=').context("COOKIE is name=value")?;
    // Outpost sessions hold no sealed secret: a throwaway key will do.
    let key = std::sync::Arc::new(gatehouse_store::SecretKey::generate()?);
    let store = gatehouse_store::Store::connect(db, key).await?;
    let mut conn = store.conn().await?;
    let template = gatehouse_store::proxy_sessions::find(&mut conn, value, chrono::Utc::now())
        .await?
        .context("no valid outpost session behind COOKIE")?;
    let owner = template.user.context("the session is not logged in")?;
    let groups = gatehouse_store::groups::of_user(&mut conn, owner).await?;
    let mut people = vec![owner];
    drop(conn);
    let mut tx = store.begin().await?;
    for i in people.len()..users.max(1) {
        let username = format!("bench-{i}");
        let id = match store_users::find_by_username(&mut tx, &username).await? {
            Some(u) => u.id,
            None => {
                let mut fields = store_users::get(&mut tx, owner).await?.fields;
                fields.username = username.clone();
                let id = store_users::create(&mut tx, &fields).await?.id;
                for g in &groups {
                    gatehouse_store::groups::add_member(&mut tx, g.id, id).await?;
                }
                id
            }
        };
        people.push(id);
    }
    gatehouse_store::commit(tx).await?;
    const ROWS: usize = 500;
    let data = template.data.to_string();
    let mut out = String::with_capacity(n * 64);
    let mut made = 0;
    while made < n {
        let mut tx = store.begin().await?;
        for _ in 0..200 {
            let rows = ROWS.min(n - made);
            if rows == 0 {
                break;
            }
            let mut statement = String::from("INSERT INTO proxy_sessions (uuid, key_hash, provider_id, user_id, idp_session, session_data, created, expires) VALUES ");
            let mut values: Vec<Value> = Vec::with_capacity(rows * 8);
            for r in 0..rows {
                let key = gatehouse_core::secret::new_token();
                out.push_str(&format!("{name}={key}\n"));
                let b = r * 8;
                if r > 0 {
                    statement.push(',');
                }
                statement.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                ));
                values.extend([
                    uuid::Uuid::new_v4().into(),
                    gatehouse_core::secret::token_hash(&key).into(),
                    template.provider.into(),
                    people[(made + r) % people.len()].into(),
                    template.idp_session.into(),
                    data.as_str().into(),
                    sql::now().into(),
                    template.expires.into(),
                ]);
            }
            sql::execute(&mut tx, &statement, values).await?;
            made += rows;
        }
        gatehouse_store::commit(tx).await?;
    }
    std::fs::write(file, out).with_context(|| format!("writing {file}"))?;
    store.close().await;
    Ok(())
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

/// Asks for every cookie of `file` exactly once (cookies handed out in file order to
/// `connections` connections), so the measured run after it is a steady state: wrk's cycling
/// from random places cannot promise to have visited every session.
async fn visit(url: &str, host: &str, file: &str, connections: usize) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let cookies: Arc<Vec<HeaderValue>> = Arc::new(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(HeaderValue::from_str)
            .collect::<Result<_, _>>()?,
    );
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
    let authority = uri
        .authority()
        .with_context(|| format!("no host in {url}"))?;
    let addr = tokio::net::lookup_host(format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    ))
    .await?
    .next()
    .with_context(|| format!("{authority} has no address"))?;
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(host)?);
    headers.insert("x-original-uri", HeaderValue::from_static("/"));
    let (next, ok, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (cookies, next, ok, other) = (cookies.clone(), next.clone(), ok.clone(), other.clone());
        let mut target = Target {
            addr,
            path: Uri::from_static("/outpost.goauthentik.io/auth/nginx"),
            headers: headers.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let mut connection = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(cookie) = cookies.get(i) else { break };
                target.headers.insert(hyper::header::COOKIE, cookie.clone());
                match send(&target, &mut connection).await {
                    Ok(status) if status.is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    println!(
        "visited={} ok={} other={}",
        cookies.len(),
        ok.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed)
    );
    Ok(())
}

const RATE_USAGE: &str =
    "rate URL --rps N --duration SECS --connections C [--warmup SECS] [-H 'Name: value']...";
/// How long requests still in flight when the schedule ends may take before they count as errors.
const GRACE: Duration = Duration::from_secs(2);
/// Bounds each (re)connect, so a dead server costs errors rather than time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What `rate` was asked for, checked before any connection is opened.
struct RateOptions {
    /// `host:port` of the URL, resolved once.
    authority: String,
    path: Uri,
    headers: HeaderMap,
    rps: f64,
    duration: Duration,
    warmup: Duration,
    connections: usize,
}

/// Where every connection goes and the request it repeats.
struct Target {
    addr: SocketAddr,
    path: Uri,
    headers: HeaderMap,
}

/// One request handed to a connection: when it was due, and whether it is past the warm-up.
type Due = (Instant, bool);

/// What one connection saw during the measured window.
#[derive(Default)]
struct LaneStats {
    /// Scheduled-to-complete times of answered requests, in ns.
    latencies: Vec<u64>,
    /// Due-to-sent delays of requests whose connection was idle when they fell due, in ns: the
    /// generator's own lag (pacer wake-up, task scheduling), which `latencies` include.
    pacing: Vec<u64>,
    /// Non-2xx answers, failed requests (connect, I/O, protocol) and requests unanswered at the
    /// deadline.
    errors: u64,
    last_done: Option<Instant>,
}

impl RateOptions {
    /// Parses `rate`'s arguments (everything after the subcommand); rejects what it does not
    /// know so a typo cannot silently run a different benchmark.
    fn parse(args: &[&str]) -> anyhow::Result<Self> {
        let (mut url, mut rps, mut duration, mut connections) = (None, None, None, None);
        let mut warmup = Duration::from_secs(1);
        let mut extra = Vec::new();
        let mut args = args.iter().copied();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg {
                "--rps" => rps = Some(value()?.parse::<f64>().context("--rps")?),
                "--duration" => duration = Some(seconds(value()?).context("--duration")?),
                "--warmup" => warmup = seconds(value()?).context("--warmup")?,
                "--connections" => {
                    connections = Some(value()?.parse::<usize>().context("--connections")?)
                }
                "-H" => extra.push(value()?),
                _ if url.is_none() && !arg.starts_with('-') => url = Some(arg),
                _ => bail!("unexpected argument {arg:?}; usage: {RATE_USAGE}"),
            }
        }
        let (Some(url), Some(rps), Some(duration), Some(connections)) =
            (url, rps, duration, connections)
        else {
            bail!("usage: gatehouse-bench {RATE_USAGE}");
        };
        ensure!(rps.is_finite() && rps > 0.0, "--rps must be positive");
        ensure!(!duration.is_zero(), "--duration must be positive");
        ensure!(connections > 0, "--connections must be at least 1");
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
        ensure!(uri.scheme_str() == Some("http"), "only http:// URLs: {url}");
        let authority = uri
            .authority()
            .with_context(|| format!("no host in {url}"))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .context("bad path")?;
        // hyper's connection-level client sends only the headers it is given; like wrk, default
        // Host to the URL's authority unless -H sets one.
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        for header in extra {
            let (name, value) = header
                .split_once(':')
                .with_context(|| format!("-H {header:?}: expected 'Name: value'"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("-H {header:?}: bad name"))?;
            let value = HeaderValue::from_str(value.trim())
                .with_context(|| format!("-H {header:?}: bad value"))?;
            if name == HOST {
                headers.insert(name, value);
            } else {
                headers.append(name, value);
            }
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            authority: format!("{}:{port}", authority.host()),
            path,
            headers,
            rps,
            duration,
            warmup,
            connections,
        })
    }
}

/// Reads `10`, `10s`, `1.5s` or `2m`, so `bench/forward-auth.sh` can pass wrk's `-d` value as is.
fn seconds(s: &str) -> anyhow::Result<Duration> {
    let (number, unit) = match s.strip_suffix('m') {
        Some(minutes) => (minutes, 60.0),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("{s:?} is not a number of seconds"))?;
    Ok(Duration::try_from_secs_f64(value * unit)?)
}

/// Open-loop load at a fixed rate (wrk2's model, as wrk cannot hold a rate and wrk2 is not in
/// Debian): request `i` is due at `start + i / rps` on connection `i % C`; its latency runs
/// from that due time, so time spent queued behind a slow answer counts (no coordinated
/// omission). Runs at most connect + warm-up + duration + [`GRACE`].
async fn fixed_rate(args: &[&str]) -> anyhow::Result<()> {
    let options = RateOptions::parse(args)?;
    let addr = tokio::net::lookup_host(&options.authority)
        .await
        .with_context(|| format!("resolving {}", options.authority))?
        .next()
        .with_context(|| format!("{} has no address", options.authority))?;
    // Handshakes happen before the schedule starts; one that fails is retried per request
    // (and counted as an error each time it fails again).
    let mut opening = Vec::new();
    for _ in 0..options.connections {
        opening.push(tokio::spawn(connect(addr)));
    }
    let mut connections = Vec::new();
    for handle in opening {
        connections.push(handle.await?.ok());
    }

    let start = Instant::now() + Duration::from_millis(10);
    let measure_from = start + options.warmup;
    let end = measure_from + options.duration;
    let deadline = end + GRACE;
    let total = ((options.warmup + options.duration).as_secs_f64() * options.rps).ceil() as u64;
    let target = Arc::new(Target {
        addr,
        path: options.path,
        headers: options.headers,
    });
    let mut lanes = Vec::new();
    let mut drivers = Vec::new();
    for connection in connections {
        let (lane, due) = unbounded_channel();
        lanes.push(lane);
        drivers.push(tokio::spawn(drive(
            target.clone(),
            connection,
            due,
            deadline,
        )));
    }
    let rps = options.rps;
    // Not joined: it ends at `end`, before every driver has given up at `deadline`.
    std::thread::spawn(move || pace(start, measure_from, rps, total, lanes));

    let (mut latencies, mut pacing) = (Vec::new(), Vec::new());
    let (mut errors, mut last_done) = (0, measure_from);
    for driver in drivers {
        let stats = driver.await?;
        latencies.extend(stats.latencies);
        pacing.extend(stats.pacing);
        errors += stats.errors;
        last_done = last_done.max(stats.last_done.unwrap_or(measure_from));
    }
    ensure!(
        !latencies.is_empty(),
        "no request to {addr} was answered ({errors} errors)"
    );
    latencies.sort_unstable();
    pacing.sort_unstable();
    // Answers per second over the window, stretched to the last answer when the server fell
    // behind (so an overloaded server shows its real throughput, not the offered rate).
    let window = (last_done - measure_from).max(options.duration);
    let q = |q| quantile_us(&latencies, q);
    println!(
        "rate={:.0} requests={} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} errors={errors} pace_p99_us={}",
        latencies.len() as f64 / window.as_secs_f64(),
        latencies.len(),
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        q(1.0),
        quantile_us(&pacing, 0.99),
    );
    Ok(())
}

/// Hands request `i` to connection `i % C` at `start + i / rps`. A thread of its own because
/// tokio's timer has 1 ms granularity, as coarse as the p99 target; `thread::sleep` wakes
/// within tens of µs on Linux. Requests are never released early, so pacing jitter can only
/// add to the measured latencies.
fn pace(
    start: Instant,
    measure_from: Instant,
    rps: f64,
    total: u64,
    lanes: Vec<UnboundedSender<Due>>,
) {
    for (i, lane) in (0..total).zip(lanes.iter().cycle()) {
        let due = start + Duration::from_secs_f64(i as f64 / rps);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        // A closed lane means its driver reached the deadline; nothing more to do there.
        let _ = lane.send((due, due >= measure_from));
    }
}

/// Sends the requests the pacer hands one connection, one at a time, timing each from its due
/// time: a request queued behind a slow answer is charged for the wait. Stops at `deadline`;
/// measured requests unanswered by then are errors.
async fn drive(
    target: Arc<Target>,
    mut connection: Option<SendRequest<Empty<Bytes>>>,
    mut due: UnboundedReceiver<Due>,
    deadline: Instant,
) -> LaneStats {
    let mut stats = LaneStats::default();
    let until = tokio::time::Instant::from_std(deadline);
    let mut free_since = None;
    while let Ok(Some((at, measured))) = tokio::time::timeout_at(until, due.recv()).await {
        if measured && free_since.is_none_or(|free| free <= at) {
            stats
                .pacing
                .push(nanos(Instant::now().saturating_duration_since(at)));
        }
        let outcome = tokio::time::timeout_at(until, send(&target, &mut connection)).await;
        let done = Instant::now();
        free_since = Some(done);
        match outcome {
            Err(_elapsed) => {
                stats.errors += u64::from(measured);
                break;
            }
            _ if !measured => {}
            Ok(Ok(status)) => {
                stats.latencies.push(nanos(done - at));
                stats.last_done = Some(done);
                stats.errors += u64::from(!status.is_success());
            }
            Ok(Err(_)) => stats.errors += 1,
        }
    }
    due.close();
    while let Ok((_, measured)) = due.try_recv() {
        stats.errors += u64::from(measured);
    }
    stats
}

/// One request on the lane's connection, reopening it first if it was closed or the last
/// request on it failed; returns the status once the body is read (so the connection can be
/// reused).
async fn send(
    target: &Target,
    connection: &mut Option<SendRequest<Empty<Bytes>>>,
) -> anyhow::Result<StatusCode> {
    let mut sender = match connection.take() {
        Some(sender) if !sender.is_closed() => sender,
        _ => connect(target.addr).await?,
    };
    sender.ready().await?;
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = target.path.clone();
    *request.headers_mut() = target.headers.clone();
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    *connection = Some(sender);
    Ok(status)
}

/// Opens one keep-alive HTTP/1.1 connection, without Nagle's delay; its I/O runs in a task of
/// its own until the sender is dropped or the peer closes.
async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr} timed out"))??;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A duration in ns, saturating (no sample comes near 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The `q`-quantile of sorted ns `samples`, in µs, by nearest rank (`q = 1` is the maximum).
fn quantile_us(samples: &[u64], q: f64) -> u64 {
    let rank = (q * samples.len() as f64).ceil() as usize;
    let index = rank.clamp(1, samples.len().max(1)) - 1;
    samples.get(index).map_or(0, |ns| ns / 1000)
}
