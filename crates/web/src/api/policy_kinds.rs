//! `policies/all/`, `policies/expression/`, `policies/reputation/` and
//! `policies/reputation/scores/`: policies in Authentik's shapes, one resource per kind.
//!
//! A policy is one row whose kind-specific settings are a JSON object; [`PolicySpec`] says,
//! per kind, how those settings appear on the wire and how a request changes them.

use std::marker::PhantomData;

use gatehouse_core::kinds::PolicyKind;
use gatehouse_proto::flows::Policy;
use gatehouse_proto::policies::{
    ExpressionPolicy, ExpressionPolicyRequest, Reputation, ReputationPolicy,
    ReputationPolicyRequest,
};
use gatehouse_store::policies::{self, PolicyFields};
use gatehouse_store::reputation::{self, Score};
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

const SCORE_RULES: ListRules = ListRules {
    filters: &[
        ("identifier", "identifier", FilterKind::Text),
        ("ip", "ip", FilterKind::Text),
        ("score", "score", FilterKind::Int),
    ],
    search: &["identifier", "ip"],
    ordering: &[
        ("identifier", "identifier"),
        ("ip", "ip"),
        ("score", "score"),
        ("updated", "updated"),
    ],
    default_order: "identifier",
    relations: &[],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<policies::Policy>(
        "/policies/all/",
        "/policies/all/{policy_uuid}/",
        "policy of any kind",
        Operations::ReadDelete,
    )
    .resource::<KindPolicy<Expression>>(
        "/policies/expression/",
        "/policies/expression/{policy_uuid}/",
        "expression policy",
        Operations::Crud,
    )
    .resource::<Score>(
        "/policies/reputation/scores/",
        "/policies/reputation/scores/{reputation_uuid}/",
        "reputation score",
        Operations::ReadDelete,
    )
    .resource::<KindPolicy<ReputationKind>>(
        "/policies/reputation/",
        "/policies/reputation/{policy_uuid}/",
        "reputation policy",
        Operations::Crud,
    )
}

/// The fields every policy shows, whatever its kind (also embedded in policy bindings).
pub(crate) async fn common(conn: &mut Conn, p: &policies::Policy) -> ApiResult<Policy> {
    let kind = p.fields.kind.as_str();
    Ok(Policy {
        pk: p.uuid,
        name: p.fields.name.clone(),
        execution_logging: p.fields.execution_logging,
        component: format!("ak-policy-{}-form", kind.replace('_', "-")),
        verbose_name: kind.replace('_', " "),
        verbose_name_plural: format!("{} policies", kind.replace('_', " ")),
        meta_model_name: format!("gatehouse.{}policy", kind.replace('_', "")),
        bound_to: policies::bound_to(conn, p.uuid).await?,
    })
}

impl Resource for policies::Policy {
    const MODEL: &'static str = "policy";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = Policy;
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
    ) -> ApiResult<Policy> {
        common(conn, self).await
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(policies::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.name.clone())
    }
}

/// How one policy kind maps between its stored settings and Authentik's wire fields.
pub(crate) trait PolicySpec: Send + Sync + 'static {
    /// The kind served.
    const KIND: PolicyKind;
    /// Model name in audit events.
    const MODEL: &'static str;
    /// The response.
    type Wire: Serialize + ToSchema + Send + 'static;
    /// The create/replace/patch body.
    type Request: DeserializeOwned + ToSchema + Send + Sync + 'static;
    /// The response for `policy`'s common fields and stored `settings`.
    fn wire(policy: Policy, settings: &Map<String, Value>) -> Self::Wire;
    /// `name` and `execution_logging` of a request.
    fn common(req: &Self::Request) -> (Option<String>, Option<bool>);
    /// The settings after `req` (over `current`, the stored or default settings); records
    /// every problem in `errors`. `full`: a create or replace, where required fields must be set.
    fn settings(
        req: &Self::Request,
        current: Map<String, Value>,
        full: bool,
        errors: &mut Errors,
    ) -> Map<String, Value>;
}

/// A stored policy seen through the resource of its kind `K`.
pub(crate) struct KindPolicy<K>(policies::Policy, PhantomData<K>);

impl<K: PolicySpec> Resource for KindPolicy<K> {
    const MODEL: &'static str = K::MODEL;
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = K::Wire;
    type Request = K::Request;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        let p: policies::Policy = sql::get(conn, *key).await?;
        if p.fields.kind != K::KIND {
            return Err(ApiError::NotFound(K::MODEL.into()));
        }
        Ok(KindPolicy(p, PhantomData))
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        list_of_kind::<policies::Policy, _>(conn, spec, K::KIND.as_str(), |p| {
            KindPolicy(p, PhantomData)
        })
        .await
    }

    async fn render(
        &self,
        conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<K::Wire> {
        let settings = self
            .0
            .fields
            .settings
            .as_object()
            .cloned()
            .unwrap_or_default();
        Ok(K::wire(common(conn, &self.0).await?, &settings))
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: K::Request,
        full: bool,
    ) -> ApiResult<Self> {
        let mut errors = Errors::default();
        let (name, execution_logging) = K::common(&req);
        if full {
            errors.require("name", name.as_ref());
        }
        if let Some(name) = &name {
            errors.check("name", gatehouse_core::validate::name(name));
        }
        let base = current.as_ref().map(|c| &c.0.fields);
        let settings = base
            .and_then(|b| b.settings.as_object().cloned())
            .unwrap_or_default();
        let settings = K::settings(&req, settings, full, &mut errors);
        errors.finish()?;
        let fields = PolicyFields {
            name: name.unwrap_or_else(|| base.map(|b| b.name.clone()).unwrap_or_default()),
            kind: K::KIND,
            execution_logging: or(
                &execution_logging,
                &base.is_some_and(|b| b.execution_logging),
            ),
            settings: Value::Object(settings),
        };
        let stored = match current {
            Some(c) => policies::update(conn, c.0.uuid, &fields).await?,
            None => policies::create(conn, &fields).await?,
        };
        Ok(KindPolicy(stored, PhantomData))
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(policies::delete(conn, self.0.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        self.0.label()
    }
}

/// `policies/expression/`: the expression is CEL, checked before it is stored.
pub(crate) struct Expression;

impl PolicySpec for Expression {
    const KIND: PolicyKind = PolicyKind::Expression;
    const MODEL: &'static str = "expressionpolicy";
    type Wire = ExpressionPolicy;
    type Request = ExpressionPolicyRequest;

    fn wire(policy: Policy, settings: &Map<String, Value>) -> ExpressionPolicy {
        ExpressionPolicy {
            policy,
            expression: text(settings, "expression"),
        }
    }

    fn common(req: &ExpressionPolicyRequest) -> (Option<String>, Option<bool>) {
        (req.name.clone(), req.execution_logging)
    }

    fn settings(
        req: &ExpressionPolicyRequest,
        mut current: Map<String, Value>,
        full: bool,
        errors: &mut Errors,
    ) -> Map<String, Value> {
        if full {
            errors.require("expression", req.expression.as_ref());
        }
        if let Some(expression) = &req.expression {
            if let Err(e) = gatehouse_flow::policy::check_expression(expression) {
                errors.add(
                    "expression",
                    format!("The CEL expression {e}; it must yield true or false, e.g. \"admins\" in user.groups."),
                );
            }
            current.insert("expression".into(), json!(expression));
        }
        current
    }
}

/// `policies/reputation/`: fails while recent failed logins weigh on the username or address.
pub(crate) struct ReputationKind;

impl PolicySpec for ReputationKind {
    const KIND: PolicyKind = PolicyKind::Reputation;
    const MODEL: &'static str = "reputationpolicy";
    type Wire = ReputationPolicy;
    type Request = ReputationPolicyRequest;

    fn wire(policy: Policy, settings: &Map<String, Value>) -> ReputationPolicy {
        let flag = |k: &str| settings.get(k).and_then(Value::as_bool).unwrap_or(true);
        ReputationPolicy {
            policy,
            check_ip: flag("check_ip"),
            check_username: flag("check_username"),
            threshold: settings
                .get("threshold")
                .and_then(Value::as_i64)
                .unwrap_or(gatehouse_flow::policy::DEFAULT_THRESHOLD),
        }
    }

    fn common(req: &ReputationPolicyRequest) -> (Option<String>, Option<bool>) {
        (req.name.clone(), req.execution_logging)
    }

    fn settings(
        req: &ReputationPolicyRequest,
        mut current: Map<String, Value>,
        _full: bool,
        errors: &mut Errors,
    ) -> Map<String, Value> {
        errors.int32("threshold", req.threshold);
        if let Some(threshold) = req.threshold {
            current.insert("threshold".into(), json!(threshold));
        }
        for (key, value) in [
            ("check_ip", req.check_ip),
            ("check_username", req.check_username),
        ] {
            if let Some(v) = value {
                current.insert(key.into(), json!(v));
            }
        }
        current
    }
}

fn text(settings: &Map<String, Value>, key: &str) -> String {
    settings
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl Resource for Score {
    const MODEL: &'static str = "reputation";
    const RULES: ListRules = SCORE_RULES;
    type Key = Uuid;
    type Wire = Reputation;
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
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<Reputation> {
        Ok(Reputation {
            pk: self.uuid,
            identifier: self.identifier.clone(),
            ip: self.ip.clone(),
            ip_geo_data: None,
            ip_asn_data: None,
            score: self.current(sql::now()),
            updated: self.updated,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(reputation::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (
            self.uuid.to_string(),
            format!("{} from {}", self.identifier, self.ip),
        )
    }
}
