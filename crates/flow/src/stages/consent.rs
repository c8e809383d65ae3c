//! The consent stage: asks the signed-in user to share the requested scopes with the
//! application being authorised, unless they allowed all of them before and the client did not
//! ask for the screen again (`prompt=consent`). What they allow is remembered per user and
//! application, and recorded as an audit event.

use async_trait::async_trait;
use gatehouse_store::{oauth, users};
use serde_json::json;

use super::{audit, Entry, Stage, Step, Visit};
use crate::state::{Challenge, Response};
use crate::Result;

/// Asks for consent.
pub(crate) struct Consent;

#[async_trait]
impl Stage for Consent {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let (Some(app), Some(user)) = (&visit.run.application, visit.run.session_user) else {
            return Ok(Entry::Pass);
        };
        let granted = oauth::consented_scopes(visit.conn, user, app.uuid)
            .await?
            .unwrap_or_default();
        if !app.ask_again && app.scopes.iter().all(|s| granted.contains(s)) {
            return Ok(Entry::Pass);
        }
        Ok(Entry::Ask(Challenge::Consent {
            application: app.name.clone(),
            scopes: app.scopes.clone(),
        }))
    }

    async fn respond(&self, visit: Visit<'_>, response: &Response) -> Result<Step> {
        if response.field("action") != "allow" {
            return Ok(Step::Deny(
                "You did not allow the application to use your account.".into(),
            ));
        }
        let Visit { conn, run, req, .. } = visit;
        if let (Some(app), Some(user)) = (&run.application, run.session_user) {
            let mut scopes = oauth::consented_scopes(conn, user, app.uuid)
                .await?
                .unwrap_or_default();
            scopes.extend(
                app.scopes
                    .iter()
                    .filter(|s| !scopes.contains(s))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            oauth::remember_consent(conn, user, app.uuid, &scopes).await?;
            let who = users::get(conn, user).await.ok();
            audit(
                conn,
                "authorize_application",
                who.as_ref(),
                json!({"application": app.name, "scopes": app.scopes}),
                req,
            )
            .await?;
        }
        Ok(Step::Next)
    }
}
