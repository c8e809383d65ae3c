//! The identification stage: asks for a username or email and makes the matching active user
//! the run's pending user (an unknown one leaves none, and the password stage then fails the
//! same way as for a wrong password). A passkey proves the user here at once
//! ([`crate::run::Engine::passkey_login`]).

use async_trait::async_trait;
use gatehouse_store::{reputation, users};

use super::{Entry, Stage, Step, Visit};
use crate::state::{Challenge, Response};
use crate::Result;

/// Longest accepted identifier (username or email).
pub(crate) const MAX_IDENTIFIER: usize = 254;

/// Asks "who are you?".
pub(crate) struct Identification;

#[async_trait]
impl Stage for Identification {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        Ok(Entry::Ask(Challenge::Identification {
            identifier: visit.run.identifier.clone().unwrap_or_default(),
        }))
    }

    async fn respond(&self, visit: Visit<'_>, response: &Response) -> Result<Step> {
        let identifier = response.field("uid_field").trim().to_owned();
        if identifier.chars().count() > MAX_IDENTIFIER {
            return Ok(Step::invalid(
                "uid_field",
                format!("Ensure this field has no more than {MAX_IDENTIFIER} characters."),
            ));
        }
        if identifier.is_empty() || identifier.chars().any(char::is_control) {
            return Ok(Step::retry(
                Challenge::Identification { identifier },
                "Enter your username or email.",
            ));
        }
        let user = users::find_for_login(visit.conn, &identifier).await?;
        let run = visit.run;
        run.pending_user = user.filter(|u| u.fields.is_active).map(|u| u.id);
        run.identifier = Some(identifier);
        run.authenticated = false;
        Ok(Step::Next)
    }
}

/// A passkey proved `user`: the password (and second-factor) stages are passed.
pub(crate) async fn passkey(visit: Visit<'_>, user: &users::User) -> Result<Step> {
    if !user.fields.is_active {
        return Ok(Step::Deny("This account is deactivated.".into()));
    }
    let run = visit.run;
    run.pending_user = Some(user.id);
    run.identifier = Some(user.fields.username.clone());
    run.authenticated = true;
    run.via_passkey = true;
    reputation::record_success(visit.conn, &user.fields.username, &visit.req.ip).await?;
    Ok(Step::Next)
}
