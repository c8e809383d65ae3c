//! `policies/bindings/`: bind a policy, group or user to a flow, application or stage binding.

use gatehouse_proto::flows::{PolicyBinding, PolicyBindingRequest};
use gatehouse_store::policies::{self, Binding, BindingFields, Subject};
use gatehouse_store::{groups, sql, users, Conn, ListSpec, Listed};
use uuid::Uuid;

use super::resource::{Operations, Resource};
use super::validate::{or, Errors};
use super::Api;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{FilterKind, ListRules};
use crate::Settings;
use gatehouse_store::SecretKey;

const RULES: ListRules = ListRules {
    filters: &[
        ("enabled", "enabled", FilterKind::Bool),
        ("policy", "policy_uuid", FilterKind::Text),
        ("order", "position", FilterKind::Int),
        ("timeout", "timeout", FilterKind::Int),
    ],
    search: &[],
    ordering: &[("order", "position"), ("pk", "uuid")],
    default_order: "position",
    relations: &[(
        "target",
        "uuid",
        "SELECT uuid FROM policy_bindings WHERE target_flow = $? OR target_application = $? OR target_stage_binding = $?",
    )],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<Binding>(
        "/policies/bindings/",
        "/policies/bindings/{uuid}/",
        "policy binding",
        Operations::Crud,
    )
}

async fn render(conn: &mut Conn, b: &Binding) -> ApiResult<PolicyBinding> {
    let f = &b.fields;
    let (mut policy, mut group, mut user) = (None, None, None);
    let (mut policy_obj, mut group_obj, mut user_obj) = (None, None, None);
    match f.subject {
        Subject::Policy(uuid) => {
            let p = sql::get::<policies::Policy>(conn, uuid).await?;
            policy = Some(uuid);
            policy_obj = Some(super::policy_kinds::common(conn, &p).await?);
        }
        Subject::Group(id) => {
            let g = sql::get::<groups::Group>(conn, id).await?;
            group = Some(g.uuid);
            group_obj = Some(super::groups::partial(&g));
        }
        Subject::User(id) => {
            let u = users::get(conn, id).await?;
            user = Some(u.id);
            user_obj = Some(super::users::partial(&u));
        }
    }
    Ok(PolicyBinding {
        pk: b.uuid,
        policy,
        group,
        user,
        policy_obj,
        group_obj,
        user_obj,
        target: f.target.uuid(),
        negate: f.negate,
        enabled: f.enabled,
        order: f.order,
        timeout: f.timeout,
        failure_result: f.failure_result,
        expires: None,
        expiring: false,
    })
}

/// Resolves the subject of a request: exactly one of policy, group and user.
async fn subject(
    conn: &mut Conn,
    req: &PolicyBindingRequest,
    current: Option<Subject>,
) -> ApiResult<Subject> {
    let given = [
        req.policy.is_some(),
        req.group.is_some(),
        req.user.is_some(),
    ];
    let chosen = (
        req.policy.flatten(),
        req.group.flatten(),
        req.user.flatten(),
    );
    let chosen_count = [chosen.0.is_some(), chosen.1.is_some(), chosen.2.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    let missing = || {
        ApiError::field(
            "non_field_errors",
            "Bind exactly one of policy, group or user.",
        )
    };
    if !given.contains(&true) {
        return current.ok_or_else(missing);
    }
    if chosen_count != 1 {
        return Err(missing());
    }
    let not_found = |field: &str, key: String| {
        ApiError::field(
            field,
            format!("Invalid pk \"{key}\" - object does not exist."),
        )
    };
    match chosen {
        (Some(uuid), _, _) => match sql::get::<policies::Policy>(conn, uuid).await {
            Ok(_) => Ok(Subject::Policy(uuid)),
            Err(gatehouse_store::Error::NotFound { .. }) => {
                Err(not_found("policy", uuid.to_string()))
            }
            Err(e) => Err(e.into()),
        },
        (_, Some(uuid), _) => match groups::get_by_uuid(conn, uuid).await {
            Ok(g) => Ok(Subject::Group(g.id)),
            Err(gatehouse_store::Error::NotFound { .. }) => {
                Err(not_found("group", uuid.to_string()))
            }
            Err(e) => Err(e.into()),
        },
        (_, _, Some(id)) => match users::get(conn, id).await {
            Ok(u) => Ok(Subject::User(u.id)),
            Err(gatehouse_store::Error::NotFound { .. }) => Err(not_found("user", id.to_string())),
            Err(e) => Err(e.into()),
        },
        _ => Err(missing()),
    }
}

impl Resource for Binding {
    const MODEL: &'static str = "policybinding";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = PolicyBinding;
    type Request = PolicyBindingRequest;

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
    ) -> ApiResult<PolicyBinding> {
        render(conn, self).await
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: PolicyBindingRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let mut errors = Errors::default();
        if full {
            errors.require("target", req.target);
            errors.require("order", req.order);
        }
        if let Some(timeout) = req.timeout {
            if !(0..=i64::from(i32::MAX)).contains(&timeout) {
                errors.add("timeout", "Ensure this value is between 0 and 2147483647.");
            }
        }
        errors.int32("order", req.order);
        errors.finish()?;
        let target = match (req.target, &current) {
            (Some(uuid), _) => policies::resolve_target(conn, uuid).await?,
            (None, Some(c)) => c.fields.target,
            (None, None) => return Err(ApiError::required("target")),
        };
        let base = current.as_ref().map(|c| c.fields.clone());
        let subject = subject(conn, &req, base.as_ref().map(|b| b.subject)).await?;
        let defaults = BindingFields {
            target,
            subject,
            negate: false,
            enabled: true,
            order: 0,
            timeout: 30,
            failure_result: false,
        };
        let base = base.unwrap_or(defaults);
        let fields = BindingFields {
            target,
            subject,
            negate: or(&req.negate, &base.negate),
            enabled: or(&req.enabled, &base.enabled),
            order: or(&req.order, &base.order),
            timeout: or(&req.timeout, &base.timeout),
            failure_result: or(&req.failure_result, &base.failure_result),
        };
        Ok(match current {
            Some(c) => policies::update_binding(conn, c.uuid, &fields).await?,
            None => policies::bind(conn, &fields).await?,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(policies::unbind(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (
            self.uuid.to_string(),
            format!("binding to {}", self.fields.target.uuid()),
        )
    }
}
