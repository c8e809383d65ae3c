//! `propertymappings/provider/scope/`: custom claims as CEL expressions. Providers select them
//! through `property_mappings`; an expression that does not compile is refused when saved.

use gatehouse_proto::providers::{ScopeMapping, ScopeMappingRequest};
use gatehouse_store::scope_mappings::{self, ScopeMappingFields};
use gatehouse_store::{sql, Conn, ListSpec, Listed};
use uuid::Uuid;

use super::resource::{Operations, Resource};
use super::validate::{or, Errors};
use super::Api;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::extract::{FilterKind, ListRules};
use crate::Settings;
use gatehouse_store::SecretKey;

const RULES: ListRules = ListRules {
    filters: &[
        ("name", "name", FilterKind::Text),
        ("scope_name", "scope_name", FilterKind::Text),
        ("pk", "uuid", FilterKind::Text),
    ],
    search: &["name", "scope_name"],
    ordering: &[("name", "name"), ("scope_name", "scope_name")],
    default_order: "name",
    relations: &[],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<scope_mappings::ScopeMapping>(
        "/propertymappings/provider/scope/",
        "/propertymappings/provider/scope/{pm_uuid}/",
        "scope mapping",
        Operations::Crud,
    )
}

impl Resource for scope_mappings::ScopeMapping {
    const MODEL: &'static str = "scopemapping";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = ScopeMapping;
    type Request = ScopeMappingRequest;

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
    ) -> ApiResult<ScopeMapping> {
        Ok(ScopeMapping {
            pk: self.uuid,
            managed: None,
            name: self.fields.name.clone(),
            expression: self.fields.expression.clone(),
            component: "ak-property-mapping-provider-scope-form".into(),
            verbose_name: "Scope Mapping".into(),
            verbose_name_plural: "Scope Mappings".into(),
            meta_model_name: "authentik_providers_oauth2.scopemapping".into(),
            scope_name: self.fields.scope_name.clone(),
            description: self.fields.description.clone(),
        })
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: ScopeMappingRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let mut errors = Errors::default();
        if full {
            errors.require("name", req.name.as_ref());
            errors.require("expression", req.expression.as_ref());
            errors.require("scope_name", req.scope_name.as_ref());
        }
        if req.managed.as_ref().is_some_and(Option::is_some) {
            errors.add(
                "managed",
                "Gatehouse manages no scope mappings; leave this null.",
            );
        }
        let blank = ScopeMappingFields {
            name: String::new(),
            scope_name: String::new(),
            expression: String::new(),
            description: String::new(),
        };
        let base = current.as_ref().map(|c| &c.fields).unwrap_or(&blank);
        let fields = ScopeMappingFields {
            name: or(&req.name, &base.name).trim().to_owned(),
            scope_name: or(&req.scope_name, &base.scope_name).trim().to_owned(),
            expression: or(&req.expression, &base.expression),
            description: or(&req.description, &base.description),
        };
        if fields.name.is_empty() && req.name.is_some() {
            errors.add("name", "This field may not be blank.");
        }
        if req.scope_name.is_some()
            && (fields.scope_name.is_empty() || fields.scope_name.contains(char::is_whitespace))
        {
            errors.add(
                "scope_name",
                "A scope name is one word without spaces, e.g. `headscale`.",
            );
        }
        if req.expression.is_some() {
            if let Err(e) = gatehouse_flow::policy::check_expression(&fields.expression) {
                errors.add(
                    "expression",
                    format!("The CEL expression {e}; it must yield a map of claims, e.g. {{\"nickname\": user.username}}."),
                );
            }
        }
        errors.finish()?;
        Ok(match current {
            Some(c) => scope_mappings::update(conn, c.uuid, &fields).await?,
            None => scope_mappings::create(conn, &fields).await?,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(scope_mappings::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.name.clone())
    }
}
