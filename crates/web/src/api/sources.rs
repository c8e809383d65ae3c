//! `sources/oauth/`: social and OIDC login sources (looked up by slug). The consumer secret is
//! write-only: it is never returned.

use gatehouse_core::kinds::{PolicyEngineMode, SourceProviderType, UserMatchingMode};
use gatehouse_core::presets::source_preset;
use gatehouse_core::validate;
use gatehouse_proto::sources::{OAuthSource, OAuthSourceRequest, SourceType};
use gatehouse_store::sources::{self, Source, SourceFields};
use gatehouse_store::{flows, sql, Conn, ListSpec, Listed};
use uuid::Uuid;

use super::resource::{NoRequest, Operations, Resource};
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
        ("enabled", "enabled", FilterKind::Bool),
        ("provider_type", "provider_type", FilterKind::Text),
    ],
    search: &["name", "slug"],
    ordering: &[("name", "name"), ("slug", "slug")],
    default_order: "name",
    relations: &[],
};

pub(super) fn routes(api: Api) -> Api {
    api.resource::<Source>(
        "/sources/oauth/",
        "/sources/oauth/{slug}/",
        "OAuth login source",
        Operations::Crud,
    )
    .resource::<AnySource>(
        "/sources/all/",
        "/sources/all/{slug}/",
        "login source of any kind",
        Operations::ReadDelete,
    )
}

/// A source seen through `sources/all/`: the common fields only, as Authentik answers there.
struct AnySource(Source);

impl Resource for AnySource {
    const MODEL: &'static str = "source";
    const RULES: ListRules = RULES;
    type Key = String;
    type Wire = gatehouse_proto::sources::Source;
    type Request = NoRequest;

    async fn find(conn: &mut Conn, sealing: &SecretKey, key: &String) -> ApiResult<Self> {
        Source::find(conn, sealing, key).await.map(AnySource)
    }

    async fn list(
        conn: &mut Conn,
        sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        let listed = Source::list(conn, sealing, spec).await?;
        Ok(Listed {
            count: listed.count,
            items: listed.items.into_iter().map(AnySource).collect(),
        })
    }

    async fn render(
        &self,
        _conn: &mut Conn,
        _sealing: &SecretKey,
        _settings: &Settings,
    ) -> ApiResult<gatehouse_proto::sources::Source> {
        Ok(common(&self.0))
    }

    async fn delete(self, conn: &mut Conn, admin: &Admin) -> ApiResult<()> {
        self.0.delete(conn, admin).await
    }

    fn label(&self) -> (String, String) {
        self.0.label()
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The URL to register as the redirect URI at the login service.
pub(crate) fn callback_url(external_url: &str, slug: &str) -> String {
    format!("{external_url}/source/oauth/callback/{slug}/")
}

/// The fields every source shows (`sources/all/`), whatever its kind.
fn common(s: &Source) -> gatehouse_proto::sources::Source {
    let f = &s.fields;
    gatehouse_proto::sources::Source {
        pk: s.uuid,
        name: f.name.clone(),
        slug: f.slug.clone(),
        enabled: f.enabled,
        promoted: f.promoted,
        authentication_flow: f.authentication_flow,
        enrollment_flow: f.enrollment_flow,
        user_property_mappings: Vec::new(),
        group_property_mappings: Vec::new(),
        component: "ak-source-oauth-form".into(),
        verbose_name: "OAuth Source".into(),
        verbose_name_plural: "OAuth Sources".into(),
        meta_model_name: "authentik_sources_oauth.oauthsource".into(),
        policy_engine_mode: PolicyEngineMode::Any,
        user_matching_mode: f.user_matching_mode,
        managed: None,
        user_path_template: "goauthentik.io/sources/%(slug)s".into(),
        icon: None,
        icon_url: None,
        icon_themed_urls: None,
    }
}

pub(crate) fn render(s: &Source, settings: &Settings) -> OAuthSource {
    let f = &s.fields;
    let preset = source_preset(f.provider_type);
    let pick = |own: &str, preset_value: Option<&str>| {
        non_empty(own).or_else(|| preset_value.and_then(non_empty))
    };
    OAuthSource {
        source: common(s),
        group_matching_mode: "identifier".into(),
        provider_type: f.provider_type,
        request_token_url: None,
        authorization_url: pick(&f.authorization_url, preset.map(|p| p.authorization_url)),
        access_token_url: pick(&f.access_token_url, preset.map(|p| p.access_token_url)),
        profile_url: pick(&f.profile_url, preset.map(|p| p.profile_url)),
        pkce: "none".into(),
        consumer_key: f.consumer_key.clone(),
        callback_url: callback_url(&settings.external_url, &f.slug),
        additional_scopes: f.additional_scopes.clone(),
        source_type: SourceType {
            name: f.provider_type.as_str().into(),
            verbose_name: preset
                .map(|p| p.verbose_name)
                .unwrap_or("OpenID Connect")
                .into(),
            urls_customizable: preset.is_none(),
            request_token_url: None,
            authorization_url: preset.and_then(|p| non_empty(p.authorization_url)),
            access_token_url: preset.and_then(|p| non_empty(p.access_token_url)),
            profile_url: preset.and_then(|p| non_empty(p.profile_url)),
            oidc_well_known_url: preset.and_then(|p| non_empty(p.oidc_well_known_url)),
            oidc_jwks_url: None,
        },
        oidc_well_known_url: f.oidc_well_known_url.clone(),
        oidc_jwks_url: String::new(),
        oidc_jwks: serde_json::json!({}),
        authorization_code_auth_method: "basic_auth".into(),
    }
}

/// Validates the settings of a source that do not need the database.
pub(crate) fn check_source(errors: &mut Errors, f: &SourceFields) {
    errors.check("slug", validate::slug(&f.slug));
    errors.check("name", validate::name(&f.name));
    for (field, url) in [
        ("authorization_url", &f.authorization_url),
        ("access_token_url", &f.access_token_url),
        ("profile_url", &f.profile_url),
        ("oidc_well_known_url", &f.oidc_well_known_url),
    ] {
        if !url.is_empty() {
            errors.check(field, validate::http_url(url));
        }
    }
    if source_preset(f.provider_type).is_none()
        && f.oidc_well_known_url.is_empty()
        && f.authorization_url.is_empty()
    {
        errors.add(
            "oidc_well_known_url",
            "A generic OpenID Connect source needs its discovery URL (…/.well-known/openid-configuration).",
        );
    }
}

async fn check_flow(
    conn: &mut Conn,
    errors: &mut Errors,
    field: &str,
    flow: Option<Uuid>,
) -> ApiResult<()> {
    if let Some(uuid) = flow {
        if let Err(gatehouse_store::Error::NotFound { .. }) =
            sql::get::<flows::Flow>(conn, uuid).await
        {
            errors.add(
                field,
                format!("Invalid pk \"{uuid}\" - object does not exist."),
            );
        }
    }
    Ok(())
}

impl Resource for Source {
    const MODEL: &'static str = "oauthsource";
    const RULES: ListRules = RULES;
    type Key = String;
    type Wire = OAuthSource;
    type Request = OAuthSourceRequest;

    async fn find(conn: &mut Conn, sealing: &SecretKey, key: &String) -> ApiResult<Self> {
        sources::find_by_slug(conn, sealing, key)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("source with slug `{key}`")))
    }

    async fn list(
        conn: &mut Conn,
        sealing: &SecretKey,
        spec: &ListSpec,
    ) -> ApiResult<Listed<Self>> {
        Ok(sources::list(conn, sealing, spec).await?)
    }

    async fn render(
        &self,
        _conn: &mut Conn,
        _sealing: &SecretKey,
        settings: &Settings,
    ) -> ApiResult<OAuthSource> {
        Ok(render(self, settings))
    }

    async fn write(
        conn: &mut Conn,
        sealing: &SecretKey,
        _admin: &Admin,
        current: Option<Self>,
        req: OAuthSourceRequest,
        full: bool,
    ) -> ApiResult<Self> {
        let mut errors = Errors::default();
        if full {
            errors.require("name", req.name.as_ref());
            errors.require("slug", req.slug.as_ref());
            errors.require("provider_type", req.provider_type.as_ref());
            errors.require("consumer_key", req.consumer_key.as_ref());
        }
        if current.is_none() {
            errors.require("consumer_secret", req.consumer_secret.as_ref());
        }
        let defaults = SourceFields {
            slug: String::new(),
            name: String::new(),
            enabled: true,
            promoted: false,
            provider_type: SourceProviderType::OpenIdConnect,
            user_matching_mode: UserMatchingMode::Identifier,
            authentication_flow: None,
            enrollment_flow: None,
            consumer_key: String::new(),
            consumer_secret: String::new(),
            authorization_url: String::new(),
            access_token_url: String::new(),
            profile_url: String::new(),
            oidc_well_known_url: String::new(),
            additional_scopes: String::new(),
        };
        let base = current.as_ref().map(|c| &c.fields).unwrap_or(&defaults);
        let fields = SourceFields {
            slug: or(&req.slug, &base.slug),
            name: or(&req.name, &base.name),
            enabled: or(&req.enabled, &base.enabled),
            promoted: or(&req.promoted, &base.promoted),
            provider_type: or(&req.provider_type, &base.provider_type),
            user_matching_mode: or(&req.user_matching_mode, &base.user_matching_mode),
            authentication_flow: or(&req.authentication_flow, &base.authentication_flow),
            enrollment_flow: or(&req.enrollment_flow, &base.enrollment_flow),
            consumer_key: or(&req.consumer_key, &base.consumer_key),
            consumer_secret: or(&req.consumer_secret, &base.consumer_secret),
            authorization_url: or(&req.authorization_url, &base.authorization_url),
            access_token_url: or(&req.access_token_url, &base.access_token_url),
            profile_url: or(&req.profile_url, &base.profile_url),
            oidc_well_known_url: or(&req.oidc_well_known_url, &base.oidc_well_known_url),
            additional_scopes: or(&req.additional_scopes, &base.additional_scopes),
        };
        if req.slug.is_some() || req.name.is_some() || current.is_none() {
            check_source(&mut errors, &fields);
        }
        check_flow(
            conn,
            &mut errors,
            "authentication_flow",
            fields.authentication_flow,
        )
        .await?;
        check_flow(conn, &mut errors, "enrollment_flow", fields.enrollment_flow).await?;
        errors.finish()?;
        Ok(match current {
            Some(c) => sources::update(conn, sealing, c.uuid, &fields).await?,
            None => sources::create(conn, sealing, &fields).await?,
        })
    }

    async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
        Ok(sources::delete(conn, self.uuid).await?)
    }

    fn label(&self) -> (String, String) {
        (self.uuid.to_string(), self.fields.slug.clone())
    }
}
