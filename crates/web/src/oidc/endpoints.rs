//! The OAuth2/OIDC endpoints relying parties call: discovery, JWKS, token (authorization code
//! with PKCE, refresh with rotation and reuse detection, client credentials), userinfo,
//! introspection (RFC 7662), revocation (RFC 7009) and RP-initiated logout. Errors follow
//! RFC 6749: `{"error", "error_description"}` with the status the RFCs prescribe.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::Utc;
use gatehouse_core::kinds::{ClientType, RedirectUriType, SigningAlgorithm, SubMode};
use gatehouse_core::secret;
use gatehouse_flow::policy::Verdict;
use gatehouse_oidc::keys::{self, Signer};
use gatehouse_oidc::tokens::{issuer, pkce_ok, AccessClaims, Client, Issue};
use gatehouse_oidc::user_claims;
use gatehouse_store::oauth::{self, Redeemed};
use gatehouse_store::providers::{Provider, ProviderKind};
use gatehouse_store::scope_mappings;
use gatehouse_store::{applications, providers, sessions, sql, users, Conn};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::pages::{page, Template};
use crate::session::{self, clear_cookie, SESSION_COOKIE};
use crate::AppState;

/// An RFC 6749 error response.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"gatehouse\""),
        );
    }
    response
}

fn server_error(e: ApiError) -> Response {
    tracing::error!(error = %e, "OIDC endpoint failed");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "The server could not complete the request.",
    )
}

/// The signing algorithm of the application with slug `slug` (RS256 when its provider is not
/// an OAuth2 one); `None` when there is no such application.
async fn signing_algorithm_of(
    conn: &mut Conn,
    sealing: &gatehouse_store::SecretKey,
    slug: &str,
) -> Result<Option<SigningAlgorithm>, ApiError> {
    let Some(app) = applications::find_by_slug(conn, slug).await? else {
        return Ok(None);
    };
    let kind = match app.fields.provider {
        Some(id) => Some(providers::get(conn, sealing, id).await?.fields.kind),
        None => None,
    };
    Ok(Some(match kind {
        Some(ProviderKind::OAuth2(o)) => o.signing_algorithm,
        _ => SigningAlgorithm::Rs256,
    }))
}

/// `/application/o/<slug>/.well-known/openid-configuration`.
pub(super) async fn discovery(State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    let Ok(mut conn) = state.store.conn().await else {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "The database is unavailable.",
        );
    };
    let algorithm = match signing_algorithm_of(&mut conn, state.store.key(), &slug).await {
        Ok(Some(algorithm)) => algorithm,
        Ok(None) => {
            return oauth_error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("No application with slug `{slug}`."),
            )
        }
        Err(e) => return server_error(e),
    };
    let base = &state.settings.external_url;
    let o = format!("{base}/application/o");
    Json(json!({
        "issuer": issuer(base, &slug),
        "authorization_endpoint": format!("{o}/authorize/"),
        "token_endpoint": format!("{o}/token/"),
        "userinfo_endpoint": format!("{o}/userinfo/"),
        "end_session_endpoint": format!("{o}/{slug}/end-session/"),
        "introspection_endpoint": format!("{o}/introspect/"),
        "revocation_endpoint": format!("{o}/revoke/"),
        "jwks_uri": format!("{o}/{slug}/jwks/"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [algorithm.as_str()],
        "scopes_supported": super::SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "preferred_username", "email", "email_verified", "groups"],
        "request_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// `/application/o/<slug>/jwks/`.
pub(super) async fn jwks(State(state): State<AppState>) -> Response {
    match state.keys.jwks(&state.store).await {
        Ok(doc) => Json(doc).into_response(),
        Err(e) => server_error(e.into()),
    }
}

/// How long a client's registration is reused before it is read again: a changed secret,
/// mapping or deletion applies within this.
const CLIENT_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Registered clients by client id, so a busy token endpoint does not read the provider, its
/// application and its mappings for every request.
#[derive(Default)]
pub struct Clients {
    known: std::sync::RwLock<HashMap<String, (std::time::Instant, Arc<Client>)>>,
}

impl Clients {
    /// The client registered as `client_id`: `Ok(None)` when no OAuth2 provider has that id,
    /// `Err` (the answer to send) when its provider has no application yet.
    async fn get(
        &self,
        state: &AppState,
        client_id: &str,
    ) -> Result<Result<Option<Arc<Client>>, Response>, ApiError> {
        let cached = self
            .known
            .read()
            .ok()
            .and_then(|m| m.get(client_id).cloned());
        if let Some((at, client)) = cached {
            if at.elapsed() < CLIENT_FRESH_FOR {
                return Ok(Ok(Some(client)));
            }
        }
        let mut conn = state.store.conn().await?;
        let Some(provider) =
            providers::find_by_client_id(&mut conn, state.store.key(), client_id).await?
        else {
            return Ok(Ok(None));
        };
        let ProviderKind::OAuth2(settings) = provider.fields.kind.clone() else {
            return Ok(Ok(None));
        };
        let Some(app) = applications::find_by_provider(&mut conn, provider.id).await? else {
            return Ok(Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "This client is not assigned to an application.",
            )));
        };
        let mappings = scope_mappings::of_provider(&mut conn, provider.id).await?;
        let client = Arc::new(Client {
            provider,
            settings,
            application: app,
            mappings,
        });
        if let Ok(mut known) = self.known.write() {
            if known.len() >= 10_000 {
                known.retain(|_, (at, _)| at.elapsed() < CLIENT_FRESH_FOR);
            }
            known.insert(
                client_id.to_owned(),
                (std::time::Instant::now(), client.clone()),
            );
        }
        Ok(Ok(Some(client)))
    }
}

/// Authenticates the client of a token/introspection/revocation request: HTTP Basic or form
/// fields for confidential clients (secret compared in constant time), the client id alone for
/// public ones. Takes a pooled connection only when the client is not cached: call it before
/// holding one.
async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Result<Arc<Client>, Response>, ApiError> {
    let invalid = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed: check client_id and client_secret.",
        )
    };
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(i, s)| (url_decode(i), url_decode(s)))
        });
    let (client_id, secret_given) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => match form.get("client_id") {
            Some(id) => (id.clone(), form.get("client_secret").cloned()),
            None => return Ok(Err(invalid())),
        },
    };
    let client = match state.oidc_clients.get(state, &client_id).await? {
        Ok(Some(client)) => client,
        Ok(None) => return Ok(Err(invalid())),
        Err(unassigned) => return Ok(Err(unassigned)),
    };
    if client.settings.client_type == ClientType::Confidential {
        let ok = secret_given
            .is_some_and(|s| secret::constant_time_eq(&s, &client.provider.fields.client_secret));
        if !ok {
            return Ok(Err(invalid()));
        }
    }
    Ok(Ok(client))
}

fn url_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map(|(_, v)| v)
        .unwrap_or_else(|| s.to_owned())
}

fn parse_form(body: &Bytes) -> Option<HashMap<String, String>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .map(|v| v.into_iter().collect())
}

/// The RFC 6749 `invalid_request` answer to a body that is not a form.
fn not_a_form() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "The body must be application/x-www-form-urlencoded.",
    )
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Form field `name`, empty when absent.
fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(String::as_str).unwrap_or_default()
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// `/application/o/token/`. Client authentication and everything a grant only reads run on a
/// pooled connection; signing happens outside any transaction; the writes (redeeming the code or
/// rotating the refresh token, storing the new tokens) are one short transaction.
pub(super) async fn token(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let Some(form) = parse_form(&body) else {
        return not_a_form();
    };
    let field = |k: &str| field(&form, k);
    let result: Result<Response, ApiError> = async {
        // Neither step holds a connection: both may have to take one.
        let client = match authenticate_client(&state, &headers, &form).await? {
            Ok(c) => c,
            Err(r) => return Ok(r),
        };
        let signer = state
            .keys
            .signer(&state.store, client.settings.signing_algorithm)
            .await?;
        match field("grant_type") {
            "authorization_code" => authorization_code(&state, &client, &signer, &form).await,
            "refresh_token" => {
                let request = session::request_info(&headers, peer, &axum::http::Method::POST, &uri);
                refresh(&state, &client, &signer, field("refresh_token"), &request).await
            }
            "client_credentials" => {
                if client.settings.client_type != ClientType::Confidential {
                    return Ok(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "unauthorized_client",
                        "Only confidential clients may use client_credentials.",
                    ));
                }
                let scope: Vec<&str> = field("scope")
                    .split_whitespace()
                    .filter(|s| super::SCOPES.contains(s) && *s != "offline_access")
                    .collect();
                let scope = scope.join(" ");
                let issue = Issue {
                    client: &client,
                    user: None,
                    scope: &scope,
                    nonce: "",
                    code_hash: None,
                    family: None,
                    session: None,
                    auth_time: None,
                };
                let mut conn = state.store.conn().await?;
                let minted = issue.mint(&mut conn, &state.settings.external_url, &signer).await?;
                drop(conn);
                let mut tx = state.store.begin().await?;
                let response = issue.store(&mut tx, minted).await?;
                gatehouse_store::commit(tx).await?;
                Ok(Json(response).into_response())
            }
            "" => Ok(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is missing.")),
            other => Ok(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type `{other}` is not supported; use authorization_code, refresh_token or client_credentials."),
            )),
        }
    }
    .await;
    result.map(no_store).unwrap_or_else(server_error)
}

/// The authorization_code grant: the code is redeemed and its tokens stored in one transaction,
/// so a code is never spent without its tokens existing.
async fn authorization_code(
    state: &AppState,
    client: &Client,
    signer: &Arc<Signer>,
    form: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let field = |k: &str| field(form, k);
    let mut tx = state.store.begin().await?;
    let response = match oauth::redeem_code(&mut tx, field("code"), Utc::now()).await? {
        Redeemed::Unknown => invalid_grant("The authorization code is not valid."),
        Redeemed::Expired => {
            invalid_grant("The authorization code has expired; start the login again.")
        }
        Redeemed::Replayed { code_hash } => {
            oauth::revoke_from_code(&mut tx, &code_hash).await?;
            tracing::warn!(client = %client.provider.fields.name, "authorization code reused; tokens issued from it are revoked");
            invalid_grant(
                "The authorization code was already used; the tokens issued from it are revoked.",
            )
        }
        Redeemed::Valid { grant, code_hash } => {
            if grant.provider != client.provider.id {
                invalid_grant("The authorization code was issued to another client.")
            } else if grant.redirect_uri != field("redirect_uri") {
                invalid_grant("redirect_uri does not match the one the code was issued for.")
            } else if !pkce_ok(
                &grant.code_challenge,
                &grant.code_challenge_method,
                field("code_verifier"),
            ) {
                invalid_grant("code_verifier does not match the code_challenge.")
            } else {
                let user = users::get(&mut tx, grant.user).await?;
                if !user.fields.is_active {
                    invalid_grant("The user is deactivated.")
                } else {
                    let issue = Issue {
                        client,
                        user: Some(&user),
                        scope: &grant.scope,
                        nonce: &grant.nonce,
                        code_hash: Some(&code_hash),
                        family: None,
                        session: grant.session,
                        auth_time: grant.auth_time,
                    };
                    let minted = issue
                        .mint(&mut tx, &state.settings.external_url, signer)
                        .await?;
                    Json(issue.store(&mut tx, minted).await?).into_response()
                }
            }
        }
    };
    gatehouse_store::commit(tx).await?;
    Ok(response)
}

/// The refresh_token grant. The presented token is checked and the new tokens minted on a
/// pooled connection; the transaction then rotates it only if it is still unused (a lost race
/// or a replay is a reuse: the family is revoked and the minted tokens are thrown away).
/// A family ended with its session, by a password change or deactivation is `revoked`; the
/// application's policy bindings are evaluated again, so losing access ends refreshing too.
async fn refresh(
    state: &AppState,
    client: &Client,
    signer: &Arc<Signer>,
    presented: &str,
    request: &gatehouse_flow::RequestInfo,
) -> Result<Response, ApiError> {
    let mut conn = state.store.conn().await?;
    let Some(r) = oauth::find_refresh_token(&mut conn, presented).await? else {
        return Ok(invalid_grant("The refresh token is not valid."));
    };
    if r.provider != client.provider.id {
        return Ok(invalid_grant(
            "The refresh token was issued to another client.",
        ));
    }
    if r.revoked || r.expires <= Utc::now() {
        return Ok(invalid_grant(
            "The refresh token was revoked or has expired.",
        ));
    }
    let reused = || async {
        let mut tx = state.store.begin().await?;
        oauth::revoke_family(&mut tx, r.family).await?;
        gatehouse_store::commit(tx).await?;
        tracing::warn!(client = %client.provider.fields.name, "refresh token reused; its family is revoked");
        Ok::<_, ApiError>(invalid_grant(
            "The refresh token was already used; every token of this login is revoked.",
        ))
    };
    if r.used {
        drop(conn);
        return reused().await;
    }
    let user = users::get(&mut conn, r.user).await?;
    if !user.fields.is_active {
        return Ok(invalid_grant("The user is deactivated."));
    }
    if let Verdict::Fail(message) =
        super::access_verdict(&mut conn, &client.application, &user, request).await?
    {
        return Ok(invalid_grant(&format!(
            "The user may no longer use this application: {message}"
        )));
    }
    let issue = Issue {
        client,
        user: Some(&user),
        scope: &r.scope,
        nonce: &r.nonce,
        code_hash: None,
        family: Some(r.family),
        session: r.session,
        auth_time: r.auth_time,
    };
    let minted = issue
        .mint(&mut conn, &state.settings.external_url, signer)
        .await?;
    drop(conn);
    let mut tx = state.store.begin().await?;
    if !oauth::rotate_refresh_token(&mut tx, presented).await? {
        drop(tx);
        return reused().await;
    }
    let response = issue.store(&mut tx, minted).await?;
    gatehouse_store::commit(tx).await?;
    Ok(Json(response).into_response())
}

/// Verifies an access token against `keys` (from [`keys::Keyring::for_token`], fetched before
/// taking a connection): signature by a published key, expiry, issuer of its audience's
/// application, and not revoked.
async fn live_access_token(
    conn: &mut Conn,
    state: &AppState,
    keys: &keys::Loaded,
    token: &str,
) -> Result<Option<(AccessClaims, Provider)>, ApiError> {
    let Ok(unverified) = jsonwebtoken::dangerous::insecure_decode::<AccessClaims>(token) else {
        return Ok(None);
    };
    let Some(provider) =
        sql::find::<Provider>(conn, "p.client_id", unverified.claims.aud.clone().into()).await?
    else {
        return Ok(None);
    };
    let Some(app) = applications::find_by_provider(conn, provider.id).await? else {
        return Ok(None);
    };
    let iss = issuer(&state.settings.external_url, &app.fields.slug);
    let Some(claims) = keys.verify_access::<AccessClaims>(token, &iss) else {
        return Ok(None);
    };
    if !oauth::access_token_live(conn, &claims.jti).await? {
        return Ok(None);
    }
    Ok(Some((claims, provider)))
}

/// `/application/o/userinfo/`.
pub(super) async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let invalid = || {
        let mut r = (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token", "error_description": "The access token is missing, invalid, expired or revoked."}))).into_response();
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return invalid();
    };
    let result: Result<Response, ApiError> = async {
        let keys = state.keys.for_token(&state.store, token).await?;
        let mut conn = state.store.conn().await?;
        let Some((claims, provider)) = live_access_token(&mut conn, &state, &keys, token).await?
        else {
            return Ok(invalid());
        };
        let ProviderKind::OAuth2(settings) =
            providers::get(&mut conn, state.store.key(), provider.id)
                .await?
                .fields
                .kind
        else {
            return Ok(invalid());
        };
        let Some(user_id) = user_id_of(&mut conn, &claims.jti).await? else {
            return Ok(invalid());
        };
        let user = users::get(&mut conn, user_id).await?;
        if !user.fields.is_active {
            return Ok(invalid());
        }
        let scopes: Vec<&str> = claims.scope.split_whitespace().collect();
        let mappings = scope_mappings::of_provider(&mut conn, provider.id).await?;
        Ok(Json(Value::Object(
            user_claims(&mut conn, &user, &scopes, settings.sub_mode, &mappings).await?,
        ))
        .into_response())
    }
    .await;
    result.unwrap_or_else(server_error)
}

async fn user_id_of(conn: &mut Conn, jti: &str) -> Result<Option<i64>, ApiError> {
    use gatehouse_store::sql::RowExt;
    let row = sql::fetch_optional(
        conn,
        "SELECT user_id FROM access_tokens WHERE jti = $1",
        vec![jti.into()],
    )
    .await?;
    Ok(row.map(|r| r.opt_int("user_id")).transpose()?.flatten())
}

/// What introspection and revocation start from: the presented token, the keys to verify it
/// with (fetched before any connection is held) and the authenticated client, or the answer
/// for a client that failed authentication.
async fn presented_token<'f>(
    state: &AppState,
    headers: &HeaderMap,
    form: &'f HashMap<String, String>,
) -> Result<Result<(&'f str, Arc<keys::Loaded>, Arc<Client>), Response>, ApiError> {
    let token = field(form, "token");
    let keys = state.keys.for_token(&state.store, token).await?;
    Ok(authenticate_client(state, headers, form)
        .await?
        .map(|client| (token, keys, client)))
}

/// `/application/o/introspect/` (RFC 7662). A token whose user is deactivated or no longer
/// passes the application's policy bindings is inactive, like one whose session ended.
pub(super) async fn introspect(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let Some(form) = parse_form(&body) else {
        return not_a_form();
    };
    let request = session::request_info(&headers, peer, &axum::http::Method::POST, &uri);
    let result: Result<Response, ApiError> = async {
        let (token, keys, client) = match presented_token(&state, &headers, &form).await? {
            Ok(q) => q,
            Err(r) => return Ok(r),
        };
        // RFC 7662 §2.1: the caller must be authorised. A public client's id is no secret, so
        // with it alone anyone could probe tokens; only confidential clients introspect.
        if client.settings.client_type == ClientType::Public {
            return Ok(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Public clients cannot introspect tokens: use a confidential client (with its client_secret) for the resource server.",
            ));
        }
        let mut conn = state.store.conn().await?;
        if let Some((claims, provider)) = live_access_token(&mut conn, &state, &keys, token).await? {
            let user = user_id_of(&mut conn, &claims.jti).await?;
            if provider.id == client.provider.id
                && still_allowed(&mut conn, &client, user, &request).await?
            {
                return Ok(Json(json!({
                    "active": true, "scope": claims.scope, "client_id": claims.aud, "sub": claims.sub,
                    "exp": claims.exp, "iat": claims.iat, "iss": claims.iss, "token_type": "Bearer",
                }))
                .into_response());
            }
        }
        if let Some(r) = oauth::find_refresh_token(&mut conn, token).await? {
            if r.provider == client.provider.id
                && !r.revoked
                && !r.used
                && r.expires > Utc::now()
                && still_allowed(&mut conn, &client, Some(r.user), &request).await?
            {
                return Ok(Json(json!({
                    "active": true, "scope": r.scope, "client_id": client.provider.fields.client_id,
                    "exp": r.expires.timestamp(), "token_type": "refresh_token",
                }))
                .into_response());
            }
        }
        Ok(Json(json!({"active": false})).into_response())
    }
    .await;
    result.map(no_store).unwrap_or_else(server_error)
}

/// Whether a token of `user` (`None`: client credentials) for `client` still stands: the user
/// is active and passes the application's policy bindings.
async fn still_allowed(
    conn: &mut Conn,
    client: &Client,
    user: Option<i64>,
    request: &gatehouse_flow::RequestInfo,
) -> Result<bool, ApiError> {
    let Some(id) = user else {
        return Ok(true);
    };
    let user = users::get(conn, id).await?;
    Ok(user.fields.is_active
        && !matches!(
            super::access_verdict(conn, &client.application, &user, request).await?,
            Verdict::Fail(_)
        ))
}

/// `/application/o/revoke/` (RFC 7009): always 200, whether or not the token was known.
pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(form) = parse_form(&body) else {
        return not_a_form();
    };
    let result: Result<Response, ApiError> = async {
        let (token, keys, client) = match presented_token(&state, &headers, &form).await? {
            Ok(q) => q,
            Err(r) => return Ok(r),
        };
        let mut tx = state.store.begin().await?;
        if let Some((claims, provider)) = live_access_token(&mut tx, &state, &keys, token).await? {
            if provider.id == client.provider.id {
                oauth::revoke_access_token(&mut tx, &claims.jti).await?;
            }
        } else if let Some(r) = oauth::find_refresh_token(&mut tx, token).await? {
            if r.provider == client.provider.id {
                oauth::revoke_family(&mut tx, r.family).await?;
            }
        }
        gatehouse_store::commit(tx).await?;
        Ok(StatusCode::OK.into_response())
    }
    .await;
    result.unwrap_or_else(server_error)
}

/// The page after a logout that names no place to return to.
#[derive(Template)]
#[template(
    source = "<h1>You are logged out</h1><p>You can close this window.</p>",
    ext = "html"
)]
struct LoggedOut;

/// What an end-session request is about, once its parameters are checked: the application's
/// client, whether the request proves it comes from that client for the visitor's session,
/// and where the browser may go afterwards.
struct Logout {
    /// The client id of the application's provider.
    client_id: String,
    /// The `id_token_hint` is an ID token of ours for this client and the visitor's user: the
    /// relying party itself asks, so no confirmation is needed.
    hint_for_session: bool,
    /// The request names this client (a valid hint, or `client_id`), so its registered
    /// post-logout URI may be used.
    names_client: bool,
    /// The registered `post_logout_redirect_uri`, when one was sent.
    return_to: Option<String>,
}

/// `/application/o/<slug>/end-session/` (OpenID Connect RP-Initiated Logout 1.0), on GET or
/// POST. The session ends at once only when the request carries a valid `id_token_hint` for
/// it; otherwise (a link, another site's image tag or form) the visitor gets a confirmation
/// page whose POST, with the session's anti-forgery token, ends it (#13 L2). The browser is
/// then sent to `post_logout_redirect_uri` only when that is registered for the client as a
/// `logout` redirect URI and the request named the client (by the hint or `client_id`); an
/// unregistered one is refused before anything ends (#13 item 5), as Keycloak and Authentik do.
pub(super) async fn end_session(
    State(state): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let params = if method == axum::http::Method::POST {
        parse_form(&body).unwrap_or_default()
    } else {
        query
    };
    let field = |k: &str| field(&params, k);
    let result: Result<Response, ApiError> = async {
        // Keys and session are read before taking a connection: holding one pooled connection
        // while waiting for another can exhaust the pool under load.
        let hint = field("id_token_hint");
        let keys = state.keys.for_token(&state.store, hint).await?;
        let current = session::current(&state, &headers).await?;
        let logout = {
            let mut conn = state.store.conn().await?;
            match logout_request(&mut conn, &state, &keys, &slug, &params, current.as_ref()).await?
            {
                Ok(logout) => logout,
                Err(refused) => return Ok(refused),
            }
        };
        let target = logout
            .return_to
            .as_deref()
            .filter(|_| logout.names_client)
            .map(|uri| match field("state") {
                "" => uri.to_owned(),
                s => super::url_with(uri, &[("state", s)]),
            });
        let confirmed = method == axum::http::Method::POST
            && !field("csrf").is_empty()
            && crate::pages::user::csrf_accepted(&headers, field("csrf"));
        let Some(current) = current else {
            // Nothing to end.
            return Ok(logged_out(&state, target));
        };
        if !logout.hint_for_session && !confirmed {
            let csrf = crate::pages::user::csrf_token(&headers);
            let mut fields = vec![("csrf", csrf.as_str())];
            if logout.names_client {
                fields.push(("client_id", logout.client_id.as_str()));
            }
            if let Some(uri) = &logout.return_to {
                fields.push(("post_logout_redirect_uri", uri.as_str()));
            }
            if !field("state").is_empty() {
                fields.push(("state", field("state")));
            }
            return Ok(gatehouse_html::confirm_page(
                "Log out",
                "Log out of Gatehouse? This ends your session for every application.",
                &format!("/application/o/{slug}/end-session/"),
                &fields,
                "Log out",
            ));
        }
        let mut tx = state.store.begin().await?;
        sessions::revoke(&mut tx, current.session.uuid).await?;
        gatehouse_store::commit(tx).await?;
        state.changed();
        Ok(logged_out(&state, target))
    }
    .await;
    result.unwrap_or_else(server_error)
}

/// Checks an end-session request against the application `slug`: `Err` is the page refusing
/// it (no such application, an unregistered `post_logout_redirect_uri`).
async fn logout_request(
    conn: &mut Conn,
    state: &AppState,
    keys: &keys::Loaded,
    slug: &str,
    params: &HashMap<String, String>,
    current: Option<&session::Current>,
) -> Result<Result<Logout, Response>, ApiError> {
    let field = |k: &str| field(params, k);
    let app = applications::find_by_slug(conn, slug).await?;
    let provider = match app.as_ref().and_then(|a| a.fields.provider) {
        Some(id) => Some(providers::get(conn, state.store.key(), id).await?),
        None => None,
    };
    let Some(provider) = provider else {
        return Ok(Err(crate::pages::error_page(
            StatusCode::NOT_FOUND,
            "No such application",
            &format!("No application with a provider has the slug `{slug}`."),
            "Check the logout link of the application that sent you here.",
        )));
    };
    // A proxy provider registers no post-logout URIs; its ID tokens use the default subject.
    let (sub_mode, settings) = match &provider.fields.kind {
        ProviderKind::OAuth2(settings) => (settings.sub_mode, Some(settings)),
        ProviderKind::Proxy(_) => (SubMode::HashedUserId, None),
    };
    let client_id = provider.fields.client_id.clone();
    let subject = keys.id_token_subject(
        field("id_token_hint"),
        &issuer(&state.settings.external_url, slug),
        &client_id,
    );
    let hint_for_session = match (&subject, current) {
        (Some(sub), Some(c)) => *sub == gatehouse_oidc::claims::subject(&c.user, sub_mode),
        _ => false,
    };
    // A `client_id` sent with the hint must be the hint's client (RP-Initiated Logout §2).
    let named = field("client_id");
    let names_client = named == client_id || (named.is_empty() && subject.is_some());
    let asked = field("post_logout_redirect_uri");
    let return_to = match asked {
        "" => None,
        uri if settings
            .is_some_and(|s| super::redirect_allowed(s, RedirectUriType::Logout, uri)) =>
        {
            Some(uri.to_owned())
        }
        uri => {
            return Ok(Err(crate::pages::error_page(
                StatusCode::BAD_REQUEST,
                "Invalid logout request",
                &format!("The post_logout_redirect_uri `{uri}` is not registered for this application; nothing was logged out."),
                "Its administrator can register it as a redirect URI of type `logout`.",
            )))
        }
    };
    Ok(Ok(Logout {
        client_id,
        hint_for_session,
        names_client,
        return_to,
    }))
}

/// After a logout (or when there was no session): to `target`, or the logged-out page; the
/// session cookie is cleared either way.
fn logged_out(state: &AppState, target: Option<String>) -> Response {
    let mut response = match target {
        Some(t) => (StatusCode::FOUND, [(LOCATION, t)]).into_response(),
        None => page(StatusCode::OK, "Logged out", &LoggedOut),
    };
    response.headers_mut().append(
        SET_COOKIE,
        clear_cookie(SESSION_COOKIE, session::secure(state)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_ok(challenge, "S256", verifier));
        assert!(!pkce_ok(
            challenge,
            "S256",
            "wrong-verifier-wrong-verifier-wrong-verifier-x"
        ));
        assert!(!pkce_ok(challenge, "plain", challenge));
        assert!(pkce_ok("", "", ""));
        assert!(
            !pkce_ok("", "", verifier),
            "a verifier without a challenge is suspicious"
        );
    }
}
