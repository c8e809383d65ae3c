//! Stand-ins for the login services tests cannot reach: a Google-like OpenID Connect provider, a
//! GitHub-like OAuth2 app server with its REST API, and a Facebook-like Graph API. Each is a
//! small axum server on `127.0.0.1:0`, stopped on drop, implementing the endpoints the presets in
//! `gatehouse-sources` call, with the request and response shapes the services document: only
//! the base URL differs from production, set through the source's documented override settings
//! ([`Upstream::overrides`]).
//!
//! The authorize endpoints are browser redirects (302 back to `redirect_uri` with `code` and
//! `state`), so the same stand-ins serve library tests (following the 302 by hand) and browser
//! journeys. The token endpoints check what the real ones check: client credentials, single use
//! of the code, the `redirect_uri`, and the PKCE S256 verifier. [`Knobs`] turn on the attack and
//! failure cases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, OnceCell};

/// The client id every stand-in has registered (use it as the source's `consumer_key`).
pub const CLIENT_ID: &str = "gatehouse-test-client";
/// The client secret every stand-in has registered (the source's `consumer_secret`).
pub const CLIENT_SECRET: &str = "gatehouse-test-secret";
/// The Graph API version of the Facebook stand-in's paths, the preset's.
const GRAPH_VERSION: &str = "v19.0";

/// Which service a stand-in imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// OpenID Connect with discovery, JWKS, RS256 `id_token` and userinfo (also fits a generic
    /// OIDC source).
    Google,
    /// OAuth2 plus `GET /user` and `GET /user/emails`.
    Github,
    /// OAuth2 plus Graph API `GET /me`.
    Facebook,
}

/// The account that signs in at the stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Upstream id: Google `sub`, GitHub numeric `id` (must parse as a number), Facebook `id`.
    pub id: String,
    /// GitHub `login` (the other services have no username).
    pub login: String,
    /// Display name.
    pub name: String,
    /// Email address (GitHub: the primary one).
    pub email: String,
    /// Whether the service verified `email` (Google `email_verified`, GitHub `verified`).
    pub email_verified: bool,
}

impl Default for Person {
    fn default() -> Self {
        Person {
            id: "583231".into(),
            login: "octocat".into(),
            name: "Octo Cat".into(),
            email: "octocat@example.com".into(),
            email_verified: true,
        }
    }
}

/// What may be wrong with an `id_token` the Google stand-in issues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdTokenFlaw {
    /// A correct token.
    #[default]
    None,
    /// `aud` is another client's id.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `nonce` is not the one sent at authorization.
    WrongNonce,
    /// Signed by a key that is not in the JWKS (same `kid`).
    BadSignature,
    /// `exp` lies in the past.
    Expired,
}

/// Switches for failure and attack cases; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    /// The authorize endpoint redirects back with `error=access_denied`, as when the person
    /// declines.
    pub deny: bool,
    /// A flaw in the next `id_token`s (Google only).
    pub id_token: IdTokenFlaw,
    /// The profile has no email (Facebook without the `email` permission; Google without the
    /// `email` scope; GitHub answers `/user/emails` with 403, as for an app without the email
    /// permission).
    pub without_email: bool,
}

/// The settings that point a source at a stand-in (Authentik's field names); empty ones keep
/// the preset's or the discovery document's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `authorization_url`.
    pub authorization_url: String,
    /// `access_token_url`.
    pub access_token_url: String,
    /// `profile_url`.
    pub profile_url: String,
    /// `oidc_well_known_url`.
    pub oidc_well_known_url: String,
}

/// A code the authorize endpoint issued, waiting for the token endpoint.
#[derive(Debug, Clone)]
struct Grant {
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    person: Person,
}

/// What the handlers share.
struct Shared {
    service: Service,
    url: String,
    keys: &'static Keys,
    /// Knobs and person; read at each request, so a test can change them mid-login.
    config: Mutex<(Knobs, Person)>,
    /// Issued, not yet redeemed codes.
    grants: Mutex<HashMap<String, Grant>>,
    /// Access tokens and whom they belong to.
    tokens: Mutex<HashMap<String, Person>>,
    /// The query of the last authorization request, for assertions.
    last_authorization: Mutex<Option<HashMap<String, String>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running stand-in; stopped on drop.
pub struct Upstream {
    /// Base URL, e.g. `http://127.0.0.1:41240` (also the Google stand-in's issuer).
    pub url: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Upstream {
    /// Starts a stand-in for `service` at which `person` signs in.
    pub async fn start(service: Service, person: Person) -> anyhow::Result<Upstream> {
        let keys = keys().await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            service,
            url: url.clone(),
            keys,
            config: Mutex::new((Knobs::default(), person)),
            grants: Mutex::default(),
            tokens: Mutex::default(),
            last_authorization: Mutex::default(),
        });
        let router = match service {
            Service::Google => Router::new()
                .route("/.well-known/openid-configuration", get(discovery))
                .route("/oauth2/v3/certs", get(jwks))
                .route("/o/oauth2/v2/auth", get(authorize))
                .route("/token", post(token))
                .route("/v1/userinfo", get(userinfo)),
            Service::Github => Router::new()
                .route("/login/oauth/authorize", get(authorize))
                .route("/login/oauth/access_token", post(token))
                .route("/user", get(github_user))
                .route("/user/emails", get(github_emails)),
            Service::Facebook => Router::new()
                .route(&format!("/{GRAPH_VERSION}/dialog/oauth"), get(authorize))
                .route(&format!("/{GRAPH_VERSION}/oauth/access_token"), post(token))
                .route(&format!("/{GRAPH_VERSION}/me"), get(facebook_me)),
        }
        .with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Upstream {
            url,
            shared,
            shutdown: Some(shutdown),
        })
    }

    /// Changes the knobs or the person for the requests that follow.
    pub fn set(&self, change: impl FnOnce(&mut Knobs, &mut Person)) {
        let mut config = lock(&self.shared.config);
        let (knobs, person) = &mut *config;
        change(knobs, person);
    }

    /// The settings that point a source of this service's preset here.
    pub fn overrides(&self) -> Overrides {
        let url = &self.url;
        match self.shared.service {
            Service::Google => Overrides {
                oidc_well_known_url: format!("{url}/.well-known/openid-configuration"),
                ..Overrides::default()
            },
            Service::Github => Overrides {
                authorization_url: format!("{url}/login/oauth/authorize"),
                access_token_url: format!("{url}/login/oauth/access_token"),
                profile_url: format!("{url}/user"),
                oidc_well_known_url: String::new(),
            },
            Service::Facebook => Overrides {
                authorization_url: format!("{url}/{GRAPH_VERSION}/dialog/oauth"),
                access_token_url: format!("{url}/{GRAPH_VERSION}/oauth/access_token"),
                profile_url: format!("{url}/{GRAPH_VERSION}/me?fields=id,name,email"),
                oidc_well_known_url: String::new(),
            },
        }
    }

    /// The query parameters of the last authorization request (scope, PKCE, nonce, ...).
    pub fn last_authorization(&self) -> Option<HashMap<String, String>> {
        lock(&self.shared.last_authorization).clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The signing key in the JWKS and a second one that is not (for bad signatures), made once
/// per test process: RSA key generation is slow.
struct Keys {
    signing: jsonwebtoken::EncodingKey,
    impostor: jsonwebtoken::EncodingKey,
    jwk: Value,
}

const KID: &str = "stand-in-1";

async fn keys() -> anyhow::Result<&'static Keys> {
    static KEYS: OnceCell<Keys> = OnceCell::const_new();
    KEYS.get_or_try_init(|| async {
        tokio::task::spawn_blocking(|| -> anyhow::Result<Keys> {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            use rsa::traits::PublicKeyParts;
            let make = || -> anyhow::Result<(jsonwebtoken::EncodingKey, rsa::RsaPublicKey)> {
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
                let pem = key.to_pkcs8_pem(LineEnding::LF)?;
                Ok((
                    jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())?,
                    key.to_public_key(),
                ))
            };
            let (signing, public) = make()?;
            let (impostor, _) = make()?;
            let jwk = json!({
                "kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            });
            Ok(Keys {
                signing,
                impostor,
                jwk,
            })
        })
        .await
        .context("generating the stand-in's RSA keys")?
    })
    .await
}

fn random(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_owned()).into_response()
}

/// Google's discovery document, with the fields its published one has that clients use.
async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let url = &shared.url;
    Json(json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/o/oauth2/v2/auth"),
        "token_endpoint": format!("{url}/token"),
        "userinfo_endpoint": format!("{url}/v1/userinfo"),
        "jwks_uri": format!("{url}/oauth2/v3/certs"),
        "response_types_supported": ["code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "keys": [shared.keys.jwk.clone()] }))
}

/// The consent screen, already agreed to (or declined with [`Knobs::deny`]): a 302 back to the
/// client with `code` and `state`, or with the service's documented error parameters.
async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    *lock(&shared.last_authorization) = Some(query.clone());
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return bad_request("unknown client_id");
    }
    // Facebook's dialog defaults to the code flow; the others require it.
    let response_type = query.get("response_type").map(String::as_str);
    if response_type != Some("code")
        && !(shared.service == Service::Facebook && response_type.is_none())
    {
        return bad_request("response_type must be code");
    }
    let Some(redirect_uri) = query.get("redirect_uri") else {
        return bad_request("redirect_uri is required");
    };
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return bad_request("redirect_uri is not a URL");
    };
    if let Some(method) = query.get("code_challenge_method") {
        if method != "S256" {
            return bad_request("code_challenge_method must be S256");
        }
    }
    let (knobs, person) = lock(&shared.config).clone();
    {
        let mut pairs = back.query_pairs_mut();
        if knobs.deny {
            match shared.service {
                Service::Google => {
                    pairs.append_pair("error", "access_denied");
                }
                Service::Github => {
                    pairs
                        .append_pair("error", "access_denied")
                        .append_pair(
                            "error_description",
                            "The user has denied your application access.",
                        )
                        .append_pair(
                            "error_uri",
                            "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
                        );
                }
                Service::Facebook => {
                    pairs
                        .append_pair("error_reason", "user_denied")
                        .append_pair("error", "access_denied")
                        .append_pair("error_description", "Permissions error.");
                }
            }
        } else {
            let code = random("code-");
            lock(&shared.grants).insert(
                code.clone(),
                Grant {
                    redirect_uri: redirect_uri.clone(),
                    code_challenge: query.get("code_challenge").cloned(),
                    nonce: query.get("nonce").cloned(),
                    person,
                },
            );
            pairs.append_pair("code", &code);
        }
        if let Some(state) = query.get("state") {
            pairs.append_pair("state", state);
        }
    }
    // 302 Found, as the real services answer.
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// A refusal at the token endpoint, in the service's documented shape.
fn token_refusal(service: Service, error: &str, description: &str) -> Response {
    match service {
        // GitHub answers errors with status 200.
        Service::Github => Json(json!({
            "error": error, "error_description": description,
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
        }))
        .into_response(),
        Service::Facebook => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": description, "type": "OAuthException", "code": 100, "fbtrace_id": "stand-in"}})),
        )
            .into_response(),
        Service::Google => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response(),
    }
}

/// Client id and secret from the body (`client_secret_post`) or HTTP Basic.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) {
        return Some((id.clone(), secret.clone()));
    }
    let basic = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let service = shared.service;
    if client_credentials(&headers, &form) != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
        return match service {
            Service::Github => token_refusal(service, "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect."),
            _ => (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client", "error_description": "The OAuth client was not found."}))).into_response(),
        };
    }
    if service == Service::Google
        && form.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return token_refusal(service, "unsupported_grant_type", "Invalid grant_type");
    }
    // Redeeming removes the code: a replay finds nothing.
    let grant = form
        .get("code")
        .and_then(|code| lock(&shared.grants).remove(code));
    let Some(grant) = grant else {
        return match service {
            Service::Github => token_refusal(
                service,
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            ),
            Service::Facebook => token_refusal(
                service,
                "OAuthException",
                "This authorization code has been used.",
            ),
            Service::Google => token_refusal(service, "invalid_grant", "Bad Request"),
        };
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return token_refusal(
            service,
            "redirect_uri_mismatch",
            "The redirect_uri does not match the one used for authorization.",
        );
    }
    if let Some(challenge) = &grant.code_challenge {
        let verified = form.get("code_verifier").is_some_and(|verifier| {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge
        });
        if !verified {
            return token_refusal(service, "invalid_grant", "Missing or wrong code_verifier.");
        }
    }
    let access_token = random(match service {
        Service::Github => "gho_",
        Service::Facebook => "EAAB",
        Service::Google => "ya29.",
    });
    lock(&shared.tokens).insert(access_token.clone(), grant.person.clone());
    match service {
        Service::Google => {
            let knobs = lock(&shared.config).0.clone();
            match id_token(&shared, &knobs, &grant) {
                Ok(id_token) => Json(json!({
                    "access_token": access_token, "expires_in": 3599, "token_type": "Bearer",
                    "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
                    "id_token": id_token,
                }))
                .into_response(),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            }
        }
        Service::Github => {
            let json = headers
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/json"));
            if json {
                Json(json!({"access_token": access_token, "scope": "read:user,user:email", "token_type": "bearer"})).into_response()
            } else {
                // GitHub's default answer without `Accept: application/json`.
                (
                    [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
                    format!("access_token={access_token}&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer"),
                )
                    .into_response()
            }
        }
        Service::Facebook => Json(
            json!({"access_token": access_token, "token_type": "bearer", "expires_in": 5183944}),
        )
        .into_response(),
    }
}

/// An RS256 `id_token` as Google issues it, with the flaw the knobs ask for.
fn id_token(shared: &Shared, knobs: &Knobs, grant: &Grant) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let flaw = knobs.id_token;
    let mut claims = json!({
        "iss": if flaw == IdTokenFlaw::WrongIssuer { "https://accounts.example.com".to_owned() } else { shared.url.clone() },
        "azp": CLIENT_ID,
        "aud": if flaw == IdTokenFlaw::WrongAudience { "someone-elses-client" } else { CLIENT_ID },
        "sub": grant.person.id,
        "iat": now - 5,
        "exp": if flaw == IdTokenFlaw::Expired { now - 600 } else { now + 3600 },
        "name": grant.person.name,
    });
    if !knobs.without_email {
        claims["email"] = grant.person.email.clone().into();
        claims["email_verified"] = grant.person.email_verified.into();
    }
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = if flaw == IdTokenFlaw::WrongNonce {
            "another-nonce".into()
        } else {
            nonce.clone().into()
        };
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KID.into());
    let key = if flaw == IdTokenFlaw::BadSignature {
        &shared.keys.impostor
    } else {
        &shared.keys.signing
    };
    Ok(jsonwebtoken::encode(&header, &claims, key)?)
}

/// The person behind the request's bearer token (or Graph's `access_token` parameter).
fn bearer(shared: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Person> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .map(str::to_owned)
        .or_else(|| query.get("access_token").cloned())?;
    lock(&shared.tokens).get(&token).cloned()
}

fn unauthorized(body: Value) -> Response {
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn userinfo(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(person) = bearer(&shared, &headers, &query) else {
        return unauthorized(
            json!({"error": "invalid_request", "error_description": "Invalid Credentials"}),
        );
    };
    let mut body =
        json!({"sub": person.id, "name": person.name, "picture": "https://example.com/photo.jpg"});
    if !lock(&shared.config).0.without_email {
        body["email"] = person.email.into();
        body["email_verified"] = person.email_verified.into();
    }
    Json(body).into_response()
}

/// Why GitHub's API refuses a request.
enum GithubRefusal {
    /// GitHub refuses requests without a User-Agent; so does the stand-in.
    NoUserAgent,
    /// No or an unknown access token.
    BadCredentials,
    /// The token may not read email addresses (a GitHub App without the email permission).
    NoEmailAccess,
}

impl IntoResponse for GithubRefusal {
    fn into_response(self) -> Response {
        match self {
            GithubRefusal::NoUserAgent => (
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            )
                .into_response(),
            GithubRefusal::NoEmailAccess => (
                StatusCode::FORBIDDEN,
                Json(json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/users/emails", "status": "403"})),
            )
                .into_response(),
            GithubRefusal::BadCredentials => unauthorized(
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
            ),
        }
    }
}

fn github_person(shared: &Shared, headers: &HeaderMap) -> Result<Person, GithubRefusal> {
    if !headers.contains_key(header::USER_AGENT) {
        return Err(GithubRefusal::NoUserAgent);
    }
    bearer(shared, headers, &HashMap::new()).ok_or(GithubRefusal::BadCredentials)
}

async fn github_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, GithubRefusal> {
    let person = github_person(&shared, &headers)?;
    let id: u64 = person.id.parse().unwrap_or_default();
    Ok(Json(json!({
        "login": person.login, "id": id, "node_id": "MDQ6VXNlcjE=",
        "avatar_url": "https://example.com/avatar.png",
        "html_url": format!("https://github.com/{}", person.login),
        "type": "User", "site_admin": false, "name": person.name,
        // The public address; most people keep it private.
        "email": null,
    })))
}

async fn github_emails(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, GithubRefusal> {
    let person = github_person(&shared, &headers)?;
    if lock(&shared.config).0.without_email {
        return Err(GithubRefusal::NoEmailAccess);
    }
    Ok(Json(json!([
        {"email": person.email, "primary": true, "verified": person.email_verified, "visibility": "private"},
        // A verified secondary address, which must not count in place of the primary one.
        {"email": format!("old-{}", person.email), "primary": false, "verified": true, "visibility": null},
    ])))
}

async fn facebook_me(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(person) = bearer(&shared, &headers, &query) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}})),
        )
            .into_response();
    };
    let without_email = lock(&shared.config).0.without_email;
    let fields = query.get("fields").map(String::as_str).unwrap_or("id,name");
    let mut body = serde_json::Map::new();
    for field in fields.split(',') {
        match field {
            "id" => body.insert("id".into(), person.id.clone().into()),
            "name" => body.insert("name".into(), person.name.clone().into()),
            "email" if !without_email => body.insert("email".into(), person.email.clone().into()),
            _ => None,
        };
    }
    Json(Value::Object(body)).into_response()
}
