//! Plan and apply of the declarative config: the CLI sends the file, the server diffs and applies
//! it in one transaction.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A plan or apply request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigRequest {
    /// The config file's text (YAML or JSON), with its `${VAR}` references unresolved.
    pub document: String,
    /// A name for the document in error messages (usually the file path).
    #[serde(default)]
    pub source: String,
    /// Delete objects of the covered kinds that the file does not mention.
    #[serde(default)]
    pub prune: bool,
    /// Values of the environment variables the document references (`${VAR}`), taken from the
    /// operator's environment by the CLI.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
}

/// What a plan found, or what an apply did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigPlan {
    /// One entry per object to create, update or delete; empty when nothing differs.
    pub changes: Vec<ConfigChange>,
    /// Non-fatal findings (e.g. a source created disabled because its secret was empty).
    pub warnings: Vec<String>,
    /// Whether the changes were written (apply) or only computed (plan).
    pub applied: bool,
}

/// One object's change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ConfigChange {
    /// `create`, `update` or `delete`.
    pub action: String,
    /// Kind, e.g. `group`, `application`.
    pub kind: String,
    /// Natural key: group name, username, slug, …
    pub key: String,
    /// Changed fields with old and new values (for updates; all fields for creates).
    pub fields: Vec<FieldChange>,
}

/// One field's old and new value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct FieldChange {
    /// Field name.
    pub field: String,
    /// Current value (null when creating).
    pub old: serde_json::Value,
    /// Desired value (null when deleting).
    pub new: serde_json::Value,
}
