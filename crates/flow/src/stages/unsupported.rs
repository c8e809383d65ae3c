//! Stage kinds the configuration may name but this version cannot run yet: the flow stops with
//! a message that says so, rather than skipping a stage that may guard something.

use async_trait::async_trait;

use super::{Entry, Stage, Visit};
use crate::Result;

/// Refuses with "cannot run yet".
pub(crate) struct Unsupported;

#[async_trait]
impl Stage for Unsupported {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        Ok(Entry::Deny(format!(
            "This flow uses a {} stage, which this version of Gatehouse cannot run yet. Ask your administrator.",
            visit.stage.kind
        )))
    }
}
