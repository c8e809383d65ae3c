//! OAuth2/OIDC and proxy providers.

use chrono::{DateTime, Utc};
use gatehouse_core::kinds::{
    ClientType, IssuerMode, MatchingMode, ProxyMode, RedirectUriType, SigningAlgorithm, SubMode,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Fields every provider has.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Provider {
    /// Integer id.
    pub pk: i64,
    /// Unique name.
    pub name: String,
    /// Flow to log in when no session exists.
    pub authentication_flow: Option<Uuid>,
    /// Flow to authorise access (consent).
    pub authorization_flow: Uuid,
    /// Flow at logout.
    pub invalidation_flow: Option<Uuid>,
    /// Property mappings (always empty; claims are built in).
    pub property_mappings: Vec<Uuid>,
    /// UI component name.
    pub component: String,
    /// Slug of the application using it.
    pub assigned_application_slug: Option<String>,
    /// Name of the application using it.
    pub assigned_application_name: Option<String>,
    /// Always null.
    pub assigned_backchannel_application_slug: Option<String>,
    /// Always null.
    pub assigned_backchannel_application_name: Option<String>,
    /// Kind, singular.
    pub verbose_name: String,
    /// Kind, plural.
    pub verbose_name_plural: String,
    /// Model name.
    pub meta_model_name: String,
}

/// One redirect URI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectUri {
    /// Exact or regex.
    pub matching_mode: MatchingMode,
    /// URI or pattern.
    pub url: String,
    /// `authorization` (where codes go; the default) or `logout` (where end-session may
    /// return the browser), as in Authentik 2026.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri_type: Option<RedirectUriType>,
}

/// An OAuth2/OIDC provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OAuth2Provider {
    /// Common fields.
    #[serde(flatten)]
    pub base: Provider,
    /// Confidential or public.
    pub client_type: ClientType,
    /// Allowed grants.
    pub grant_types: Vec<String>,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Authorization code lifetime.
    pub access_code_validity: String,
    /// Access token lifetime.
    pub access_token_validity: String,
    /// Refresh token lifetime.
    pub refresh_token_validity: String,
    /// Refresh threshold (always `seconds=0`).
    pub refresh_token_threshold: String,
    /// Profile claims in the ID token.
    pub include_claims_in_id_token: bool,
    /// Signing key id (keys are managed by Gatehouse).
    pub signing_key: Option<Uuid>,
    /// Encryption key (not supported, null).
    pub encryption_key: Option<Uuid>,
    /// Allowed redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Logout URI.
    pub logout_uri: String,
    /// Logout method.
    pub logout_method: String,
    /// What `sub` contains.
    pub sub_mode: SubMode,
    /// How tokens are signed (Gatehouse addition; Authentik picks this through `signing_key`).
    pub signing_algorithm: SigningAlgorithm,
    /// How `iss` is formed.
    pub issuer_mode: IssuerMode,
    /// Always empty.
    pub jwt_federation_sources: Vec<Uuid>,
    /// Always empty.
    pub jwt_federation_providers: Vec<i64>,
}

/// Create/replace/patch body of an OAuth2 provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2ProviderRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// Flow to log in.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub authentication_flow: Option<Option<Uuid>>,
    /// Flow to authorise (required on create).
    pub authorization_flow: Option<Uuid>,
    /// Flow at logout (required on create).
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub invalidation_flow: Option<Option<Uuid>>,
    /// Must be empty.
    pub property_mappings: Option<Vec<Uuid>>,
    /// Confidential (default) or public.
    pub client_type: Option<ClientType>,
    /// Accepted for compatibility; Gatehouse allows the grants of the client type.
    pub grant_types: Option<Vec<String>>,
    /// Client id (generated when absent).
    pub client_id: Option<String>,
    /// Client secret (generated when absent).
    pub client_secret: Option<String>,
    /// Authorization code lifetime.
    pub access_code_validity: Option<String>,
    /// Access token lifetime.
    pub access_token_validity: Option<String>,
    /// Refresh token lifetime.
    pub refresh_token_validity: Option<String>,
    /// Accepted for compatibility; ignored.
    pub refresh_token_threshold: Option<String>,
    /// Profile claims in the ID token.
    pub include_claims_in_id_token: Option<bool>,
    /// Accepted for compatibility; keys are managed by Gatehouse.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub signing_key: Option<Option<Uuid>>,
    /// Must be null.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub encryption_key: Option<Option<Uuid>>,
    /// Allowed redirect URIs (required on create).
    pub redirect_uris: Option<Vec<RedirectUri>>,
    /// Logout URI.
    pub logout_uri: Option<String>,
    /// `backchannel` or `frontchannel`.
    pub logout_method: Option<String>,
    /// What `sub` contains.
    pub sub_mode: Option<SubMode>,
    /// `RS256` (default) or `ES256`.
    pub signing_algorithm: Option<SigningAlgorithm>,
    /// How `iss` is formed.
    pub issuer_mode: Option<IssuerMode>,
    /// Must be empty.
    pub jwt_federation_sources: Option<Vec<Uuid>>,
    /// Must be empty.
    pub jwt_federation_providers: Option<Vec<i64>>,
}

/// A proxy (outpost) provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProxyProvider {
    /// Common fields.
    #[serde(flatten)]
    pub base: Provider,
    /// Client id the outpost uses.
    pub client_id: String,
    /// Upstream for proxy mode.
    pub internal_host: String,
    /// The URL users reach the application at.
    pub external_host: String,
    /// Verify the upstream's certificate.
    pub internal_host_ssl_validation: bool,
    /// TLS certificate (managed outside Gatehouse; null).
    pub certificate: Option<Uuid>,
    /// Paths that need no login, one regex per line.
    pub skip_path_regex: String,
    /// Send Basic auth from user attributes.
    pub basic_auth_enabled: bool,
    /// Attribute for the Basic-auth password.
    pub basic_auth_password_attribute: String,
    /// Attribute for the Basic-auth user.
    pub basic_auth_user_attribute: String,
    /// Mode.
    pub mode: ProxyMode,
    /// Answer 401 to requests carrying an Authorization header.
    pub intercept_header_auth: bool,
    /// The outpost callback URL, derived from `external_host`.
    pub redirect_uris: Vec<RedirectUri>,
    /// Cookie domain (forward_domain).
    pub cookie_domain: String,
    /// Always empty.
    pub jwt_federation_sources: Vec<Uuid>,
    /// Always empty.
    pub jwt_federation_providers: Vec<i64>,
    /// Session lifetime (cookie Max-Age).
    pub access_token_validity: String,
    /// Refresh lifetime.
    pub refresh_token_validity: String,
    /// Names of outposts serving it.
    pub outpost_set: Vec<String>,
}

/// Create/replace/patch body of a proxy provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyProviderRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// The client id the outpost's cookie name is derived from (generated when omitted on
    /// create); set it to an Authentik provider's to keep the `authentik_proxy_…` cookie name.
    pub client_id: Option<String>,
    /// Flow to log in.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub authentication_flow: Option<Option<Uuid>>,
    /// Flow to authorise (required on create).
    pub authorization_flow: Option<Uuid>,
    /// Flow at logout (required on create).
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub invalidation_flow: Option<Option<Uuid>>,
    /// Must be empty.
    pub property_mappings: Option<Vec<Uuid>>,
    /// Upstream for proxy mode.
    pub internal_host: Option<String>,
    /// The URL users reach the application at (required on create).
    pub external_host: Option<String>,
    /// Verify the upstream's certificate.
    pub internal_host_ssl_validation: Option<bool>,
    /// Must be null.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate: Option<Option<Uuid>>,
    /// Paths that need no login, one regex per line.
    pub skip_path_regex: Option<String>,
    /// Send Basic auth from user attributes.
    pub basic_auth_enabled: Option<bool>,
    /// Attribute for the Basic-auth password.
    pub basic_auth_password_attribute: Option<String>,
    /// Attribute for the Basic-auth user.
    pub basic_auth_user_attribute: Option<String>,
    /// Mode (default forward_single).
    pub mode: Option<ProxyMode>,
    /// Answer 401 to requests carrying an Authorization header.
    pub intercept_header_auth: Option<bool>,
    /// Cookie domain (required for forward_domain).
    pub cookie_domain: Option<String>,
    /// Must be empty.
    pub jwt_federation_sources: Option<Vec<Uuid>>,
    /// Must be empty.
    pub jwt_federation_providers: Option<Vec<i64>>,
    /// Session lifetime.
    pub access_token_validity: Option<String>,
    /// Refresh lifetime.
    pub refresh_token_validity: Option<String>,
}

/// One OIDC signing key as operators see it (never the private part).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyInfo {
    /// Key id, as in the JWKS and token headers.
    pub kid: String,
    /// `RS256` or `ES256`.
    pub algorithm: SigningAlgorithm,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it stopped signing; null while it signs.
    pub retired: Option<DateTime<Utc>>,
    /// Until when a retired key stays in the JWKS.
    pub published_until: Option<DateTime<Utc>>,
}

/// Every signing key, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SigningKeys {
    /// The keys.
    pub keys: Vec<SigningKeyInfo>,
}

/// Body of a key rotation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRotationRequest {
    /// Which algorithm's key to replace.
    pub algorithm: SigningAlgorithm,
}

/// A scope mapping (`propertymappings/provider/scope/`): custom claims as a CEL expression.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScopeMapping {
    /// UUID.
    pub pk: Uuid,
    /// Always null (no mapping is managed by Gatehouse).
    pub managed: Option<String>,
    /// Unique name.
    pub name: String,
    /// CEL expression over `user` and `scopes` that yields a map of claims.
    pub expression: String,
    /// UI component name.
    pub component: String,
    /// Model name.
    pub verbose_name: String,
    /// Plural model name.
    pub verbose_name_plural: String,
    /// Internal model name.
    pub meta_model_name: String,
    /// The scope that brings these claims.
    pub scope_name: String,
    /// What the consent screen says about the scope.
    pub description: String,
}

/// Create/replace/patch body of a scope mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeMappingRequest {
    /// Unique name (required on create).
    pub name: Option<String>,
    /// CEL expression yielding a map of claims (required on create).
    pub expression: Option<String>,
    /// The scope that brings these claims (required on create).
    pub scope_name: Option<String>,
    /// What the consent screen says about the scope.
    pub description: Option<String>,
    /// Must be null.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub managed: Option<Option<String>>,
}

/// The algorithm family of a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// RSA (`RS256`).
    Rsa,
    /// Elliptic curve (`ES256`).
    Ec,
}

/// An OIDC signing key as a key pair (`crypto/certificatekeypairs/`). Gatehouse's signing keys
/// are bare keys, so the certificate fields are null, and the private half is never returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificateKeyPair {
    /// A stable UUID derived from the key id.
    pub pk: Uuid,
    /// Algorithm, key id and state, e.g. `ES256 signing key 7dcec58a3614327c`.
    pub name: String,
    /// Always null: no certificate.
    pub fingerprint_sha256: Option<String>,
    /// Always null: no certificate.
    pub fingerprint_sha1: Option<String>,
    /// Always null: no certificate.
    pub cert_expiry: Option<DateTime<Utc>>,
    /// Always null: no certificate.
    pub cert_subject: Option<String>,
    /// Always true: Gatehouse holds (and never shows) the private key.
    pub private_key_available: bool,
    /// Algorithm family.
    pub key_type: Option<KeyType>,
    /// Always empty: there is no certificate to download.
    pub certificate_download_url: String,
    /// Always empty: the private key is never handed out.
    pub private_key_download_url: String,
    /// `gatehouse/oidc-signing-key`: made and rotated by Gatehouse.
    pub managed: Option<String>,
}
