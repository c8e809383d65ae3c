//! The invitation stage: validates the link's `?itoken=` and fills the run's context with the
//! invitation and its fixed data (e.g. `group`, `email`, `name`), as Authentik's does. Nothing is
//! consumed here — opening a link twice leaves it valid (SPEC L1); the user_write stage consumes
//! a single-use invitation in the transaction that creates the user, and the engine checks the
//! invitation again before every later stage, so a link that expires or is revoked
//! mid-enrollment is refused at the write.
//!
//! Settings: `continue_flow_without_invitation` (default false): without a token the flow goes
//! on instead of stopping.

use async_trait::async_trait;
use chrono::Utc;
use gatehouse_store::invitations::{self, InvitationState};
use gatehouse_store::Conn;
use serde_json::Value;
use uuid::Uuid;

use super::{Entry, Stage, Visit};
use crate::state::{FlowRun, InvitationContext};
use crate::Result;

/// Shown when an invitation-only flow is opened without a link.
pub(crate) const NEEDS_INVITATION: &str =
    "Joining needs an invitation. Open the invitation link you were sent, or ask an administrator for one.";

/// Validates `?itoken=`.
pub(crate) struct Invitation;

#[async_trait]
impl Stage for Invitation {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let continue_without = visit
            .stage
            .settings
            .get("continue_flow_without_invitation")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let run = visit.run;
        if run.invitation.is_some() {
            return Ok(Entry::Pass);
        }
        let Some(token) = run.itoken.clone() else {
            return Ok(if continue_without {
                Entry::Pass
            } else {
                Entry::Deny(NEEDS_INVITATION.into())
            });
        };
        let found = match Uuid::parse_str(token.trim()) {
            Ok(uuid) => invitations::find(visit.conn, uuid).await?,
            Err(_) => None,
        };
        let Some(invitation) = found else {
            return Ok(Entry::Deny(
                "This invitation link is not valid: it may be mistyped or cut off. Open the link exactly as you received it, or ask the person who invited you for a new one.".into(),
            ));
        };
        if let Err(message) = usable(&invitation) {
            return Ok(Entry::Deny(message));
        }
        if invitation.fields.flow.is_some_and(|f| f != run.flow) {
            return Ok(Entry::Deny(
                "This invitation is for another sign-up page. Open the link exactly as you received it.".into(),
            ));
        }
        if let Value::Object(fixed) = &invitation.fields.fixed_data {
            for (key, value) in fixed {
                run.prompt_data.insert(key.clone(), value.clone());
            }
        }
        run.invitation = Some(InvitationContext {
            uuid: invitation.uuid,
            name: invitation.fields.name.clone(),
            fixed_data: invitation.fields.fixed_data.clone(),
            claimed: false,
        });
        Ok(Entry::Pass)
    }
}

/// Why an invitation can no longer be used, in words for the person holding the link.
fn usable(invitation: &invitations::Invitation) -> std::result::Result<(), String> {
    let ask = "Ask the person who invited you for a new one.";
    match invitation.state(Utc::now()) {
        InvitationState::Pending => Ok(()),
        InvitationState::Used => Err(format!("This invitation has already been used. {ask}")),
        InvitationState::Revoked => Err(format!("This invitation was revoked. {ask}")),
        InvitationState::Expired => Err(format!(
            "This invitation expired on {}. {ask}",
            invitation
                .fields
                .expires
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        )),
    }
}

/// The run's invitation, read again: still usable, or why not. The engine calls this before
/// every stage once an invitation is in the context (expiry is checked at every stage), until
/// the run's new user has taken it.
pub(crate) async fn recheck(
    conn: &mut Conn,
    run: &FlowRun,
) -> Result<std::result::Result<Option<invitations::Invitation>, String>> {
    let Some(ctx) = run.invitation.as_ref().filter(|i| !i.claimed) else {
        return Ok(Ok(None));
    };
    Ok(match invitations::find(conn, ctx.uuid).await? {
        Some(invitation) => usable(&invitation).map(|()| Some(invitation)),
        None => Err(
            "This invitation no longer exists. Ask the person who invited you for a new one."
                .into(),
        ),
    })
}
