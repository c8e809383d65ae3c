//! Flows, policy bindings and invitations.

use chrono::{DateTime, Utc};
use gatehouse_core::kinds::{
    DeniedAction, FlowAuthentication, FlowDesignation, FlowLayout, PolicyEngineMode,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::core::{PartialGroup, PartialUser};

/// A flow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Flow {
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
    /// Background image.
    pub background: String,
    /// Background image URL.
    pub background_url: String,
    /// Always null.
    pub background_themed_urls: Option<Value>,
    /// Stages, in order.
    pub stages: Vec<Uuid>,
    /// Bound policies.
    pub policies: Vec<Uuid>,
    /// Always 0.
    pub cache_count: i64,
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
    /// Who may start it.
    pub authentication: FlowAuthentication,
}

/// Create/replace/patch body of a flow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRequest {
    /// Name (required on create).
    pub name: Option<String>,
    /// Slug (required on create).
    pub slug: Option<String>,
    /// Title (required on create).
    pub title: Option<String>,
    /// Purpose (required on create).
    pub designation: Option<FlowDesignation>,
    /// Background image.
    pub background: Option<String>,
    /// How flow policies combine.
    pub policy_engine_mode: Option<PolicyEngineMode>,
    /// Password-manager compatibility.
    pub compatibility_mode: Option<bool>,
    /// Layout.
    pub layout: Option<FlowLayout>,
    /// On denial.
    pub denied_action: Option<DeniedAction>,
    /// Who may start it.
    pub authentication: Option<FlowAuthentication>,
}

/// A policy as embedded in a binding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    /// UUID.
    pub pk: Uuid,
    /// Name.
    pub name: String,
    /// Log evaluations.
    pub execution_logging: bool,
    /// UI component.
    pub component: String,
    /// Kind, singular.
    pub verbose_name: String,
    /// Kind, plural.
    pub verbose_name_plural: String,
    /// Model name.
    pub meta_model_name: String,
    /// Number of bindings.
    pub bound_to: i64,
}

/// A policy binding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyBinding {
    /// UUID.
    pub pk: Uuid,
    /// Bound policy.
    pub policy: Option<Uuid>,
    /// Bound group.
    pub group: Option<Uuid>,
    /// Bound user.
    pub user: Option<i64>,
    /// Policy, expanded.
    pub policy_obj: Option<Policy>,
    /// Group, expanded.
    pub group_obj: Option<PartialGroup>,
    /// User, expanded.
    pub user_obj: Option<PartialUser>,
    /// Flow, application or stage binding it is attached to.
    pub target: Uuid,
    /// Invert the result.
    pub negate: bool,
    /// Enabled.
    pub enabled: bool,
    /// Order.
    pub order: i64,
    /// Timeout in seconds.
    pub timeout: i64,
    /// Result on failure.
    pub failure_result: bool,
    /// Always null.
    pub expires: Option<DateTime<Utc>>,
    /// Always false.
    pub expiring: bool,
}

/// Create/replace/patch body of a policy binding.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBindingRequest {
    /// Policy to bind (exactly one of policy, group, user).
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy: Option<Option<Uuid>>,
    /// Group to bind.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub group: Option<Option<Uuid>>,
    /// User to bind.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub user: Option<Option<i64>>,
    /// Target (required on create).
    pub target: Option<Uuid>,
    /// Invert the result.
    pub negate: Option<bool>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Order (required on create).
    pub order: Option<i64>,
    /// Timeout in seconds.
    pub timeout: Option<i64>,
    /// Result on failure.
    pub failure_result: Option<bool>,
}

/// An invitation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Invitation {
    /// UUID; the `itoken` of the link.
    pub pk: Uuid,
    /// Name.
    pub name: String,
    /// Expiry.
    pub expires: Option<DateTime<Utc>>,
    /// Data applied at enrollment (e.g. `group`).
    pub fixed_data: Value,
    /// Creator.
    pub created_by: PartialUser,
    /// Consumed when enrollment completes.
    pub single_use: bool,
    /// The flow it is for; null: any enrollment flow with an invitation stage accepts it.
    pub flow: Option<Uuid>,
    /// The flow the link opens, expanded: the named one, else the first enrollment flow
    /// with an invitation stage (null while no such flow exists).
    pub flow_obj: Option<Flow>,
    /// The enrollment link (Gatehouse extension); empty while no flow can take it.
    pub link: String,
    /// `pending`, `used`, `expired` or `revoked` (Gatehouse extension).
    pub state: String,
    /// Who enrolled with it, and when (Gatehouse extension).
    pub uses: Vec<InvitationUse>,
}

/// One completed enrollment with an invitation (Gatehouse extension).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationUse {
    /// The user it created; null once that user is deleted.
    pub user: Option<i64>,
    /// Their username at the time.
    pub username: String,
    /// When enrollment completed.
    pub used: DateTime<Utc>,
}

/// Create body of an invitation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    /// Name (required).
    pub name: Option<String>,
    /// Expiry; null never expires.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<Option<DateTime<Utc>>>,
    /// Data applied at enrollment, e.g. `{"group": "Headscale Users"}`.
    pub fixed_data: Option<Map<String, Value>>,
    /// Consumed when enrollment completes (default true).
    pub single_use: Option<bool>,
    /// The enrollment flow; null: any enrollment flow with an invitation stage.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub flow: Option<Option<Uuid>>,
}

/// One binding's verdict in an explanation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExplainedBinding {
    /// What is bound, e.g. `policy brute-force-protection`.
    pub binding: String,
    /// Evaluation order.
    pub order: i64,
    /// `pass`, `fail: <message>` or `not applicable`.
    pub result: String,
    /// Why.
    pub reason: String,
}

/// One stage of a flow with the verdict of its bindings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExplainedStage {
    /// Stage name.
    pub stage: String,
    /// Stage kind.
    pub kind: String,
    /// Position.
    pub order: i64,
    /// `shown`, or `skipped: <message>`.
    pub result: String,
    /// The stage binding's policy bindings.
    pub bindings: Vec<ExplainedBinding>,
}

/// Why a flow would let someone through or deny them (`gatehouse flow explain`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowExplanation {
    /// Flow slug.
    pub flow: String,
    /// Evaluated for this user (empty: an anonymous visitor).
    pub user: String,
    /// From this address.
    pub ip: String,
    /// `pass` or `fail: <message>` for the flow-level bindings.
    pub result: String,
    /// Flow-level bindings.
    pub bindings: Vec<ExplainedBinding>,
    /// Stages in order, as they would be reached.
    pub stages: Vec<ExplainedStage>,
}
