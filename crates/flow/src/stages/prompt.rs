//! The prompt stage: fields to fill in (enrollment, profile), checked by kind (email,
//! username, text, password with its repeat). What was entered goes into the run's prompt data
//! for the user_write stage; a password only as its argon2 hash (`password_hash`), and it is
//! never shown again. A prompt without fields is passed. A field's `initial_from`
//! (`source.name`, `source.email`, `source.username`) pre-fills it from a login source.

use async_trait::async_trait;
use gatehouse_core::secret;
use serde_json::Value;

use super::password::MAX_PASSWORD;
use super::{blocking, Entry, Stage, Step, Visit};
use crate::state::{Challenge, FlowRun, PlannedStage, PromptField, Response};
use crate::{Error, Result};

/// Asks for the stage's fields.
pub(crate) struct Prompt;

#[async_trait]
impl Stage for Prompt {
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry> {
        let fields = fields(visit.stage, visit.run);
        Ok(if fields.is_empty() {
            Entry::Pass
        } else {
            Entry::Ask(Challenge::Prompt { fields })
        })
    }

    async fn respond(&self, visit: Visit<'_>, response: &Response) -> Result<Step> {
        let run = visit.run;
        let mut fields = fields(visit.stage, run);
        let mut errors = Vec::new();
        let mut password: Option<String> = None;
        for field in &mut fields {
            let raw = response.field(&field.field_key);
            if raw.chars().count() > MAX_PASSWORD {
                return Ok(Step::invalid(
                    &field.field_key,
                    format!("Ensure this field has no more than {MAX_PASSWORD} characters."),
                ));
            }
            let value = if field.kind == "password" {
                raw.to_owned()
            } else {
                raw.trim().to_owned()
            };
            if value.is_empty() {
                if field.required {
                    errors.push(format!("{} is required.", field.label));
                }
                continue;
            }
            let check = match field.kind.as_str() {
                "email" => gatehouse_core::validate::email(&value),
                "username" => gatehouse_core::validate::username(&value),
                "password" => Ok(()),
                _ => gatehouse_core::validate::text(&value),
            };
            if let Err(message) = check {
                errors.push(format!("{}: {message}", field.label));
            }
            match field.field_key.as_str() {
                "password" => password = Some(value),
                "password_repeat" => {}
                _ => field.value = value,
            }
        }
        let repeat = response.field("password_repeat");
        if fields.iter().any(|f| f.field_key == "password_repeat")
            && password.as_deref().unwrap_or_default() != repeat
        {
            errors.push("The two passwords differ.".into());
        }
        if !errors.is_empty() {
            return Ok(Step::Retry {
                challenge: Challenge::Prompt { fields },
                errors,
            });
        }
        for field in &fields {
            if field.kind != "password" && !field.value.is_empty() {
                run.prompt_data
                    .insert(field.field_key.clone(), Value::String(field.value.clone()));
            }
        }
        if let Some(password) = password {
            let hash = blocking(move || secret::hash_password(&password))
                .await?
                .map_err(|e| Error::Internal(e.to_string()))?;
            run.prompt_data
                .insert("password_hash".into(), Value::String(hash));
        }
        Ok(Step::Next)
    }
}

/// The fields of a prompt stage with what was entered so far (passwords never shown again).
pub(crate) fn fields(stage: &PlannedStage, run: &FlowRun) -> Vec<PromptField> {
    let mut fields: Vec<PromptField> = stage
        .settings
        .get("fields")
        .and_then(|f| serde_json::from_value(f.clone()).ok())
        .unwrap_or_default();
    for field in &mut fields {
        if field.kind == "password" {
            field.value.clear();
        } else if let Some(v) = run
            .prompt_data
            .get(&field.field_key)
            .and_then(Value::as_str)
        {
            field.value = v.to_owned();
        } else if let Some(v) = initial(field.initial_from.as_deref(), run) {
            field.value = v;
        }
    }
    fields
}

/// A field's initial value from a login source's identity (`initial_from: source.name`), so a
/// person signing up through Google finds their name and email filled in.
fn initial(from: Option<&str>, run: &FlowRun) -> Option<String> {
    let source = run.source.as_ref()?;
    match from? {
        "source.name" => source.name.clone(),
        "source.email" => source.email.clone(),
        "source.username" => source.username.clone(),
        _ => None,
    }
}
