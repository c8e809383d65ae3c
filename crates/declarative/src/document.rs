//! The typed file format. Every section is optional; unknown keys are refused so a typo never
//! silently does nothing. References to other objects use their natural keys.

use std::collections::BTreeMap;
use std::fmt;

use gatehouse_core::kinds::{
    ClientType, DeniedAction, FlowAuthentication, FlowDesignation, FlowLayout, IssuerMode,
    PolicyEngineMode, PolicyKind, ProxyMode, SigningAlgorithm, SourceProviderType, StageKind,
    SubMode, UserMatchingMode, UserType,
};
use gatehouse_proto::providers::RedirectUri;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// A problem with a config file, located in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file is not valid YAML/JSON or does not fit the format.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// File name as given by the client.
        file: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An entry is well-formed but cannot be applied (unknown reference, invalid value, unset
    /// variable, duplicate key).
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// File name.
        file: String,
        /// 1-based line of the entry, 0 when unknown.
        line: usize,
        /// Where: `users[alice@example.com].groups`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A secret given as an environment reference: `${VAR}` (must be set) or `${VAR:-}` (may be
/// unset or empty). Serialises as its resolved value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The variable name.
    pub var: String,
    /// Whether unset/empty is allowed.
    pub optional: bool,
    /// The value once resolved.
    pub value: Option<String>,
}

impl Secret {
    /// A secret that writes itself as its reference, `${VAR}` (or `${VAR:-}` when
    /// `optional`): for files generated for the operator, such as an import's.
    pub fn written(var: &str, optional: bool) -> Secret {
        let suffix = if optional { ":-" } else { "" };
        Secret {
            var: var.to_owned(),
            optional,
            value: Some(format!("${{{var}{suffix}}}")),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let inner = text
            .trim()
            .strip_prefix("${")
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "secrets must be environment references such as ${{GRAFANA_CLIENT_SECRET}}, not literals (got a {}-character literal)",
                    text.chars().count()
                ))
            })?;
        let (var, optional) = match inner.strip_suffix(":-") {
            Some(var) => (var, true),
            None => (inner, false),
        };
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(serde::de::Error::custom(format!(
                "`{text}` is not a valid reference: use ${{NAME}} or ${{NAME:-}}"
            )));
        }
        Ok(Secret {
            var: var.to_owned(),
            optional,
            value: None,
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value.as_deref() {
            Some(v) if !v.is_empty() => serializer.serialize_str(v),
            _ => serializer.serialize_none(),
        }
    }
}

/// A policy, group or user bound to a flow, stage binding or application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingEntry {
    /// Policy name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Evaluation order.
    #[serde(default)]
    pub order: i64,
    /// Invert the result.
    #[serde(default)]
    pub negate: bool,
    /// Disabled bindings are skipped.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds before evaluation is abandoned.
    #[serde(default = "thirty")]
    pub timeout: i64,
    /// Result when evaluation fails.
    #[serde(default)]
    pub failure_result: bool,
}

fn yes() -> bool {
    true
}
fn thirty() -> i64 {
    30
}

/// A group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    /// Unique name (the key).
    pub name: String,
    /// Members are superusers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_superuser: Option<bool>,
    /// Parent group names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parents: Option<Vec<String>>,
    /// Attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Username (the key).
    pub username: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// internal, external, service_account.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub user_type: Option<UserType>,
    /// Can log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    /// Organising path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    /// Direct group names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// A stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageEntry {
    /// Unique name (the key).
    pub name: String,
    /// What it does.
    pub kind: StageKind,
    /// Kind-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Map<String, Value>>,
}

/// A policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// Unique name (the key).
    pub name: String,
    /// What it checks.
    pub kind: PolicyKind,
    /// Log evaluations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_logging: Option<bool>,
    /// Kind-specific settings, e.g. `expression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Map<String, Value>>,
}

/// A stage placed in a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowStageEntry {
    /// Stage name.
    pub stage: String,
    /// Position (ascending).
    pub order: i64,
    /// Policies evaluated when the stage is reached.
    #[serde(default)]
    pub bindings: Vec<BindingEntry>,
    /// How those policies combine: `all` (the default) or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_engine_mode: Option<PolicyEngineMode>,
}

/// A flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowEntry {
    /// Slug (the key).
    pub slug: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Title shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub designation: Option<FlowDesignation>,
    /// Who may start it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<FlowAuthentication>,
    /// How flow policies combine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_engine_mode: Option<PolicyEngineMode>,
    /// Layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<FlowLayout>,
    /// On denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_action: Option<DeniedAction>,
    /// Password-manager compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_mode: Option<bool>,
    /// Background image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Stages in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<FlowStageEntry>>,
    /// Flow-level policy bindings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Vec<BindingEntry>>,
}

/// A scope mapping: custom claims as a CEL expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeMappingEntry {
    /// Unique name (the key).
    pub name: String,
    /// The scope that brings these claims.
    pub scope_name: String,
    /// CEL expression over `user` and `scopes` yielding a map of claims.
    pub expression: String,
    /// What the consent screen says about the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An OAuth2/OIDC provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2ProviderEntry {
    /// Unique name (the key).
    pub name: String,
    /// Authorization flow slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_flow: Option<String>,
    /// Invalidation flow slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidation_flow: Option<String>,
    /// Authentication flow slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_flow: Option<String>,
    /// confidential or public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_type: Option<ClientType>,
    /// Client id (generated when omitted on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client secret reference (generated once when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// Allowed redirect URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<RedirectUri>>,
    /// Authorization code lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_code_validity: Option<String>,
    /// Access token lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_validity: Option<String>,
    /// Refresh token lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_validity: Option<String>,
    /// Profile claims in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_claims_in_id_token: Option<bool>,
    /// What `sub` contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_mode: Option<SubMode>,
    /// Names of the scope mappings it uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_mappings: Option<Vec<String>>,
    /// `RS256` (default) or `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<SigningAlgorithm>,
    /// How `iss` is formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_mode: Option<IssuerMode>,
    /// Logout URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_uri: Option<String>,
}

/// A proxy (forward-auth) provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyProviderEntry {
    /// Unique name (the key).
    pub name: String,
    /// Client id (generated when omitted on create); the outpost's cookie name is derived
    /// from it, so an imported provider keeps the name its users' browsers hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Authorization flow slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_flow: Option<String>,
    /// Invalidation flow slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalidation_flow: Option<String>,
    /// Authentication flow slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_flow: Option<String>,
    /// forward_single, forward_domain or proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ProxyMode>,
    /// The URL users reach the application (or the central login host) at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_host: Option<String>,
    /// Upstream for proxy mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_host: Option<String>,
    /// Verify the upstream's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_host_ssl_validation: Option<bool>,
    /// Parent domain for forward_domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
    /// Paths that need no login, one regex per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_path_regex: Option<String>,
    /// Send Basic auth from user attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_enabled: Option<bool>,
    /// Attribute for the Basic-auth user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_user_attribute: Option<String>,
    /// Attribute for the Basic-auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_attribute: Option<String>,
    /// Answer 401 to requests with an Authorization header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intercept_header_auth: Option<bool>,
    /// Session lifetime (cookie Max-Age), e.g. `weeks=4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_validity: Option<String>,
    /// Refresh lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_validity: Option<String>,
}

/// An application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationEntry {
    /// Slug (the key).
    pub slug: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Provider name (empty for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Launch URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_launch_url: Option<String>,
    /// Icon URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_icon: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_description: Option<String>,
    /// Publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_publisher: Option<String>,
    /// Open in a new tab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_in_new_tab: Option<bool>,
    /// Hide from the user page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_hide: Option<bool>,
    /// How bindings combine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_engine_mode: Option<PolicyEngineMode>,
    /// Group label on the user page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Who may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Vec<BindingEntry>>,
}

/// A login source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// Slug (the key).
    pub slug: String,
    /// Button label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// google, github, facebook, openidconnect, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<SourceProviderType>,
    /// How outside identities link to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_matching_mode: Option<UserMatchingMode>,
    /// Flow for existing users (slug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_flow: Option<String>,
    /// Flow for new users (slug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_flow: Option<String>,
    /// Client id at the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_key: Option<String>,
    /// Client secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_secret: Option<Secret>,
    /// Enabled (forced off while the secret is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Prominent button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<bool>,
    /// Authorization endpoint (generic OIDC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// Token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_url: Option<String>,
    /// Userinfo endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_url: Option<String>,
    /// Discovery URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_well_known_url: Option<String>,
    /// Extra scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_scopes: Option<String>,
}

/// An outpost and the proxy providers it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutpostEntry {
    /// Unique name (the key).
    pub name: String,
    /// Proxy provider names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
    /// Settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
}

/// A whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Format version; only 1 exists.
    #[serde(default)]
    pub version: Option<u32>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Stages.
    #[serde(default)]
    pub stages: Vec<StageEntry>,
    /// Policies.
    #[serde(default)]
    pub policies: Vec<PolicyEntry>,
    /// Flows.
    #[serde(default)]
    pub flows: Vec<FlowEntry>,
    /// Scope mappings (custom claims).
    #[serde(default)]
    pub scope_mappings: Vec<ScopeMappingEntry>,
    /// OAuth2/OIDC providers.
    #[serde(default)]
    pub oauth2_providers: Vec<OAuth2ProviderEntry>,
    /// Proxy providers.
    #[serde(default)]
    pub proxy_providers: Vec<ProxyProviderEntry>,
    /// Applications.
    #[serde(default)]
    pub applications: Vec<ApplicationEntry>,
    /// Login sources.
    #[serde(default)]
    pub sources: Vec<SourceEntry>,
    /// Outposts.
    #[serde(default)]
    pub outposts: Vec<OutpostEntry>,
    /// Token-signing key pairs carried over from another identity provider.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyEntry>,
    /// Sign-in factors carried over from another identity provider.
    #[serde(default)]
    pub credentials: Vec<CredentialEntry>,
}

/// Sign-in factors carried over from another identity provider (`gatehouse import authentik`
/// writes them). They are seeded once: an entry is satisfied when the user already has a
/// password, a TOTP device of that name or a passkey with that credential id, so a login that
/// rehashes the password or moves a counter never shows up as drift, and applying twice plans
/// nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialEntry {
    /// Username (the key); the user must exist or be defined under `users:`.
    pub user: String,
    /// An encoded password hash: Django's `pbkdf2_sha256`, `pbkdf2_sha1`, `argon2`,
    /// `bcrypt_sha256` or `bcrypt` forms, or an argon2id PHC string. Verified at the next login
    /// and replaced by Gatehouse's own argon2id hash then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<Secret>,
    /// Authenticator-app devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub totp: Vec<TotpEntry>,
    /// Passkeys / security keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passkeys: Vec<PasskeyEntry>,
}

/// A TOTP device carried over (SHA-1, 6 digits, 30-second steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpEntry {
    /// Device name, unique per user (the key).
    pub name: String,
    /// The shared secret, base32.
    pub secret: Secret,
    /// The last time step a code was accepted for, so a code seen before is not accepted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<i64>,
}

/// A WebAuthn credential carried over; it keeps working where Gatehouse serves the same RP ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyEntry {
    /// Device name.
    pub name: String,
    /// Credential id, base64url without padding (the key).
    pub credential_id: String,
    /// The COSE_Key public key as the authenticator sent it, base64url without padding.
    pub public_key: String,
    /// The last signature counter seen.
    #[serde(default)]
    pub sign_count: u32,
    /// The authenticator model, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aaguid: Option<String>,
}

/// A token-signing key pair carried over, so tokens already issued still verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyEntry {
    /// Unique name (the key); providers may refer to it.
    pub name: String,
    /// The private key, PEM (PKCS#1 or PKCS#8).
    pub private_key: Secret,
    /// The certificate, PEM, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The JWKS key id tokens already carry; derived from the key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// The text of a document with its name, for locating errors.
#[derive(Debug, Clone)]
pub struct Located {
    /// Name shown in errors (usually the path).
    pub source: String,
    /// The text.
    pub text: String,
}

impl Located {
    /// The 1-based line of the first line containing `needle` (0 when absent).
    pub fn line_of(&self, needle: &str) -> usize {
        self.text
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or(0)
    }

    /// An [`Error::Invalid`] for the entry whose key is `key_value`, at `path`.
    pub fn invalid(
        &self,
        path: impl fmt::Display,
        key_value: &str,
        message: impl Into<String>,
    ) -> Error {
        Error::Invalid {
            file: self.source.clone(),
            line: self.line_of(key_value),
            key: path.to_string(),
            message: message.into(),
        }
    }
}

/// Parses a document and resolves its secret references from `env`; returns it with warnings.
pub fn parse(
    located: &Located,
    env: &BTreeMap<String, String>,
) -> Result<(Document, Vec<String>), Error> {
    let mut doc: Document = serde_yaml::from_str(&located.text).map_err(|e| Error::Parse {
        file: located.source.clone(),
        line: e.location().map(|l| l.line()).unwrap_or(0),
        message: e.to_string(),
    })?;
    if let Some(v) = doc.version.filter(|v| *v != 1) {
        return Err(Error::Parse {
            file: located.source.clone(),
            line: located.line_of("version"),
            message: format!("version {v} is not supported; this Gatehouse reads version 1"),
        });
    }
    let mut warnings = Vec::new();
    let mut resolve = |secret: &mut Secret, path: String, key: &str| -> Result<(), Error> {
        match env.get(&secret.var).filter(|v| !v.is_empty()) {
            Some(v) => secret.value = Some(v.clone()),
            None if secret.optional => {
                warnings.push(format!("{path}: ${{{}}} is unset or empty", secret.var));
            }
            None => {
                return Err(located.invalid(
                    path,
                    key,
                    format!(
                        "environment variable {} is not set: export it before running plan/apply, or write ${{{}:-}} to allow it to be empty",
                        secret.var, secret.var
                    ),
                ))
            }
        }
        Ok(())
    };
    for p in &mut doc.oauth2_providers {
        if let Some(s) = &mut p.client_secret {
            resolve(
                s,
                format!("oauth2_providers[{}].client_secret", p.name),
                &p.name,
            )?;
        }
    }
    for s in &mut doc.sources {
        if let Some(secret) = &mut s.consumer_secret {
            resolve(
                secret,
                format!("sources[{}].consumer_secret", s.slug),
                &s.slug,
            )?;
        }
    }
    for k in &mut doc.signing_keys {
        resolve(
            &mut k.private_key,
            format!("signing_keys[{}].private_key", k.name),
            &k.name,
        )?;
    }
    for c in &mut doc.credentials {
        if let Some(hash) = &mut c.password_hash {
            resolve(
                hash,
                format!("credentials[{}].password_hash", c.user),
                &c.user,
            )?;
        }
        for t in &mut c.totp {
            resolve(
                &mut t.secret,
                format!("credentials[{}].totp[{}].secret", c.user, t.name),
                &c.user,
            )?;
        }
    }
    Ok((doc, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(text: &str) -> Located {
        Located {
            source: "homelab.yaml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let err = parse(
            &located("groups:\n  - name: A\n    superuser: true\n"),
            &BTreeMap::new(),
        )
        .err();
        match err {
            Some(Error::Parse { line, message, .. }) => {
                assert_eq!(line, 3);
                assert!(message.contains("unknown field `superuser`"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn literal_secrets_are_refused() {
        let text = "sources:\n  - slug: google\n    consumer_secret: hunter2\n";
        let err = parse(&located(text), &BTreeMap::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not literals"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the literal must not be echoed: {err}"
        );
    }

    #[test]
    fn unset_variables_are_named_unless_optional() {
        let text = "sources:\n  - slug: google\n    consumer_secret: ${GOOGLE_SECRET}\n";
        let err = parse(&located(text), &BTreeMap::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("GOOGLE_SECRET is not set"), "{err}");
        assert!(err.starts_with("homelab.yaml:2:"), "{err}");
        let optional = "sources:\n  - slug: google\n    consumer_secret: ${GOOGLE_SECRET:-}\n";
        let (doc, warnings) = parse(&located(optional), &BTreeMap::new()).unwrap_or_default();
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            doc.sources[0]
                .consumer_secret
                .as_ref()
                .and_then(|s| s.value.clone()),
            None
        );
        let env = BTreeMap::from([("GOOGLE_SECRET".to_owned(), "s".to_owned())]);
        let (doc, _) = parse(&located(text), &env).unwrap_or_default();
        assert_eq!(
            doc.sources[0]
                .consumer_secret
                .as_ref()
                .and_then(|s| s.value.clone())
                .as_deref(),
            Some("s")
        );
    }
}
