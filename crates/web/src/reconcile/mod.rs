//! Applies a declarative config document to the database, inside the caller's transaction, and
//! reports every change at field level. `plan` runs exactly the same code and rolls back, so a
//! plan never disagrees with the apply that follows it.
//!
//! Objects are matched by natural key and updated in place through the same validated write
//! paths as the REST API ([`crate::api`]'s resources), so ids, generated secrets and sessions
//! survive. Fields a file entry leaves out keep their stored value.
//!
//! # Layout
//! - this module: the driver, ordering, pruning and error locating.
//! - [`views`]: each kind's stored object rendered in the file's vocabulary, and written back.
//! - [`credentials`]: carried-over passwords and TOTP devices, seeded once.
//! - [`signing_keys`]: carried-over token-signing keys, added once under their `kid`.

mod credentials;
mod signing_keys;
mod views;

use std::collections::BTreeMap;

use gatehouse_declarative::diff::{changes, overlay};
use gatehouse_declarative::document::{Document, Located};
use gatehouse_declarative::Error as DocError;
use gatehouse_proto::declarative::ConfigChange;
use gatehouse_store::{Conn, SecretKey};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Admin;
use crate::error::ApiError;

/// Why a document could not be applied.
#[derive(Debug)]
pub enum Failure {
    /// A located problem in the document.
    Document(DocError),
    /// The database or server failed.
    Server(ApiError),
}

impl From<DocError> for Failure {
    fn from(e: DocError) -> Self {
        Failure::Document(e)
    }
}

impl From<gatehouse_store::Error> for Failure {
    fn from(e: gatehouse_store::Error) -> Self {
        Failure::Server(e.into())
    }
}

/// The outcome of one reconciliation.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Changes made (or that would be made), in application order.
    pub changes: Vec<ConfigChange>,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// Reconciliation state: the transaction, who asks, the document for locating errors.
pub(crate) struct Run<'a> {
    pub(crate) conn: &'a mut Conn,
    /// The store's key, for the secret columns.
    pub(crate) sealing: &'a SecretKey,
    pub(crate) admin: &'a Admin,
    pub(crate) located: &'a Located,
    pub(crate) outcome: Outcome,
}

impl Run<'_> {
    /// A located error for the entry `kind[key]`, optionally at `field`.
    pub(crate) fn invalid(
        &self,
        kind: &str,
        key: &str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Failure {
        let path = match field {
            Some(f) => format!("{kind}[{key}].{f}"),
            None => format!("{kind}[{key}]"),
        };
        Failure::Document(self.located.invalid(path, key, message))
    }

    /// Turns an API validation error from writing `kind[key]` into a located document error.
    pub(crate) fn locate(&self, kind: &str, key: &str, error: ApiError) -> Failure {
        match error {
            ApiError::Validation(fields) => {
                let (field, messages) = fields.into_iter().next().unwrap_or_default();
                let field = (field != "non_field_errors").then_some(field);
                self.invalid(kind, key, field.as_deref(), messages.join(" "))
            }
            ApiError::NotFound(what) => self.invalid(kind, key, None, format!("{what} not found")),
            other => Failure::Server(other),
        }
    }

    /// Compares a stored object (`current`, in file vocabulary) with a file entry; records the
    /// change and returns the desired object when something must be written.
    pub(crate) fn compare(
        &mut self,
        kind: &str,
        key: &str,
        current: Option<Value>,
        entry: &impl Serialize,
        secrets: &[&str],
    ) -> Result<Option<Value>, Failure> {
        let entry = serde_json::to_value(entry)
            .map_err(|e| Failure::Server(ApiError::Internal(e.to_string())))?;
        let desired = overlay(current.as_ref().unwrap_or(&Value::Null), &entry);
        let fields = changes(current.as_ref(), &desired, secrets);
        if current.is_some() && fields.is_empty() {
            return Ok(None);
        }
        self.outcome.changes.push(ConfigChange {
            action: if current.is_some() {
                "update"
            } else {
                "create"
            }
            .into(),
            kind: kind.into(),
            key: key.into(),
            fields,
        });
        Ok(Some(desired))
    }

    /// Records a deletion.
    pub(crate) fn deleted(&mut self, kind: &str, key: &str) {
        self.outcome.changes.push(ConfigChange {
            action: "delete".into(),
            kind: kind.into(),
            key: key.into(),
            fields: Vec::new(),
        });
    }
}

/// Refuses two entries of one kind with the same key.
fn check_unique<'e>(
    located: &Located,
    kind: &str,
    keys: impl Iterator<Item = &'e str>,
) -> Result<(), Failure> {
    let mut seen = BTreeMap::new();
    for key in keys {
        if seen.insert(key, ()).is_some() {
            return Err(Failure::Document(located.invalid(
                format!("{kind}[{key}]"),
                key,
                "appears twice in the file; merge the two entries",
            )));
        }
    }
    Ok(())
}

/// Applies `doc` through `conn` (a transaction the caller commits or rolls back).
pub async fn reconcile(
    conn: &mut Conn,
    sealing: &SecretKey,
    admin: &Admin,
    located: &Located,
    doc: &Document,
    prune: bool,
    warnings: Vec<String>,
) -> Result<Outcome, Failure> {
    check_unique(
        located,
        "groups",
        doc.groups.iter().map(|e| e.name.as_str()),
    )?;
    check_unique(
        located,
        "users",
        doc.users.iter().map(|e| e.username.as_str()),
    )?;
    check_unique(
        located,
        "stages",
        doc.stages.iter().map(|e| e.name.as_str()),
    )?;
    check_unique(
        located,
        "policies",
        doc.policies.iter().map(|e| e.name.as_str()),
    )?;
    check_unique(located, "flows", doc.flows.iter().map(|e| e.slug.as_str()))?;
    check_unique(
        located,
        "scope_mappings",
        doc.scope_mappings.iter().map(|e| e.name.as_str()),
    )?;
    check_unique(
        located,
        "providers",
        doc.oauth2_providers
            .iter()
            .map(|e| e.name.as_str())
            .chain(doc.proxy_providers.iter().map(|e| e.name.as_str())),
    )?;
    check_unique(
        located,
        "applications",
        doc.applications.iter().map(|e| e.slug.as_str()),
    )?;
    check_unique(
        located,
        "sources",
        doc.sources.iter().map(|e| e.slug.as_str()),
    )?;
    check_unique(
        located,
        "outposts",
        doc.outposts.iter().map(|e| e.name.as_str()),
    )?;
    check_unique(
        located,
        "credentials",
        doc.credentials.iter().map(|e| e.user.as_str()),
    )?;
    check_unique(
        located,
        "signing_keys",
        doc.signing_keys.iter().map(|e| e.name.as_str()),
    )?;
    let mut run = Run {
        conn,
        sealing,
        admin,
        located,
        outcome: Outcome {
            changes: Vec::new(),
            warnings,
        },
    };
    for entry in views::parents_first(&run, &doc.groups)? {
        views::group(&mut run, entry).await?;
    }
    for entry in &doc.users {
        views::user(&mut run, entry).await?;
    }
    for entry in &doc.stages {
        views::stage(&mut run, entry).await?;
    }
    for entry in &doc.policies {
        views::policy(&mut run, entry).await?;
    }
    for entry in &doc.flows {
        views::flow(&mut run, entry).await?;
    }
    for entry in &doc.scope_mappings {
        views::scope_mapping(&mut run, entry).await?;
    }
    for entry in &doc.oauth2_providers {
        views::oauth2_provider(&mut run, entry).await?;
    }
    for entry in &doc.proxy_providers {
        views::proxy_provider(&mut run, entry).await?;
    }
    for entry in &doc.applications {
        views::application(&mut run, entry).await?;
    }
    for entry in &doc.sources {
        views::source(&mut run, entry).await?;
    }
    for entry in &doc.outposts {
        views::outpost(&mut run, entry).await?;
    }
    for entry in &doc.signing_keys {
        signing_keys::signing_key(&mut run, entry).await?;
    }
    for entry in &doc.credentials {
        credentials::credential(&mut run, entry).await?;
    }
    if prune {
        views::prune(&mut run, doc).await?;
    }
    Ok(run.outcome)
}
