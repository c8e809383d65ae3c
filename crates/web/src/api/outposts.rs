//! `outposts/instances/`: the embedded outpost and standalone ones, with the providers they serve.

use gatehouse_core::kinds::OutpostType;
use gatehouse_core::validate;
use gatehouse_proto::outposts::{Outpost, OutpostRequest};
use gatehouse_store::outposts::{self, OutpostFields};
use gatehouse_store::{providers, sql, Conn, ListSpec, Listed};
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
        ("name", "name", FilterKind::Text),
        ("managed", "managed", FilterKind::Text),
    ],
    search: &["name"],
    ordering: &[("name", "name")],
    default_order: "name",
    relations: &[(
        "providers_by_pk",
        "uuid",
        "SELECT outpost_uuid FROM outpost_providers WHERE CAST(provider_id AS TEXT) = $?",
    )],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<outposts::Outpost>(
        "/outposts/instances/",
        "/outposts/instances/{uuid}/",
        "outpost",
        Operations::Crud,
    )
}

impl Resource for outposts::Outpost {
    const MODEL: &'static str = "outpost";
    const RULES: ListRules = RULES;
    type Key = Uuid;
    type Wire = Outpost;
    type Request = OutpostRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &Uuid) -> ApiResult<Self> {
        Ok(outposts::get(conn, *key).await?)
    }

    async fn list(
        conn: &mut Conn,
        _sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        let listed = sql::list::<outposts::Outpost>(conn, spec).await?;
        let mut items = Vec::with_capacity(listed.items.len());
        for o in listed.items {
            items.push(outposts::complete(conn, o).await?);
        }
        Ok(Listed {
            count: listed.count,
            items,
        })
    }

    async fn render(
        &self,
        conn: &mut Conn,
        sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<Outpost> {
        let mut providers_obj = Vec::with_capacity(self.fields.providers.len());
        for id in &self.fields.providers {
            let p = providers::get(conn, sealing, *id).await?;
            providers_obj.push(super::providers::base(conn, &p).await?);
        }
        Ok(Outpost {
            pk: self.uuid,
            name: self.fields.name.clone(),
            outpost_type: self.fields.outpost_type,
            providers: self.fields.providers.clone(),
            providers_obj,
            service_connection: None,
            service_connection_obj: None,
            refresh_interval_s: 0,
            token_identifier: format!("ak-outpost-{}-api", self.uuid),
            config: self.fields.config.clone(),
            managed: self.fields.managed.clone(),
        })
    }

    async fn write(
        conn: &mut Conn,
        sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: OutpostRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let mut errors = Errors::default();
        if full {
            errors.require("name", req.name.as_ref());
            errors.require("providers", req.providers.as_ref());
        }
        if req.managed.is_some() {
            errors.add(
                "managed",
                "Only Gatehouse marks outposts as managed; leave this field out.",
            );
        }
        if let Some(t) = req.outpost_type.filter(|t| *t != OutpostType::Proxy) {
            errors.add(
                "type",
                format!("Gatehouse implements only proxy outposts, not {t}."),
            );
        }
        if let Some(Some(_)) = req.service_connection {
            errors.add("service_connection", "Gatehouse does not deploy outposts; use the manifests in deploy/ and leave this empty.");
        }
        let defaults = OutpostFields {
            name: String::new(),
            outpost_type: OutpostType::Proxy,
            config: serde_json::json!({}),
            managed: None,
            providers: Vec::new(),
        };
        let base = current.as_ref().map(|c| &c.fields).unwrap_or(&defaults);
        let fields = OutpostFields {
            name: or(&req.name, &base.name),
            outpost_type: OutpostType::Proxy,
            config: req
                .config
                .clone()
                .map(serde_json::Value::Object)
                .unwrap_or_else(|| base.config.clone()),
            managed: base.managed.clone(),
            providers: or(&req.providers, &base.providers),
        };
        if req.name.is_some() {
            errors.check("name", validate::name(&fields.name));
        }
        for id in &fields.providers {
            match providers::get(conn, sealing, *id).await {
                Ok(p) if p.fields.kind.tag() == "proxy" => {}
                Ok(p) => errors.add(
                    "providers",
                    format!(
                        "`{}` is not a proxy provider; outposts serve proxy providers.",
                        p.fields.name
                    ),
                ),
                Err(gatehouse_store::Error::NotFound { .. }) => errors.add(
                    "providers",
                    format!("Invalid pk \"{id}\" - object does not exist."),
                ),
                Err(e) => return Err(e.into()),
            }
        }
        errors.finish()?;
        Ok(match current {
            Some(c) => outposts::update(conn, c.uuid, &fields).await?,
            None => outposts::create(conn, &fields).await?,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        if self.fields.managed.as_deref() == Some(outposts::EMBEDDED) {
            return Err(ApiError::field(
                "non_field_errors",
                "The embedded outpost is part of the server and cannot be deleted.",
            ));
        }
        Ok(outposts::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.name.clone())
    }
}
