//! `gatehouse doctor`: the reference operator's post-upgrade checklist (SPEC §1 T11) as code,
//! one line per check with the fix, `--json` for scripts, exit 1 when any fails:
//! 1. the outpost Service has ready endpoints, and 2. its selector picks the outpost's pods
//!    and none of the server's (Kubernetes, through `gatehouse_k8s::cluster`);
//! 3. every outpost (the server's embedded one and each `--outpost`) reports its mode and
//!    session store, and 4. none keeps sessions anywhere but the database (T3);
//! 5. sessions are being written with the expected expiry;
//! 6. an anonymous request to a protected URL gets a redirect to the login, never 401 with a
//!    Basic challenge, and no `X-Auth-Fallback`;
//! 7. the declarative config plans to zero (T8).

use anyhow::bail;
use chrono::{DateTime, Utc};
use gatehouse_k8s::{Check, Status};
use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use serde_json::Value;

use crate::cli::DoctorArgs;
use crate::client::Client;

/// Runs every check and prints them; fails when any failed.
pub(super) async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let checks = checks(&args).await;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let word = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            if c.fix.is_empty() {
                println!("{word} {:<20} {}", c.name, c.detail);
            } else {
                println!("{word} {:<20} {} -> {}", c.name, c.detail, c.fix);
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        bail!("{failed} of {} check(s) failed", checks.len());
    }
    Ok(())
}

async fn checks(args: &DoctorArgs) -> Vec<Check> {
    let mut out = Vec::new();
    if args.no_kubernetes {
        for name in ["outpost-endpoints", "outpost-selector"] {
            out.push(Check::skip(
                name,
                "Kubernetes checks are off",
                "drop --no-kubernetes",
            ));
        }
    } else {
        match gatehouse_k8s::cluster::client().await {
            Ok(client) => out.extend(
                gatehouse_k8s::cluster::checks(&client, &args.namespace, &args.outpost_service)
                    .await,
            ),
            Err(e) => {
                for name in ["outpost-endpoints", "outpost-selector"] {
                    out.push(Check::fail(
                        name,
                        e.to_string(),
                        "point KUBECONFIG at the cluster, or pass --no-kubernetes outside Kubernetes",
                    ));
                }
            }
        }
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build();
    let http = match http {
        Ok(h) => h,
        Err(e) => {
            out.push(Check::fail(
                "http-client",
                e.to_string(),
                "report this as a bug",
            ));
            return out;
        }
    };
    out.extend(outposts(&http, args).await);
    match Client::new(&args.client) {
        Ok(client) => {
            out.push(session_expiry(&client, &args.session_validity).await);
            out.push(plan_to_zero(&client, args).await);
        }
        Err(e) => {
            for name in ["session-expiry", "plan-to-zero"] {
                out.push(Check::fail(
                    name,
                    e.to_string(),
                    "pass --token or set GATEHOUSE_TOKEN",
                ));
            }
        }
    }
    out.push(edge_redirect(&http, args.app_url.as_deref()).await);
    out
}

/// `outpost-mode` and `outpost-sessions`: what each outpost's readiness check reports.
async fn outposts(http: &reqwest::Client, args: &DoctorArgs) -> Vec<Check> {
    let mut urls = vec![args.client.url.trim_end_matches('/').to_owned()];
    urls.extend(
        args.outposts
            .iter()
            .map(|u| u.trim_end_matches('/').to_owned()),
    );
    let mut modes = Vec::new();
    let mut stores = Vec::new();
    let mut problems = Vec::new();
    let mut wrong_store = Vec::new();
    for url in &urls {
        let answer = match http.get(format!("{url}/-/health/ready/")).send().await {
            Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
            Err(e) => {
                problems.push(format!("{url}: {e}"));
                continue;
            }
        };
        let mode = answer["mode"].as_str().unwrap_or_default();
        let sessions = answer["sessions"].as_str().unwrap_or_default();
        if mode.is_empty() || answer["status"] != "ready" {
            problems.push(format!("{url}: not ready or no mode reported ({answer})"));
            continue;
        }
        modes.push(format!("{url}: {mode}"));
        stores.push(format!("{url}: {sessions}"));
        if !matches!(sessions, "postgres" | "sqlite") {
            wrong_store.push(format!(
                "{url}: {}",
                if sessions.is_empty() {
                    "none named"
                } else {
                    sessions
                }
            ));
        }
    }
    let mode = if problems.is_empty() {
        Check::pass("outpost-mode", modes.join("; "))
    } else {
        Check::fail(
            "outpost-mode",
            problems.join("; "),
            "check the URLs (--url, --outpost) and that each outpost passes /-/health/ready/ (its token and --server)",
        )
    };
    let store = if !wrong_store.is_empty() {
        Check::fail(
            "outpost-sessions",
            format!("sessions not in the database: {}", wrong_store.join("; ")),
            "sessions must live in the server's database; upgrade the outpost and check its --server",
        )
    } else if stores.is_empty() {
        Check::fail(
            "outpost-sessions",
            "no outpost answered",
            "see outpost-mode",
        )
    } else {
        Check::pass(
            "outpost-sessions",
            format!(
                "in the database, no filesystem store: {}",
                stores.join("; ")
            ),
        )
    };
    vec![mode, store]
}

/// `session-expiry`: the newest session expires `validity` after it started.
async fn session_expiry(client: &Client, validity: &str) -> Check {
    const NAME: &str = "session-expiry";
    let expected = match validity.parse::<gatehouse_core::Duration>() {
        Ok(d) => d.seconds(),
        Err(e) => {
            return Check::fail(
                NAME,
                format!("--session-validity `{validity}`: {e}"),
                "write it like weeks=4 or hours=12",
            )
        }
    };
    let newest = match client
        .get("/core/authenticated_sessions/?ordering=-last_used&page_size=1")
        .await
    {
        Ok(list) => list["results"][0].clone(),
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                "check --url and the token (an admin's)",
            )
        }
    };
    let at = |field: &str| {
        newest[field]
            .as_str()
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
    };
    let (Some(started), Some(expires)) = (at("last_used"), at("expires")) else {
        return Check::fail(
            NAME,
            "no session yet",
            "log in once through a protected app, then run doctor again",
        );
    };
    let lifetime = (expires - started).num_seconds();
    let days = |s: i64| format!("{:.1} days", s as f64 / 86_400.0);
    let age = Utc::now() - started;
    // A minute of slack for the time between computing expiry and storing the row.
    if (lifetime - expected).abs() <= 60 {
        Check::pass(
            NAME,
            format!(
                "newest session started {} min ago and expires {} later",
                age.num_minutes(),
                days(lifetime)
            ),
        )
    } else {
        Check::fail(
            NAME,
            format!("newest session expires {} after it started, expected {}", days(lifetime), days(expected)),
            format!("set the user_login stage's session_duration to {validity} (in the declarative config), or pass the --session-validity you intend"),
        )
    }
}

/// `plan-to-zero`: applying the declarative config would change nothing.
async fn plan_to_zero(client: &Client, args: &DoctorArgs) -> Check {
    const NAME: &str = "plan-to-zero";
    let Some(file) = &args.file else {
        return Check::skip(
            NAME,
            "no declarative config given",
            "pass --file CONFIG.yaml",
        );
    };
    match super::declarative::send(client, file, false, false).await {
        Ok(plan) => {
            let changes = plan["changes"].as_array().cloned().unwrap_or_default();
            if changes.is_empty() {
                Check::pass(NAME, format!("{} matches the server", file.display()))
            } else {
                let first: Vec<String> = changes
                    .iter()
                    .take(3)
                    .map(|c| {
                        format!(
                            "{} {} {}",
                            c["action"].as_str().unwrap_or_default(),
                            c["kind"].as_str().unwrap_or_default(),
                            c["key"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                Check::fail(
                    NAME,
                    format!("{} change(s) pending: {}", changes.len(), first.join(", ")),
                    format!(
                        "review `gatehouse plan -f {}`, then apply it or change the file",
                        file.display()
                    ),
                )
            }
        }
        Err(e) => Check::fail(
            NAME,
            format!("{e:#}"),
            "fix the file or the variables it references",
        ),
    }
}

/// `edge-redirect`: an anonymous request to a protected URL is sent to log in.
async fn edge_redirect(http: &reqwest::Client, app_url: Option<&str>) -> Check {
    const NAME: &str = "edge-redirect";
    let Some(url) = app_url else {
        return Check::skip(
            NAME,
            "no protected app URL given",
            "pass --app-url https://app.example.com/",
        );
    };
    let r = match http.get(url).send().await {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("{url}: {e}"),
                "check --app-url and the ingress",
            )
        }
    };
    let status = r.status().as_u16();
    let header = |name| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let location = header(LOCATION);
    let challenge = header(WWW_AUTHENTICATE);
    if r.headers().contains_key("x-auth-fallback") {
        return Check::fail(
            NAME,
            format!("{url} answered {status} with X-Auth-Fallback: the break-glass fallback is in use"),
            "the outpost cannot reach its backend: check the database, the server and the outpost Service's endpoints",
        );
    }
    match status {
        301..=303 | 307 | 308 if location.contains("/outpost.goauthentik.io/start") || location.contains("/if/flow/") => {
            Check::pass(NAME, format!("anonymous request answered {status} to {location}"))
        }
        401 => Check::fail(
            NAME,
            format!("{url} answered 401{}", if challenge.is_empty() { String::new() } else { format!(" with WWW-Authenticate: {challenge}") }),
            "set auth-signin (nginx-ingress) to https://<app host>/outpost.goauthentik.io/start?rd=$scheme://$best_http_host$request_uri; `gatehouse k8s ingress` generates it",
        ),
        200..=299 => Check::fail(
            NAME,
            format!("{url} answered {status} without logging in: the app is not protected"),
            "add the auth annotations (or Middleware) to the app's Ingress; `gatehouse k8s ingress` generates them",
        ),
        _ => Check::fail(
            NAME,
            format!("{url} answered {status}{}", if location.is_empty() { String::new() } else { format!(" to {location}") }),
            "500 means the outpost answered 404 (no provider for this host); 503 means no backend; see the troubleshooting table in the README",
        ),
    }
}
