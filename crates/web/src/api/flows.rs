//! `flows/instances/` (looked up by slug, as in Authentik).

use gatehouse_core::kinds::{
    DeniedAction, FlowAuthentication, FlowDesignation, FlowLayout, PolicyEngineMode,
};
use gatehouse_core::validate;
use gatehouse_proto::flows::{Flow, FlowRequest};
use gatehouse_store::{flows, policies, sql, Conn, ListSpec, Listed};

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
        ("slug", "slug", FilterKind::Text),
        ("name", "name", FilterKind::Text),
        ("designation", "designation", FilterKind::Text),
        ("pk", "uuid", FilterKind::Text),
    ],
    search: &["slug", "name", "title"],
    ordering: &[
        ("slug", "slug"),
        ("name", "name"),
        ("title", "title"),
        ("designation", "designation"),
    ],
    default_order: "slug",
    relations: &[],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<flows::Flow>(
        "/flows/instances/",
        "/flows/instances/{slug}/",
        "flow",
        Operations::Crud,
    )
}

/// The wire form of a flow.
pub(crate) async fn render(conn: &mut Conn, flow: &flows::Flow) -> ApiResult<Flow> {
    let f = &flow.fields;
    let bindings = policies::bindings_of(conn, flow.uuid).await?;
    Ok(Flow {
        pk: flow.uuid,
        policybindingmodel_ptr_id: flow.uuid,
        name: f.name.clone(),
        slug: f.slug.clone(),
        title: f.title.clone(),
        designation: f.designation,
        background: f.background.clone(),
        background_url: f.background.clone(),
        background_themed_urls: None,
        stages: flows::stage_ids(conn, flow.uuid).await?,
        policies: bindings
            .iter()
            .filter_map(|b| match b.fields.subject {
                policies::Subject::Policy(p) => Some(p),
                _ => None,
            })
            .collect(),
        cache_count: 0,
        policy_engine_mode: f.policy_engine_mode,
        compatibility_mode: f.compatibility_mode,
        export_url: String::new(),
        layout: f.layout,
        denied_action: f.denied_action,
        authentication: f.authentication,
    })
}

fn fields(
    current: Option<&flows::FlowFields>,
    req: &FlowRequest,
    full: bool,
) -> ApiResult<flows::FlowFields> {
    let mut errors = Errors::default();
    if full {
        errors.require("name", req.name.as_ref());
        errors.require("slug", req.slug.as_ref());
        errors.require("title", req.title.as_ref());
        errors.require("designation", req.designation.as_ref());
    }
    let defaults = flows::FlowFields {
        slug: String::new(),
        name: String::new(),
        title: String::new(),
        designation: FlowDesignation::Authentication,
        authentication: FlowAuthentication::None,
        policy_engine_mode: PolicyEngineMode::Any,
        layout: FlowLayout::Stacked,
        denied_action: DeniedAction::MessageContinue,
        compatibility_mode: false,
        background: String::new(),
    };
    let base = current.unwrap_or(&defaults);
    let merged = flows::FlowFields {
        slug: or(&req.slug, &base.slug),
        name: or(&req.name, &base.name),
        title: or(&req.title, &base.title),
        designation: or(&req.designation, &base.designation),
        authentication: or(&req.authentication, &base.authentication),
        policy_engine_mode: or(&req.policy_engine_mode, &base.policy_engine_mode),
        layout: or(&req.layout, &base.layout),
        denied_action: or(&req.denied_action, &base.denied_action),
        compatibility_mode: or(&req.compatibility_mode, &base.compatibility_mode),
        background: or(&req.background, &base.background),
    };
    if req.slug.is_some() {
        errors.check("slug", validate::slug(&merged.slug));
    }
    if req.name.is_some() {
        errors.check("name", validate::name(&merged.name));
    }
    if req.title.is_some() {
        errors.check("title", validate::name(&merged.title));
    }
    errors.check("background", validate::text(&merged.background));
    errors.finish()?;
    Ok(merged)
}

impl Resource for flows::Flow {
    const MODEL: &'static str = "flow";
    const RULES: ListRules = RULES;
    type Key = String;
    type Wire = Flow;
    type Request = FlowRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &String) -> ApiResult<Self> {
        flows::find_by_slug(conn, key)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("flow with slug `{key}`")))
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
    ) -> ApiResult<Flow> {
        render(conn, self).await
    }

    async fn write(
        conn: &mut Conn,
        _sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: FlowRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let fields = fields(current.as_ref().map(|c| &c.fields), &req, full)?;
        Ok(match current {
            Some(c) => flows::update(conn, c.uuid, &fields).await?,
            None => flows::create(conn, &fields).await?,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(flows::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.slug.clone())
    }
}
