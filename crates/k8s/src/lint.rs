//! `gatehouse k8s lint FILE...`: the traps of forward auth on Kubernetes that cost the
//! reference operator days (SPEC §1 T1, T9), found in existing manifests, each with its fix.
//! The objects [`crate::ingress`] generates pass every rule; a test holds both sides.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use crate::manifest::{role, selects, Document, Role};

const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// One trap found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Stable rule name, e.g. `snippet-annotation`.
    pub rule: &'static str,
    /// The file the object is in.
    pub file: String,
    /// `Kind namespace/name`.
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// What to do instead.
    pub fix: String,
}

/// Every rule's name, for documentation and tests.
pub const RULES: [&str; 7] = [
    "snippet-annotation",
    "cross-namespace-backend",
    "auth-on-idp-host",
    "missing-x-forwarded-host",
    "tls-secret-elsewhere",
    "externalname-ip",
    "selector-picks-server",
];

/// Checks `docs` (all files together, so references across files resolve).
pub fn lint(docs: &[Document]) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in docs {
        let mut find = |rule, problem: String, fix: &str| {
            out.push(Finding {
                rule,
                file: d.file.clone(),
                object: d.label(),
                problem,
                fix: fix.to_owned(),
            })
        };
        match d.kind() {
            "Ingress" => ingress(d, docs, &mut find),
            "Service" => service(d, docs, &mut find),
            _ => {}
        }
    }
    out
}

/// The host of a URL (`https://h:1/p` → `h`).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Whether `host` is a cluster-internal Service name (auth-url may point there directly).
fn in_cluster(host: &str) -> bool {
    host.ends_with(".svc") || host.ends_with(".svc.cluster.local") || !host.contains('.')
}

fn ingress(d: &Document, docs: &[Document], find: &mut impl FnMut(&'static str, String, &str)) {
    let annotations = d.value["metadata"]["annotations"].as_object();
    for key in annotations.into_iter().flat_map(|a| a.keys()) {
        if key.starts_with(NGINX) && key.ends_with("snippet") {
            find(
                "snippet-annotation",
                format!("uses `{key}`; hardened nginx-ingress (RKE2 and others) disables snippets, so the whole Ingress is rejected or ignored"),
                "set headers with auth-proxy-set-headers (a ConfigMap) and auth-response-headers instead; `gatehouse k8s ingress` generates them",
            );
        }
    }
    let ns = d.namespace();
    let hosts: Vec<&str> = d.value["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["host"].as_str())
        .collect();
    for service in backends(&d.value) {
        let elsewhere = docs
            .iter()
            .any(|o| o.kind() == "Service" && o.name() == service && o.namespace() != ns)
            && !docs
                .iter()
                .any(|o| o.kind() == "Service" && o.name() == service && o.namespace() == ns);
        if service.contains('.') || elsewhere {
            find(
                "cross-namespace-backend",
                format!("backend `{service}` is not a Service in namespace {ns}; an Ingress only reaches Services of its own namespace"),
                "add an ExternalName Service in this namespace that aliases the other Service's DNS name (`gatehouse k8s ingress` does this for the outpost)",
            );
        }
    }
    if let Some(signin) = d.annotation(&format!("{NGINX}auth-signin")) {
        let host = url_host(signin);
        if !signin.starts_with('$') && !hosts.contains(&host) {
            find(
                "auth-on-idp-host",
                format!("auth-signin points at `{host}`, not at this Ingress's host ({}); the session cookie then lands on the wrong host and the login loops", hosts.join(", ")),
                "use https://<app host>/outpost.goauthentik.io/start?rd=$scheme://$best_http_host$request_uri and route /outpost.goauthentik.io/ on the app host to the outpost",
            );
        }
    }
    if let Some(url) = d.annotation(&format!("{NGINX}auth-url")) {
        let host = url_host(url);
        if !hosts.contains(&host) && !in_cluster(host) {
            find(
                "auth-on-idp-host",
                format!("auth-url points at `{host}`, which is neither this Ingress's host nor an in-cluster Service"),
                "point auth-url at the outpost Service (http://<outpost>.<namespace>.svc.cluster.local:9000/outpost.goauthentik.io/auth/nginx) or at the app host's /outpost.goauthentik.io/auth/nginx",
            );
        }
        if !sends_forwarded_host(d, docs) {
            find(
                "missing-x-forwarded-host",
                "uses auth-url but the auth subrequest carries no X-Forwarded-Host: nginx-ingress does not send it, and the outpost picks the provider by it".into(),
                "add nginx.ingress.kubernetes.io/auth-proxy-set-headers: <namespace>/<configmap> whose data sets X-Forwarded-Host: <app host>",
            );
        }
    }
    for tls in d.value["spec"]["tls"].as_array().into_iter().flatten() {
        let Some(secret) = tls["secretName"].as_str() else {
            continue;
        };
        let defined = |pred: &dyn Fn(&Document) -> bool| docs.iter().any(pred);
        let named = |o: &Document| {
            (o.kind() == "Secret" && o.name() == secret)
                || (o.kind() == "Certificate" && o.value["spec"]["secretName"] == secret)
        };
        let here = defined(&|o| named(o) && o.namespace() == ns);
        let there = defined(&|o| named(o) && o.namespace() != ns);
        if secret.contains('/') || (there && !here) {
            find(
                "tls-secret-elsewhere",
                format!("TLS secret `{secret}` is not in namespace {ns}; nginx-ingress then serves its self-signed default certificate"),
                "issue the certificate into the app's namespace (cert-manager Certificate there, or copy the Secret) and name it without a namespace",
            );
        }
    }
}

/// The Service names an Ingress routes to.
fn backends(ingress: &Value) -> Vec<&str> {
    let spec = &ingress["spec"];
    let mut out: Vec<&str> = spec["defaultBackend"]["service"]["name"]
        .as_str()
        .into_iter()
        .collect();
    for rule in spec["rules"].as_array().into_iter().flatten() {
        for path in rule["http"]["paths"].as_array().into_iter().flatten() {
            out.extend(path["backend"]["service"]["name"].as_str());
        }
    }
    out
}

/// Whether the auth subrequest of `d` gets X-Forwarded-Host from an auth-proxy-set-headers
/// ConfigMap. A ConfigMap not among the files is trusted (it may be applied separately).
fn sends_forwarded_host(d: &Document, docs: &[Document]) -> bool {
    let Some(reference) = d.annotation(&format!("{NGINX}auth-proxy-set-headers")) else {
        return false;
    };
    let (ns, name) = reference
        .split_once('/')
        .unwrap_or((d.namespace(), reference));
    match docs
        .iter()
        .find(|o| o.kind() == "ConfigMap" && o.namespace() == ns && o.name() == name)
    {
        Some(cm) => cm.value["data"].as_object().is_some_and(|data| {
            data.keys()
                .any(|k| k.eq_ignore_ascii_case("x-forwarded-host"))
        }),
        None => true,
    }
}

fn service(d: &Document, docs: &[Document], find: &mut impl FnMut(&'static str, String, &str)) {
    let spec = &d.value["spec"];
    if spec["type"] == "ExternalName" {
        let target = spec["externalName"].as_str().unwrap_or_default();
        if target.parse::<IpAddr>().is_ok() {
            find(
                "externalname-ip",
                format!("ExternalName `{target}` is an IP address; it is a DNS name by definition and nginx-ingress cannot route to it"),
                "use a headless Service (clusterIP: None, no selector) plus an Endpoints object with that IP and port (`gatehouse k8s ingress --backend-ip` generates them)",
            );
        }
    }
    let Some(selector) = spec["selector"].as_object() else {
        return;
    };
    if !d.name().contains("outpost") {
        return;
    }
    let servers: Vec<String> = docs
        .iter()
        .filter(|w| w.namespace() == d.namespace())
        .filter(|w| {
            w.pod_labels().is_some_and(|labels| {
                selects(selector, labels) && role(labels, w.pod_spec()) == Role::Server
            })
        })
        .map(Document::label)
        .collect();
    if !servers.is_empty() {
        find(
            "selector-picks-server",
            format!("this outpost Service's selector also selects the server's pods ({}): forward-auth requests reach the wrong process, or its endpoints are empty (T1)", servers.join(", ")),
            "select the outpost pods only, e.g. app.kubernetes.io/component: outpost as in the Helm chart",
        );
    }
}
