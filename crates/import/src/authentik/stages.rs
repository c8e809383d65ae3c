//! Stages: each Authentik stage type Gatehouse has a kind for, with the settings that kind
//! reads (Authentik's field names, so most carry over as they are). Types without a kind are
//! reported, and the flows that contain them are marked.

use serde_json::{json, Map, Value};

use super::api::Polymorphic;
use super::{Client, Names};
use crate::{Error, Report};

/// One Authentik stage type: its model name, API path, Gatehouse kind and the settings carried.
struct StageType {
    model: &'static str,
    path: &'static str,
    kind: &'static str,
    settings: &'static [&'static str],
}

const TYPES: &[StageType] = &[
    StageType {
        model: "authentik_stages_identification.identificationstage",
        path: "stages/identification/",
        kind: "identification",
        settings: &["user_fields"],
    },
    StageType {
        model: "authentik_stages_password.passwordstage",
        path: "stages/password/",
        kind: "password",
        settings: &[],
    },
    StageType {
        model: "authentik_stages_authenticator_validate.authenticatorvalidatestage",
        path: "stages/authenticator/validate/",
        kind: "totp",
        settings: &["not_configured_action"],
    },
    StageType {
        model: "authentik_stages_consent.consentstage",
        path: "stages/consent/",
        kind: "consent",
        settings: &["mode"],
    },
    StageType {
        model: "authentik_stages_invitation.invitationstage",
        path: "stages/invitation/stages/",
        kind: "invitation",
        settings: &["continue_flow_without_invitation"],
    },
    StageType {
        model: "authentik_stages_prompt.promptstage",
        path: "stages/prompt/stages/",
        kind: "prompt",
        settings: &[],
    },
    StageType {
        model: "authentik_stages_user_write.userwritestage",
        path: "stages/user_write/",
        kind: "user_write",
        settings: &[
            "user_creation_mode",
            "create_users_as_inactive",
            "user_type",
        ],
    },
    StageType {
        model: "authentik_stages_user_login.userloginstage",
        path: "stages/user_login/",
        kind: "user_login",
        settings: &["session_duration", "remember_me_offset"],
    },
    StageType {
        model: "authentik_stages_user_logout.userlogoutstage",
        path: "stages/user_logout/",
        kind: "user_logout",
        settings: &[],
    },
    StageType {
        model: "authentik_stages_deny.denystage",
        path: "stages/deny/",
        kind: "deny",
        settings: &[],
    },
];

/// Reads `stages/all/` and each stage's own settings (`names` must hold the sources already).
pub(super) async fn map(
    client: &Client,
    names: &mut Names,
    report: &mut Report,
) -> Result<Value, Error> {
    let all: Vec<Polymorphic> = client.list("stages/all/").await?;
    let mut out = Vec::new();
    for stage in &all {
        let Some(t) = TYPES.iter().find(|t| t.model == stage.meta_model_name) else {
            report.left_out(
                "stage",
                &stage.name,
                format!("{} has no Gatehouse counterpart", stage.meta_model_name),
            );
            continue;
        };
        let detail: Value = client.get(&format!("{}{}/", t.path, stage.pk)).await?;
        let mut settings = Map::new();
        for key in t.settings {
            if let Some(v) = detail.get(*key).filter(|v| !v.is_null()) {
                settings.insert((*key).into(), v.clone());
            }
        }
        extra(
            t.kind,
            &stage.name,
            &detail,
            client,
            names,
            &mut settings,
            report,
        )
        .await?;
        names.stages.insert(stage.pk, stage.name.clone());
        report.carried("stages");
        out.push(json!({"name": stage.name, "kind": t.kind, "settings": settings}));
    }
    Ok(Value::Array(out))
}

/// The settings that need a lookup or a rename.
async fn extra(
    kind: &str,
    name: &str,
    detail: &Value,
    client: &Client,
    names: &Names,
    settings: &mut Map<String, Value>,
    report: &mut Report,
) -> Result<(), Error> {
    match kind {
        "identification" => {
            let slugs: Vec<&String> = detail["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().and_then(|s| s.parse().ok()))
                .filter_map(|u| names.sources.get(&u))
                .collect();
            if !slugs.is_empty() {
                settings.insert("sources".into(), json!(slugs));
            }
            if !detail["webauthn_stage"].is_null() || !detail["passwordless_flow"].is_null() {
                settings.insert("show_passkey".into(), json!(true));
            }
        }
        "deny" => {
            if let Some(m) = detail["deny_message"].as_str().filter(|m| !m.is_empty()) {
                settings.insert("message".into(), json!(m));
            }
        }
        "user_write" => {
            if let Some(group) = detail["create_users_group"]
                .as_str()
                .and_then(|g| g.parse().ok())
                .and_then(|g| names.groups.get(&g))
            {
                settings.insert("create_users_group".into(), json!(group));
            }
        }
        "prompt" => {
            let mut prompts = Vec::new();
            for pk in detail["fields"].as_array().into_iter().flatten() {
                let Some(pk) = pk.as_str() else { continue };
                let prompt: Value = client.get(&format!("stages/prompt/prompts/{pk}/")).await?;
                prompts.push(prompt);
            }
            prompts.sort_by_key(|p| p["order"].as_i64().unwrap_or(0));
            let fields: Vec<Value> = prompts
                .iter()
                .map(|p| prompt_field(name, p, report))
                .collect();
            settings.insert("fields".into(), Value::Array(fields));
        }
        _ => {}
    }
    Ok(())
}

/// One Authentik prompt as a field of Gatehouse's prompt stage. A value Authentik computed in
/// Python becomes, for the name, email and username fields, the login source's value (what the
/// reference deployment's expressions do); otherwise the field starts empty.
fn prompt_field(stage: &str, prompt: &Value, report: &mut Report) -> Value {
    let key = prompt["field_key"].as_str().unwrap_or_default();
    let mut field = json!({
        "field_key": key,
        "label": prompt["label"],
        "type": prompt["type"],
        "required": prompt["required"].as_bool().unwrap_or(false),
    });
    if prompt["initial_value_expression"] == json!(true)
        || prompt["placeholder_expression"] == json!(true)
    {
        let from = match key {
            "name" | "email" | "username" => {
                field["initial_from"] = json!(format!("source.{key}"));
                format!("it is now filled from the login source's {key}")
            }
            _ => "it now starts empty".to_owned(),
        };
        report.check(
            "prompt stage",
            stage,
            format!("field `{key}` computed its initial value in Python; {from}"),
        );
    }
    field
}
