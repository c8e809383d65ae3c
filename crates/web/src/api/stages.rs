//! `stages/all/`, one resource per stage kind (`stages/deny/`, `stages/user_login/`, …) and
//! `flows/bindings/`: stages and their places in flows, in Authentik's shapes.
//!
//! A stage is one row whose kind-specific settings are a JSON object. [`StageSpec`] lists, per
//! kind, the Authentik fields Gatehouse acts on with their defaults; everything else about the
//! resource (finding, listing by kind, rendering, merging a request into the settings) is
//! written once here. Settings outside that list (Gatehouse's own, e.g. `show_passkey`) are
//! kept as they are.

use std::marker::PhantomData;

use gatehouse_core::kinds::{PolicyEngineMode, StageKind};
use gatehouse_proto::stages::{
    AuthenticatorValidateStage, AuthenticatorValidateStageRequest, ConsentStage,
    ConsentStageRequest, DenyStage, DenyStageRequest, FlowSet, FlowStageBinding,
    FlowStageBindingRequest, IdentificationStage, IdentificationStageRequest,
    InvalidResponseAction, InvitationStage, InvitationStageRequest, PasswordStage,
    PasswordStageRequest, Stage, UserLoginStage, UserLoginStageRequest, UserLogoutStage,
    UserLogoutStageRequest, UserWriteStage, UserWriteStageRequest,
};
use gatehouse_store::flows::{self, StageBinding, StageFields};
use gatehouse_store::sql;
use gatehouse_store::{Conn, ListSpec, Listed, SecretKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::resource::{list_of_kind, NoRequest, Operations, Resource};
use super::validate::{or, Errors};
use super::Api;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, ListRules};
use crate::Settings;

const RULES: ListRules = ListRules {
    filters: &[
        ("name", "name", FilterKind::Text),
        ("pk", "uuid", FilterKind::Text),
    ],
    search: &["name"],
    ordering: &[("name", "name"), ("pk", "uuid")],
    default_order: "name",
    relations: &[],
};

const BINDING_RULES: ListRules = ListRules {
    filters: &[
        ("target", "flow_uuid", FilterKind::Text),
        ("stage", "stage_uuid", FilterKind::Text),
        ("order", "position", FilterKind::Int),
        ("policy_engine_mode", "policy_engine_mode", FilterKind::Text),
        ("pk", "uuid", FilterKind::Text),
    ],
    search: &[],
    ordering: &[("order", "position"), ("pk", "uuid")],
    default_order: "position",
    relations: &[],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<flows::Stage>(
        "/stages/all/",
        "/stages/all/{stage_uuid}/",
        "stage of any kind",
        Operations::ReadDelete,
    )
    .resource::<KindStage<AuthenticatorValidate>>(
        "/stages/authenticator/validate/",
        "/stages/authenticator/validate/{stage_uuid}/",
        "authenticator-validation stage",
        Operations::Crud,
    )
    .resource::<KindStage<Consent>>(
        "/stages/consent/",
        "/stages/consent/{stage_uuid}/",
        "consent stage",
        Operations::Crud,
    )
    .resource::<KindStage<Deny>>(
        "/stages/deny/",
        "/stages/deny/{stage_uuid}/",
        "deny stage",
        Operations::Crud,
    )
    .resource::<KindStage<Identification>>(
        "/stages/identification/",
        "/stages/identification/{stage_uuid}/",
        "identification stage",
        Operations::Crud,
    )
    .resource::<KindStage<Invitation>>(
        "/stages/invitation/stages/",
        "/stages/invitation/stages/{stage_uuid}/",
        "invitation stage",
        Operations::Crud,
    )
    .resource::<KindStage<Password>>(
        "/stages/password/",
        "/stages/password/{stage_uuid}/",
        "password stage",
        Operations::Crud,
    )
    .resource::<KindStage<UserLogin>>(
        "/stages/user_login/",
        "/stages/user_login/{stage_uuid}/",
        "user-login stage",
        Operations::Crud,
    )
    .resource::<KindStage<UserLogout>>(
        "/stages/user_logout/",
        "/stages/user_logout/{stage_uuid}/",
        "user-logout stage",
        Operations::Crud,
    )
    .resource::<KindStage<UserWrite>>(
        "/stages/user_write/",
        "/stages/user_write/{stage_uuid}/",
        "user-write stage",
        Operations::Crud,
    )
    .tag("flows")
    .resource::<StageBinding>(
        "/flows/bindings/",
        "/flows/bindings/{fsb_uuid}/",
        "stage binding",
        Operations::Crud,
    )
}

/// Authentik's name of a kind, as in its component and model names.
fn authentik_name(kind: StageKind) -> &'static str {
    match kind {
        StageKind::Webauthn | StageKind::Totp => "authenticator_validate",
        other => other.as_str(),
    }
}

/// The fields every stage shows, whatever its kind.
async fn common(conn: &mut Conn, stage: &flows::Stage) -> ApiResult<Stage> {
    let name = authentik_name(stage.fields.kind);
    let words: Vec<String> = name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
        .collect();
    let flows: Vec<flows::Flow> = sql::select(
        conn,
        "WHERE uuid IN (SELECT flow_uuid FROM flow_stage_bindings WHERE stage_uuid = $1)",
        vec![stage.uuid.into()],
        "slug",
    )
    .await?;
    Ok(Stage {
        pk: stage.uuid,
        name: stage.fields.name.clone(),
        component: format!("ak-stage-{}-form", name.replace('_', "-")),
        verbose_name: format!("{} Stage", words.join(" ")),
        verbose_name_plural: format!("{} Stages", words.join(" ")),
        meta_model_name: format!("gatehouse.{}stage", name.replace('_', "")),
        flow_set: flows
            .into_iter()
            .map(|f| FlowSet {
                pk: f.uuid,
                policybindingmodel_ptr_id: f.uuid,
                name: f.fields.name,
                slug: f.fields.slug,
                title: f.fields.title,
                designation: f.fields.designation,
                background_url: f.fields.background,
                policy_engine_mode: f.fields.policy_engine_mode,
                compatibility_mode: f.fields.compatibility_mode,
                export_url: String::new(),
                layout: f.fields.layout,
                denied_action: f.fields.denied_action,
            })
            .collect(),
    })
}

impl Resource for flows::Stage {
    const MODEL: &'static str = "stage";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = Stage;
    type Request = NoRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        Ok(sql::get(conn, *key).await?)
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        Ok(sql::list(conn, spec).await?)
    }

    async fn render(
        &self,
        conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<Stage> {
        common(conn, self).await
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(flows::delete_stage(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.name.clone())
    }
}

/// What one stage kind's resource shows and accepts.
pub(crate) trait StageSpec: Send + Sync + 'static {
    /// The kind served.
    const KIND: StageKind;
    /// Model name in audit events.
    const MODEL: &'static str;
    /// Wire fields stored under another settings key: `(wire, stored)`.
    const STORED: &'static [(&'static str, &'static str)] = &[];
    /// Wire fields a create or replace must set.
    const REQUIRED: &'static [&'static str] = &[];
    /// Wire fields whose value is the kind's fixed behaviour: always shown as the default,
    /// never stored, and a request may only repeat the default.
    const FIXED: &'static [&'static str] = &[];
    /// The response.
    type Wire: Serialize + DeserializeOwned + ToSchema + Send + 'static;
    /// The create/replace/patch body.
    type Request: Serialize + DeserializeOwned + ToSchema + Send + Sync + 'static;
    /// The kind's wire fields with the values they have when unset.
    fn defaults() -> Value;
    /// Checks the merged wire fields beyond their types (e.g. durations).
    fn check(_fields: &Map<String, Value>, _errors: &mut Errors) {}
}

fn stored(spec: &'static [(&'static str, &'static str)], wire: &str) -> String {
    spec.iter()
        .find(|(w, _)| *w == wire)
        .map_or(wire, |(_, s)| s)
        .to_owned()
}

/// The kind's wire fields of `settings`, defaults filling the gaps (a `"true"`/`"false"` string
/// where a boolean belongs, as early declarative files wrote, reads as the boolean).
fn visible<K: StageSpec>(settings: &Value) -> Map<String, Value> {
    let Value::Object(defaults) = K::defaults() else {
        return Map::new();
    };
    defaults
        .into_iter()
        .map(|(key, default)| {
            if K::FIXED.contains(&key.as_str()) {
                return (key, default);
            }
            let value = match (settings.get(stored(K::STORED, &key)), &default) {
                (Some(Value::String(s)), Value::Bool(_)) if s == "true" || s == "false" => {
                    Value::Bool(s == "true")
                }
                (Some(v), _) if !v.is_null() => v.clone(),
                _ => default,
            };
            (key, value)
        })
        .collect()
}

/// A stored stage seen through the resource of its kind `K`.
pub(crate) struct KindStage<K>(flows::Stage, PhantomData<K>);

impl<K: StageSpec> Resource for KindStage<K> {
    const MODEL: &'static str = K::MODEL;
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = K::Wire;
    type Request = K::Request;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        let stage: flows::Stage = sql::get(conn, *key).await?;
        if stage.fields.kind != K::KIND {
            return Err(ApiError::NotFound(K::MODEL.into()));
        }
        Ok(KindStage(stage, PhantomData))
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        list_of_kind::<flows::Stage, _>(conn, spec, K::KIND.as_str(), |s| KindStage(s, PhantomData))
            .await
    }

    async fn render(
        &self,
        conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<K::Wire> {
        let mut wire = match serde_json::to_value(common(conn, &self.0).await?) {
            Ok(Value::Object(map)) => map,
            _ => return Err(ApiError::Internal("stage did not serialize".into())),
        };
        wire.extend(visible::<K>(&self.0.fields.settings));
        serde_json::from_value(Value::Object(wire)).map_err(|e| {
            ApiError::Internal(format!(
                "stage `{}` has a setting of the wrong type ({e}); fix it in the declarative file",
                self.0.fields.name
            ))
        })
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: K::Request,
        full: bool,
    ) -> ApiResult<Self> {
        let Ok(Value::Object(mut given)) = serde_json::to_value(&req) else {
            return Err(ApiError::Internal("request did not serialize".into()));
        };
        given.retain(|_, v| !v.is_null());
        let mut errors = Errors::default();
        let name = given
            .remove("name")
            .and_then(|n| n.as_str().map(str::to_owned));
        if full {
            errors.require("name", name.as_ref());
            for field in K::REQUIRED {
                errors.require(field, given.get(*field));
            }
        }
        if let Some(name) = &name {
            errors.check("name", gatehouse_core::validate::name(name));
        }
        let defaults = K::defaults();
        for field in K::FIXED {
            if let Some(value) = given.remove(*field) {
                if value != defaults[*field] {
                    errors.add(
                        field,
                        format!("Gatehouse's {} stage always works as {field} = {}; leave it out or send that.", K::KIND, defaults[*field]),
                    );
                }
            }
        }
        let base = current.as_ref().map(|c| &c.0.fields);
        let mut settings = base
            .and_then(|b| b.settings.as_object().cloned())
            .unwrap_or_default();
        let mut merged = visible::<K>(&Value::Object(settings.clone()));
        merged.extend(given.clone());
        K::check(&merged, &mut errors);
        errors.finish()?;
        for (key, value) in given {
            settings.insert(stored(K::STORED, &key), value);
        }
        let fields = StageFields {
            name: name.unwrap_or_else(|| base.map(|b| b.name.clone()).unwrap_or_default()),
            kind: K::KIND,
            settings: Value::Object(settings),
        };
        let stored = match current {
            Some(c) => flows::update_stage(conn, c.0.uuid, &fields).await?,
            None => flows::create_stage(conn, &fields).await?,
        };
        Ok(KindStage(stored, PhantomData))
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(flows::delete_stage(conn, self.0.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        self.0.label()
    }
}

/// `stages/authenticator/validate/`: Gatehouse's TOTP stage, which checks an authenticator app's
/// code or a recovery code and passes people who have neither.
pub(crate) struct AuthenticatorValidate;

impl StageSpec for AuthenticatorValidate {
    const KIND: StageKind = StageKind::Totp;
    const MODEL: &'static str = "authenticatorvalidatestage";
    const FIXED: &'static [&'static str] = &[
        "not_configured_action",
        "device_classes",
        "webauthn_allowed_device_types_obj",
    ];
    type Wire = AuthenticatorValidateStage;
    type Request = AuthenticatorValidateStageRequest;
    fn defaults() -> Value {
        json!({
            "not_configured_action": "skip",
            "device_classes": ["static", "totp"],
            "webauthn_allowed_device_types_obj": [],
        })
    }
}

/// `stages/consent/`: consent given once is remembered until the client asks again.
pub(crate) struct Consent;

impl StageSpec for Consent {
    const KIND: StageKind = StageKind::Consent;
    const MODEL: &'static str = "consentstage";
    const FIXED: &'static [&'static str] = &["mode"];
    type Wire = ConsentStage;
    type Request = ConsentStageRequest;
    fn defaults() -> Value {
        json!({"mode": "permanent"})
    }
}

/// `stages/deny/`; Gatehouse stores the message as `message`.
pub(crate) struct Deny;

impl StageSpec for Deny {
    const KIND: StageKind = StageKind::Deny;
    const MODEL: &'static str = "denystage";
    const STORED: &'static [(&'static str, &'static str)] = &[("deny_message", "message")];
    type Wire = DenyStage;
    type Request = DenyStageRequest;
    fn defaults() -> Value {
        json!({"deny_message": ""})
    }
}

/// `stages/identification/`.
pub(crate) struct Identification;

impl StageSpec for Identification {
    const KIND: StageKind = StageKind::Identification;
    const MODEL: &'static str = "identificationstage";
    type Wire = IdentificationStage;
    type Request = IdentificationStageRequest;
    fn defaults() -> Value {
        json!({"user_fields": ["username", "email"]})
    }
}

/// `stages/invitation/stages/`.
pub(crate) struct Invitation;

impl StageSpec for Invitation {
    const KIND: StageKind = StageKind::Invitation;
    const MODEL: &'static str = "invitationstage";
    type Wire = InvitationStage;
    type Request = InvitationStageRequest;
    fn defaults() -> Value {
        json!({"continue_flow_without_invitation": false})
    }
}

/// `stages/password/`: the user's own password is the one backend.
pub(crate) struct Password;

impl StageSpec for Password {
    const KIND: StageKind = StageKind::Password;
    const MODEL: &'static str = "passwordstage";
    const REQUIRED: &'static [&'static str] = &["backends"];
    type Wire = PasswordStage;
    type Request = PasswordStageRequest;
    fn defaults() -> Value {
        json!({"backends": ["authentik.core.auth.InbuiltBackend"]})
    }
    fn check(fields: &Map<String, Value>, errors: &mut Errors) {
        if fields["backends"].as_array().is_some_and(Vec::is_empty) {
            errors.add(
                "backends",
                "Name at least one backend: authentik.core.auth.InbuiltBackend.",
            );
        }
    }
}

/// `stages/user_login/`: durations in Authentik's `hours=12;minutes=30` form.
pub(crate) struct UserLogin;

impl StageSpec for UserLogin {
    const KIND: StageKind = StageKind::UserLogin;
    const MODEL: &'static str = "userloginstage";
    type Wire = UserLoginStage;
    type Request = UserLoginStageRequest;
    fn defaults() -> Value {
        json!({"session_duration": "seconds=0", "remember_me_offset": "seconds=0"})
    }
    fn check(fields: &Map<String, Value>, errors: &mut Errors) {
        // Zero (Authentik's default, `seconds=0`) means "until the browser closes" and "no
        // extra time"; the duration parser refuses it, so it is recognised here.
        let zero = |text: &str| {
            text.split(';').filter(|p| !p.trim().is_empty()).all(|p| {
                p.split_once('=')
                    .is_some_and(|(_, amount)| amount.trim().parse::<f64>() == Ok(0.0))
            })
        };
        for key in ["session_duration", "remember_me_offset"] {
            if let Some(text) = fields[key].as_str().filter(|t| !zero(t)) {
                errors.duration(key, text);
            }
        }
    }
}

/// `stages/user_logout/`.
pub(crate) struct UserLogout;

impl StageSpec for UserLogout {
    const KIND: StageKind = StageKind::UserLogout;
    const MODEL: &'static str = "userlogoutstage";
    type Wire = UserLogoutStage;
    type Request = UserLogoutStageRequest;
    fn defaults() -> Value {
        json!({})
    }
}

/// `stages/user_write/`.
pub(crate) struct UserWrite;

impl StageSpec for UserWrite {
    const KIND: StageKind = StageKind::UserWrite;
    const MODEL: &'static str = "userwritestage";
    type Wire = UserWriteStage;
    type Request = UserWriteStageRequest;
    fn defaults() -> Value {
        json!({
            "user_creation_mode": "always_create",
            "create_users_as_inactive": false,
            "user_type": "internal",
        })
    }
}

async fn render_binding(conn: &mut Conn, b: &StageBinding) -> ApiResult<FlowStageBinding> {
    let stage = sql::get::<flows::Stage>(conn, b.stage).await?;
    Ok(FlowStageBinding {
        pk: b.uuid,
        policybindingmodel_ptr_id: b.uuid,
        target: b.flow,
        stage: b.stage,
        stage_obj: common(conn, &stage).await?,
        evaluate_on_plan: false,
        re_evaluate_policies: true,
        order: b.order,
        policy_engine_mode: b.policy_engine_mode,
        invalid_response_action: InvalidResponseAction::Retry,
    })
}

impl Resource for StageBinding {
    const MODEL: &'static str = "flowstagebinding";
    const RULES: ListRules = BINDING_RULES;
    type Key = Uuid;
    type Wire = FlowStageBinding;
    type Request = FlowStageBindingRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        Ok(sql::get(conn, *key).await?)
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        Ok(sql::list(conn, spec).await?)
    }

    async fn render(
        &self,
        conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<FlowStageBinding> {
        render_binding(conn, self).await
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: FlowStageBindingRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let mut errors = Errors::default();
        if full {
            errors.require("target", req.target);
            errors.require("stage", req.stage);
            errors.require("order", req.order);
        }
        if req.evaluate_on_plan == Some(true) {
            errors.add(
                "evaluate_on_plan",
                "Gatehouse evaluates a stage's policies when the stage is reached; set evaluate_on_plan to false.",
            );
        }
        if req.re_evaluate_policies == Some(false) {
            errors.add(
                "re_evaluate_policies",
                "Gatehouse evaluates a stage's policies when the stage is reached; set re_evaluate_policies to true.",
            );
        }
        errors.int32("order", req.order);
        if let Some(flow) = req.target {
            if sql::find::<flows::Flow>(conn, "uuid", flow.into())
                .await?
                .is_none()
            {
                errors.add(
                    "target",
                    format!("Invalid pk \"{flow}\" - object does not exist."),
                );
            }
        }
        if let Some(stage) = req.stage {
            if sql::find::<flows::Stage>(conn, "uuid", stage.into())
                .await?
                .is_none()
            {
                errors.add(
                    "stage",
                    format!("Invalid pk \"{stage}\" - object does not exist."),
                );
            }
        }
        errors.finish()?;
        let exists = current.is_some();
        let base = current.unwrap_or(StageBinding {
            uuid: Uuid::new_v4(),
            flow: Uuid::nil(),
            stage: Uuid::nil(),
            order: 0,
            policy_engine_mode: PolicyEngineMode::Any,
        });
        let binding = StageBinding {
            uuid: base.uuid,
            flow: or(&req.target, &base.flow),
            stage: or(&req.stage, &base.stage),
            order: or(&req.order, &base.order),
            policy_engine_mode: or(&req.policy_engine_mode, &base.policy_engine_mode),
        };
        Ok(flows::put_stage_binding(conn, &binding, exists).await?)
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(flows::unbind_stage(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (
            self.uuid.to_string(),
            format!("stage {} in flow {}", self.stage, self.flow),
        )
    }
}
