//! `gatehouse k8s ingress`: the forward-auth wiring that works (shared reference
//! "forward-auth-k8s", SPEC §1 T9), as objects for the application's namespace. For
//! nginx-ingress it needs no snippet annotation (hardened controllers disable them):
//! - an ExternalName Service aliasing the outpost, because an Ingress backend must live in
//!   the Ingress's namespace;
//! - a second Ingress on the *app* host for `/outpost.goauthentik.io/`, so `start` and
//!   `callback` set the cookie on the app host;
//! - the app Ingress with `auth-url`, `auth-signin` (on the app host), `auth-response-headers`
//!   and `auth-proxy-set-headers` naming a ConfigMap that sends `X-Forwarded-Host` (the outpost
//!   picks the provider by it, and nginx-ingress does not send it to the auth URL);
//! - for a backend outside the cluster, a headless Service plus Endpoints (an ExternalName
//!   pointing at an IP does not work);
//! - TLS on the app's Ingress, with the secret in the app's namespace.
//!
//! For Traefik: a `forwardAuth` Middleware and an IngressRoute with the same outpost route.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::{Error, Result};

/// The response headers the app receives (and `Set-Cookie`, passed back to the browser).
pub const RESPONSE_HEADERS: [&str; 6] = [
    "Set-Cookie",
    "X-authentik-username",
    "X-authentik-groups",
    "X-authentik-email",
    "X-authentik-name",
    "X-authentik-uid",
];

/// The outpost's path prefix, routed to the outpost on the app host.
pub const OUTPOST_PREFIX: &str = "/outpost.goauthentik.io/";

/// Which ingress controller the objects are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// ingress-nginx, snippets disabled.
    Nginx,
    /// Traefik v2/v3 CRDs (`traefik.io/v1alpha1`).
    Traefik,
}

/// Where the application runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A Service in the app's namespace.
    Service {
        /// Its name.
        name: String,
        /// Its port.
        port: u16,
    },
    /// An address outside the cluster (a VM, a NAS).
    External {
        /// Its IP address.
        ip: IpAddr,
        /// Its port.
        port: u16,
    },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The app's host, e.g. `app.example.com` (no scheme, no port).
    pub host: String,
    /// The app's namespace; every object goes there.
    pub namespace: String,
    /// Base name of the objects [`Spec::new`] derives from the host.
    pub name: String,
    /// The app.
    pub backend: Backend,
    /// The outpost's in-cluster DNS name, e.g. `gatehouse-outpost.gatehouse.svc.cluster.local`.
    pub outpost: String,
    /// The outpost's port (9000 for a standalone outpost).
    pub outpost_port: u16,
    /// The TLS secret in the app's namespace (cert-manager or by hand).
    pub tls_secret: String,
    /// The IngressClass of nginx-ingress (Traefik routes use the `websecure` entry point).
    pub class: String,
}

/// Whether `s` is a DNS-1123 label (what object names must be).
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Spec {
    /// A spec for `host` in `namespace`, names derived from the host's first label; checks
    /// every value and says which is wrong.
    pub fn new(host: &str, namespace: &str, backend: Backend, outpost: &str) -> Result<Spec> {
        let host = host.trim().to_ascii_lowercase();
        if host.contains("://") || host.contains('/') || host.contains(':') {
            return Err(Error::Invalid(format!(
                "--host `{host}`: give the bare host name, e.g. app.example.com (no scheme, port or path)"
            )));
        }
        if host.split('.').count() < 2 || !host.split('.').all(is_label) {
            return Err(Error::Invalid(format!(
                "--host `{host}` is not a DNS name such as app.example.com"
            )));
        }
        if !is_label(namespace) {
            return Err(Error::Invalid(format!(
                "--namespace `{namespace}` is not a valid namespace name (lower-case letters, digits, `-`)"
            )));
        }
        if outpost.contains("://") || outpost.contains('/') || outpost.is_empty() {
            return Err(Error::Invalid(format!(
                "--outpost `{outpost}`: give the outpost Service's DNS name, e.g. gatehouse-outpost.gatehouse.svc.cluster.local"
            )));
        }
        if let Backend::Service { name, .. } = &backend {
            if !is_label(name) {
                return Err(Error::Invalid(format!(
                    "--service `{name}`: a Service name in {namespace} (an Ingress cannot reach another namespace; for an address outside the cluster use --backend-ip)"
                )));
            }
        }
        let name = host.split('.').next().unwrap_or("app").to_owned();
        Ok(Spec {
            tls_secret: format!("{name}-tls"),
            name,
            host,
            namespace: namespace.to_owned(),
            backend,
            outpost: outpost.to_owned(),
            outpost_port: 9000,
            class: "nginx".to_owned(),
        })
    }

    fn metadata(&self, name: &str) -> Value {
        json!({
            "name": name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "gatehouse-k8s-ingress", "app.kubernetes.io/part-of": self.name},
        })
    }

    /// The Service the app's traffic goes to, and its port.
    fn app_service(&self) -> (String, u16) {
        match &self.backend {
            Backend::Service { name, port } => (name.clone(), *port),
            Backend::External { port, .. } => (self.name.clone(), *port),
        }
    }

    /// The name of the ExternalName Service aliasing the outpost.
    pub fn outpost_alias(&self) -> String {
        format!("{}-gatehouse-outpost", self.name)
    }

    /// The name of the ConfigMap of headers for the auth subrequest.
    pub fn headers_config_map(&self) -> String {
        format!("{}-gatehouse-auth-headers", self.name)
    }

    /// Objects both controllers need: the external backend's headless Service and Endpoints,
    /// and the outpost alias.
    fn common(&self) -> Vec<Value> {
        let mut out = Vec::new();
        if let Backend::External { ip, port } = &self.backend {
            out.push(json!({
                "apiVersion": "v1", "kind": "Service", "metadata": self.metadata(&self.name),
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]},
            }));
            out.push(json!({
                "apiVersion": "v1", "kind": "Endpoints", "metadata": self.metadata(&self.name),
                "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}],
            }));
        }
        out.push(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": self.metadata(&self.outpost_alias()),
            "spec": {"type": "ExternalName", "externalName": self.outpost,
                     "ports": [{"name": "http", "port": self.outpost_port, "targetPort": self.outpost_port, "protocol": "TCP"}]},
        }));
        out
    }

    /// The objects for `controller`, in the order `kubectl apply` should create them.
    pub fn objects(&self, controller: Controller) -> Vec<Value> {
        match controller {
            Controller::Nginx => self.nginx(),
            Controller::Traefik => self.traefik(),
        }
    }

    fn ingress(
        &self,
        name: &str,
        path: &str,
        service: &str,
        port: u16,
        annotations: Value,
    ) -> Value {
        let mut metadata = self.metadata(name);
        if annotations.as_object().is_some_and(|a| !a.is_empty()) {
            metadata["annotations"] = annotations;
        }
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata,
            "spec": {
                "ingressClassName": self.class,
                "tls": [{"hosts": [self.host], "secretName": self.tls_secret}],
                "rules": [{"host": self.host, "http": {"paths": [{"path": path, "pathType": "Prefix",
                    "backend": {"service": {"name": service, "port": {"number": port}}}}]}}],
            },
        })
    }

    fn nginx(&self) -> Vec<Value> {
        let mut out = self.common();
        out.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": self.metadata(&self.headers_config_map()),
            "data": {"X-Forwarded-Host": self.host, "X-Forwarded-Proto": "https"},
        }));
        out.push(self.ingress(
            &format!("{}-gatehouse-outpost", self.name),
            OUTPOST_PREFIX,
            &self.outpost_alias(),
            self.outpost_port,
            json!({}),
        ));
        let (service, port) = self.app_service();
        let prefix = "nginx.ingress.kubernetes.io";
        out.push(self.ingress(
            &self.name,
            "/",
            &service,
            port,
            json!({
                format!("{prefix}/auth-url"): format!("http://{}:{}/outpost.goauthentik.io/auth/nginx", self.outpost, self.outpost_port),
                format!("{prefix}/auth-signin"): format!("https://{}/outpost.goauthentik.io/start?rd=$scheme://$best_http_host$request_uri", self.host),
                format!("{prefix}/auth-response-headers"): RESPONSE_HEADERS.join(","),
                format!("{prefix}/auth-proxy-set-headers"): format!("{}/{}", self.namespace, self.headers_config_map()),
            }),
        ));
        out
    }

    fn traefik(&self) -> Vec<Value> {
        let mut out = self.common();
        let middleware = format!("{}-gatehouse", self.name);
        out.push(json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": self.metadata(&middleware),
            "spec": {"forwardAuth": {
                "address": format!("http://{}:{}/outpost.goauthentik.io/auth/traefik", self.outpost, self.outpost_port),
                "trustForwardHeader": true,
                "authResponseHeaders": &RESPONSE_HEADERS[1..],
            }},
        }));
        let (service, port) = self.app_service();
        let host = format!("Host(`{}`)", self.host);
        out.push(json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", "metadata": self.metadata(&self.name),
            "spec": {
                "entryPoints": ["websecure"],
                "routes": [
                    {"match": format!("{host} && PathPrefix(`{OUTPOST_PREFIX}`)"), "kind": "Rule", "priority": 100,
                     "services": [{"name": self.outpost_alias(), "port": self.outpost_port}]},
                    {"match": host, "kind": "Rule", "middlewares": [{"name": middleware}],
                     "services": [{"name": service, "port": port}]},
                ],
                "tls": {"secretName": self.tls_secret},
            },
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::new(
            "app.example.com",
            "apps",
            Backend::External {
                ip: [192, 0, 2, 10].into(),
                port: 8080,
            },
            "gatehouse-outpost.gatehouse.svc.cluster.local",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_nginx_pattern_needs_no_snippet_and_keeps_everything_in_the_app_namespace() {
        let objects = spec().objects(Controller::Nginx);
        let text = crate::manifest::to_yaml(&objects);
        assert!(!text.contains("snippet"), "{text}");
        assert!(objects.iter().all(|o| o["metadata"]["namespace"] == "apps"));
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Service",
                "Endpoints",
                "Service",
                "ConfigMap",
                "Ingress",
                "Ingress"
            ]
        );
        assert!(
            text.contains("auth-signin: https://app.example.com/outpost.goauthentik.io/start?rd="),
            "{text}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let backend = Backend::Service {
            name: "web".into(),
            port: 80,
        };
        for (host, ns, flag) in [
            ("https://app.example.com", "apps", "--host"),
            ("app", "apps", "--host"),
            ("app.example.com", "Apps_1", "--namespace"),
        ] {
            let e = Spec::new(host, ns, backend.clone(), "o.gatehouse.svc")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.starts_with(flag), "{e}");
        }
    }
}
