//! The deny stage: stops the flow with the stage's `message` (usually reached only when its
//! binding policies let it through, e.g. for visitors outside a group).

use async_trait::async_trait;
use serde_json::Value;

use super::{Entry, Stage, Visit};
use crate::Result;

/// Refuses.
pub(crate) struct Deny;

#[async_trait]
impl Stage for Deny {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let message = visit
            .stage
            .settings
            .get("message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or("Access denied.");
        Ok(Entry::Deny(message.to_owned()))
    }
}
