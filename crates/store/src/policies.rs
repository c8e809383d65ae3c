//! Policies and their bindings to flows, applications and stage bindings.

use gatehouse_core::kinds::PolicyKind;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sql::{self, Entity, RowExt, Value};
use crate::{Error, Result};

/// The fields of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFields {
    /// Unique name.
    pub name: String,
    /// What the policy checks.
    pub kind: PolicyKind,
    /// Log every evaluation.
    pub execution_logging: bool,
    /// Kind-specific settings (JSON object), e.g. `{"expression": "..."}`.
    pub settings: serde_json::Value,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: PolicyFields,
}

impl Entity for Policy {
    const WHAT: &'static str = "policy";
    const SELECT: &'static str = "SELECT * FROM policies";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        Ok(Policy {
            uuid: row.uuid("uuid")?,
            fields: PolicyFields {
                name: row.text("name")?,
                kind: row.parsed("kind")?,
                execution_logging: row.flag("execution_logging")?,
                settings: row.json("settings")?,
            },
        })
    }
}

fn policy_columns(f: &PolicyFields) -> Vec<(&'static str, Value)> {
    vec![
        ("name", f.name.clone().into()),
        ("kind", f.kind.as_str().into()),
        ("execution_logging", f.execution_logging.into()),
        ("settings", (&f.settings).into()),
    ]
}

/// Creates a policy.
pub async fn create(conn: &mut AnyConnection, fields: &PolicyFields) -> Result<Policy> {
    let uuid = Uuid::new_v4();
    let mut cols = policy_columns(fields);
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "policies", cols, None).await?;
    sql::get(conn, uuid).await
}

/// Replaces the fields of policy `uuid`.
pub async fn update(conn: &mut AnyConnection, uuid: Uuid, fields: &PolicyFields) -> Result<Policy> {
    crate::changes::append(conn, crate::changes::ChangeKind::All).await?;
    sql::update(
        conn,
        "policies",
        Policy::WHAT,
        "uuid",
        uuid.into(),
        policy_columns(fields),
    )
    .await?;
    sql::get(conn, uuid).await
}

/// Deletes policy `uuid` with its bindings; cached verdicts are dropped everywhere.
pub async fn delete(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::All).await?;
    sql::delete(conn, "policies", Policy::WHAT, "uuid", uuid.into()).await
}

/// How many bindings evaluate policy `uuid` (the API's `bound_to`).
pub async fn bound_to(conn: &mut AnyConnection, uuid: Uuid) -> Result<i64> {
    let rows = sql::fetch_all(
        conn,
        "SELECT uuid FROM policy_bindings WHERE policy_uuid = $1",
        vec![uuid.into()],
    )
    .await?;
    Ok(rows.len() as i64)
}

/// The policy named `name`, if any.
pub async fn find_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<Policy>> {
    sql::find(conn, "name", name.into()).await
}

/// What a binding is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A flow (evaluated when the flow is planned).
    Flow(Uuid),
    /// An application (who may use it).
    Application(Uuid),
    /// A stage binding (evaluated when the stage is reached).
    StageBinding(Uuid),
}

impl Target {
    /// The target's UUID (the API's `target`).
    pub fn uuid(self) -> Uuid {
        match self {
            Target::Flow(u) | Target::Application(u) | Target::StageBinding(u) => u,
        }
    }

    fn columns(self) -> [(&'static str, Value); 3] {
        let pick = |t: Option<Uuid>| Value::from(t);
        [
            (
                "target_flow",
                pick(matches!(self, Target::Flow(_)).then(|| self.uuid())),
            ),
            (
                "target_application",
                pick(matches!(self, Target::Application(_)).then(|| self.uuid())),
            ),
            (
                "target_stage_binding",
                pick(matches!(self, Target::StageBinding(_)).then(|| self.uuid())),
            ),
        ]
    }
}

/// What a binding evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A policy.
    Policy(Uuid),
    /// Membership of a group (by integer id).
    Group(i64),
    /// Being a given user (by id).
    User(i64),
}

/// The fields of a policy binding.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingFields {
    /// What it is attached to.
    pub target: Target,
    /// What it evaluates.
    pub subject: Subject,
    /// Invert the result.
    pub negate: bool,
    /// Disabled bindings are skipped.
    pub enabled: bool,
    /// Evaluation order (ascending).
    pub order: i64,
    /// Seconds before evaluation is abandoned.
    pub timeout: i64,
    /// Result when evaluation fails.
    pub failure_result: bool,
}

/// A stored policy binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Primary key.
    pub uuid: Uuid,
    /// Fields.
    pub fields: BindingFields,
}

impl Entity for Binding {
    const WHAT: &'static str = "policy binding";
    const SELECT: &'static str = "SELECT * FROM policy_bindings";
    const KEY: &'static str = "uuid";

    fn from_row(row: &AnyRow) -> Result<Self> {
        let target = match (
            row.opt_uuid("target_flow")?,
            row.opt_uuid("target_application")?,
            row.opt_uuid("target_stage_binding")?,
        ) {
            (Some(u), _, _) => Target::Flow(u),
            (_, Some(u), _) => Target::Application(u),
            (_, _, Some(u)) => Target::StageBinding(u),
            _ => return Err(Error::Corrupt("policy binding without target".into())),
        };
        let subject = match (
            row.opt_uuid("policy_uuid")?,
            row.opt_int("group_id")?,
            row.opt_int("user_id")?,
        ) {
            (Some(p), _, _) => Subject::Policy(p),
            (_, Some(g), _) => Subject::Group(g),
            (_, _, Some(u)) => Subject::User(u),
            _ => return Err(Error::Corrupt("policy binding without subject".into())),
        };
        Ok(Binding {
            uuid: row.uuid("uuid")?,
            fields: BindingFields {
                target,
                subject,
                negate: row.flag("negate")?,
                enabled: row.flag("enabled")?,
                order: row.int("position")?,
                timeout: row.int("timeout")?,
                failure_result: row.flag("failure_result")?,
            },
        })
    }
}

fn binding_columns(f: &BindingFields) -> Vec<(&'static str, Value)> {
    let mut cols: Vec<(&'static str, Value)> = f.target.columns().into();
    let (policy, group, user) = match f.subject {
        Subject::Policy(p) => (Some(p), None, None),
        Subject::Group(g) => (None, Some(g), None),
        Subject::User(u) => (None, None, Some(u)),
    };
    cols.extend([
        ("policy_uuid", policy.into()),
        ("group_id", group.into()),
        ("user_id", user.into()),
        ("negate", f.negate.into()),
        ("enabled", f.enabled.into()),
        ("position", f.order.into()),
        ("timeout", f.timeout.into()),
        ("failure_result", f.failure_result.into()),
    ]);
    cols
}

/// Creates a binding.
pub async fn bind(conn: &mut AnyConnection, fields: &BindingFields) -> Result<Binding> {
    let uuid = Uuid::new_v4();
    let mut cols = binding_columns(fields);
    cols.push(("uuid", uuid.into()));
    sql::insert(conn, "policy_bindings", cols, None).await?;
    crate::changes::append_binding(conn, uuid).await?;
    sql::get(conn, uuid).await
}

/// Replaces binding `uuid`.
pub async fn update_binding(
    conn: &mut AnyConnection,
    uuid: Uuid,
    fields: &BindingFields,
) -> Result<Binding> {
    crate::changes::append_binding(conn, uuid).await?;
    sql::update(
        conn,
        "policy_bindings",
        Binding::WHAT,
        "uuid",
        uuid.into(),
        binding_columns(fields),
    )
    .await?;
    crate::changes::append_binding(conn, uuid).await?;
    sql::get(conn, uuid).await
}

/// Deletes binding `uuid`.
pub async fn unbind(conn: &mut AnyConnection, uuid: Uuid) -> Result<()> {
    crate::changes::append_binding(conn, uuid).await?;
    sql::delete(conn, "policy_bindings", Binding::WHAT, "uuid", uuid.into()).await
}

/// The bindings attached to `target`, in order.
pub async fn bindings_of(conn: &mut AnyConnection, target: Uuid) -> Result<Vec<Binding>> {
    sql::select(
        conn,
        "WHERE target_flow = $1 OR target_application = $1 OR target_stage_binding = $1",
        vec![target.into()],
        "position, uuid",
    )
    .await
}

/// Resolves a bare target UUID (as the API sends it) to the kind of object it names.
pub async fn resolve_target(conn: &mut AnyConnection, uuid: Uuid) -> Result<Target> {
    for (table, make) in [
        ("flows", Target::Flow as fn(Uuid) -> Target),
        ("applications", Target::Application),
        ("flow_stage_bindings", Target::StageBinding),
    ] {
        let sql = format!("SELECT uuid FROM {table} WHERE uuid = $1");
        if sql::fetch_optional(conn, &sql, vec![uuid.into()])
            .await?
            .is_some()
        {
            return Ok(make(uuid));
        }
    }
    Err(Error::Invalid {
        field: "target".into(),
        message: format!("{uuid} is not a flow, application or stage binding."),
    })
}
