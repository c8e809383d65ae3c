//! Gatehouse on Kubernetes (SPEC §1 T1, T9, T11): the ingress wiring `gatehouse k8s ingress`
//! generates, the traps `gatehouse k8s lint` finds in existing manifests, and the cluster
//! checks of `gatehouse doctor`. The binary (`crates/gatehouse`) parses the command line and
//! prints; the server-side doctor checks (sessions, edge redirect, plan) live there too, as
//! clients of the server's API, and report with the same [`Check`].
//!
//! # Layout
//! - [`manifest`]: reading multi-document YAML, the few fields every rule looks at, label
//!   selectors.
//! - [`ingress`]: the working forward-auth pattern for nginx-ingress (no snippets) and Traefik.
//! - [`lint`]: the traps, each with its fix.
//! - [`cluster`]: the outpost Service's endpoints and selector, read through the `kube` crate
//!   (kubeconfig or in-cluster).

pub mod cluster;
pub mod ingress;
pub mod lint;
pub mod manifest;

use serde::Serialize;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest file is not YAML (or not a Kubernetes object).
    #[error("{file}: {message}")]
    Manifest {
        /// The file, as given.
        file: String,
        /// What is wrong, and where.
        message: String,
    },
    /// A value given to the generator is unusable.
    #[error("{0}")]
    Invalid(String),
    /// No usable kubeconfig or in-cluster configuration.
    #[error(
        "no Kubernetes configuration: {0} (set KUBECONFIG, or run in a pod with a service account)"
    )]
    Config(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Pass,
    /// It does not; the fix says what to do.
    Fail,
    /// Not run: its input was not given (the fix names the flag).
    Skip,
}

/// One line of `gatehouse doctor`: what was checked, whether it holds, what was seen, and
/// what to do when it does not.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Short stable name (`outpost-endpoints`), for scripts.
    pub name: String,
    /// Whether it holds.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do; empty when the check passed.
    pub fix: String,
}

impl Check {
    fn new(name: &str, status: Status, detail: String, fix: String) -> Check {
        Check {
            name: name.to_owned(),
            status,
            detail,
            fix,
        }
    }

    /// A check that holds.
    pub fn pass(name: &str, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, detail.into(), String::new())
    }

    /// A check that fails, with the fix.
    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Fail, detail.into(), fix.into())
    }

    /// A check not run because `flag` was not given.
    pub fn skip(name: &str, detail: impl Into<String>, flag: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, detail.into(), flag.into())
    }
}
