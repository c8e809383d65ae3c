//! OAuth/OIDC login sources.

use gatehouse_core::kinds::{PolicyEngineMode, SourceProviderType, UserMatchingMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// The preset of a source kind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceType {
    /// Kind name, e.g. `github`.
    pub name: String,
    /// Display name.
    pub verbose_name: String,
    /// Whether the URLs may be changed.
    pub urls_customizable: bool,
    /// OAuth1 request token URL (unused).
    pub request_token_url: Option<String>,
    /// Authorization endpoint preset.
    pub authorization_url: Option<String>,
    /// Token endpoint preset.
    pub access_token_url: Option<String>,
    /// Userinfo endpoint preset.
    pub profile_url: Option<String>,
    /// Discovery URL preset.
    pub oidc_well_known_url: Option<String>,
    /// JWKS URL preset.
    pub oidc_jwks_url: Option<String>,
}

/// The fields every login source has (`sources/all/`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Source {
    /// UUID.
    pub pk: Uuid,
    /// Button label.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Enabled.
    pub enabled: bool,
    /// Prominent button.
    pub promoted: bool,
    /// Flow for existing users.
    pub authentication_flow: Option<Uuid>,
    /// Flow for new users.
    pub enrollment_flow: Option<Uuid>,
    /// Always empty.
    pub user_property_mappings: Vec<Uuid>,
    /// Always empty.
    pub group_property_mappings: Vec<Uuid>,
    /// UI component.
    pub component: String,
    /// Kind, singular.
    pub verbose_name: String,
    /// Kind, plural.
    pub verbose_name_plural: String,
    /// Model name.
    pub meta_model_name: String,
    /// How policies combine.
    pub policy_engine_mode: PolicyEngineMode,
    /// How outside identities link to users.
    pub user_matching_mode: UserMatchingMode,
    /// Always null.
    pub managed: Option<String>,
    /// Path for new users.
    pub user_path_template: String,
    /// Icon.
    pub icon: Option<String>,
    /// Icon URL.
    pub icon_url: Option<String>,
    /// Always null.
    pub icon_themed_urls: Option<Value>,
}

/// An OAuth/OIDC login source. The consumer secret is write-only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OAuthSource {
    /// The fields every source has.
    #[serde(flatten)]
    pub source: Source,
    /// Always `identifier`.
    pub group_matching_mode: String,
    /// Service kind.
    pub provider_type: SourceProviderType,
    /// Unused (OAuth1).
    pub request_token_url: Option<String>,
    /// Authorization endpoint.
    pub authorization_url: Option<String>,
    /// Token endpoint.
    pub access_token_url: Option<String>,
    /// Userinfo endpoint.
    pub profile_url: Option<String>,
    /// PKCE method.
    pub pkce: String,
    /// Client id at the service.
    pub consumer_key: String,
    /// The callback URL to register at the service.
    pub callback_url: String,
    /// Extra scopes.
    pub additional_scopes: String,
    /// Preset.
    #[serde(rename = "type")]
    pub source_type: SourceType,
    /// Discovery URL.
    pub oidc_well_known_url: String,
    /// JWKS URL.
    pub oidc_jwks_url: String,
    /// Cached JWKS (empty).
    pub oidc_jwks: Value,
    /// How the client authenticates at the token endpoint.
    pub authorization_code_auth_method: String,
}

/// Create/replace/patch body of an OAuth source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthSourceRequest {
    /// Button label (required on create).
    pub name: Option<String>,
    /// Slug (required on create).
    pub slug: Option<String>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Prominent button.
    pub promoted: Option<bool>,
    /// Flow for existing users.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub authentication_flow: Option<Option<Uuid>>,
    /// Flow for new users.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub enrollment_flow: Option<Option<Uuid>>,
    /// Must be empty.
    pub user_property_mappings: Option<Vec<Uuid>>,
    /// Must be empty.
    pub group_property_mappings: Option<Vec<Uuid>>,
    /// Accepted for compatibility.
    pub policy_engine_mode: Option<PolicyEngineMode>,
    /// How outside identities link to users.
    pub user_matching_mode: Option<UserMatchingMode>,
    /// Accepted for compatibility.
    pub user_path_template: Option<String>,
    /// Accepted for compatibility.
    pub icon: Option<String>,
    /// Accepted for compatibility.
    pub group_matching_mode: Option<String>,
    /// Service kind (required on create).
    pub provider_type: Option<SourceProviderType>,
    /// Unused (OAuth1).
    pub request_token_url: Option<String>,
    /// Authorization endpoint.
    pub authorization_url: Option<String>,
    /// Token endpoint.
    pub access_token_url: Option<String>,
    /// Userinfo endpoint.
    pub profile_url: Option<String>,
    /// Accepted for compatibility.
    pub pkce: Option<String>,
    /// Client id at the service (required on create).
    pub consumer_key: Option<String>,
    /// Client secret at the service (required on create).
    pub consumer_secret: Option<String>,
    /// Extra scopes.
    pub additional_scopes: Option<String>,
    /// Discovery URL.
    pub oidc_well_known_url: Option<String>,
    /// Accepted for compatibility.
    pub oidc_jwks_url: Option<String>,
    /// Accepted for compatibility.
    pub oidc_jwks: Option<Value>,
    /// Accepted for compatibility.
    pub authorization_code_auth_method: Option<String>,
}

/// A link between a local user and their identity at a login source
/// (`sources/user_connections/oauth/`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserOAuthSourceConnection {
    /// Integer id.
    pub pk: i64,
    /// The local user's pk.
    pub user: i64,
    /// The source's UUID.
    pub source: Uuid,
    /// The source, expanded.
    pub source_obj: OAuthSource,
    /// The identity's stable id at the source.
    pub identifier: String,
    /// When the link was made.
    pub created: chrono::DateTime<chrono::Utc>,
    /// When it was last used to sign in.
    pub last_updated: chrono::DateTime<chrono::Utc>,
    /// Expiry of a stored upstream token; Gatehouse keeps none, so always null.
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
}

/// Create/update body of a user-source connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserOAuthSourceConnectionRequest {
    /// The source's UUID (required).
    pub source: Option<Uuid>,
    /// The identity's stable id at the source (required).
    pub identifier: Option<String>,
    /// The local user's pk (Gatehouse extension; default: the caller).
    pub user: Option<i64>,
    /// An upstream access token: accepted for compatibility and not stored (Gatehouse keeps
    /// no upstream tokens).
    pub access_token: Option<String>,
    /// Accepted for compatibility and ignored.
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
}
