//! Audit events (read-only).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// An audit event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// UUID.
    pub pk: Uuid,
    /// Who: `{"pk", "username", "email"}`.
    pub user: Value,
    /// What happened, e.g. `login`, `model_created`.
    pub action: String,
    /// Component that recorded it.
    pub app: String,
    /// Details.
    pub context: Value,
    /// Client address.
    pub client_ip: Option<String>,
    /// When.
    pub created: DateTime<Utc>,
    /// When it is deleted (null: kept).
    pub expires: Option<DateTime<Utc>>,
    /// Always null.
    pub brand: Option<Value>,
}
