//! Users, groups, applications and tokens.

use chrono::{DateTime, Utc};
use gatehouse_core::kinds::{PolicyEngineMode, TokenIntent, UserType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::providers::Provider;

/// A role (Gatehouse has none; present because the SDK requires the field).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Role {
    /// Id.
    pub pk: Uuid,
    /// Name.
    pub name: String,
}

/// A group as embedded in a user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PartialGroup {
    /// UUID.
    pub pk: Uuid,
    /// Integer id.
    pub num_pk: i64,
    /// Name.
    pub name: String,
    /// Members are superusers.
    pub is_superuser: bool,
    /// Attributes.
    pub attributes: Value,
}

/// A group as embedded in another group (parent or child).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelatedGroup {
    /// UUID.
    pub pk: Uuid,
    /// Name.
    pub name: String,
    /// Members are superusers.
    pub is_superuser: bool,
    /// Attributes.
    pub attributes: Value,
    /// UUID again (Authentik's field).
    pub group_uuid: Uuid,
}

/// A user as embedded in other objects.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PartialUser {
    /// Integer id.
    pub pk: i64,
    /// Login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Can log in.
    pub is_active: bool,
    /// Last login.
    pub last_login: Option<DateTime<Utc>>,
    /// Email.
    pub email: String,
    /// Attributes.
    pub attributes: Value,
    /// Stable opaque id (the default OIDC `sub`).
    pub uid: String,
}

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Integer id.
    pub pk: i64,
    /// Login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Can log in.
    pub is_active: bool,
    /// Last login.
    pub last_login: Option<DateTime<Utc>>,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
    /// Member of a superuser group (directly or through a parent).
    pub is_superuser: bool,
    /// Direct groups.
    pub groups: Vec<Uuid>,
    /// Direct groups, expanded.
    pub groups_obj: Vec<PartialGroup>,
    /// Roles (always empty).
    pub roles: Vec<Uuid>,
    /// Roles, expanded (always empty).
    pub roles_obj: Vec<Role>,
    /// Email.
    pub email: String,
    /// Avatar URL or data URI.
    pub avatar: String,
    /// Attributes.
    pub attributes: Value,
    /// Stable opaque id.
    pub uid: String,
    /// Organising path.
    pub path: String,
    /// Account type.
    #[serde(rename = "type")]
    pub user_type: UserType,
    /// UUID.
    pub uuid: Uuid,
    /// When the password last changed.
    pub password_change_date: DateTime<Utc>,
    /// Last change.
    pub last_updated: DateTime<Utc>,
}

/// Create/replace/patch body of a user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// Login name (required on create).
    pub username: Option<String>,
    /// Display name (required on create).
    pub name: Option<String>,
    /// Can log in.
    pub is_active: Option<bool>,
    /// Ignored: set by logins.
    pub last_login: Option<Option<DateTime<Utc>>>,
    /// Direct groups (replaces the current set).
    pub groups: Option<Vec<Uuid>>,
    /// Must be empty: Gatehouse has no roles.
    pub roles: Option<Vec<Uuid>>,
    /// Email.
    pub email: Option<String>,
    /// Attributes (a JSON object).
    pub attributes: Option<Map<String, Value>>,
    /// Organising path.
    pub path: Option<String>,
    /// Account type.
    #[serde(rename = "type")]
    pub user_type: Option<UserType>,
}

/// A group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Group {
    /// UUID.
    pub pk: Uuid,
    /// Integer id.
    pub num_pk: i64,
    /// Name.
    pub name: String,
    /// Members are superusers.
    pub is_superuser: bool,
    /// Direct parents.
    pub parents: Vec<Uuid>,
    /// Direct parents, expanded.
    pub parents_obj: Vec<RelatedGroup>,
    /// Direct members.
    pub users: Vec<i64>,
    /// Direct members, expanded.
    pub users_obj: Vec<PartialUser>,
    /// Attributes.
    pub attributes: Value,
    /// Roles (always empty).
    pub roles: Vec<Uuid>,
    /// Roles, expanded (always empty).
    pub roles_obj: Vec<Role>,
    /// Inherited roles (always empty).
    pub inherited_roles_obj: Vec<Role>,
    /// Direct children.
    pub children: Vec<Uuid>,
    /// Direct children, expanded.
    pub children_obj: Vec<RelatedGroup>,
}

/// Create/replace/patch body of a group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    /// Name (required on create).
    pub name: Option<String>,
    /// Members are superusers.
    pub is_superuser: Option<bool>,
    /// Direct parents (replaces the current set; cycles are refused).
    pub parents: Option<Vec<Uuid>>,
    /// Direct members (replaces the current set).
    pub users: Option<Vec<i64>>,
    /// Attributes (a JSON object).
    pub attributes: Option<Map<String, Value>>,
    /// Must be empty: Gatehouse has no roles.
    pub roles: Option<Vec<Uuid>>,
}

/// An application.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Application {
    /// UUID.
    pub pk: Uuid,
    /// Policy-binding target id (same as `pk`).
    pub pbm_uuid: Uuid,
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Provider id.
    pub provider: Option<i64>,
    /// Provider, expanded.
    pub provider_obj: Option<Provider>,
    /// Backchannel providers (always empty).
    pub backchannel_providers: Vec<i64>,
    /// Backchannel providers, expanded (always empty).
    pub backchannel_providers_obj: Vec<Provider>,
    /// Effective launch URL.
    pub launch_url: Option<String>,
    /// Open in a new tab.
    pub open_in_new_tab: bool,
    /// Configured launch URL.
    pub meta_launch_url: String,
    /// Icon.
    pub meta_icon: Option<String>,
    /// Icon URL.
    pub meta_icon_url: Option<String>,
    /// Themed icon URLs (always null).
    pub meta_icon_themed_urls: Option<Value>,
    /// Description.
    pub meta_description: String,
    /// Publisher.
    pub meta_publisher: String,
    /// How policy bindings combine.
    pub policy_engine_mode: PolicyEngineMode,
    /// Group label.
    pub group: String,
    /// Hidden from the user page.
    pub meta_hide: bool,
}

/// Create/replace/patch body of an application.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    /// Display name (required on create).
    pub name: Option<String>,
    /// Slug (required on create).
    pub slug: Option<String>,
    /// Provider id, or null for none.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider: Option<Option<i64>>,
    /// Must be empty: Gatehouse has no backchannel providers.
    pub backchannel_providers: Option<Vec<i64>>,
    /// Open in a new tab.
    pub open_in_new_tab: Option<bool>,
    /// Launch URL.
    pub meta_launch_url: Option<String>,
    /// Icon URL.
    pub meta_icon: Option<String>,
    /// Description.
    pub meta_description: Option<String>,
    /// Publisher.
    pub meta_publisher: Option<String>,
    /// How policy bindings combine.
    pub policy_engine_mode: Option<PolicyEngineMode>,
    /// Group label.
    pub group: Option<String>,
    /// Hide from the user page.
    pub meta_hide: Option<bool>,
}

/// An API token (its key is never returned after creation).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// UUID.
    pub pk: Uuid,
    /// Set for tokens Gatehouse manages.
    pub managed: Option<String>,
    /// Unique name.
    pub identifier: String,
    /// Purpose.
    pub intent: TokenIntent,
    /// Owner id.
    pub user: i64,
    /// Owner, expanded.
    pub user_obj: User,
    /// Note.
    pub description: String,
    /// Expiry.
    pub expires: Option<DateTime<Utc>>,
    /// Whether it expires.
    pub expiring: bool,
}

/// A freshly created token with its key, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub token: Token,
    /// The secret key: send it as `Authorization: Bearer <key>`. Not retrievable later.
    pub key: String,
}

/// Create body of a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Must be absent: only Gatehouse marks tokens managed.
    pub managed: Option<String>,
    /// Unique name (required).
    pub identifier: Option<String>,
    /// Purpose (default `api`).
    pub intent: Option<TokenIntent>,
    /// Owner id (default: the caller).
    pub user: Option<i64>,
    /// Note.
    pub description: Option<String>,
    /// Expiry (default: 30 minutes from now for expiring tokens).
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<Option<DateTime<Utc>>>,
    /// Whether it expires (default true).
    pub expiring: Option<bool>,
}

/// Parts of the user agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionUserAgent {
    /// Device.
    pub device: UserAgentDevice,
    /// Operating system.
    pub os: UserAgentOs,
    /// Browser.
    pub user_agent: UserAgentBrowser,
    /// The raw string.
    pub string: String,
}

/// Device of a user agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserAgentDevice {
    /// Brand.
    pub brand: Option<String>,
    /// Family.
    pub family: String,
    /// Model.
    pub model: Option<String>,
}

/// Operating system of a user agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserAgentOs {
    /// Family.
    pub family: String,
    /// Major version.
    pub major: Option<String>,
    /// Minor version.
    pub minor: Option<String>,
    /// Patch version.
    pub patch: Option<String>,
    /// Patch-minor version.
    pub patch_minor: Option<String>,
}

/// Browser of a user agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserAgentBrowser {
    /// Family.
    pub family: String,
    /// Major version.
    pub major: String,
    /// Minor version.
    pub minor: String,
    /// Patch version.
    pub patch: String,
}

/// A logged-in browser session; deleting it logs that browser out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthenticatedSession {
    /// Id.
    pub uuid: Uuid,
    /// Whether it is the caller's own session (always false for token calls).
    pub current: bool,
    /// Parsed user agent.
    pub user_agent: SessionUserAgent,
    /// GeoIP (not collected: null).
    pub geo_ip: Option<Value>,
    /// ASN (not collected: null).
    pub asn: Option<Value>,
    /// Owner id.
    pub user: i64,
    /// Address at login.
    pub last_ip: String,
    /// Raw user agent.
    pub last_user_agent: String,
    /// Start of the session.
    pub last_used: DateTime<Utc>,
    /// End of the session.
    pub expires: DateTime<Utc>,
}

/// A group as listed in [`UserSelf`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserSelfGroup {
    /// Name.
    pub name: String,
    /// UUID, as text.
    pub pk: String,
}

/// The calling user as they see themselves (`core/users/me/`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserSelf {
    /// Integer id.
    pub pk: i64,
    /// Username.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Active.
    pub is_active: bool,
    /// Member of a superuser group.
    pub is_superuser: bool,
    /// Whether this user owns the browser session making the call (false for API tokens).
    pub is_current: bool,
    /// Direct groups.
    pub groups: Vec<UserSelfGroup>,
    /// Always empty: Gatehouse has no roles.
    pub roles: Vec<UserSelfGroup>,
    /// Email address.
    pub email: String,
    /// Avatar URL (empty: none).
    pub avatar: String,
    /// Stable hashed id, as in tokens' `sub`.
    pub uid: String,
    /// Always empty: no per-user interface settings.
    pub settings: Value,
    /// Account type.
    #[serde(rename = "type")]
    pub user_type: UserType,
    /// Always empty: permissions follow from superuser groups only.
    pub system_permissions: Vec<String>,
}

/// `core/users/me/`: who is calling; `original` is always null (no impersonation).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionUser {
    /// The caller.
    pub user: UserSelf,
    /// The impersonating user (never set).
    pub original: Option<UserSelf>,
    /// Accounts signed in in this browser: the caller.
    pub users: Vec<UserSelf>,
}
