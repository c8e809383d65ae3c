//! `core/applications/` (looked up by slug, as in Authentik).

use gatehouse_core::kinds::PolicyEngineMode;
use gatehouse_core::validate;
use gatehouse_proto::core::{Application, ApplicationRequest};
use gatehouse_store::{applications, providers, sql, Conn, ListSpec, Listed};

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
        ("group", "group_name", FilterKind::Text),
        ("meta_launch_url", "meta_launch_url", FilterKind::Text),
    ],
    search: &[
        "name",
        "slug",
        "meta_description",
        "meta_publisher",
        "group_name",
    ],
    ordering: &[("name", "name"), ("slug", "slug"), ("group", "group_name")],
    default_order: "name",
    relations: &[],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<applications::Application>(
        "/core/applications/",
        "/core/applications/{slug}/",
        "application",
        Operations::Crud,
    )
}

async fn render(
    conn: &mut Conn,
    sealing: &SecretKey,
    app: &applications::Application,
) -> ApiResult<Application> {
    let f = &app.fields;
    let provider = match f.provider {
        Some(id) => Some(providers::get(conn, sealing, id).await?),
        None => None,
    };
    let provider_obj = match &provider {
        Some(p) => Some(super::providers::base(conn, p).await?),
        None => None,
    };
    // Like Authentik: without an explicit launch URL, a proxy provider's external host is it.
    let launch_url = if f.meta_launch_url.is_empty() {
        provider.and_then(|p| match p.fields.kind {
            providers::ProviderKind::Proxy(x) => Some(x.external_host),
            providers::ProviderKind::OAuth2(_) => None,
        })
    } else {
        Some(f.meta_launch_url.clone())
    };
    let icon = (!f.meta_icon.is_empty()).then(|| f.meta_icon.clone());
    Ok(Application {
        pk: app.uuid,
        pbm_uuid: app.uuid,
        name: f.name.clone(),
        slug: f.slug.clone(),
        provider: f.provider,
        provider_obj,
        backchannel_providers: Vec::new(),
        backchannel_providers_obj: Vec::new(),
        launch_url,
        open_in_new_tab: f.open_in_new_tab,
        meta_launch_url: f.meta_launch_url.clone(),
        meta_icon: icon.clone(),
        meta_icon_url: icon,
        meta_icon_themed_urls: None,
        meta_description: f.meta_description.clone(),
        meta_publisher: f.meta_publisher.clone(),
        policy_engine_mode: f.policy_engine_mode,
        group: f.group.clone(),
        meta_hide: f.meta_hide,
    })
}

async fn find(conn: &mut Conn, slug: &str) -> ApiResult<applications::Application> {
    applications::find_by_slug(conn, slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("application with slug `{slug}`")))
}

async fn fields(
    conn: &mut Conn,
    sealing: &SecretKey,
    current: Option<&applications::ApplicationFields>,
    req: &ApplicationRequest,
    full: bool,
) -> ApiResult<applications::ApplicationFields> {
    let mut errors = Errors::default();
    if full {
        errors.require("name", req.name.as_ref());
        errors.require("slug", req.slug.as_ref());
    }
    let defaults = applications::ApplicationFields {
        slug: String::new(),
        name: String::new(),
        provider: None,
        meta_launch_url: String::new(),
        meta_icon: String::new(),
        meta_description: String::new(),
        meta_publisher: String::new(),
        open_in_new_tab: false,
        meta_hide: false,
        policy_engine_mode: PolicyEngineMode::Any,
        group: String::new(),
    };
    let base = current.unwrap_or(&defaults);
    let merged = applications::ApplicationFields {
        slug: or(&req.slug, &base.slug),
        name: or(&req.name, &base.name),
        provider: or(&req.provider, &base.provider),
        meta_launch_url: or(&req.meta_launch_url, &base.meta_launch_url),
        meta_icon: or(&req.meta_icon, &base.meta_icon),
        meta_description: or(&req.meta_description, &base.meta_description),
        meta_publisher: or(&req.meta_publisher, &base.meta_publisher),
        open_in_new_tab: or(&req.open_in_new_tab, &base.open_in_new_tab),
        meta_hide: or(&req.meta_hide, &base.meta_hide),
        policy_engine_mode: or(&req.policy_engine_mode, &base.policy_engine_mode),
        group: or(&req.group, &base.group),
    };
    if req.slug.is_some() {
        errors.check("slug", validate::slug(&merged.slug));
    }
    if req.name.is_some() {
        errors.check("name", validate::name(&merged.name));
    }
    if !merged.meta_launch_url.is_empty() {
        errors.check(
            "meta_launch_url",
            validate::http_url(&merged.meta_launch_url),
        );
    }
    for (field, value) in [
        ("meta_description", &merged.meta_description),
        ("meta_publisher", &merged.meta_publisher),
        ("group", &merged.group),
        ("meta_icon", &merged.meta_icon),
    ] {
        errors.check(field, validate::text(value));
    }
    if req
        .backchannel_providers
        .as_ref()
        .is_some_and(|b| !b.is_empty())
    {
        errors.add(
            "backchannel_providers",
            "Gatehouse has no backchannel providers; leave this field empty.",
        );
    }
    if let Some(id) = merged.provider {
        if let Err(gatehouse_store::Error::NotFound { .. }) =
            providers::get(conn, sealing, id).await
        {
            errors.add(
                "provider",
                format!("Invalid pk \"{id}\" - object does not exist."),
            );
        }
    }
    errors.finish()?;
    Ok(merged)
}

impl Resource for applications::Application {
    const MODEL: &'static str = "application";
    const RULES: ListRules = RULES;
    type Key = String;
    type Wire = Application;
    type Request = ApplicationRequest;

    async fn find(conn: &mut Conn, _sealing: &SecretKey, key: &String) -> ApiResult<Self> {
        find(conn, key).await
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
        sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<Application> {
        render(conn, sealing, self).await
    }

    async fn write(
        conn: &mut Conn,
        sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: ApplicationRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let fields = fields(
            conn,
            sealing,
            current.as_ref().map(|c| &c.fields),
            &req,
            full,
        )
        .await?;
        Ok(match current {
            Some(c) => applications::update(conn, c.uuid, &fields).await?,
            None => applications::create(conn, &fields).await?,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(applications::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.slug.clone())
    }
}
