//! The user_logout stage: ends the session the flow started with (if any) and has the web
//! layer clear its cookie when the flow ends.

use async_trait::async_trait;
use gatehouse_store::{sessions, users};
use serde_json::json;

use super::{audit, Entry, Stage, Visit};
use crate::Result;

/// Logs the visitor out.
pub(crate) struct UserLogout;

#[async_trait]
impl Stage for UserLogout {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let Visit { conn, run, req, .. } = visit;
        if let Some(session) = run.session {
            sessions::revoke(conn, session).await?;
            let who = match run.session_user {
                Some(id) => users::get(conn, id).await.ok(),
                None => None,
            };
            audit(conn, "logout", who.as_ref(), json!({}), req).await?;
        }
        Ok(Entry::LoggedOut)
    }
}
