//! Providers: how an application authenticates users — OAuth2/OIDC or the proxy outpost.
//!
//! A base row in `providers` (shared integer ids, as Authentik's API expects) plus one row in
//! the table of its kind.

use gatehouse_core::kinds::{
    ClientType, IssuerMode, MatchingMode, ProxyMode, RedirectUriType, SigningAlgorithm, SubMode,
};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::sealed::{self, PROVIDER_SECRET};
use crate::sql::{self, Entity, ListSpec, Listed, RowExt, Value};
use crate::{Result, SecretKey};

/// One allowed redirect URI of an OAuth2 client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    /// Exact or regex comparison.
    pub matching_mode: MatchingMode,
    /// The URI or pattern.
    pub url: String,
    /// Authorization callback or post-logout return.
    pub redirect_uri_type: RedirectUriType,
}

/// Settings only OAuth2/OIDC providers have.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2Settings {
    /// Confidential (has a secret) or public (PKCE).
    pub client_type: ClientType,
    /// Lifetime of authorization codes.
    pub access_code_validity: String,
    /// Put profile claims into the ID token too.
    pub include_claims_in_id_token: bool,
    /// What `sub` contains.
    pub sub_mode: SubMode,
    /// How tokens are signed.
    pub signing_algorithm: SigningAlgorithm,
    /// How `iss` is formed.
    pub issuer_mode: IssuerMode,
    /// Front/back-channel logout URI.
    pub logout_uri: String,
    /// Allowed redirect URIs, in order.
    pub redirect_uris: Vec<RedirectUri>,
}

/// Settings only proxy (outpost) providers have.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// Forward auth (single/domain) or reverse proxy.
    pub mode: ProxyMode,
    /// The URL users reach the application at.
    pub external_host: String,
    /// Upstream for proxy mode.
    pub internal_host: String,
    /// Verify the upstream's TLS certificate.
    pub internal_host_ssl_validation: bool,
    /// Cookie domain for forward_domain mode.
    pub cookie_domain: String,
    /// Newline-separated regexes of paths that need no login.
    pub skip_path_regex: String,
    /// Send `Authorization: Basic` built from user attributes.
    pub basic_auth_enabled: bool,
    /// Attribute holding the Basic-auth user.
    pub basic_auth_user_attribute: String,
    /// Attribute holding the Basic-auth password.
    pub basic_auth_password_attribute: String,
    /// Answer 401 instead of redirecting when an Authorization header is present.
    pub intercept_header_auth: bool,
}

/// The kind of provider with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    /// OAuth2 / OpenID Connect.
    OAuth2(OAuth2Settings),
    /// Forward auth / reverse proxy through the outpost.
    Proxy(ProxySettings),
}

impl ProviderKind {
    /// `oauth2` or `proxy`, as stored.
    pub fn tag(&self) -> &'static str {
        match self {
            ProviderKind::OAuth2(_) => "oauth2",
            ProviderKind::Proxy(_) => "proxy",
        }
    }
}

/// The fields of a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderFields {
    /// Unique name.
    pub name: String,
    /// Flow run to authorise access (consent).
    pub authorization_flow: Uuid,
    /// Flow run at logout.
    pub invalidation_flow: Option<Uuid>,
    /// Flow run to log in when no session exists.
    pub authentication_flow: Option<Uuid>,
    /// OAuth2 client id (proxy providers are OAuth2 clients of Gatehouse too).
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: String,
    /// Access token / proxy session lifetime, e.g. `weeks=4`.
    pub access_token_validity: String,
    /// Refresh token lifetime.
    pub refresh_token_validity: String,
    /// Kind and kind-specific settings.
    pub kind: ProviderKind,
}

/// A stored provider. The client secret is plain text here: sealed on write, opened on read.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    /// Integer primary key (the API's `pk`).
    pub id: i64,
    /// Fields.
    pub fields: ProviderFields,
}

impl Entity for Provider {
    const WHAT: &'static str = "provider";
    const SELECT: &'static str =
        "SELECT p.*, o.client_type, o.access_code_validity, o.include_claims_in_id_token, \
        o.sub_mode, o.signing_algorithm, o.issuer_mode, o.logout_uri, x.mode, x.external_host, x.internal_host, \
        x.internal_host_ssl_validation, x.cookie_domain, x.skip_path_regex, x.basic_auth_enabled, \
        x.basic_auth_user_attribute, x.basic_auth_password_attribute, x.intercept_header_auth \
        FROM providers p LEFT JOIN oauth2_providers o ON o.provider_id = p.id \
        LEFT JOIN proxy_providers x ON x.provider_id = p.id";
    const KEY: &'static str = "p.id";

    fn from_row(row: &AnyRow) -> Result<Self> {
        let kind = match row.text("kind")?.as_str() {
            "proxy" => ProviderKind::Proxy(ProxySettings {
                mode: row.parsed("mode")?,
                external_host: row.text("external_host")?,
                internal_host: row.text("internal_host")?,
                internal_host_ssl_validation: row.flag("internal_host_ssl_validation")?,
                cookie_domain: row.text("cookie_domain")?,
                skip_path_regex: row.text("skip_path_regex")?,
                basic_auth_enabled: row.flag("basic_auth_enabled")?,
                basic_auth_user_attribute: row.text("basic_auth_user_attribute")?,
                basic_auth_password_attribute: row.text("basic_auth_password_attribute")?,
                intercept_header_auth: row.flag("intercept_header_auth")?,
            }),
            _ => ProviderKind::OAuth2(OAuth2Settings {
                client_type: row.parsed("client_type")?,
                access_code_validity: row.text("access_code_validity")?,
                include_claims_in_id_token: row.flag("include_claims_in_id_token")?,
                sub_mode: row.parsed("sub_mode")?,
                signing_algorithm: row.parsed("signing_algorithm")?,
                issuer_mode: row.parsed("issuer_mode")?,
                logout_uri: row.text("logout_uri")?,
                redirect_uris: Vec::new(),
            }),
        };
        Ok(Provider {
            id: row.int("id")?,
            fields: ProviderFields {
                name: row.text("name")?,
                authorization_flow: row.uuid("authorization_flow")?,
                invalidation_flow: row.opt_uuid("invalidation_flow")?,
                authentication_flow: row.opt_uuid("authentication_flow")?,
                client_id: row.text("client_id")?,
                client_secret: row.text("client_secret")?,
                access_token_validity: row.text("access_token_validity")?,
                refresh_token_validity: row.text("refresh_token_validity")?,
                kind,
            },
        })
    }
}

fn base_columns(key: &SecretKey, f: &ProviderFields) -> Result<Vec<(&'static str, Value)>> {
    let secret = sealed::seal(key, PROVIDER_SECRET, &f.client_id, &f.client_secret)?;
    Ok(vec![
        ("name", f.name.clone().into()),
        ("kind", f.kind.tag().into()),
        ("authorization_flow", f.authorization_flow.into()),
        ("invalidation_flow", f.invalidation_flow.into()),
        ("authentication_flow", f.authentication_flow.into()),
        ("client_id", f.client_id.clone().into()),
        ("client_secret", secret.into()),
        (
            "access_token_validity",
            f.access_token_validity.clone().into(),
        ),
        (
            "refresh_token_validity",
            f.refresh_token_validity.clone().into(),
        ),
        ("last_updated", sql::now().into()),
    ])
}

async fn write_kind(conn: &mut AnyConnection, id: i64, kind: &ProviderKind) -> Result<()> {
    sql::execute(
        conn,
        "DELETE FROM oauth2_providers WHERE provider_id = $1",
        vec![id.into()],
    )
    .await?;
    sql::execute(
        conn,
        "DELETE FROM proxy_providers WHERE provider_id = $1",
        vec![id.into()],
    )
    .await?;
    match kind {
        ProviderKind::OAuth2(o) => {
            sql::insert(
                conn,
                "oauth2_providers",
                vec![
                    ("provider_id", id.into()),
                    ("client_type", o.client_type.as_str().into()),
                    (
                        "access_code_validity",
                        o.access_code_validity.clone().into(),
                    ),
                    (
                        "include_claims_in_id_token",
                        o.include_claims_in_id_token.into(),
                    ),
                    ("sub_mode", o.sub_mode.as_str().into()),
                    ("signing_algorithm", o.signing_algorithm.as_str().into()),
                    ("issuer_mode", o.issuer_mode.as_str().into()),
                    ("logout_uri", o.logout_uri.clone().into()),
                ],
                None,
            )
            .await?;
            for (position, uri) in (0i64..).zip(&o.redirect_uris) {
                sql::insert(
                    conn,
                    "oauth2_redirect_uris",
                    vec![
                        ("provider_id", id.into()),
                        ("position", position.into()),
                        ("matching_mode", uri.matching_mode.as_str().into()),
                        ("url", uri.url.clone().into()),
                        ("redirect_uri_type", uri.redirect_uri_type.as_str().into()),
                    ],
                    None,
                )
                .await?;
            }
        }
        ProviderKind::Proxy(x) => {
            sql::insert(
                conn,
                "proxy_providers",
                vec![
                    ("provider_id", id.into()),
                    ("mode", x.mode.as_str().into()),
                    ("external_host", x.external_host.clone().into()),
                    ("internal_host", x.internal_host.clone().into()),
                    (
                        "internal_host_ssl_validation",
                        x.internal_host_ssl_validation.into(),
                    ),
                    ("cookie_domain", x.cookie_domain.clone().into()),
                    ("skip_path_regex", x.skip_path_regex.clone().into()),
                    ("basic_auth_enabled", x.basic_auth_enabled.into()),
                    (
                        "basic_auth_user_attribute",
                        x.basic_auth_user_attribute.clone().into(),
                    ),
                    (
                        "basic_auth_password_attribute",
                        x.basic_auth_password_attribute.clone().into(),
                    ),
                    ("intercept_header_auth", x.intercept_header_auth.into()),
                ],
                None,
            )
            .await?;
        }
    }
    Ok(())
}

/// Opens the sealed client secret and reads the redirect URIs.
async fn complete(
    conn: &mut AnyConnection,
    key: &SecretKey,
    mut provider: Provider,
) -> Result<Provider> {
    let f = &mut provider.fields;
    f.client_secret = sealed::open(key, PROVIDER_SECRET, &f.client_id, &f.client_secret)?;
    if let ProviderKind::OAuth2(o) = &mut provider.fields.kind {
        let rows = sql::fetch_all(
            conn,
            "SELECT matching_mode, url, redirect_uri_type FROM oauth2_redirect_uris WHERE provider_id = $1 ORDER BY position",
            vec![provider.id.into()],
        )
        .await?;
        o.redirect_uris = rows
            .iter()
            .map(|r| {
                Ok(RedirectUri {
                    matching_mode: r.parsed("matching_mode")?,
                    url: r.text("url")?,
                    redirect_uri_type: r.parsed("redirect_uri_type")?,
                })
            })
            .collect::<Result<_>>()?;
    }
    Ok(provider)
}

/// Creates a provider of either kind.
pub async fn create(
    conn: &mut AnyConnection,
    key: &SecretKey,
    fields: &ProviderFields,
) -> Result<Provider> {
    let id = sql::insert(conn, "providers", base_columns(key, fields)?, Some("id"))
        .await?
        .unwrap_or_default();
    write_kind(conn, id, &fields.kind).await?;
    crate::changes::append(conn, crate::changes::ChangeKind::Provider(id)).await?;
    get(conn, key, id).await
}

/// Replaces provider `id` (its kind may not change; callers check).
pub async fn update(
    conn: &mut AnyConnection,
    key: &SecretKey,
    id: i64,
    fields: &ProviderFields,
) -> Result<Provider> {
    crate::changes::append(conn, crate::changes::ChangeKind::Provider(id)).await?;
    sql::update(
        conn,
        "providers",
        Provider::WHAT,
        "id",
        id.into(),
        base_columns(key, fields)?,
    )
    .await?;
    write_kind(conn, id, &fields.kind).await?;
    get(conn, key, id).await
}

/// Deletes provider `id`; its application keeps existing without a provider.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<()> {
    crate::changes::append(conn, crate::changes::ChangeKind::Provider(id)).await?;
    sql::delete(conn, "providers", Provider::WHAT, "id", id.into()).await
}

/// Provider `id` with its redirect URIs.
pub async fn get(conn: &mut AnyConnection, key: &SecretKey, id: i64) -> Result<Provider> {
    let provider = sql::get(conn, id).await?;
    complete(conn, key, provider).await
}

/// The provider named `name`, if any.
pub async fn find_by_name(
    conn: &mut AnyConnection,
    key: &SecretKey,
    name: &str,
) -> Result<Option<Provider>> {
    match sql::find::<Provider>(conn, "p.name", name.into()).await? {
        Some(p) => Ok(Some(complete(conn, key, p).await?)),
        None => Ok(None),
    }
}

/// The provider whose OAuth2 client id is `client_id`, if any.
pub async fn find_by_client_id(
    conn: &mut AnyConnection,
    key: &SecretKey,
    client_id: &str,
) -> Result<Option<Provider>> {
    match sql::find::<Provider>(conn, "p.client_id", client_id.into()).await? {
        Some(p) => Ok(Some(complete(conn, key, p).await?)),
        None => Ok(None),
    }
}

/// Lists providers (callers add a `p.kind` filter for one kind).
pub async fn list(
    conn: &mut AnyConnection,
    key: &SecretKey,
    spec: &ListSpec,
) -> Result<Listed<Provider>> {
    let listed = sql::list::<Provider>(conn, spec).await?;
    let mut items = Vec::with_capacity(listed.items.len());
    for p in listed.items {
        items.push(complete(conn, key, p).await?);
    }
    Ok(Listed {
        count: listed.count,
        items,
    })
}

/// The token lifetime of every provider (as written, e.g. `minutes=5`): a retired signing key
/// stays published for the longest of them.
pub async fn access_token_validities(conn: &mut AnyConnection) -> Result<Vec<String>> {
    sql::fetch_all(
        conn,
        "SELECT access_token_validity FROM providers",
        Vec::new(),
    )
    .await?
    .iter()
    .map(|row| row.text("access_token_validity"))
    .collect()
}
