//! What ships in `deploy/` and `gatehouse k8s`, checked against the real thing: every metric
//! name and label matcher the alert rules and the Grafana dashboard use is in a live scrape of
//! a server and a standalone outpost (T7); the Helm chart's Services, PDBs and policies select
//! exactly their own pods (T1); `k8s lint` flags each trap of a broken example and nothing in
//! what `k8s ingress` generates (T9); and a real nginx configured the way nginx-ingress renders
//! the generated objects logs a visitor in through a standalone outpost.
//! `scripts/test` runs `promtool`, `helm lint` and `kubernetes-validate` on the same files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;

use gatehouse_k8s::manifest::{self, role, selects, Document, Role};
use gatehouse_testkit::{with_server, EchoApp, Nginx, TestOutpost};
use serde_json::{json, Value};

use crate::cli::{gatehouse, stdout};
use crate::outpost::{nginx_journey, protect, user};
use crate::standalone::{assign_app, edge};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Series of a scrape: metric name → label sets.
type Scrape = BTreeMap<String, Vec<BTreeMap<String, String>>>;

/// Parses the text exposition format (sample lines only).
fn parse_scrape(text: &str, into: &mut Scrape) {
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.chars().peekable();
            loop {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                if key.is_empty() || chars.next() != Some('"') {
                    break;
                }
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key.trim_start_matches(',').to_owned(), value);
                if chars.peek() == Some(&',') {
                    chars.next();
                }
                if chars.peek() == Some(&'}') {
                    break;
                }
            }
        }
        into.entry(name.to_owned()).or_default().push(labels);
    }
}

/// A metric selector in a PromQL expression: name and `(label, op, value)` matchers.
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// The Gatehouse selectors of `expr` and the labels it groups or joins by. A small scanner,
/// enough for the expressions we ship: strings and range brackets are skipped.
fn scan(expr: &str) -> (Vec<Selector>, Vec<String>) {
    let b = expr.as_bytes();
    let (mut i, mut selectors, mut grouping) = (0, Vec::new(), Vec::new());
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let skip_space = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    while i < b.len() {
        let c = b[i];
        if c == b'[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += 1;
            }
        } else if ident(c) && !c.is_ascii_digit() {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let j = skip_space(i);
            if matches!(
                word,
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) && b.get(j) == Some(&b'(')
            {
                let end = expr[j..].find(')').map_or(b.len(), |e| j + e);
                grouping.extend(
                    expr[j + 1..end]
                        .split(',')
                        .map(|l| l.trim().to_owned())
                        .filter(|l| !l.is_empty()),
                );
                i = end;
            } else if word.starts_with("gatehouse_") {
                let mut matchers = Vec::new();
                if b.get(j) == Some(&b'{') {
                    let end = expr[j..].find('}').map_or(b.len(), |e| j + e);
                    for m in expr[j + 1..end].split(',').filter(|m| !m.trim().is_empty()) {
                        let op_at = m.find(['=', '!']).unwrap_or(m.len());
                        let (label, rest) = m.split_at(op_at);
                        let op: String = rest.chars().take_while(|c| "=!~".contains(*c)).collect();
                        let value = rest[op.len()..].trim().trim_matches('"').to_owned();
                        matchers.push((label.trim().to_owned(), op, value));
                    }
                    i = end;
                }
                selectors.push(Selector {
                    name: word.to_owned(),
                    matchers,
                });
                continue;
            }
            continue;
        }
        i += 1;
    }
    (selectors, grouping)
}

/// Problems of `expr` (from `source`) against `scrape`: unknown metrics, matchers that match no
/// series, grouping labels no series of the expression has.
fn check_expression(source: &str, expr: &str, scrape: &Scrape) -> Vec<String> {
    // Labels Prometheus adds at scrape time (target labels), not Gatehouse.
    const TARGET: [&str; 2] = ["instance", "job"];
    let (selectors, grouping) = scan(expr);
    let mut problems = Vec::new();
    let mut labels_here = BTreeSet::new();
    if selectors.is_empty() {
        problems.push(format!("{source}: `{expr}` uses no Gatehouse metric"));
    }
    for s in &selectors {
        let Some(series) = scrape.get(&s.name) else {
            problems.push(format!("{source}: metric {} is not exported", s.name));
            continue;
        };
        labels_here.extend(series.iter().flat_map(|l| l.keys().cloned()));
        for (label, op, value) in &s.matchers {
            let matches = |v: Option<&String>| match op.as_str() {
                "=" => v == Some(value),
                "=~" => regex::Regex::new(&format!("^(?:{value})$"))
                    .is_ok_and(|r| r.is_match(v.map_or("", String::as_str))),
                _ => v.is_some(),
            };
            if !series.iter().any(|l| matches(l.get(label))) {
                problems.push(format!(
                    "{source}: {}{{{label}{op}\"{value}\"}} matches no exported series (labels seen: {:?})",
                    s.name,
                    series.iter().flat_map(|l| l.iter()).collect::<BTreeSet<_>>()
                ));
            }
        }
    }
    for label in grouping {
        if !TARGET.contains(&label.as_str()) && !labels_here.contains(&label) {
            problems.push(format!(
                "{source}: groups by `{label}`, which no series of `{expr}` has"
            ));
        }
    }
    problems
}

#[test]
fn the_expression_scanner_finds_selectors_matchers_and_grouping() {
    let (s, g) = scan(
        r#"sum by (le) (rate(gatehouse_a_bucket{mode="x", b=~"y|z"}[5m])) unless on (instance) gatehouse_b"#,
    );
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].name, "gatehouse_a_bucket");
    assert_eq!(
        s[0].matchers,
        [
            ("mode".into(), "=".into(), "x".into()),
            ("b".into(), "=~".into(), "y|z".into())
        ]
    );
    assert_eq!(g, ["le", "instance"]);
    let mut scrape = Scrape::new();
    parse_scrape("gatehouse_a_bucket{mode=\"x\",b=\"y\"} 1\n", &mut scrape);
    let problems = check_expression(
        "t",
        r#"gatehouse_a_bucket{mode="nope"} + gatehouse_c"#,
        &scrape,
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[tokio::test]
async fn every_metric_and_label_a_rule_or_the_dashboard_uses_is_in_a_live_scrape(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        // Give every labelled family a series: a provider with decisions, a standalone
        // outpost (mode, session store), the signing keys (made in the background at start).
        let (instance, token) = edge(&server).await?;
        let outpost = TestOutpost::start(&server.url, &token, |_| {}).await?;
        protect(&server, "https://app.example.com").await?;
        assign_app(&server, &instance).await?;
        let http = reqwest::Client::new();
        for base in [&server.url, &outpost.url] {
            http.get(format!("{base}/outpost.goauthentik.io/auth/nginx"))
                .header("X-Forwarded-Host", "app.example.com")
                .header("X-Original-URI", "/")
                .send()
                .await?;
        }
        for _ in 0..100 {
            let (_, keys) = server.get("/oauth2/signing_keys/").await?;
            if keys["keys"].as_array().is_some_and(|k| !k.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut scrape = Scrape::new();
        for url in [&server.metrics_url, &outpost.metrics_url] {
            parse_scrape(&http.get(url).send().await?.text().await?, &mut scrape);
        }

        let rules: Value = serde_yaml::from_str(&std::fs::read_to_string(
            repo().join("deploy/prometheus/gatehouse-rules.yaml"),
        )?)?;
        let mut problems = Vec::new();
        let mut checked = 0;
        for rule in rules["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        {
            let name = rule["alert"].as_str().unwrap_or("?");
            problems.extend(check_expression(
                &format!("rule {name}"),
                rule["expr"].as_str().unwrap_or_default(),
                &scrape,
            ));
            checked += 1;
        }
        assert_eq!(checked, 9, "every rule is checked");
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(
            repo().join("deploy/grafana/gatehouse.json"),
        )?)?;
        let mut queries = 0;
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                problems.extend(check_expression(
                    &format!(
                        "dashboard panel `{}`",
                        panel["title"].as_str().unwrap_or("?")
                    ),
                    target["expr"].as_str().unwrap_or_default(),
                    &scrape,
                ));
                queries += 1;
            }
        }
        println!(
            "checked {checked} rules and {queries} dashboard queries against {} exported metrics",
            scrape.len()
        );
        assert!(
            queries >= 12,
            "the dashboard has its panels: {queries} queries"
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        outpost.stop().await?;
        server.stop().await
    })
    .await
}

/// `helm template` of the chart with `set` values (helm from GATEHOUSE_TEST_HELM, which
/// scripts/test installs, or PATH).
fn helm_template(set: &str) -> anyhow::Result<Vec<Document>> {
    let helm = std::env::var("GATEHOUSE_TEST_HELM").unwrap_or_else(|_| "helm".into());
    let mut command = std::process::Command::new(&helm);
    command
        .args(["template", "gatehouse"])
        .arg(repo().join("deploy/helm/gatehouse"));
    command.args(["--namespace", "gatehouse"]);
    if !set.is_empty() {
        command.args(["--set", set]);
    }
    let out = command.output().map_err(|e| {
        anyhow::anyhow!(
            "running {helm}: {e} (scripts/test installs helm and sets GATEHOUSE_TEST_HELM)"
        )
    })?;
    anyhow::ensure!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(manifest::parse(
        "chart",
        &String::from_utf8_lossy(&out.stdout),
    )?)
}

#[tokio::test]
async fn the_charts_services_and_policies_select_exactly_their_own_pods() -> anyhow::Result<()> {
    for set in ["", "server.replicas=3,server.database=postgres"] {
        let docs = helm_template(set)?;
        let workloads: Vec<&Document> = docs.iter().filter(|d| d.kind() == "Deployment").collect();
        assert_eq!(workloads.len(), 2, "server and outpost Deployments");
        let mut seen = 0;
        for d in &docs {
            let selector = match d.kind() {
                "Service" => d.value["spec"]["selector"].as_object(),
                "PodDisruptionBudget" | "Deployment" => {
                    d.value["spec"]["selector"]["matchLabels"].as_object()
                }
                "NetworkPolicy" => d.value["spec"]["podSelector"]["matchLabels"].as_object(),
                _ => continue,
            };
            let Some(selector) = selector else {
                panic!("{} has no selector", d.label())
            };
            let component = d.value["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .unwrap_or_default();
            let want = match component {
                "server" => Role::Server,
                "outpost" => Role::Outpost,
                other => panic!("{} has component `{other}`", d.label()),
            };
            let picked: Vec<(String, Role)> = workloads
                .iter()
                .filter(|w| w.pod_labels().is_some_and(|l| selects(selector, l)))
                .filter_map(|w| w.pod_labels().map(|l| (w.label(), role(l, w.pod_spec()))))
                .collect();
            assert_eq!(
                picked.len(),
                1,
                "{} ({set}) picks exactly one workload: {picked:?}",
                d.label()
            );
            assert_eq!(
                picked[0].1,
                want,
                "{} ({set}) picks its own pods: {picked:?}",
                d.label()
            );
            seen += 1;
        }
        assert!(
            seen >= 8,
            "Services, PDBs, NetworkPolicies and Deployments checked: {seen}"
        );
        let findings = gatehouse_k8s::lint::lint(&docs);
        assert!(
            findings.is_empty(),
            "the chart has none of the traps: {findings:?}"
        );
    }
    let outpost = helm_template("")?
        .into_iter()
        .find(|d| d.kind() == "Service" && d.name() == "gatehouse-outpost")
        .map(|d| d.value);
    assert_eq!(
        outpost.map(|o| o["spec"]["selector"].clone()),
        Some(
            json!({"app.kubernetes.io/name": "gatehouse", "app.kubernetes.io/instance": "gatehouse", "app.kubernetes.io/component": "outpost"})
        ),
        "the outpost Service is the one `gatehouse k8s ingress` points at by default"
    );
    Ok(())
}

#[tokio::test]
async fn k8s_lint_flags_each_trap_in_a_broken_example_and_nothing_in_generated_ones(
) -> anyhow::Result<()> {
    let broken = repo().join("crates/gatehouse/tests/it/fixtures/k8s/broken-ingress.yaml");
    let out = gatehouse(
        None,
        &["k8s", "lint", "--json", &broken.display().to_string()],
    )
    .await?;
    assert!(!out.status.success(), "traps make the exit code non-zero");
    let findings: Vec<Value> = serde_json::from_str(&stdout(&out))?;
    let rules: BTreeSet<&str> = findings.iter().filter_map(|f| f["rule"].as_str()).collect();
    for rule in gatehouse_k8s::lint::RULES {
        assert!(rules.contains(rule), "`{rule}` is flagged: {findings:#?}");
    }
    assert!(
        findings
            .iter()
            .all(|f| !f["fix"].as_str().unwrap_or_default().is_empty()),
        "each finding says the fix"
    );
    let human = gatehouse(None, &["k8s", "lint", &broken.display().to_string()]).await?;
    assert!(stdout(&human).contains("fix: "), "{}", stdout(&human));

    let dir = tempfile::tempdir()?;
    for (name, args) in [
        (
            "nginx-external.yaml",
            vec!["--backend-ip", "192.0.2.10", "--port", "8080"],
        ),
        (
            "nginx-service.yaml",
            vec!["--service", "web", "--port", "80"],
        ),
        (
            "traefik.yaml",
            vec![
                "--service",
                "web",
                "--port",
                "80",
                "--controller",
                "traefik",
            ],
        ),
    ] {
        let mut all = vec![
            "k8s",
            "ingress",
            "--host",
            "app.example.com",
            "--namespace",
            "apps",
        ];
        all.extend(args);
        let out = gatehouse(None, &all).await?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = dir.path().join(name);
        std::fs::write(&path, stdout(&out))?;
        let lint = gatehouse(None, &["k8s", "lint", &path.display().to_string()]).await?;
        assert!(lint.status.success(), "{name}: {}", stdout(&lint));
    }
    let bad = gatehouse(
        None,
        &[
            "k8s",
            "ingress",
            "--host",
            "https://app.example.com",
            "--service",
            "web",
            "--port",
            "80",
        ],
    )
    .await?;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--host"),
        "names the flag"
    );
    let missing = gatehouse(None, &["k8s", "lint", "/nonexistent.yaml"]).await?;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent.yaml"));
    Ok(())
}

/// The nginx `server` body ingress-nginx renders for `objects` (the app Ingress with the auth
/// annotations and the outpost-path Ingress on the same host), with Service DNS names
/// resolved through `cluster` (DNS name → loopback address) and Endpoints. Over plain HTTP on
/// the test's port: `https://<host>` becomes `http://<host>:{port}` (nginx's port, filled in
/// by the testkit), TLS is left out.
fn render_like_ingress_nginx(
    objects: &[Document],
    cluster: &HashMap<String, String>,
) -> anyhow::Result<String> {
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|d| d.kind() == kind && d.name() == name)
    };
    let resolve = |service: &str, port: u64| -> anyhow::Result<String> {
        let svc = find("Service", service).with_context(|| format!("Service {service}"))?;
        if svc.value["spec"]["type"] == "ExternalName" {
            let target = svc.value["spec"]["externalName"]
                .as_str()
                .unwrap_or_default();
            return cluster
                .get(target)
                .cloned()
                .with_context(|| format!("{target} resolves"));
        }
        let ep = find("Endpoints", service).with_context(|| format!("Endpoints {service}"))?;
        let ip = ep.value["subsets"][0]["addresses"][0]["ip"]
            .as_str()
            .unwrap_or_default();
        let port = ep.value["subsets"][0]["ports"][0]["port"]
            .as_u64()
            .unwrap_or(port);
        Ok(format!("{ip}:{port}"))
    };
    let backend = |ingress: &Document| {
        let b = &ingress.value["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
        resolve(
            b["name"].as_str().unwrap_or_default(),
            b["port"]["number"].as_u64().unwrap_or(80),
        )
    };
    let ingresses: Vec<&Document> = objects.iter().filter(|d| d.kind() == "Ingress").collect();
    let app = ingresses
        .iter()
        .find(|d| {
            d.annotation("nginx.ingress.kubernetes.io/auth-url")
                .is_some()
        })
        .copied();
    let outpost = ingresses
        .iter()
        .find(|d| {
            d.annotation("nginx.ingress.kubernetes.io/auth-url")
                .is_none()
        })
        .copied();
    let (Some(app), Some(outpost)) = (app, outpost) else {
        anyhow::bail!("two Ingresses are generated")
    };
    let host = app.value["spec"]["rules"][0]["host"]
        .as_str()
        .unwrap_or_default();
    let public = |s: &str| {
        s.replace(
            &format!("https://{host}"),
            &format!("http://{host}:{{port}}"),
        )
    };
    let a = |k: &str| {
        app.annotation(&format!("nginx.ingress.kubernetes.io/{k}"))
            .unwrap_or_default()
    };
    let auth_url = a("auth-url");
    let auth_host = auth_url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    let auth_path = auth_url.splitn(4, '/').nth(3).unwrap_or_default();
    let auth_target = cluster
        .get(auth_host.split(':').next().unwrap_or_default())
        .cloned()
        .with_context(|| format!("{auth_host} resolves"))?;
    // auth-proxy-set-headers: the ConfigMap's entries go on the auth subrequest.
    let (cm_ns, cm_name) = a("auth-proxy-set-headers")
        .split_once('/')
        .unwrap_or_default();
    let cm = find("ConfigMap", cm_name)
        .filter(|c| c.namespace() == cm_ns)
        .with_context(|| format!("ConfigMap {cm_name}"))?;
    let mut proxy_headers = String::new();
    for (k, v) in cm.value["data"].as_object().into_iter().flatten() {
        let v = v.as_str().unwrap_or_default();
        let v = match (k.as_str(), v) {
            ("X-Forwarded-Host", h) if h == host => format!("{host}:{{port}}"),
            ("X-Forwarded-Proto", "https") => "http".into(),
            _ => v.to_owned(),
        };
        proxy_headers.push_str(&format!("   proxy_set_header {k} \"{v}\";\n"));
    }
    // auth-response-headers: copied from the auth answer into the upstream request.
    let mut copy = String::new();
    for (i, h) in a("auth-response-headers").split(',').enumerate() {
        let var = h.to_ascii_lowercase().replace('-', "_");
        copy.push_str(&format!("   auth_request_set $authHeader{i} $upstream_http_{var};\n   proxy_set_header '{h}' $authHeader{i};\n"));
    }
    let signin = public(a("auth-signin")).replace("$best_http_host", "$http_host");
    let outpost_prefix = outpost.value["spec"]["rules"][0]["http"]["paths"][0]["path"]
        .as_str()
        .unwrap_or_default();
    Ok(format!(
        r#"
 location = /_external-auth {{
   internal;
   proxy_pass_request_body off;
   proxy_set_header Content-Length "";
   proxy_set_header X-Forwarded-Proto "";
   proxy_set_header Host {auth_host};
   proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
   proxy_set_header X-Original-Method $request_method;
   proxy_set_header X-Sent-From "nginx-ingress-controller";
   proxy_set_header X-Real-IP $remote_addr;
   proxy_set_header X-Forwarded-For $remote_addr;
   proxy_set_header X-Auth-Request-Redirect $request_uri;
{proxy_headers}   proxy_pass http://{auth_target}/{auth_path};
 }}
 location {outpost_prefix} {{
   proxy_set_header Host $http_host;
   proxy_set_header X-Forwarded-Host $http_host;
   proxy_set_header X-Forwarded-Proto $scheme;
   proxy_pass http://{outpost_backend};
 }}
 location / {{
   auth_request /_external-auth;
   auth_request_set $auth_cookie $upstream_http_set_cookie;
{copy}   error_page 401 = @signin;
   proxy_set_header Host $http_host;
   proxy_pass http://{app_backend};
 }}
 location @signin {{
   internal;
   add_header Set-Cookie $auth_cookie;
   return 302 {signin};
 }}
"#,
        outpost_backend = backend(outpost)?,
        app_backend = backend(app)?,
    ))
}

#[tokio::test]
async fn nginx_configured_from_k8s_ingress_logs_in_through_a_standalone_outpost(
) -> anyhow::Result<()> {
    with_server(|server| async move {
        let (instance, token) = edge(&server).await?;
        let outpost = TestOutpost::start(&server.url, &token, |_| {}).await?;
        let app = EchoApp::start().await?;
        let port = app.port.to_string();
        let out = gatehouse(
            None,
            &[
                "k8s",
                "ingress",
                "--host",
                "app.localhost",
                "--namespace",
                "apps",
                "--backend-ip",
                "127.0.0.1",
                "--port",
                &port,
            ],
        )
        .await?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let objects = manifest::parse("generated", &stdout(&out))?;
        let cluster = HashMap::from([(
            "gatehouse-outpost.gatehouse.svc.cluster.local".to_owned(),
            format!("127.0.0.1:{}", outpost.port),
        )]);
        let config = render_like_ingress_nginx(&objects, &cluster)?;
        let nginx = Nginx::start(&config).await?;
        let app_url = format!("http://app.localhost:{}", nginx.port);
        let family = protect(&server, &app_url).await?;
        user(&server, "alice@example.com", json!([family["pk"]])).await?;
        user(&server, "bob@example.com", json!([])).await?;
        assign_app(&server, &instance).await?;
        nginx_journey(&nginx, &app_url, "k8s-ingress").await?;
        nginx.stop().await?;
        outpost.stop().await?;
        server.stop().await
    })
    .await
}
