//! Flows, stages, and the ordered bindings of stages to flows.

use gatehouse_core::kinds::{
    DeniedAction, FlowAuthentication, FlowDesignation, FlowLayout, PolicyEngineMode, StageKind,
};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt, Value};
use crate::{Error, Result};

/// The fields of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowFields {
    /// Unique slug, used in `/if/flow/<slug>/`.
    pub slug: String,
    /// Name for administrators.
    pub name: String,
    /// Title shown to users.
    pub title: String,
    /// What the flow is for.
    pub designation: FlowDesignation,
    /// Who may start it.
    pub authentication: FlowAuthentication,
    /// How flow-level policy results combine.
    pub policy_engine_mode: PolicyEngineMode,
    /// Page layout.
    pub layout: FlowLayout,
    /// What to do when denied.
    pub denied_action: DeniedAction,
    /// Password-manager compatibility tweaks.
    pub compatibility_mode: bool,
    /// Background image URL.
    pub background: String,
}

/// A stored flow. Its UUID is also its policy-binding target (`pbm_uuid`).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: FlowFields,
}

impl Entity for Flow {
    const WHAT: &'static str = "flow";
    const SELECT: &'static str = "SELECT * FROM flows";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Flow {
            uuid: row.uuid("uuid")?,
            fields: FlowFields {
                slug: row.text("slug")?,
                name: row.text("name")?,
                title: row.text("title")?,
                designation: row.parsed("designation")?,
                authentication: row.parsed("authentication")?,
                policy_engine_mode: row.parsed("policy_engine_mode")?,
                layout: row.parsed("layout")?,
                denied_action: row.parsed("denied_action")?,
                compatibility_mode: row.flag("compatibility_mode")?,
                background: row.text("background")?,
            },
        })
    }
}

fn flow_columns(f: &FlowFields) -> Vec<(&'static str, Value)> {
    vec![
        ("slug", f.slug.clone().into()),
        ("name", f.name.clone().into()),
        ("title", f.title.clone().into()),
        ("designation", f.designation.as_str().into()),
        ("authentication", f.authentication.as_str().into()),
        ("policy_engine_mode", f.policy_engine_mode.as_str().into()),
        ("layout", f.layout.as_str().into()),
        ("denied_action", f.denied_action.as_str().into()),
        ("compatibility_mode", f.compatibility_mode.into()),
        ("background", f.background.clone().into()),
    ]
}

/// Creates a flow.
pub async fn create(conn: &mut AnyConnection, fields: &FlowFields) -> Result<Flow> {
    let uuid = Uuid::new_v4();
    let mut cols = flow_columns(fields);
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "flows", cols, None).await?;
    sql::get(conn, uuid).await
}

/// Replaces the fields of flow `uuid`.
pub async fn update(conn: &mut AnyConnection, uuid: Uuid, fields: &FlowFields) -> Result<Flow> {
    sql::update(
        conn,
        "flows",
        Flow::WHAT,
        "uuid",
        uuid.into(),
        flow_columns(fields),
    )
    .await?;
    sql::get(conn, uuid).await
}

/// Deletes flow `uuid` with its stage and policy bindings.
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(conn, "flows", Flow::WHAT, "uuid", uuid.into()).await
}

/// The flow with slug `slug`, if any.
pub async fn find_by_slug(conn: &mut AnyConnection, slug: &str) -> Result<Option<Flow>> {
    sql::find(conn, "slug", slug.into()).await
}

/// The settings of a stage: free per kind, validated by the flow engine before writing.
#[derive(Debug, Clone, PartialEq)]
pub struct StageFields {
    /// Unique name.
    pub name: String,
    /// What the stage does.
    pub kind: StageKind,
    /// Kind-specific settings (JSON object).
    pub settings: serde_json::Value,
}

/// A stored stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: StageFields,
}

impl Entity for Stage {
    const WHAT: &'static str = "stage";
    const SELECT: &'static str = "SELECT * FROM stages";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Stage {
            uuid: row.uuid("uuid")?,
            fields: StageFields {
                name: row.text("name")?,
                kind: row.parsed("kind")?,
                settings: row.json("settings")?,
            },
        })
    }
}

fn stage_columns(f: &StageFields) -> Vec<(&'static str, Value)> {
    vec![
        ("name", f.name.clone().into()),
        ("kind", f.kind.as_str().into()),
        ("settings", (&f.settings).into()),
    ]
}

/// Creates a stage.
pub async fn create_stage(conn: &mut AnyConnection, fields: &StageFields) -> Result<Stage> {
    let uuid = Uuid::new_v4();
    let mut cols = stage_columns(fields);
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "stages", cols, None).await?;
    sql::get(conn, uuid).await
}

/// Replaces the fields of stage `uuid`.
pub async fn update_stage(
    conn: &mut AnyConnection,
    uuid: Uuid,
    fields: &StageFields,
) -> Result<Stage> {
    sql::update(
        conn,
        "stages",
        Stage::WHAT,
        "uuid",
        uuid.into(),
        stage_columns(fields),
    )
    .await?;
    sql::get(conn, uuid).await
}

/// Deletes stage `uuid`; it leaves every flow it was bound into, with those bindings' policies.
pub async fn delete_stage(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    sql::delete(conn, "stages", Stage::WHAT, "uuid", uuid.into()).await
}

/// The stage named `name`, if any.
pub async fn find_stage_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Stage>> {
    sql::find(conn, "name", name.into()).await
}

/// A stage placed in a flow at a position.
#[derive(Debug, Clone, PartialEq)]
pub struct StageBinding {
    /// Primary key; also a policy-binding target.
    pub uuid: Uuid,
    /// The flow.
    pub flow: Uuid,
    /// The stage.
    pub stage: Uuid,
    /// Position in the flow (ascending).
    pub order: i64,
    /// How the policies bound to this binding combine when the stage is reached.
    pub policy_engine_mode: PolicyEngineMode,
}

impl Entity for StageBinding {
    const WHAT: &'static str = "stage binding";
    const SELECT: &'static str = "SELECT * FROM flow_stage_bindings";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(StageBinding {
            uuid: row.uuid("uuid")?,
            flow: row.uuid("flow_uuid")?,
            stage: row.uuid("stage_uuid")?,
            order: row.int("position")?,
            policy_engine_mode: row.parsed("policy_engine_mode")?,
        })
    }
}

/// The stage bindings of flow `flow`, in order.
pub async fn stage_bindings(conn: &mut AnyConnection, flow: Uuid) -> Result<Vec<StageBinding>> {
    sql::select(
        conn,
        "WHERE flow_uuid = $1",
        vec![flow.into()],
        "position, uuid",
    )
    .await
}

/// Binds `stage` into `flow` at `order`; its policies must all pass (the declarative form's
/// meaning of a stage's `bindings`).
pub async fn bind_stage(
    conn: &mut AnyConnection,
    flow: Uuid,
    stage: Uuid,
    order: i64,
) -> Result<StageBinding> {
    let binding = StageBinding {
        uuid: Uuid::new_v4(),
        flow,
        stage,
        order,
        policy_engine_mode: PolicyEngineMode::All,
    };
    put_stage_binding(conn, &binding, false).await
}

/// Writes `binding`: a new row, or (`exists`) the row with its UUID, which keeps its policies.
pub async fn put_stage_binding(
    conn: &mut AnyConnection,
    binding: &StageBinding,
    exists: bool,
) -> Result<StageBinding> {
    let cols = vec![
        ("flow_uuid", binding.flow.into()),
        ("stage_uuid", binding.stage.into()),
        ("position", binding.order.into()),
        (
            "policy_engine_mode",
            binding.policy_engine_mode.as_str().into(),
        ),
    ];
    if exists {
        sql::update(
            conn,
            "flow_stage_bindings",
            StageBinding::WHAT,
            "uuid",
            binding.uuid.into(),
            cols,
        )
        .await?;
    } else {
        let mut cols = cols;
        cols.push(("uuid", binding.uuid.into()));
        sql::insert(conn, "flow_stage_bindings", cols, None).await?;
    }
    sql::get(conn, binding.uuid).await
}

/// Removes a stage binding (its policy bindings go with it).
pub async fn unbind_stage(conn: &mut AnyConnection, binding: Uuid) -> Result<()> {
    sql::delete(
        conn,
        "flow_stage_bindings",
        StageBinding::WHAT,
        "uuid",
        binding.into(),
    )
    .await
}

/// The UUIDs of stages bound to `flow`, in order (the API's `stages` field).
pub async fn stage_ids(conn: &mut AnyConnection, flow: Uuid) -> Result<Vec<Uuid>> {
    Ok(stage_bindings(conn, flow)
        .await?
        .into_iter()
        .map(|b| b.stage)
        .collect())
}

/// Looks a flow up by slug, or fails naming the slug.
pub async fn require_slug(conn: &mut AnyConnection, slug: &str) -> Result<Flow> {
    find_by_slug(conn, slug)
        .await?
        .ok_or_else(|| Error::Invalid {
            field: "flow".into(),
            message: format!("no flow with slug `{slug}`."),
        })
}

/// Enrollment flows that contain an invitation stage: where invitation links can point.
pub async fn invitation_flows(conn: &mut AnyConnection) -> Result<Vec<Flow>> {
    sql::select(
        conn,
        "WHERE designation = $1 AND uuid IN (SELECT b.flow_uuid FROM flow_stage_bindings b \
         JOIN stages s ON s.uuid = b.stage_uuid WHERE s.kind = $2)",
        vec!["enrollment".into(), StageKind::Invitation.as_str().into()],
        "slug",
    )
    .await
}
