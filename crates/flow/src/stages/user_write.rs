//! The user_write stage: creates the pending user from the prompt data (or updates the
//! identified one, per `user_creation_mode`), sets its password hash, joins
//! `create_users_group`, and counts the new account as the authentication for the login stage.
//! A taken username sends the visitor back to the prompt that asked for it.

use async_trait::async_trait;
use gatehouse_core::kinds::{StageKind, UserType};
use gatehouse_store::{groups, users};
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
        let Some(username) = data("username") else {
            return Err(Error::Config {
                what: format!("stage {}", stage.name),
                message: "a user_write stage that creates users needs a prompt field `username` before it".into(),
            });
        };
        if users::find_by_username(conn, &username).await?.is_some() {
            return Ok(back_to_prompt(
                run,
                format!("The username `{username}` is already taken; choose another."),
            ));
        }
        let user_type = setting("user_type")
            .and_then(|t| t.parse().ok())
            .unwrap_or(UserType::Internal);
        let user = users::create(
            conn,
            &users::UserFields {
                name: data("name").unwrap_or_else(|| username.clone()),
                email: data("email").unwrap_or_default(),
                username: username.clone(),
                user_type,
                path: "users".into(),
                is_active: setting("create_users_as_inactive").is_none_or(|v| v != "true"),
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
