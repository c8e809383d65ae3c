//! Outposts.

use gatehouse_core::kinds::OutpostType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::providers::Provider;

/// An outpost.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Outpost {
    /// UUID.
    pub pk: Uuid,
    /// Name.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub outpost_type: OutpostType,
    /// Providers served.
    pub providers: Vec<i64>,
    /// Providers, expanded.
    pub providers_obj: Vec<Provider>,
    /// Always null.
    pub service_connection: Option<Uuid>,
    /// Always null.
    pub service_connection_obj: Option<Value>,
    /// Always 0: changes are pushed, not polled.
    pub refresh_interval_s: i64,
    /// Identifier of its API token.
    pub token_identifier: String,
    /// Settings.
    pub config: Value,
    /// Set for the embedded outpost.
    pub managed: Option<String>,
}

/// Create/replace/patch body of an outpost.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutpostRequest {
    /// Name (required on create).
    pub name: Option<String>,
    /// Kind (only `proxy`).
    #[serde(rename = "type")]
    pub outpost_type: Option<OutpostType>,
    /// Providers served (required on create).
    pub providers: Option<Vec<i64>>,
    /// Must be null.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_connection: Option<Option<Uuid>>,
    /// Settings (a JSON object).
    pub config: Option<Map<String, Value>>,
    /// Must be absent: only Gatehouse marks outposts managed.
    pub managed: Option<String>,
}

// The outpost API: what a standalone `gatehouse outpost` asks the server (with its outpost
// token). The outpost holds no database credentials and no client secrets: it learns its
// providers here, and every session it creates or checks lives in the server's database.

/// One proxy provider as an outpost serves it (`GET outposts/proxy/`, Authentik's path and
/// field names; secrets left out: the edge needs none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProxyOutpostConfig {
    /// Provider id.
    pub pk: i64,
    /// Provider name.
    pub name: String,
    /// OAuth2 client id: names the session cookie.
    pub client_id: String,
    /// Forward single, forward domain or proxy.
    pub mode: gatehouse_core::kinds::ProxyMode,
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
    /// Check `Authorization: Basic` app passwords instead of asking for a login.
    pub intercept_header_auth: bool,
    /// Session lifetime in seconds (the provider's `access_token_validity`).
    pub access_token_validity: i64,
    /// Slug of the application using the provider ("" when none).
    pub assigned_application_slug: String,
    /// Name of that application.
    pub assigned_application_name: String,
}

/// Who is asking, for the application's policies (expression policies may look at it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInfo {
    /// Client address as the outpost saw it.
    pub ip: String,
    /// Host the request was for.
    pub host: String,
    /// Browser.
    pub user_agent: String,
}

/// `Authorization: Basic` credentials: a username and one of that user's app-password tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppPassword {
    /// Username.
    pub username: String,
    /// The token's key.
    pub password: String,
}

/// `POST outposts/proxy/sessions/check/`: may this credential use this provider?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionCheck {
    /// Provider id.
    pub provider: i64,
    /// The session cookie's value, or
    pub cookie: Option<String>,
    /// app-password credentials.
    pub app_password: Option<AppPassword>,
    /// Who is asking.
    pub client: ClientInfo,
}

/// One identity header an allowed request carries on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityHeader {
    /// Header name, e.g. `X-authentik-username`.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// A valid session (or app password): its identity headers and the application's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionGrant {
    /// The headers to pass the request on with.
    pub headers: Vec<IdentityHeader>,
    /// Why the application's policies refuse this user; null when they allow.
    pub denied: Option<String>,
    /// The user's pk: outposts share one decision per (user, provider) and drop it when the
    /// change feed names the user.
    #[serde(default)]
    pub user: i64,
    /// When the session (or app password) expires, in seconds since the epoch; 0 unknown.
    #[serde(default)]
    pub expires: i64,
}

/// The answer to a [`SessionCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionAnswer {
    /// Null when there is no valid session (unknown, expired, revoked, user deactivated).
    pub session: Option<SessionGrant>,
}

/// `POST outposts/proxy/sessions/begin/`: start a login for a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBegin {
    /// Provider id.
    pub provider: i64,
    /// Where the browser goes after the login (already checked by the outpost).
    pub return_to: String,
}

/// A started login: the pending session's cookie and where to send the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginBegun {
    /// Value of the session cookie to set.
    pub cookie: String,
    /// Lifetime of the pending session in seconds.
    pub max_age: i64,
    /// The IdP's authorize URL.
    pub authorize_url: String,
}

/// `POST outposts/proxy/sessions/complete/`: the browser came back to the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginComplete {
    /// Provider id.
    pub provider: i64,
    /// The session cookie's value.
    pub cookie: String,
    /// The `state` parameter of the callback.
    pub state: String,
    /// The `code` parameter of the callback.
    pub code: String,
}

/// The outcome of a [`LoginComplete`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginCompleted {
    /// Where to send the browser (set when the login succeeded).
    pub return_to: Option<String>,
    /// The new session cookie's value (set when the login succeeded): never the pending
    /// cookie's, so a cookie planted before the login is worth nothing after it (#13 item 2).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Lifetime of the session in seconds.
    pub max_age: i64,
    /// Why the login could not be completed (set when it failed), for the page.
    pub refused: Option<String>,
}

/// `POST outposts/proxy/sessions/sign_out/`: end every outpost session of the cookie's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOut {
    /// Provider id.
    pub provider: i64,
    /// The session cookie's value, if the browser had one.
    pub cookie: Option<String>,
}

/// Where a signed-out browser goes next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignedOut {
    /// The IdP's end-session URL for the provider's application.
    pub end_session_url: String,
}

/// The first event of `GET outposts/proxy/events/`: who the server thinks the outpost is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutpostHello {
    /// The outpost's name.
    pub outpost: String,
    /// Where the sessions live: `sqlite` or `postgres`.
    pub session_store: String,
    /// The change feed's position the events that follow start after.
    #[serde(default)]
    pub position: i64,
    /// True when the outpost asked to resume from a position the feed no longer covers: it
    /// must drop everything it cached.
    #[serde(default)]
    pub reset: bool,
}

/// A `change` event of `GET outposts/proxy/events/`: one entry of the server's change feed.
/// The outpost drops exactly what it names; a `seq` that does not follow the last one means
/// changes were missed, and it drops everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FeedChange {
    /// Position in the feed (1, 2, 3, … without gaps).
    pub seq: i64,
    /// `user`, `provider` or `all`.
    pub kind: String,
    /// The user or provider id (0 for `all`).
    pub subject: i64,
}

/// `POST outposts/instances/{uuid}/token/`: the outpost's API token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutpostToken {
    /// Token identifier (`ak-outpost-<uuid>-api`).
    pub identifier: String,
    /// The key: pass it to `gatehouse outpost --token`.
    pub key: String,
}
