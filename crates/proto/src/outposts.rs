//! Outposts.

use gatehouse_core::kinds::OutpostType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::providers::Provider;

/// An outpost.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Outpost {
    /// UUID.
    pub pk: Uuid,
    /// Name.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub outpost_type: OutpostType,
    /// Providers served.
    pub providers: Vec<i64>,
    /// Providers, expanded.
    pub providers_obj: Vec<Provider>,
    /// Always null.
    pub service_connection: Option<Uuid>,
    /// Always null.
    pub service_connection_obj: Option<Value>,
    /// Always 0: changes are pushed, not polled.
    pub refresh_interval_s: i64,
    /// Identifier of its API token.
    pub token_identifier: String,
    /// Settings.
    pub config: Value,
    /// Set for the embedded outpost.
    pub managed: Option<String>,
}

/// Create/replace/patch body of an outpost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutpostRequest {
    /// Name (required on create).
    pub name: Option<String>,
    /// Kind (only `proxy`).
    #[serde(rename = "type")]
    pub outpost_type: Option<OutpostType>,
    /// Providers served (required on create).
    pub providers: Option<Vec<i64>>,
    /// Must be null.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_connection: Option<Option<Uuid>>,
    /// Settings (a JSON object).
    pub config: Option<Map<String, Value>>,
    /// Must be absent: only Gatehouse marks outposts managed.
    pub managed: Option<String>,
}
