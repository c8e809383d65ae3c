//! The Kubernetes half of `gatehouse doctor` (SPEC §1 T1, T11): does the outpost Service have
//! ready endpoints, and does its selector pick the outpost's pods and none of the server's?
//! Read through the `kube` crate with the usual configuration (KUBECONFIG or
//! `~/.kube/config`, else the pod's service account), read-only: `get` on Services and
//! `list` on EndpointSlices and Pods of one namespace.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};

use crate::manifest::{role, Role};
use crate::{Check, Error, Result};

/// A client from the environment's Kubernetes configuration.
pub async fn client() -> Result<kube::Client> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| Error::Config(e.to_string()))
}

/// Both checks for the outpost Service `service` in `namespace`.
pub async fn checks(client: &kube::Client, namespace: &str, service: &str) -> Vec<Check> {
    vec![
        endpoints(client, namespace, service).await,
        selector(client, namespace, service).await,
    ]
}

/// `outpost-endpoints`: the Service has at least one ready endpoint.
pub async fn endpoints(client: &kube::Client, namespace: &str, service: &str) -> Check {
    const NAME: &str = "outpost-endpoints";
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let list = match slices.list(&params).await {
        Ok(list) => list,
        Err(e) => return unreadable(NAME, "EndpointSlices", namespace, &e),
    };
    let mut ready = Vec::new();
    let mut not_ready = 0;
    let mut ports = Vec::new();
    for slice in &list.items {
        for p in slice.ports.iter().flatten() {
            if let Some(port) = p.port {
                ports.push(port.to_string());
            }
        }
        for e in &slice.endpoints {
            // An unset `ready` condition means ready (discovery.k8s.io/v1).
            if e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) {
                ready.extend(e.addresses.iter().cloned());
            } else {
                not_ready += 1;
            }
        }
    }
    ports.sort();
    ports.dedup();
    if ready.is_empty() {
        Check::fail(
            NAME,
            format!("Service {namespace}/{service} has no ready endpoints ({not_ready} not ready): every forward-auth request fails"),
            format!("check that the selector picks the outpost pods (next check) and that they pass /-/health/ready/: kubectl -n {namespace} get pods -l app.kubernetes.io/component=outpost"),
        )
    } else {
        Check::pass(
            NAME,
            format!(
                "Service {namespace}/{service}: {} ready endpoint(s) ({}), port(s) {}",
                ready.len(),
                ready.join(", "),
                ports.join(", ")
            ),
        )
    }
}

/// `outpost-selector`: the Service's selector picks outpost pods and no server pods.
pub async fn selector(client: &kube::Client, namespace: &str, service: &str) -> Check {
    const NAME: &str = "outpost-selector";
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let svc = match services.get(service).await {
        Ok(s) => s,
        Err(e) => return unreadable(NAME, &format!("Service {service}"), namespace, &e),
    };
    let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
    if selector.is_empty() {
        return Check::fail(
            NAME,
            format!("Service {namespace}/{service} has no selector, so Kubernetes manages no endpoints for it"),
            "select the outpost pods: app.kubernetes.io/component: outpost (as the Helm chart does)",
        );
    }
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = match pods.list(&ListParams::default().labels(&labels)).await {
        Ok(l) => l,
        Err(e) => return unreadable(NAME, "Pods", namespace, &e),
    };
    let (mut outposts, mut servers, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for pod in list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let labels = serde_json::to_value(pod.metadata.labels.unwrap_or_default())
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let spec = pod.spec.and_then(|s| serde_json::to_value(s).ok());
        match role(&labels, spec.as_ref()) {
            Role::Outpost => outposts.push(name),
            Role::Server => servers.push(name),
            Role::Other => others.push(name),
        }
    }
    if !servers.is_empty() {
        return Check::fail(
            NAME,
            format!("selector {labels} picks server pods ({}) besides outpost pods ({})", servers.join(", "), outposts.join(", ")),
            format!("make the selector of {namespace}/{service} pick only the outpost: app.kubernetes.io/component: outpost (the chart's deploy/helm/gatehouse does)"),
        );
    }
    if outposts.is_empty() {
        return Check::fail(
            NAME,
            format!("selector {labels} picks no outpost pod ({} other pod(s))", others.len()),
            format!("label the outpost Deployment's pods to match, or fix the selector of {namespace}/{service}"),
        );
    }
    Check::pass(
        NAME,
        format!(
            "selector {labels} picks {} outpost pod(s) ({}) and no server pod",
            outposts.len(),
            outposts.join(", ")
        ),
    )
}

fn unreadable(name: &str, what: &str, namespace: &str, e: &kube::Error) -> Check {
    Check::fail(
        name,
        format!("cannot read {what} in namespace {namespace}: {e}"),
        "check --namespace and --outpost-service, and that the kubeconfig's user may get Services and list EndpointSlices and Pods there",
    )
}
