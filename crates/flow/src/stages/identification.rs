//! The identification stage: asks for a username or email and makes the matching active user
//! the run's pending user (an unknown one leaves none, and the password stage then fails the
//! same way as for a wrong password). It also offers the login sources named in its settings
//! and a passkey: a passkey proves the user here at once ([`crate::run::Engine::passkey_login`]),
//! a source's callback hands over who the visitor is ([`crate::run::Engine::source_identified`]).
//!
//! In an enrollment flow the same stage is the sign-up's first page: the source buttons sign up
//! through a social account and the passkey button starts a sign-up with a passkey alone (made
//! later, once the name is known, by the user_write stage).
//!
//! Settings (Authentik's names): `user_fields` (an empty list asks for no username, e.g. a
//! social-only sign-up; default username and email), `sources` (slugs), `show_passkey`
//! (default on for logins, off for sign-ups).

use async_trait::async_trait;
use gatehouse_core::kinds::FlowDesignation;
use gatehouse_store::{reputation, sources, users};
use serde_json::Value;
use uuid::Uuid;

use super::{Entry, Stage, Step, Visit};
use crate::state::{
    Challenge, FlowRun, PasskeyEnrollment, PlannedStage, Response, SourceButton, SourceIdentity,
};
use crate::Result;

/// Longest accepted identifier (username or email).
pub(crate) const MAX_IDENTIFIER: usize = 254;

/// Asks "who are you?".
pub(crate) struct Identification;

#[async_trait]
impl Stage for Identification {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let run = &*visit.run;
        // Already known: a login source said who this is, or a passkey sign-up was chosen.
        let enrollment = run.designation == FlowDesignation::Enrollment;
        if run.authenticated
            || (enrollment && (run.source.is_some() || run.passkey_enrollment.is_some()))
        {
            return Ok(Entry::Pass);
        }
        let identifier = run.identifier.clone().unwrap_or_default();
        Ok(Entry::Ask(
            challenge(
                visit.conn,
                &visit.engine.sealing,
                visit.stage,
                run,
                identifier,
            )
            .await?,
        ))
    }

    async fn respond(&self, visit: Visit<'_>, response: &Response) -> Result<Step> {
        let enrollment = visit.run.designation == FlowDesignation::Enrollment;
        if response.field("action") == "passkey"
            && enrollment
            && shows_passkey(visit.stage, visit.run)
        {
            visit.run.passkey_enrollment = Some(PasskeyEnrollment {
                user: Uuid::new_v4(),
                credential_id: None,
                credential: None,
            });
            return Ok(Step::Next);
        }
        let identifier = response.field("uid_field").trim().to_owned();
        if identifier.chars().count() > MAX_IDENTIFIER {
            return Ok(Step::invalid(
                "uid_field",
                format!("Ensure this field has no more than {MAX_IDENTIFIER} characters."),
            ));
        }
        if !asks_user_fields(visit.stage)
            || identifier.is_empty()
            || identifier.chars().any(char::is_control)
        {
            let message = if asks_user_fields(visit.stage) {
                "Enter your username or email."
            } else {
                "Choose one of the ways to continue below."
            };
            let challenge = challenge(
                visit.conn,
                &visit.engine.sealing,
                visit.stage,
                visit.run,
                identifier,
            )
            .await?;
            return Ok(Step::retry(challenge, message));
        }
        let user = users::find_for_login(visit.conn, &identifier).await?;
        let run = visit.run;
        run.pending_user = user.filter(|u| u.fields.is_active).map(|u| u.id);
        run.identifier = Some(identifier);
        run.authenticated = false;
        Ok(Step::Next)
    }
}

fn asks_user_fields(stage: &PlannedStage) -> bool {
    match stage.settings.get("user_fields").and_then(Value::as_array) {
        Some(fields) => !fields.is_empty(),
        None => true,
    }
}

fn shows_passkey(stage: &PlannedStage, run: &FlowRun) -> bool {
    stage
        .settings
        .get("show_passkey")
        .and_then(Value::as_bool)
        .unwrap_or(run.designation != FlowDesignation::Enrollment)
}

/// The page: what was typed, the enabled sources named in the settings (a source without a
/// client secret is disabled and shows no button), and the passkey button.
async fn challenge(
    conn: &mut gatehouse_store::Conn,
    sealing: &gatehouse_store::SecretKey,
    stage: &PlannedStage,
    run: &FlowRun,
    identifier: String,
) -> Result<Challenge> {
    let mut buttons = Vec::new();
    let slugs = stage
        .settings
        .get("sources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    for slug in slugs {
        if let Some(source) = sources::find_by_slug(conn, sealing, slug).await? {
            if source.fields.enabled && !source.fields.consumer_secret.is_empty() {
                buttons.push(SourceButton {
                    slug: source.fields.slug,
                    name: source.fields.name,
                });
            }
        }
    }
    Ok(Challenge::Identification {
        identifier,
        user_fields: asks_user_fields(stage),
        sources: buttons,
        enrollment: run.designation == FlowDesignation::Enrollment,
        passkey: shows_passkey(stage, run),
    })
}

/// A passkey proved `user`: the password stage is passed; a TOTP stage still asks unless the
/// server counts a passkey as two factors.
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

/// A login source identified the visitor: as `user` (a connected or linked account: the
/// password stage is passed, a second factor is still asked for when the user has one), or as
/// a new person for the enrollment flow (`user` is `None`; prompts are pre-filled from it).
pub(crate) async fn source(
    visit: Visit<'_>,
    identity: SourceIdentity,
    user: Option<&users::User>,
) -> Result<Step> {
    let run = visit.run;
    if let Some(user) = user {
        if !user.fields.is_active {
            return Ok(Step::Deny("This account is deactivated.".into()));
        }
        run.pending_user = Some(user.id);
        run.identifier = Some(user.fields.username.clone());
        run.authenticated = true;
        reputation::record_success(visit.conn, &user.fields.username, &visit.req.ip).await?;
    }
    run.source = Some(identity);
    Ok(Step::Next)
}
