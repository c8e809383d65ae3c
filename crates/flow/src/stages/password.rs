//! The password stage: checks the pending user's password (throttled per identifier and IP,
//! as slow for unknown users as for wrong passwords) and marks the run authenticated. Passed
//! without asking once a passkey authenticated the run.

use std::sync::OnceLock;

use async_trait::async_trait;
use chrono::Utc;
use gatehouse_core::secret;
use gatehouse_store::{reputation, users};
use serde_json::json;

use super::{audit, blocking, user_login, Entry, Stage, Step, Visit};
use crate::state::{Challenge, Response};
use crate::throttle::{retry_message, Attempt};
use crate::{Error, Result};

/// Longest accepted password.
pub(crate) const MAX_PASSWORD: usize = 1024;

/// The same message for unknown users and wrong passwords.
pub const BAD_CREDENTIALS: &str = "Invalid username or password.";

/// Asks for the identified user's password.
pub(crate) struct Password;

#[async_trait]
impl Stage for Password {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let run = visit.run;
        if run.authenticated {
            return Ok(Entry::Pass);
        }
        let Some(identifier) = run.identifier.clone() else {
            return Err(Error::Config {
                what: format!("flow {}", run.slug),
                message: "a password stage needs an identification stage before it".into(),
            });
        };
        Ok(Entry::Ask(Challenge::Password {
            identifier,
            remember_me: user_login::remember_me_offset(run) > 0,
        }))
    }

    async fn respond(&self, visit: Visit<'_>, response: &Response) -> Result<Step> {
        let Visit {
            engine,
            conn,
            run,
            req,
            ..
        } = visit;
        let identifier = run.identifier.clone().unwrap_or_default();
        let password = response.field("password").to_owned();
        let remember_me = user_login::remember_me_offset(run) > 0;
        let again = |errors: Vec<String>| Step::Retry {
            challenge: Challenge::Password {
                identifier: identifier.clone(),
                remember_me,
            },
            errors,
        };
        if password.len() > MAX_PASSWORD {
            return Ok(Step::invalid(
                "password",
                format!("Ensure this field has no more than {MAX_PASSWORD} characters."),
            ));
        }
        if password.is_empty() {
            return Ok(again(vec!["Enter your password.".into()]));
        }
        let attempt = Attempt::new(run.pending_user, &identifier, &req.ip);
        if let Err(wait) = engine.throttle.check(&attempt) {
            return Ok(again(vec![retry_message(wait)]));
        }
        let user = match run.pending_user {
            Some(id) => Some(users::get(conn, id).await?),
            None => None,
        };
        let stored = match &user {
            Some(u) => users::password_hash(conn, u.id).await?,
            None => None,
        };
        let hash = stored.clone().unwrap_or_else(|| dummy_hash().to_owned());
        let candidate = password.clone();
        let verified =
            blocking(move || secret::verify_password(&candidate, &hash).unwrap_or(false)).await?;
        let ok = verified && stored.is_some() && user.as_ref().is_some_and(|u| u.fields.is_active);
        if !ok {
            engine.throttle.failed(&attempt);
            reputation::record_failure(conn, &identifier, &req.ip, Utc::now()).await?;
            audit(
                conn,
                "login_failed",
                user.as_ref(),
                json!({"username": identifier, "stage": "password"}),
                req,
            )
            .await?;
            return Ok(again(vec![BAD_CREDENTIALS.into()]));
        }
        if let (Some(u), Some(old)) = (&user, &stored) {
            if secret::needs_rehash(old) {
                let rehashed = blocking(move || secret::hash_password(&password))
                    .await?
                    .map_err(|e| Error::Internal(e.to_string()))?;
                users::upgrade_password_hash(conn, u.id, &rehashed).await?;
            }
        }
        reputation::record_success(conn, &identifier, &req.ip).await?;
        run.authenticated = true;
        run.remember_me = remember_me && response.field("remember_me") == "on";
        Ok(Step::Next)
    }
}

/// A hash of a random password, verified when the user does not exist so that the answer takes
/// as long as for a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| secret::hash_password(&secret::new_token()).unwrap_or_default())
}
