//! Policy kinds (`policies/expression/`, `policies/reputation/`) and reputation scores.
//!
//! Each kind's response is the common [`Policy`] fields plus its own; `policies/all/` answers
//! with the common fields only, as Authentik's does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::flows::Policy;

/// An expression policy: a CEL expression over the request, user and flow context.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpressionPolicy {
    /// The fields every policy has.
    #[serde(flatten)]
    pub policy: Policy,
    /// The CEL expression; true passes.
    pub expression: String,
}

/// Create/replace/patch body of an expression policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpressionPolicyRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Log every evaluation.
    pub execution_logging: Option<bool>,
    /// The CEL expression (required on create; checked before it is stored).
    pub expression: Option<String>,
}

/// A reputation policy: fails while failed logins have pushed a score below the threshold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReputationPolicy {
    /// The fields every policy has.
    #[serde(flatten)]
    pub policy: Policy,
    /// Count failures per client address.
    pub check_ip: bool,
    /// Count failures per username.
    pub check_username: bool,
    /// The score at or below which the policy fails (negative: that many recent failures).
    pub threshold: i64,
}

/// Create/replace/patch body of a reputation policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReputationPolicyRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Log every evaluation.
    pub execution_logging: Option<bool>,
    /// Count failures per client address (default true).
    pub check_ip: Option<bool>,
    /// Count failures per username (default true).
    pub check_username: Option<bool>,
    /// Failing score (default -5).
    pub threshold: Option<i64>,
}

/// One failed-login tally (`policies/reputation/scores/`); deleting it unblocks at once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reputation {
    /// Stable key of the (identifier, ip) pair.
    pub pk: Uuid,
    /// The username tried; empty for the tally of an address over all usernames.
    pub identifier: String,
    /// The client address; empty for the tally of a username from any address.
    pub ip: String,
    /// Always null: Gatehouse keeps no GeoIP data.
    pub ip_geo_data: Option<serde_json::Value>,
    /// Always null: Gatehouse keeps no ASN data.
    pub ip_asn_data: Option<serde_json::Value>,
    /// The score now (0 = clean; one point forgiven per minute without failures).
    pub score: i64,
    /// When the last failure was counted.
    pub updated: DateTime<Utc>,
}
