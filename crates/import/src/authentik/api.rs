//! Reading Authentik's REST API: an API token of a superuser, and the pagination every list
//! answers with (`next` is a page number, 0 when there is none).
//!
//! The structs below hold only the fields the importer uses; unknown fields are ignored, so a
//! newer Authentik that adds fields reads the same.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Error;

/// Rows per page asked for; Authentik's default and a size every version accepts.
const PAGE_SIZE: usize = 100;
/// The most pages read from one list, so a server that never says "last page" cannot keep the
/// importer reading forever (a million objects per kind).
const MAX_PAGES: usize = 10_000;

/// A client of one Authentik instance.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Deserialize)]
struct Pagination {
    next: u64,
}

#[derive(Deserialize)]
struct Page<T> {
    pagination: Pagination,
    results: Vec<T>,
}

impl Client {
    /// A client of the Authentik at `url` (with or without `/api/v3`), authenticating with
    /// `token`.
    pub fn new(url: &str, token: &str) -> Result<Client, Error> {
        let base = url
            .trim_end_matches('/')
            .trim_end_matches("/api/v3")
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Source {
                url: base.clone(),
                message: e.to_string(),
            })?;
        Ok(Client {
            http,
            base,
            token: token.to_owned(),
        })
    }

    /// `GET /api/v3/<path>` (with its query) as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let url = format!("{}/api/v3/{path}", self.base);
        let failed = |message: String| Error::Source {
            url: url.clone(),
            message,
        };
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| {
                failed(format!(
                    "{}; check --url and that Authentik is reachable",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| failed(e.to_string()))?;
        match status.as_u16() {
            200 => {}
            401 | 403 => {
                return Err(failed(format!(
                    "HTTP {status}: the token was refused; pass an API token of a superuser with --token"
                )))
            }
            _ => {
                let excerpt: String = body.chars().take(200).collect();
                return Err(failed(format!("HTTP {status}: {excerpt}")));
            }
        }
        serde_json::from_str(&body).map_err(|e| Error::Shape {
            url: url.clone(),
            message: e.to_string(),
        })
    }

    /// Every object of the list at `path` (e.g. `core/users/?include_groups=false`).
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, Error> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        let mut page = 1;
        for _ in 0..MAX_PAGES {
            let answer: Page<T> = self
                .get(&format!("{path}{sep}page={page}&page_size={PAGE_SIZE}"))
                .await?;
            all.extend(answer.results);
            if answer.pagination.next == 0 {
                return Ok(all);
            }
            page = answer.pagination.next;
        }
        Err(Error::Shape {
            url: format!("{}/api/v3/{path}", self.base),
            message: format!("more than {MAX_PAGES} pages"),
        })
    }
}

/// A user (`core/users/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    /// Integer id (what bindings name).
    pub(crate) pk: i64,
    /// Username.
    pub(crate) username: String,
    /// Display name.
    pub(crate) name: String,
    /// Email.
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// Active.
    pub(crate) is_active: bool,
    /// internal, external, service_account, internal_service_account.
    #[serde(rename = "type", default)]
    pub(crate) user_type: Option<String>,
    /// Organising path.
    #[serde(default)]
    pub(crate) path: Option<String>,
    /// Attributes.
    #[serde(default)]
    pub(crate) attributes: Map<String, Value>,
    /// Direct groups (UUIDs).
    #[serde(default)]
    pub(crate) groups: Vec<Uuid>,
}

/// A group (`core/groups/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Group {
    /// UUID.
    pub(crate) pk: Uuid,
    /// Name.
    pub(crate) name: String,
    /// Members are superusers.
    #[serde(default)]
    pub(crate) is_superuser: bool,
    /// Parents (2025.12 and later).
    #[serde(default)]
    pub(crate) parents: Vec<Uuid>,
    /// The one parent of earlier versions.
    #[serde(default)]
    pub(crate) parent: Option<Uuid>,
    /// Attributes.
    #[serde(default)]
    pub(crate) attributes: Map<String, Value>,
}

/// An application (`core/applications/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Application {
    /// UUID; the target of its policy bindings.
    pub(crate) pk: Uuid,
    /// Slug.
    pub(crate) slug: String,
    /// Name.
    pub(crate) name: String,
    /// Provider id.
    #[serde(default)]
    pub(crate) provider: Option<i64>,
    /// Launch URL.
    #[serde(default)]
    pub(crate) meta_launch_url: Option<String>,
    /// Description.
    #[serde(default)]
    pub(crate) meta_description: Option<String>,
    /// Publisher.
    #[serde(default)]
    pub(crate) meta_publisher: Option<String>,
    /// Open in a new tab.
    #[serde(default)]
    pub(crate) open_in_new_tab: Option<bool>,
    /// Hidden from the user page.
    #[serde(default)]
    pub(crate) meta_hide: Option<bool>,
    /// How bindings combine.
    #[serde(default)]
    pub(crate) policy_engine_mode: Option<String>,
    /// Group label.
    #[serde(default)]
    pub(crate) group: Option<String>,
}

/// A policy, group or user bound to a target (`policies/bindings/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Binding {
    /// Policy UUID.
    #[serde(default)]
    pub(crate) policy: Option<Uuid>,
    /// Group UUID.
    #[serde(default)]
    pub(crate) group: Option<Uuid>,
    /// User id.
    #[serde(default)]
    pub(crate) user: Option<i64>,
    /// Order.
    pub(crate) order: i64,
    /// Invert.
    #[serde(default)]
    pub(crate) negate: bool,
    /// Enabled.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// Timeout in seconds.
    #[serde(default = "thirty")]
    pub(crate) timeout: i64,
    /// Result on failure.
    #[serde(default)]
    pub(crate) failure_result: bool,
}

fn yes() -> bool {
    true
}
fn thirty() -> i64 {
    30
}

/// A flow (`flows/instances/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Flow {
    /// UUID.
    pub(crate) pk: Uuid,
    /// What policy bindings at the flow target (not `pk`).
    pub(crate) policybindingmodel_ptr_id: Uuid,
    /// Slug.
    pub(crate) slug: String,
    /// Name.
    pub(crate) name: String,
    /// Title.
    pub(crate) title: String,
    /// Designation.
    pub(crate) designation: String,
    /// Who may start it.
    #[serde(default)]
    pub(crate) authentication: Option<String>,
    /// How flow policies combine.
    #[serde(default)]
    pub(crate) policy_engine_mode: Option<String>,
    /// Layout.
    #[serde(default)]
    pub(crate) layout: Option<String>,
    /// On denial.
    #[serde(default)]
    pub(crate) denied_action: Option<String>,
    /// Password-manager compatibility.
    #[serde(default)]
    pub(crate) compatibility_mode: Option<bool>,
}

/// A stage placed in a flow (`flows/bindings/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StageBinding {
    /// What policy bindings evaluated at the stage target (not the binding's `pk`).
    pub(crate) policybindingmodel_ptr_id: Uuid,
    /// Stage UUID.
    pub(crate) stage: Uuid,
    /// Position.
    pub(crate) order: i64,
    /// How the policies at the stage combine (Authentik's default: `any`).
    #[serde(default)]
    pub(crate) policy_engine_mode: Option<String>,
}

/// A stage or policy as `stages/all/` and `policies/all/` list it: the kind is in the model
/// name, the settings at the kind's own path.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Polymorphic {
    /// UUID.
    pub(crate) pk: Uuid,
    /// Name.
    pub(crate) name: String,
    /// e.g. `authentik_stages_deny.denystage`.
    pub(crate) meta_model_name: String,
    /// Log evaluations (policies).
    #[serde(default)]
    pub(crate) execution_logging: bool,
}

/// A scope mapping (`propertymappings/provider/scope/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScopeMapping {
    /// UUID.
    pub(crate) pk: Uuid,
    /// Name.
    pub(crate) name: String,
    /// Set on Authentik's own mappings.
    #[serde(default)]
    pub(crate) managed: Option<String>,
    /// Scope.
    pub(crate) scope_name: String,
    /// Python.
    #[serde(default)]
    pub(crate) expression: String,
}

/// One redirect URI of an OAuth2 provider.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RedirectUri {
    /// strict or regex.
    pub(crate) matching_mode: String,
    /// The URI or pattern.
    pub(crate) url: String,
    /// authorization or logout (2025.x and later).
    #[serde(default)]
    pub(crate) redirect_uri_type: Option<String>,
}

/// An OAuth2/OIDC provider (`providers/oauth2/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OAuth2Provider {
    /// Integer id.
    pub(crate) pk: i64,
    /// Name.
    pub(crate) name: String,
    /// Flow UUID.
    pub(crate) authorization_flow: Uuid,
    /// Flow UUID.
    #[serde(default)]
    pub(crate) authentication_flow: Option<Uuid>,
    /// Flow UUID.
    #[serde(default)]
    pub(crate) invalidation_flow: Option<Uuid>,
    /// confidential or public.
    #[serde(default)]
    pub(crate) client_type: Option<String>,
    /// Client id.
    pub(crate) client_id: String,
    /// Client secret.
    #[serde(default)]
    pub(crate) client_secret: Option<String>,
    /// Redirect URIs.
    #[serde(default)]
    pub(crate) redirect_uris: Vec<RedirectUri>,
    /// Code lifetime.
    #[serde(default)]
    pub(crate) access_code_validity: Option<String>,
    /// Access token lifetime.
    #[serde(default)]
    pub(crate) access_token_validity: Option<String>,
    /// Refresh token lifetime.
    #[serde(default)]
    pub(crate) refresh_token_validity: Option<String>,
    /// Profile claims in the ID token.
    #[serde(default)]
    pub(crate) include_claims_in_id_token: Option<bool>,
    /// What `sub` is.
    #[serde(default)]
    pub(crate) sub_mode: Option<String>,
    /// How `iss` is formed.
    #[serde(default)]
    pub(crate) issuer_mode: Option<String>,
    /// Key pair UUID; none means HS256.
    #[serde(default)]
    pub(crate) signing_key: Option<Uuid>,
    /// Scope mapping UUIDs.
    #[serde(default)]
    pub(crate) property_mappings: Vec<Uuid>,
}

/// A proxy provider (`providers/proxy/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProxyProvider {
    /// Integer id.
    pub(crate) pk: i64,
    /// Name.
    pub(crate) name: String,
    /// Flow UUID.
    pub(crate) authorization_flow: Uuid,
    /// Flow UUID.
    #[serde(default)]
    pub(crate) authentication_flow: Option<Uuid>,
    /// Flow UUID.
    #[serde(default)]
    pub(crate) invalidation_flow: Option<Uuid>,
    /// The id the cookie name is derived from.
    pub(crate) client_id: String,
    /// proxy, forward_single or forward_domain.
    #[serde(default)]
    pub(crate) mode: Option<String>,
    /// External URL.
    pub(crate) external_host: String,
    /// Upstream.
    #[serde(default)]
    pub(crate) internal_host: Option<String>,
    /// Verify the upstream.
    #[serde(default)]
    pub(crate) internal_host_ssl_validation: Option<bool>,
    /// Cookie domain.
    #[serde(default)]
    pub(crate) cookie_domain: Option<String>,
    /// Unauthenticated paths.
    #[serde(default)]
    pub(crate) skip_path_regex: Option<String>,
    /// Basic auth towards the upstream.
    #[serde(default)]
    pub(crate) basic_auth_enabled: Option<bool>,
    /// Basic-auth user attribute.
    #[serde(default)]
    pub(crate) basic_auth_user_attribute: Option<String>,
    /// Basic-auth password attribute.
    #[serde(default)]
    pub(crate) basic_auth_password_attribute: Option<String>,
    /// 401 on requests with Authorization.
    #[serde(default)]
    pub(crate) intercept_header_auth: Option<bool>,
    /// Session lifetime.
    #[serde(default)]
    pub(crate) access_token_validity: Option<String>,
    /// Refresh lifetime.
    #[serde(default)]
    pub(crate) refresh_token_validity: Option<String>,
}

/// An OAuth login source (`sources/oauth/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OAuthSource {
    /// UUID.
    pub(crate) pk: Uuid,
    /// Slug: part of the callback URL registered at the service.
    pub(crate) slug: String,
    /// Button label.
    pub(crate) name: String,
    /// google, github, …
    pub(crate) provider_type: String,
    /// How identities link to users.
    #[serde(default)]
    pub(crate) user_matching_mode: Option<String>,
    /// Flow UUID.
    #[serde(default)]
    pub(crate) authentication_flow: Option<Uuid>,
    /// Flow UUID.
    #[serde(default)]
    pub(crate) enrollment_flow: Option<Uuid>,
    /// Client id at the service.
    pub(crate) consumer_key: String,
    /// Enabled.
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    /// Prominent.
    #[serde(default)]
    pub(crate) promoted: Option<bool>,
    /// Endpoints of generic OIDC sources.
    #[serde(default)]
    pub(crate) authorization_url: Option<String>,
    /// Token endpoint.
    #[serde(default)]
    pub(crate) access_token_url: Option<String>,
    /// Userinfo endpoint.
    #[serde(default)]
    pub(crate) profile_url: Option<String>,
    /// Discovery URL.
    #[serde(default)]
    pub(crate) oidc_well_known_url: Option<String>,
    /// Extra scopes.
    #[serde(default)]
    pub(crate) additional_scopes: Option<String>,
}

/// An outpost (`outposts/instances/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Outpost {
    /// Name.
    pub(crate) name: String,
    /// proxy, ldap, radius, rac.
    #[serde(rename = "type")]
    pub(crate) outpost_type: String,
    /// Provider ids.
    #[serde(default)]
    pub(crate) providers: Vec<i64>,
    /// `goauthentik.io/outposts/embedded` for the embedded one.
    #[serde(default)]
    pub(crate) managed: Option<String>,
}

/// A certificate-key pair (`crypto/certificatekeypairs/`), without key material.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KeyPair {
    /// UUID.
    pub(crate) pk: Uuid,
    /// Name.
    pub(crate) name: String,
    /// rsa, ec, …
    #[serde(default)]
    pub(crate) key_type: Option<String>,
}

/// An invitation (`stages/invitation/invitations/`); only counted.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Invitation {
    /// Name.
    pub(crate) name: String,
}
