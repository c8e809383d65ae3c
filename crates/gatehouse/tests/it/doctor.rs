//! `gatehouse doctor` (T11): every check passes on a good deployment and fails, with its fix,
//! on a broken one. The server checks run against a real Gatehouse (server, standalone
//! outpost, nginx in front). No Kubernetes API server can run here, so the cluster checks go
//! through the real `kube` client to a local server that replays responses in the shape real
//! clusters give (fixtures/k8s/cluster-*.json: good; endpoints not ready; the outpost Service
//! selecting the server's pods), filtering by label selector as the API server does. The same
//! server stands in for the two edge symptoms no Gatehouse can produce: a Basic "Emergency
//! Access" challenge and an outpost reporting a filesystem session store.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_testkit::{
    browse_until, cookie_client, with_server, EchoApp, Nginx, TestOutpost, TOKEN,
};
use serde_json::{json, Value};

use crate::outpost::{ingress, protect, user, PASSWORD};
use crate::standalone::{assign_app, edge};

/// The recorded cluster the replay server answers with.
type Scenario = Arc<RwLock<Value>>;

fn scenario(name: &str) -> anyhow::Result<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/it/fixtures/k8s/cluster-{name}.json"));
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Whether `labels` satisfy an equality `labelSelector` (`a=b,c=d`).
fn matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| term.split_once('=').is_some_and(|(k, v)| labels[k] == v))
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
        ),
    )
        .into_response()
}

/// The replayed API: the three reads `gatehouse doctor` makes, plus the two edge symptoms.
async fn replay(State(cluster): State<Scenario>, req: Request) -> Response {
    let cluster = cluster.read().map(|c| c.clone()).unwrap_or_default();
    let path = req.uri().path().to_owned();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let filtered = |list: &Value, labels: &dyn Fn(&Value) -> Value| {
        let mut list = list.clone();
        if let Some(items) = list["items"].as_array_mut() {
            items.retain(|i| matches(&selector, &labels(i)));
        }
        Json(list).into_response()
    };
    match path.as_str() {
        "/api/v1/namespaces/gatehouse/services/gatehouse-outpost" => {
            Json(cluster["service"].clone()).into_response()
        }
        p if p.starts_with("/api/v1/namespaces/") && p.contains("/services/") => {
            not_found("services")
        }
        "/apis/discovery.k8s.io/v1/namespaces/gatehouse/endpointslices" => {
            filtered(&cluster["endpointslices"], &|i| {
                i["metadata"]["labels"].clone()
            })
        }
        "/api/v1/namespaces/gatehouse/pods" => {
            filtered(&cluster["pods"], &|i| i["metadata"]["labels"].clone())
        }
        // An edge that fell back to Basic auth (T1's symptom), and one passing break-glass users.
        "/basic" => (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"Emergency Access\"")],
            "",
        )
            .into_response(),
        "/fallback" => (StatusCode::OK, [("x-auth-fallback", "true")], "app").into_response(),
        // An outpost keeping sessions on the filesystem (T3).
        "/fs-outpost/-/health/ready/" => {
            Json(json!({"status": "ready", "mode": "standalone", "sessions": "filesystem"}))
                .into_response()
        }
        _ => not_found(&path),
    }
}

/// Starts the replay server; returns its URL and the scenario switch.
async fn replay_server(
    initial: &str,
) -> anyhow::Result<(String, Scenario, tokio::task::JoinHandle<()>)> {
    let cluster: Scenario = Arc::new(RwLock::new(scenario(initial)?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .fallback(replay)
        .with_state(cluster.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, cluster, task))
}

/// Runs the real binary's `doctor` with `args` against `server_url`, the kubeconfig at
/// `kubeconfig`; returns the exit status, the checks by name (from `--json`) and the human
/// output of the same run without `--json`.
async fn doctor(
    server_url: &str,
    kubeconfig: &Path,
    args: &[&str],
) -> anyhow::Result<(bool, BTreeMap<String, Value>, String)> {
    let run = |json: bool| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        c.arg("doctor")
            .args(args)
            .env("GATEHOUSE_URL", server_url)
            .env("GATEHOUSE_TOKEN", TOKEN);
        c.env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        if json {
            c.arg("--json");
        }
        c.output()
    };
    let out = run(true).await?;
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).map_err(|e| {
        anyhow::anyhow!(
            "doctor --json: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let by_name = checks
        .into_iter()
        .map(|c| (c["name"].as_str().unwrap_or_default().to_owned(), c))
        .collect();
    let human = run(false).await?;
    Ok((
        out.status.success(),
        by_name,
        String::from_utf8_lossy(&human.stdout).into_owned(),
    ))
}

const CHECKS: [&str; 7] = [
    "outpost-endpoints",
    "outpost-selector",
    "outpost-mode",
    "outpost-sessions",
    "session-expiry",
    "plan-to-zero",
    "edge-redirect",
];

const CONFIG: &str = "stages:\n  - name: default-authentication-login\n    kind: user_login\n    settings: {session_duration: weeks=4, remember_me_offset: seconds=0}\n";

#[tokio::test]
async fn doctor_passes_on_a_good_deployment_and_each_check_fails_on_a_broken_one(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let (instance, token) = edge(&server).await?;
        let outpost = TestOutpost::start(&server.url, &token, |_| {}).await?;
        let app = EchoApp::start().await?;
        let nginx = Nginx::start(&ingress(outpost.port, app.port)).await?;
        let edge_url = format!("http://127.0.0.1:{}", nginx.port);
        let family = protect(&server, &edge_url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        assign_app(&server, &instance).await?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("gatehouse.yaml");
        std::fs::write(&config, CONFIG)?;
        let applied = crate::cli::gatehouse(Some(&server), &["apply", "-f", &config.display().to_string()]).await?;
        assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
        // One login through the edge writes the session whose expiry doctor checks.
        let http = cookie_client()?;
        browse_until(
            &http,
            &server,
            &format!("{edge_url}/outpost.goauthentik.io/start?rd={edge_url}/"),
            ("alice@example.com", PASSWORD),
            |l| l == format!("{edge_url}/"),
        )
        .await?;

        let (api, cluster, replay_task) = replay_server("good").await?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!("apiVersion: v1\nkind: Config\nclusters:\n- name: replay\n  cluster: {{server: \"{api}\"}}\nusers:\n- name: doctor\n  user: {{token: read-only-token}}\ncontexts:\n- name: replay\n  context: {{cluster: replay, user: doctor, namespace: gatehouse}}\ncurrent-context: replay\n"),
        )?;
        let config_arg = config.display().to_string();
        let app_url = format!("{edge_url}/dashboard");
        let (ok, checks, human) = doctor(
            &server.url,
            &kubeconfig,
            &["--outpost", &outpost.url, "--app-url", &app_url, "--file", &config_arg],
        )
        .await?;
        for name in CHECKS {
            assert_eq!(checks[name]["status"], "pass", "{name} passes on the good deployment: {:#?}", checks);
        }
        assert!(ok, "exit 0 when every check passes:\n{human}");
        assert_eq!(human.lines().filter(|l| l.starts_with("PASS ")).count(), CHECKS.len(), "one line per check:\n{human}");
        assert!(checks["outpost-mode"]["detail"].as_str().unwrap_or_default().contains("standalone"), "{checks:#?}");

        // Broken: endpoints not ready, a non-outpost URL, an outpost on the filesystem, the
        // wrong expiry, a config that no longer plans to zero, a Basic challenge at the edge.
        *cluster.write().map_err(|_| anyhow::anyhow!("lock"))? = scenario("empty-endpoints")?;
        let drifted = dir.path().join("drifted.yaml");
        std::fs::write(&drifted, CONFIG.replace("weeks=4", "weeks=3"))?;
        let (ok, checks, human) = doctor(
            &server.url,
            &kubeconfig,
            &[
                "--outpost", &format!("http://127.0.0.1:{}", app.port),
                "--outpost", &format!("{api}/fs-outpost"),
                "--app-url", &format!("{api}/basic"),
                "--file", &drifted.display().to_string(),
                "--session-validity", "weeks=1",
            ],
        )
        .await?;
        assert!(!ok, "a failed check makes the exit code non-zero");
        for name in ["outpost-endpoints", "outpost-mode", "outpost-sessions", "session-expiry", "plan-to-zero", "edge-redirect"] {
            assert_eq!(checks[name]["status"], "fail", "{name} fails: {checks:#?}");
            assert!(!checks[name]["fix"].as_str().unwrap_or_default().is_empty(), "{name} says the fix");
        }
        assert!(checks["edge-redirect"]["detail"].as_str().unwrap_or_default().contains("Basic"), "{checks:#?}");
        assert!(checks["outpost-sessions"]["detail"].as_str().unwrap_or_default().contains("filesystem"), "{checks:#?}");
        assert!(human.lines().any(|l| l.starts_with("FAIL outpost-endpoints") && l.contains("->")), "{human}");

        // Broken: the outpost Service selects the server's pods (T1); an edge in fallback.
        *cluster.write().map_err(|_| anyhow::anyhow!("lock"))? = scenario("server-selector")?;
        let (ok, checks, _) = doctor(&server.url, &kubeconfig, &["--app-url", &format!("{api}/fallback")]).await?;
        assert!(!ok);
        assert_eq!(checks["outpost-selector"]["status"], "fail", "{checks:#?}");
        assert!(checks["outpost-selector"]["detail"].as_str().unwrap_or_default().contains("gatehouse-6d9f7c5b8d-k2x7q"), "names the server pod: {checks:#?}");
        assert_eq!(checks["outpost-endpoints"]["status"], "pass", "endpoints exist, just the wrong ones");
        assert_eq!(checks["edge-redirect"]["status"], "fail");
        assert!(checks["edge-redirect"]["detail"].as_str().unwrap_or_default().contains("X-Auth-Fallback"), "{checks:#?}");
        assert_eq!(checks["plan-to-zero"]["status"], "skip", "no --file: skipped, not failed");

        replay_task.abort();
        nginx.stop().await?;
        outpost.stop().await?;
        server.stop().await
    })
    .await
}
