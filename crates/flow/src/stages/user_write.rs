//! The user_write stage: creates the pending user from the prompt data (or updates the
//! identified one, per `user_creation_mode`), sets its password hash, joins
//! `create_users_group`, and counts the new account as the authentication for the login stage.
//! A taken username sends the visitor back to the prompt that asked for it.
//!
//! For an enrollment it also finishes what the earlier stages started, in the same transaction
//! as the new user: the invitation is consumed (a single-use one only once, even when two
//! sign-ups race: the loser is refused and nothing of it is written) and its `fixed_data.group`
//! joined; a login source's identity is connected; a passkey-only sign-up first asks for its
//! passkey and stores it. The username is the prompt's `username`, else the email, else the
//! source's username (the reference's people are known by their email).

use async_trait::async_trait;
use gatehouse_core::kinds::{StageKind, UserType};
use gatehouse_store::{devices, groups, invitations, sources, users};
use serde_json::{json, Value};

use super::{audit, prompt, Entry, Stage, Visit};
use crate::state::{Challenge, FlowRun};
use crate::{Error, Result};

/// Writes the pending user.
pub(crate) struct UserWrite;

#[async_trait]
impl Stage for UserWrite {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let Visit {
            conn,
            run,
            stage,
            req,
            ..
        } = visit;
        let setting = |k: &str| {
            stage
                .settings
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let data = |k: &str| {
            run.prompt_data
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mode = setting("user_creation_mode").unwrap_or_else(|| "always_create".into());
        if let (Some(id), false) = (
            run.pending_user.or(run.session_user),
            mode == "always_create",
        ) {
            let mut user = users::get(conn, id).await?;
            if let Some(name) = data("name") {
                user.fields.name = name;
            }
            if let Some(email) = data("email") {
                user.fields.email = email;
            }
            users::update(conn, id, &user.fields).await?;
            if let Some(hash) = data("password_hash") {
                users::set_password_hash(conn, id, Some(&hash)).await?;
            }
            return Ok(Entry::Pass);
        }
        if mode == "never_create" {
            return Ok(Entry::Deny("This flow does not create accounts.".into()));
        }
        let from_source = run.source.as_ref().and_then(|s| s.username.clone());
        let Some(username) = data("username").or(data("email")).or(from_source) else {
            return Err(Error::Config {
                what: format!("stage {}", stage.name),
                message: "a user_write stage that creates users needs a prompt field `username` or `email` before it".into(),
            });
        };
        if users::find_by_username(conn, &username).await?.is_some() {
            return Ok(back_to_prompt(
                run,
                format!("The username `{username}` is already taken; choose another."),
            ));
        }
        if let Some(enrollment) = &run.passkey_enrollment {
            if enrollment.credential.is_none() {
                return Ok(Entry::Ask(Challenge::PasskeyEnrollment {
                    name: data("name").unwrap_or_else(|| username.clone()),
                    username,
                }));
            }
        }
        // Claimed before anything is written: a lost race stops here with nothing to undo.
        let invitation = match &run.invitation {
            Some(ctx) => match invitations::find(conn, ctx.uuid).await? {
                Some(found) if invitations::claim(conn, &found).await? => Some(found),
                _ => {
                    return Ok(Entry::Deny(
                        "This invitation has already been used. Ask the person who invited you for a new one.".into(),
                    ))
                }
            },
            None => None,
        };
        let user_type = setting("user_type")
            .and_then(|t| t.parse().ok())
            .unwrap_or(UserType::Internal);
        let uuid = run
            .passkey_enrollment
            .as_ref()
            .map(|p| p.user)
            .unwrap_or_else(uuid::Uuid::new_v4);
        let user = users::create_with_uuid(
            conn,
            uuid,
            &users::UserFields {
                name: data("name").unwrap_or_else(|| username.clone()),
                email: data("email").unwrap_or_default(),
                username: username.clone(),
                user_type,
                path: "users".into(),
                // A boolean as the API writes it, or "true" as early declarative files did.
                is_active: !matches!(
                    stage.settings.get("create_users_as_inactive"),
                    Some(Value::Bool(true))
                ) && setting("create_users_as_inactive").is_none_or(|v| v != "true"),
                attributes: json!({}),
            },
        )
        .await?;
        if let Some(hash) = data("password_hash") {
            users::set_password_hash(conn, user.id, Some(&hash)).await?;
        }
        if let Some(group) = setting("create_users_group") {
            match groups::find_by_name(conn, &group).await? {
                Some(g) => groups::add_member(conn, g.id, user.id).await?,
                None => {
                    return Err(Error::Config {
                        what: format!("stage {}", stage.name),
                        message: format!("create_users_group `{group}` does not exist"),
                    })
                }
            }
        }
        if let Some(invitation) = &invitation {
            invitations::record_use(conn, invitation, user.id, &username).await?;
            if let Some(ctx) = &mut run.invitation {
                ctx.claimed = true;
            }
            if let Some(group) = invitation
                .fields
                .fixed_data
                .get("group")
                .and_then(Value::as_str)
            {
                match groups::find_by_name(conn, group).await? {
                    Some(g) => groups::add_member(conn, g.id, user.id).await?,
                    None => {
                        return Err(Error::Config {
                            what: format!("invitation {}", invitation.fields.name),
                            message: format!("its group `{group}` does not exist"),
                        })
                    }
                }
            }
            audit(
                conn,
                "invitation_used",
                Some(&user),
                json!({"invitation": invitation.fields.name, "invitation_uuid": invitation.uuid}),
                req,
            )
            .await?;
        }
        if let Some(source) = &run.source {
            sources::connect(conn, source.source, user.id, &source.identifier).await?;
        }
        if let Some(enrollment) = &run.passkey_enrollment {
            if let (Some(id), Some(credential)) =
                (&enrollment.credential_id, &enrollment.credential)
            {
                devices::add_passkey(conn, user.id, "Passkey", id, credential).await?;
                run.via_passkey = true;
            }
        }
        run.prompt_data.remove("password_hash");
        run.pending_user = Some(user.id);
        run.identifier = Some(username);
        // Enrollment created the account just now: that is the authentication for the login.
        run.authenticated = true;
        audit(
            conn,
            "model_created",
            Some(&user),
            json!({"flow": run.slug, "stage": stage.name}),
            req,
        )
        .await?;
        Ok(Entry::Pass)
    }
}

/// Back to the last prompt before this stage with `message`; without one, the flow stops.
fn back_to_prompt(run: &FlowRun, message: String) -> Entry {
    let prompt = run
        .stages
        .iter()
        .take(run.index)
        .rposition(|s| s.kind == StageKind::Prompt);
    let back = prompt.and_then(|i| run.stages.get(i).map(|s| (i, prompt::fields(s, run))));
    match back {
        Some((index, fields)) if !fields.is_empty() => Entry::Back {
            index,
            challenge: Challenge::Prompt { fields },
            errors: vec![message],
        },
        _ => Entry::Deny(message),
    }
}
