//! Stages (`stages/all/`, one resource per stage kind) and their places in flows
//! (`flows/bindings/`).
//!
//! Each kind's response is the common [`Stage`] fields plus the settings of that kind which
//! Gatehouse acts on; a request naming a setting Gatehouse does not act on is refused rather
//! than stored and ignored.

use gatehouse_core::kinds::{
    DeniedAction, FlowDesignation, FlowLayout, PolicyEngineMode, UserType,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A flow a stage is bound into, as listed in a stage's `flow_set`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowSet {
    /// UUID.
    pub pk: Uuid,
    /// Policy-binding target id (same as `pk`).
    pub policybindingmodel_ptr_id: Uuid,
    /// Name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Title shown to users.
    pub title: String,
    /// Purpose.
    pub designation: FlowDesignation,
    /// Background image URL.
    pub background_url: String,
    /// How flow policies combine.
    pub policy_engine_mode: PolicyEngineMode,
    /// Password-manager compatibility.
    pub compatibility_mode: bool,
    /// Where to export it (empty).
    pub export_url: String,
    /// Layout.
    pub layout: FlowLayout,
    /// On denial.
    pub denied_action: DeniedAction,
}

/// The fields every stage has (`stages/all/`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stage {
    /// UUID.
    pub pk: Uuid,
    /// Unique name.
    pub name: String,
    /// UI component, e.g. `ak-stage-deny-form`.
    pub component: String,
    /// Kind, singular.
    pub verbose_name: String,
    /// Kind, plural.
    pub verbose_name_plural: String,
    /// Model name, e.g. `gatehouse.denystage`.
    pub meta_model_name: String,
    /// The flows it is bound into.
    pub flow_set: Vec<FlowSet>,
}

/// What the flow executor does with an invalid answer to a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvalidResponseAction {
    /// Show the stage again with the error (the only behaviour Gatehouse has).
    Retry,
}

/// A stage placed in a flow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowStageBinding {
    /// UUID; also the `target` of policy bindings evaluated at this stage.
    pub pk: Uuid,
    /// Policy-binding target id (same as `pk`).
    pub policybindingmodel_ptr_id: Uuid,
    /// The flow (its UUID).
    pub target: Uuid,
    /// The stage.
    pub stage: Uuid,
    /// The stage, expanded.
    pub stage_obj: Stage,
    /// Always false: policies are evaluated when the stage is reached.
    pub evaluate_on_plan: bool,
    /// Always true: policies are evaluated when the stage is reached.
    pub re_evaluate_policies: bool,
    /// Position in the flow (ascending).
    pub order: i64,
    /// How the bound policies combine.
    pub policy_engine_mode: PolicyEngineMode,
    /// What happens on an invalid answer.
    pub invalid_response_action: InvalidResponseAction,
}

/// Create/replace/patch body of a stage binding.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowStageBindingRequest {
    /// The flow's UUID (required on create).
    pub target: Option<Uuid>,
    /// The stage's UUID (required on create).
    pub stage: Option<Uuid>,
    /// Only false is accepted: Gatehouse evaluates stage policies when the stage is reached.
    pub evaluate_on_plan: Option<bool>,
    /// Only true is accepted, for the same reason.
    pub re_evaluate_policies: Option<bool>,
    /// Position in the flow (required on create).
    pub order: Option<i64>,
    /// How the bound policies combine (default `any`).
    pub policy_engine_mode: Option<PolicyEngineMode>,
    /// What happens on an invalid answer.
    pub invalid_response_action: Option<InvalidResponseAction>,
}

/// A deny stage: ends the flow with a message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DenyStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// Shown to the person denied (empty: a generic message).
    pub deny_message: String,
}

/// Create/replace/patch body of a deny stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Shown to the person denied.
    pub deny_message: Option<String>,
}

/// A user-login stage: starts the session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserLoginStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// Session length, e.g. `hours=12` (`seconds=0`: until the browser closes).
    pub session_duration: String,
    /// Added to the session length when "remember me" is ticked.
    pub remember_me_offset: String,
}

/// Create/replace/patch body of a user-login stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLoginStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Session length, e.g. `hours=12`.
    pub session_duration: Option<String>,
    /// Added when "remember me" is ticked.
    pub remember_me_offset: Option<String>,
}

/// A user-logout stage: ends the session. It has no settings of its own.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserLogoutStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
}

/// Create/replace/patch body of a user-logout stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLogoutStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
}

/// Whether a user-write stage creates accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserCreationMode {
    /// Only updates the signed-in or identified user; denies otherwise.
    NeverCreate,
    /// Creates an account when nobody is identified.
    CreateWhenRequired,
    /// Always creates an account.
    AlwaysCreate,
}

/// A user-write stage: creates or updates the user from what the flow collected.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserWriteStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// Whether it creates accounts.
    pub user_creation_mode: UserCreationMode,
    /// New accounts start deactivated (an administrator activates them).
    pub create_users_as_inactive: bool,
    /// The type of new accounts.
    pub user_type: UserType,
}

/// Create/replace/patch body of a user-write stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserWriteStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Whether it creates accounts.
    pub user_creation_mode: Option<UserCreationMode>,
    /// New accounts start deactivated.
    pub create_users_as_inactive: Option<bool>,
    /// The type of new accounts.
    pub user_type: Option<UserType>,
}

/// What an identification stage matches the typed identifier against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserField {
    /// The username.
    Username,
    /// The email address.
    Email,
}

/// An identification stage: asks who is signing in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentificationStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// Whether an identifier is asked for: any non-empty list asks for one and matches it
    /// against both username and email; empty shows only login-source and passkey buttons.
    pub user_fields: Vec<UserField>,
}

/// Create/replace/patch body of an identification stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentificationStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// What the identifier may be.
    pub user_fields: Option<Vec<UserField>>,
}

/// Where a password stage checks the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum PasswordBackend {
    /// The user's own password (the only backend Gatehouse has).
    #[serde(rename = "authentik.core.auth.InbuiltBackend")]
    Inbuilt,
}

/// A password stage: checks the identified user's password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasswordStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// Where the password is checked.
    pub backends: Vec<PasswordBackend>,
}

/// Create/replace/patch body of a password stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Where the password is checked (required on create).
    pub backends: Option<Vec<PasswordBackend>>,
}

/// An invitation stage: admits holders of a valid invitation link.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// Let people without an invitation continue (the stage is then skipped).
    pub continue_flow_without_invitation: bool,
}

/// Create/replace/patch body of an invitation stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Let people without an invitation continue.
    pub continue_flow_without_invitation: Option<bool>,
}

/// How a consent stage remembers consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// Consent to a set of scopes is kept until the client asks again (`prompt=consent`) or
    /// asks for more scopes.
    Permanent,
}

/// A consent stage: the signed-in user allows an application the scopes it asks for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsentStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// How consent is remembered.
    pub mode: ConsentMode,
}

/// Create/replace/patch body of a consent stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Only `permanent`.
    pub mode: Option<ConsentMode>,
}

/// What an authenticator-validation stage does for someone without a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotConfiguredAction {
    /// Let them pass (a second factor is optional until they add one).
    Skip,
}

/// The kinds of devices an authenticator-validation stage accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// Single-use recovery codes.
    Static,
    /// Authenticator apps.
    Totp,
}

/// An authenticator-validation stage: a code from the user's authenticator app or a recovery
/// code (a passkey login counts as both factors where the server is set so).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthenticatorValidateStage {
    /// The fields every stage has.
    #[serde(flatten)]
    pub stage: Stage,
    /// For someone without a device.
    pub not_configured_action: NotConfiguredAction,
    /// Accepted devices.
    pub device_classes: Vec<DeviceClass>,
    /// Always empty: no WebAuthn device-type restrictions.
    pub webauthn_allowed_device_types_obj: Vec<serde_json::Value>,
}

/// Create/replace/patch body of an authenticator-validation stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticatorValidateStageRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Only `skip`.
    pub not_configured_action: Option<NotConfiguredAction>,
    /// Only `["static", "totp"]`.
    pub device_classes: Option<Vec<DeviceClass>>,
}
