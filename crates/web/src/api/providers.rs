//! `providers/oauth2/` and `providers/proxy/`: the two kinds of provider, sharing integer ids.

use gatehouse_core::kinds::{
    ClientType, FlowDesignation, IssuerMode, MatchingMode, ProxyMode, RedirectUriType,
    SigningAlgorithm, SubMode,
};
use gatehouse_core::{secret, validate};
use gatehouse_proto::providers::{
    OAuth2Provider, OAuth2ProviderRequest, Provider, ProxyProvider, ProxyProviderRequest,
    RedirectUri,
};
use gatehouse_store::providers::{
    self as store, OAuth2Settings, ProviderFields, ProviderKind, ProxySettings,
};
use gatehouse_store::{
    applications, flows, outposts, scope_mappings, sql, Conn, Filter, ListSpec, Listed,
};
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
        ("name", "p.name", FilterKind::Text),
        ("client_id", "p.client_id", FilterKind::Text),
        ("pk", "p.id", FilterKind::Int),
    ],
    search: &["p.name", "p.client_id"],
    ordering: &[("name", "p.name"), ("pk", "p.id")],
    default_order: "p.name",
    relations: &[],
};

/// The path part every outpost callback uses.
pub(crate) const OUTPOST_CALLBACK: &str =
    "/outpost.goauthentik.io/callback?X-authentik-auth-callback=true";

pub(super) fn routes(api: Api) -> Api {
    api.resource::<OAuth2>(
        "/providers/oauth2/",
        "/providers/oauth2/{id}/",
        "OAuth2/OIDC provider",
        Operations::Crud,
    )
    .resource::<Proxy>(
        "/providers/proxy/",
        "/providers/proxy/{id}/",
        "proxy provider",
        Operations::Crud,
    )
}

/// The fields every provider shows, with its application.
pub(crate) async fn base(conn: &mut Conn, p: &store::Provider) -> ApiResult<Provider> {
    let app = applications::find_by_provider(conn, p.id).await?;
    let (component, verbose, plural, model) = match p.fields.kind {
        ProviderKind::OAuth2(_) => (
            "ak-provider-oauth2-form",
            "OAuth2/OpenID Provider",
            "OAuth2/OpenID Providers",
            "oauth2provider",
        ),
        ProviderKind::Proxy(_) => (
            "ak-provider-proxy-form",
            "Proxy Provider",
            "Proxy Providers",
            "proxyprovider",
        ),
    };
    Ok(Provider {
        pk: p.id,
        name: p.fields.name.clone(),
        authentication_flow: p.fields.authentication_flow,
        authorization_flow: p.fields.authorization_flow,
        invalidation_flow: p.fields.invalidation_flow,
        property_mappings: scope_mappings::of_provider(conn, p.id)
            .await?
            .into_iter()
            .map(|m| m.uuid)
            .collect(),
        component: component.into(),
        assigned_application_slug: app.as_ref().map(|a| a.fields.slug.clone()),
        assigned_application_name: app.as_ref().map(|a| a.fields.name.clone()),
        assigned_backchannel_application_slug: None,
        assigned_backchannel_application_name: None,
        verbose_name: verbose.into(),
        verbose_name_plural: plural.into(),
        meta_model_name: format!(
            "authentik_providers_{}.{model}",
            if model == "oauth2provider" {
                "oauth2"
            } else {
                "proxy"
            }
        ),
    })
}

fn wire_uri(u: &store::RedirectUri) -> RedirectUri {
    RedirectUri {
        matching_mode: u.matching_mode,
        url: u.url.clone(),
        redirect_uri_type: Some(u.redirect_uri_type),
    }
}

async fn render_oauth2(conn: &mut Conn, p: &store::Provider) -> ApiResult<OAuth2Provider> {
    let ProviderKind::OAuth2(o) = &p.fields.kind else {
        return Err(ApiError::NotFound("OAuth2 provider".into()));
    };
    let grant_types = match o.client_type {
        ClientType::Confidential => {
            vec!["authorization_code", "refresh_token", "client_credentials"]
        }
        ClientType::Public => vec!["authorization_code", "refresh_token"],
    };
    Ok(OAuth2Provider {
        base: base(conn, p).await?,
        client_type: o.client_type,
        grant_types: grant_types.into_iter().map(str::to_owned).collect(),
        client_id: p.fields.client_id.clone(),
        client_secret: p.fields.client_secret.clone(),
        access_code_validity: o.access_code_validity.clone(),
        access_token_validity: p.fields.access_token_validity.clone(),
        refresh_token_validity: p.fields.refresh_token_validity.clone(),
        refresh_token_threshold: "seconds=0".into(),
        include_claims_in_id_token: o.include_claims_in_id_token,
        signing_key: None,
        encryption_key: None,
        redirect_uris: o.redirect_uris.iter().map(wire_uri).collect(),
        logout_uri: o.logout_uri.clone(),
        logout_method: "backchannel".into(),
        sub_mode: o.sub_mode,
        signing_algorithm: o.signing_algorithm,
        issuer_mode: o.issuer_mode,
        jwt_federation_sources: Vec::new(),
        jwt_federation_providers: Vec::new(),
    })
}

async fn render_proxy(conn: &mut Conn, p: &store::Provider) -> ApiResult<ProxyProvider> {
    let ProviderKind::Proxy(x) = &p.fields.kind else {
        return Err(ApiError::NotFound("proxy provider".into()));
    };
    Ok(ProxyProvider {
        base: base(conn, p).await?,
        client_id: p.fields.client_id.clone(),
        internal_host: x.internal_host.clone(),
        external_host: x.external_host.clone(),
        internal_host_ssl_validation: x.internal_host_ssl_validation,
        certificate: None,
        skip_path_regex: x.skip_path_regex.clone(),
        basic_auth_enabled: x.basic_auth_enabled,
        basic_auth_password_attribute: x.basic_auth_password_attribute.clone(),
        basic_auth_user_attribute: x.basic_auth_user_attribute.clone(),
        mode: x.mode,
        intercept_header_auth: x.intercept_header_auth,
        redirect_uris: vec![RedirectUri {
            matching_mode: MatchingMode::Strict,
            url: format!(
                "{}{OUTPOST_CALLBACK}",
                x.external_host.trim_end_matches('/')
            ),
            redirect_uri_type: Some(RedirectUriType::Authorization),
        }],
        cookie_domain: x.cookie_domain.clone(),
        jwt_federation_sources: Vec::new(),
        jwt_federation_providers: Vec::new(),
        access_token_validity: p.fields.access_token_validity.clone(),
        refresh_token_validity: p.fields.refresh_token_validity.clone(),
        outpost_set: outposts::names_serving(conn, p.id).await?,
    })
}

/// Checks that `flow` exists and has `designation`, recording the problem under `field`.
async fn check_flow(
    conn: &mut Conn,
    errors: &mut Errors,
    field: &str,
    flow: Option<Uuid>,
    designation: FlowDesignation,
) -> ApiResult<()> {
    let Some(uuid) = flow else { return Ok(()) };
    match sql::get::<flows::Flow>(conn, uuid).await {
        Ok(f) if f.fields.designation == designation => {}
        Ok(f) => errors.add(
            field,
            format!(
                "Flow `{}` is a {} flow; choose a flow designated {designation}.",
                f.fields.slug, f.fields.designation
            ),
        ),
        Err(gatehouse_store::Error::NotFound { .. }) => errors.add(
            field,
            format!("Invalid pk \"{uuid}\" - object does not exist."),
        ),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Common fields of both kinds as sent in a request.
struct Common<'a> {
    name: &'a Option<String>,
    authorization_flow: &'a Option<Uuid>,
    invalidation_flow: &'a Option<Option<Uuid>>,
    authentication_flow: &'a Option<Option<Uuid>>,
    access_token_validity: &'a Option<String>,
    refresh_token_validity: &'a Option<String>,
}

/// Merges the common fields into `base`, validating them.
async fn merge_common(
    conn: &mut Conn,
    errors: &mut Errors,
    base: &ProviderFields,
    req: Common<'_>,
    full: bool,
) -> ApiResult<ProviderFields> {
    if full {
        errors.require("name", req.name.as_ref());
        errors.require("authorization_flow", req.authorization_flow.as_ref());
        if req.invalidation_flow.is_none() {
            errors.add("invalidation_flow", "This field is required.");
        }
    }
    let merged = ProviderFields {
        name: or(req.name, &base.name),
        authorization_flow: or(req.authorization_flow, &base.authorization_flow),
        invalidation_flow: or(req.invalidation_flow, &base.invalidation_flow),
        authentication_flow: or(req.authentication_flow, &base.authentication_flow),
        client_id: base.client_id.clone(),
        client_secret: base.client_secret.clone(),
        access_token_validity: or(req.access_token_validity, &base.access_token_validity),
        refresh_token_validity: or(req.refresh_token_validity, &base.refresh_token_validity),
        kind: base.kind.clone(),
    };
    if req.name.is_some() {
        errors.check("name", validate::name(&merged.name));
    }
    errors.duration("access_token_validity", &merged.access_token_validity);
    errors.duration("refresh_token_validity", &merged.refresh_token_validity);
    if req.authorization_flow.is_some() {
        check_flow(
            conn,
            errors,
            "authorization_flow",
            Some(merged.authorization_flow),
            FlowDesignation::Authorization,
        )
        .await?;
    }
    check_flow(
        conn,
        errors,
        "invalidation_flow",
        merged.invalidation_flow,
        FlowDesignation::Invalidation,
    )
    .await?;
    check_flow(
        conn,
        errors,
        "authentication_flow",
        merged.authentication_flow,
        FlowDesignation::Authentication,
    )
    .await?;
    Ok(merged)
}

fn blank(kind: ProviderKind, access: &str) -> ProviderFields {
    ProviderFields {
        name: String::new(),
        authorization_flow: Uuid::nil(),
        invalidation_flow: None,
        authentication_flow: None,
        client_id: secret::new_token(),
        client_secret: format!("{}{}", secret::new_token(), secret::new_token()),
        access_token_validity: access.into(),
        refresh_token_validity: "days=30".into(),
        kind,
    }
}

/// The settings of a new OAuth2 provider before the request is applied.
pub(crate) fn oauth2_defaults() -> ProviderFields {
    blank(
        ProviderKind::OAuth2(OAuth2Settings {
            client_type: ClientType::Confidential,
            access_code_validity: "minutes=1".into(),
            include_claims_in_id_token: true,
            sub_mode: SubMode::HashedUserId,
            signing_algorithm: SigningAlgorithm::Rs256,
            issuer_mode: IssuerMode::PerProvider,
            logout_uri: String::new(),
            redirect_uris: Vec::new(),
        }),
        "minutes=5",
    )
}

/// The settings of a new proxy provider before the request is applied.
pub(crate) fn proxy_defaults() -> ProviderFields {
    blank(
        ProviderKind::Proxy(ProxySettings {
            mode: ProxyMode::ForwardSingle,
            external_host: String::new(),
            internal_host: String::new(),
            internal_host_ssl_validation: true,
            cookie_domain: String::new(),
            skip_path_regex: String::new(),
            basic_auth_enabled: false,
            basic_auth_user_attribute: String::new(),
            basic_auth_password_attribute: String::new(),
            intercept_header_auth: true,
        }),
        "hours=24",
    )
}

async fn oauth2_fields(
    conn: &mut Conn,
    _admin: &Admin,
    current: Option<&ProviderFields>,
    req: &OAuth2ProviderRequest,
    full: bool,
) -> ApiResult<ProviderFields> {
    let mut errors = Errors::default();
    let defaults = oauth2_defaults();
    let common = Common {
        name: &req.name,
        authorization_flow: &req.authorization_flow,
        invalidation_flow: &req.invalidation_flow,
        authentication_flow: &req.authentication_flow,
        access_token_validity: &req.access_token_validity,
        refresh_token_validity: &req.refresh_token_validity,
    };
    let mut merged = merge_common(
        conn,
        &mut errors,
        current.unwrap_or(&defaults),
        common,
        full,
    )
    .await?;
    if full {
        errors.require("redirect_uris", req.redirect_uris.as_ref());
    }
    client_id(&mut errors, &req.client_id, &mut merged);
    merged.client_secret = or(&req.client_secret, &merged.client_secret);
    let ProviderKind::OAuth2(mut o) = merged.kind.clone() else {
        return Err(ApiError::NotFound("OAuth2 provider".into()));
    };
    o.client_type = or(&req.client_type, &o.client_type);
    o.access_code_validity = or(&req.access_code_validity, &o.access_code_validity);
    o.include_claims_in_id_token = or(
        &req.include_claims_in_id_token,
        &o.include_claims_in_id_token,
    );
    o.sub_mode = or(&req.sub_mode, &o.sub_mode);
    o.signing_algorithm = or(&req.signing_algorithm, &o.signing_algorithm);
    o.issuer_mode = or(&req.issuer_mode, &o.issuer_mode);
    o.logout_uri = or(&req.logout_uri, &o.logout_uri);
    if let Some(uris) = &req.redirect_uris {
        o.redirect_uris = uris
            .iter()
            .map(|u| store::RedirectUri {
                matching_mode: u.matching_mode,
                url: u.url.clone(),
                redirect_uri_type: u
                    .redirect_uri_type
                    .unwrap_or(RedirectUriType::Authorization),
            })
            .collect();
    }
    errors.duration("access_code_validity", &o.access_code_validity);
    for uri in &o.redirect_uris {
        errors.check(
            "redirect_uris",
            gatehouse_oidc::redirect::check(uri.matching_mode, &uri.url).map_err(|e| e.to_string()),
        );
    }
    if o.client_type == ClientType::Confidential && merged.client_secret.len() < 16 {
        errors.add("client_secret", "A confidential client needs a secret of at least 16 characters; leave it out to generate one.");
    }
    if let Some(Some(_)) = req.encryption_key {
        errors.add(
            "encryption_key",
            "Gatehouse does not encrypt tokens; leave this field empty.",
        );
    }
    for (field, empty) in [
        (
            "jwt_federation_sources",
            req.jwt_federation_sources
                .as_ref()
                .is_none_or(Vec::is_empty),
        ),
        (
            "jwt_federation_providers",
            req.jwt_federation_providers
                .as_ref()
                .is_none_or(Vec::is_empty),
        ),
    ] {
        if !empty {
            errors.add(
                field,
                "Gatehouse does not support this yet; leave this field empty.",
            );
        }
    }
    merged.kind = ProviderKind::OAuth2(o);
    errors.finish()?;
    Ok(merged)
}

/// Checks a requested client id and takes it over.
fn client_id(errors: &mut Errors, requested: &Option<String>, merged: &mut ProviderFields) {
    if let Some(id) = requested {
        if id.is_empty()
            || id.len() > 255
            || id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            errors.add("client_id", "must be 1 to 255 characters without spaces.");
        }
    }
    merged.client_id = or(requested, &merged.client_id);
}

async fn proxy_fields(
    conn: &mut Conn,
    admin: &Admin,
    current: Option<&ProviderFields>,
    req: &ProxyProviderRequest,
    full: bool,
) -> ApiResult<ProviderFields> {
    let mut errors = Errors::default();
    let defaults = proxy_defaults();
    let common = Common {
        name: &req.name,
        authorization_flow: &req.authorization_flow,
        invalidation_flow: &req.invalidation_flow,
        authentication_flow: &req.authentication_flow,
        access_token_validity: &req.access_token_validity,
        refresh_token_validity: &req.refresh_token_validity,
    };
    let mut merged = merge_common(
        conn,
        &mut errors,
        current.unwrap_or(&defaults),
        common,
        full,
    )
    .await?;
    if full {
        errors.require("external_host", req.external_host.as_ref());
    }
    client_id(&mut errors, &req.client_id, &mut merged);
    let ProviderKind::Proxy(mut x) = merged.kind.clone() else {
        return Err(ApiError::NotFound("proxy provider".into()));
    };
    x.mode = or(&req.mode, &x.mode);
    x.external_host = or(&req.external_host, &x.external_host);
    x.internal_host = or(&req.internal_host, &x.internal_host);
    x.internal_host_ssl_validation = or(
        &req.internal_host_ssl_validation,
        &x.internal_host_ssl_validation,
    );
    x.cookie_domain = or(&req.cookie_domain, &x.cookie_domain);
    x.skip_path_regex = or(&req.skip_path_regex, &x.skip_path_regex);
    x.basic_auth_enabled = or(&req.basic_auth_enabled, &x.basic_auth_enabled);
    x.basic_auth_user_attribute = or(&req.basic_auth_user_attribute, &x.basic_auth_user_attribute);
    x.basic_auth_password_attribute = or(
        &req.basic_auth_password_attribute,
        &x.basic_auth_password_attribute,
    );
    x.intercept_header_auth = or(&req.intercept_header_auth, &x.intercept_header_auth);
    if !x.external_host.is_empty() {
        for (field, message) in validate::proxy_settings(
            x.mode,
            &x.external_host,
            &x.internal_host,
            &x.cookie_domain,
            &x.skip_path_regex,
        ) {
            errors.add(field, message);
        }
        if let Some(message) = claims_gatehouse(x.mode, &x.external_host, &admin.external_url) {
            errors.add("external_host", message);
        }
    }
    if let Some(Some(_)) = req.certificate {
        errors.add("certificate", "Gatehouse does not manage TLS certificates; terminate TLS at the proxy and leave this empty.");
    }
    merged.kind = ProviderKind::Proxy(x);
    errors.finish()?;
    Ok(merged)
}

/// Why a proxy provider may not have `external_host` in `mode`: it is Gatehouse's own
/// address, where the outpost's callback would land on Gatehouse's home page (T6, #13 low
/// items). forward_domain is exempt: its external host is the shared login host by design.
fn claims_gatehouse(mode: ProxyMode, external_host: &str, external_url: &str) -> Option<String> {
    use gatehouse_outpost::hosts::authority;
    let own = authority(external_url)?;
    (mode != ProxyMode::ForwardDomain && authority(external_host).as_deref() == Some(&own)).then(|| {
        format!(
            "`{external_host}` is Gatehouse's own address ({external_url}): the login would come back to Gatehouse's home page instead of the application. Use the application's own host (e.g. https://app.example.com), routed to the application's ingress (forward_single) or to Gatehouse for proxy mode."
        )
    })
}

async fn get_kind(
    conn: &mut Conn,
    sealing: &SecretKey,
    id: i64,
    kind: &'static str,
) -> ApiResult<store::Provider> {
    let p = store::get(conn, sealing, id).await?;
    if p.fields.kind.tag() != kind {
        return Err(ApiError::NotFound(format!("{kind} provider with id {id}")));
    }
    Ok(p)
}

async fn list_kind(
    conn: &mut Conn,
    sealing: &SecretKey,
    spec: &ListSpec,
    kind: &'static str,
) -> ApiResult<Listed<store::Provider>> {
    let mut spec = spec.clone();
    spec.filters.push(Filter::Equals("p.kind", kind.into()));
    Ok(store::list(conn, sealing, &spec).await?)
}

/// Writes a provider and, when the request names them, its scope mappings (which must exist).
async fn write_kind(
    conn: &mut Conn,
    sealing: &SecretKey,
    current: Option<&store::Provider>,
    fields: ProviderFields,
    mappings: Option<&[Uuid]>,
) -> ApiResult<store::Provider> {
    if let Some(mappings) = mappings {
        let mut errors = Errors::default();
        for uuid in mappings {
            if sql::find::<scope_mappings::ScopeMapping>(conn, "uuid", (*uuid).into())
                .await?
                .is_none()
            {
                errors.add(
                    "property_mappings",
                    format!("Invalid pk \"{uuid}\" - object does not exist."),
                );
            }
        }
        errors.finish()?;
    }
    let written = match current {
        Some(c) => store::update(conn, sealing, c.id, &fields).await?,
        None => store::create(conn, sealing, &fields).await?,
    };
    if let Some(mappings) = mappings {
        scope_mappings::select_for_provider(conn, written.id, mappings).await?;
    }
    Ok(written)
}

/// An OAuth2/OIDC provider as an API resource.
pub(crate) struct OAuth2(store::Provider);
/// A proxy provider as an API resource.
pub(crate) struct Proxy(store::Provider);

impl From<store::Provider> for OAuth2 {
    fn from(p: store::Provider) -> Self {
        OAuth2(p)
    }
}

impl From<store::Provider> for Proxy {
    fn from(p: store::Provider) -> Self {
        Proxy(p)
    }
}

/// Implements [`Resource`] for one provider kind; the kinds differ only in types and validation.
macro_rules! provider_resource {
    ($ty:ident, $kind:literal, $wire:ty, $req:ty, $render:ident, $fields:ident) => {
        impl Resource for $ty {
            const MODEL: &'static str = concat!($kind, "provider");
            const RULES: ListRules = RULES;
            type Key = i64;
            type Wire = $wire;
            type Request = $req;

            async fn find(conn: &mut Conn, sealing: &SecretKey, key: &i64) -> ApiResult<Self> {
                Ok($ty(get_kind(conn, sealing, *key, $kind).await?))
            }

            async fn list(
                conn: &mut Conn,
                sealing: &SecretKey,
                spec: &ListSpec,
            ) -> ApiResult<Listed<Self>> {
                let listed = list_kind(conn, sealing, spec, $kind).await?;
                Ok(Listed {
                    count: listed.count,
                    items: listed.items.into_iter().map($ty).collect(),
                })
            }

            async fn render(
                &self,
                conn: &mut Conn,
                _sealing: &SecretKey,
                _settings: &Settings,
            ) -> ApiResult<$wire> {
                $render(conn, &self.0).await
            }

            async fn write(
                conn: &mut Conn,
                sealing: &SecretKey,
                admin: &Admin,
                current: Option<Self>,
                req: $req,
                full: bool,
            ) -> ApiResult<Self> {
                let current = current.map(|c| c.0);
                let fields =
                    $fields(conn, admin, current.as_ref().map(|c| &c.fields), &req, full).await?;
                let mappings = req.property_mappings.as_deref();
                Ok($ty(write_kind(
                    conn,
                    sealing,
                    current.as_ref(),
                    fields,
                    mappings,
                )
                .await?))
            }

            async fn delete(self, conn: &mut Conn, _admin: &Admin) -> ApiResult<()> {
                Ok(store::delete(conn, self.0.id).await?)
            }

            fn label(&self) -> (String, String) {
                (self.0.id.to_string(), self.0.fields.name.clone())
            }
        }
    };
}

provider_resource!(
    OAuth2,
    "oauth2",
    OAuth2Provider,
    OAuth2ProviderRequest,
    render_oauth2,
    oauth2_fields
);
provider_resource!(
    Proxy,
    "proxy",
    ProxyProvider,
    ProxyProviderRequest,
    render_proxy,
    proxy_fields
);
