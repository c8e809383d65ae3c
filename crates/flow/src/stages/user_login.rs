//! The user_login stage: starts a session for the pending user, only if an authentication stage
//! succeeded for that user in this run (a skipped password stage can never log anyone in). The
//! session lasts `session_duration` (plus `remember_me_offset` when the visitor ticked "remember
//! me"); without one it is a browser-session cookie, kept server-side for a day.

use async_trait::async_trait;
use chrono::{Duration, Utc};
use gatehouse_core::secret;
use gatehouse_store::{sessions, users};
use serde_json::{json, Value};

use super::{audit, Entry, Stage, Visit};
use crate::state::FlowRun;
use crate::Result;

/// Server-side lifetime of a session whose cookie lasts until the browser closes.
pub(crate) const BROWSER_SESSION_HOURS: i64 = 24;

/// Logs the pending user in.
pub(crate) struct UserLogin;

#[async_trait]
impl Stage for UserLogin {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let Visit {
            conn,
            run,
            stage,
            req,
            ..
        } = visit;
        let user = match (run.pending_user, run.authenticated) {
            (Some(id), true) => users::get(conn, id).await?,
            _ => {
                let message = run
                    .denials
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "You could not be logged in.".into());
                return Ok(Entry::Deny(message));
            }
        };
        let duration = stage
            .settings
            .get("session_duration")
            .and_then(Value::as_str)
            .and_then(|d| d.parse::<gatehouse_core::Duration>().ok())
            .map(|d| d.seconds())
            .unwrap_or(0);
        let duration = if run.remember_me {
            duration + remember_me_offset(run)
        } else {
            duration
        };
        let (expires, max_age) = if duration > 0 {
            (Utc::now() + Duration::seconds(duration), Some(duration))
        } else {
            (Utc::now() + Duration::hours(BROWSER_SESSION_HOURS), None)
        };
        if let Some(previous) = run.session {
            sessions::revoke(conn, previous).await?;
        }
        let session_key = secret::new_token();
        sessions::create(
            conn,
            &session_key,
            user.id,
            expires,
            &req.ip,
            &req.user_agent,
        )
        .await?;
        users::touch_login(conn, user.id).await?;
        audit(conn, "login", Some(&user), json!({"flow": run.slug}), req).await?;
        Ok(Entry::LoggedIn {
            session_key,
            max_age,
        })
    }
}

/// The remember-me offset of the flow's login stage, in seconds (0: no remember-me box).
pub(crate) fn remember_me_offset(run: &FlowRun) -> i64 {
    run.stages
        .iter()
        .filter(|s| s.kind == gatehouse_core::kinds::StageKind::UserLogin)
        .filter_map(|s| s.settings.get("remember_me_offset").and_then(Value::as_str))
        .filter_map(|d| d.parse::<gatehouse_core::Duration>().ok())
        .map(|d| d.seconds())
        .next()
        .unwrap_or(0)
}
