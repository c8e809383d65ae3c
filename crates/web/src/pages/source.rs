//! `/source/oauth/login/<slug>/` and `/source/oauth/callback/<slug>/` (Authentik's paths, so the
//! redirect URIs registered at Google, GitHub and Facebook keep working after a move): the HTTP
//! side of the login sources. The protocol is `gatehouse_sources`; this file keeps the pending
//! login in the flow run that sent the browser away, matches the identity to a local user, and
//! hands the run back to the flow engine.
//!
//! A login through a source always belongs to a flow run: the identification stage's button
//! continues the run it is on (so an OAuth2 authorize or an invitation carries through), and a
//! bare link starts the source's authentication flow. Linking another account from the user
//! page is a run too, marked with the signed-in user.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gatehouse_core::kinds::FlowDesignation;
use gatehouse_flow::keep::{Found, Kept};
use gatehouse_flow::run::safe_next;
use gatehouse_flow::{FlowRun, PendingSourceLogin, RequestInfo, SourceIdentity};
use gatehouse_sources::{CallbackQuery, Decision, MatchInput, PendingLogin, SourceSettings};
use gatehouse_store::sources::{self, Source};
use gatehouse_store::{events, flows, users, Conn};
use serde_json::json;

use super::flow::{flow_error, save, DEFAULT_NEXT};
use super::{error_page, Hint};
use crate::api::sources::callback_url;
use crate::error::ApiError;
use crate::session;
use crate::AppState;

/// The login-source routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/source/oauth/login/{slug}/", get(login))
        .route("/source/oauth/callback/{slug}/", get(callback))
}

/// What every request here carries.
struct Visit {
    state: AppState,
    headers: HeaderMap,
    req: RequestInfo,
}

impl Visit {
    fn new(
        state: AppState,
        headers: HeaderMap,
        peer: SocketAddr,
        method: &Method,
        uri: &Uri,
    ) -> Visit {
        let req = session::request_info(&headers, peer, method, uri);
        Visit {
            state,
            headers,
            req,
        }
    }
}

/// The protocol settings of a stored source.
fn settings_of(source: &Source) -> SourceSettings {
    let f = &source.fields;
    SourceSettings {
        name: f.name.clone(),
        provider_type: f.provider_type,
        consumer_key: f.consumer_key.clone(),
        consumer_secret: f.consumer_secret.clone(),
        authorization_url: f.authorization_url.clone(),
        access_token_url: f.access_token_url.clone(),
        profile_url: f.profile_url.clone(),
        oidc_well_known_url: f.oidc_well_known_url.clone(),
        oidc_jwks_url: String::new(),
        additional_scopes: f.additional_scopes.clone(),
    }
}

/// "Start again from the login page", after `lead`.
fn start_again(lead: &str) -> Hint<'_> {
    Hint::link(
        "/if/flow/default-authentication-flow/",
        "Start again from the login page",
    )
    .after(lead)
    .then(".")
}

/// The enabled source `slug`, or the page that says why there is none.
async fn usable_source(
    conn: &mut Conn,
    sealing: &gatehouse_store::SecretKey,
    slug: &str,
) -> Result<Result<Source, Response>, ApiError> {
    Ok(match sources::find_by_slug(conn, sealing, slug).await? {
        Some(s) if s.fields.enabled && !s.fields.consumer_secret.is_empty() => Ok(s),
        Some(s) => Err(error_page(
            StatusCode::NOT_FOUND,
            "Login source turned off",
            &format!(
                "Signing in with {} is turned off on this server.",
                s.fields.name
            ),
            "Sign in another way, or ask your administrator to set the source's client secret.",
        )),
        None => Err(error_page(
            StatusCode::NOT_FOUND,
            "No such login source",
            &format!("There is no login source named `{slug}`."),
            start_again("Check the link."),
        )),
    })
}

/// The flow run under the visitor's flow cookie, whichever flow it is.
async fn current_run(
    conn: &mut Conn,
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Kept>, ApiError> {
    Ok(match super::flow::load(conn, state, headers, None).await? {
        Found::Run(kept) => Some(*kept),
        Found::Nothing | Found::Stale(_) => None,
    })
}

/// Starts `flow` afresh for a visitor arriving through a source (the run's next is kept).
async fn fresh_run(
    visit: &Visit,
    conn: &mut Conn,
    flow: &flows::Flow,
    next: String,
) -> Result<Result<FlowRun, Response>, ApiError> {
    let current = session::current(&visit.state, &visit.headers).await?;
    let started = visit
        .state
        .engine
        .start(
            conn,
            flow,
            next,
            current.as_ref().map(|c| &c.session),
            None,
            &visit.req,
        )
        .await
        .map_err(flow_error)?;
    Ok(started.map_err(|message| {
        error_page(
            StatusCode::FORBIDDEN,
            "Access denied",
            &message,
            "If you think this is wrong, ask your administrator.",
        )
    }))
}

/// The flow a source runs for a known (`authentication`) or a new (`enrollment`) person: the
/// source's own, else the default one of that designation.
async fn flow_for(
    conn: &mut Conn,
    source: &Source,
    designation: FlowDesignation,
) -> Result<Option<flows::Flow>, ApiError> {
    let chosen = match designation {
        FlowDesignation::Enrollment => source.fields.enrollment_flow,
        _ => source.fields.authentication_flow,
    };
    if let Some(uuid) = chosen {
        return Ok(gatehouse_store::sql::find(conn, "uuid", uuid.into()).await?);
    }
    Ok(match designation {
        FlowDesignation::Enrollment => None,
        _ => flows::find_by_slug(conn, "default-authentication-flow").await?,
    })
}

fn redirect(location: &str, cookie: Option<axum::http::HeaderValue>) -> Response {
    let mut response = (StatusCode::FOUND, [(LOCATION, location.to_owned())]).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let visit = Visit::new(state, headers, peer, &method, &uri);
    begin(&visit, &slug, &query).await.unwrap_or_else(failure)
}

async fn begin(
    visit: &Visit,
    slug: &str,
    query: &[(String, String)],
) -> Result<Response, ApiError> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut tx = visit.state.store.begin().await?;
    let source = match usable_source(&mut tx, visit.state.store.key(), slug).await? {
        Ok(s) => s,
        Err(page) => return Ok(page),
    };
    let linking = param("link").is_some();
    let signed_in = session::current(&visit.state, &visit.headers).await?;
    let existing = if linking {
        None
    } else {
        current_run(&mut tx, &visit.state, &visit.headers).await?
    };
    let mut kept =
        match existing {
            Some(found) => found,
            None => {
                let Some(flow) =
                    flow_for(&mut tx, &source, FlowDesignation::Authentication).await?
                else {
                    return Ok(error_page(
                        StatusCode::NOT_FOUND,
                        "No login flow",
                        "This server has no authentication flow for this login source.",
                        "Ask your administrator to set the source's authentication flow.",
                    ));
                };
                let next = if linking {
                    "/if/user/"
                } else {
                    param("next").unwrap_or(DEFAULT_NEXT)
                };
                let mut run =
                    match fresh_run(visit, &mut tx, &flow, safe_next(Some(next), DEFAULT_NEXT))
                        .await?
                    {
                        Ok(run) => run,
                        Err(page) => return Ok(page),
                    };
                if linking {
                    let Some(current) = &signed_in else {
                        return Ok(super::user::login_redirect());
                    };
                    run.link_for = Some(current.user.id);
                }
                Kept::new(run)
            }
        };
    let client = &visit.state.source_client;
    let callback = callback_url(&visit.state.settings.external_url, slug);
    let started = match client.start(&settings_of(&source), &callback).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(source = slug, error = %e, "login source start failed");
            return Ok(error_page(
                StatusCode::BAD_GATEWAY,
                "Login service unavailable",
                &e.to_string(),
                start_again("Try again in a moment, or sign in another way."),
            ));
        }
    };
    // The pending login must be used once: it makes the run a stored one.
    kept.run.source_login = Some(PendingSourceLogin {
        slug: slug.to_owned(),
        pending: serde_json::to_value(&started.pending)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
    });
    let cookie = save(&mut tx, &visit.state, &mut kept).await?;
    gatehouse_store::commit(tx).await?;
    Ok(redirect(&started.redirect_url, Some(cookie)))
}

async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    Query(query): Query<CallbackQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let visit = Visit::new(state, headers, peer, &method, &uri);
    complete(&visit, &slug, &query)
        .await
        .unwrap_or_else(failure)
}

async fn complete(visit: &Visit, slug: &str, query: &CallbackQuery) -> Result<Response, ApiError> {
    // First the pending login is taken out of the run and the run saved, in a transaction of its
    // own: a replayed or second callback finds nothing, even while this one talks to the
    // upstream (no transaction is held across network calls).
    let mut tx = visit.state.store.begin().await?;
    let source = match usable_source(&mut tx, visit.state.store.key(), slug).await? {
        Ok(s) => s,
        Err(page) => return Ok(page),
    };
    let Some(mut kept) = current_run(&mut tx, &visit.state, &visit.headers).await? else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            &format!(
                "This sign-in with {} expired, or was started in another browser.",
                source.fields.name
            ),
            start_again(""),
        ));
    };
    let pending = match kept.run.source_login.take() {
        Some(p) if p.slug == slug => serde_json::from_value::<PendingLogin>(p.pending).ok(),
        _ => None,
    };
    // A stored run stays stored: its row now has no pending login. (A carried run never had
    // one, so it finds nothing here either.)
    save(&mut tx, &visit.state, &mut kept).await?;
    gatehouse_store::commit(tx).await?;
    let Some(pending) = pending else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in already used",
            &format!(
                "This answer from {} was already used, or belongs to another sign-in.",
                source.fields.name
            ),
            start_again(""),
        ));
    };
    let callback = callback_url(&visit.state.settings.external_url, slug);
    let identity = match visit
        .state
        .source_client
        .finish(&settings_of(&source), &callback, &pending, query)
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(source = slug, error = %e, "login source callback refused");
            let mut conn = visit.state.store.conn().await?;
            audit(
                &mut conn,
                "login_failed",
                None,
                json!({"source": slug, "reason": e.to_string()}),
                &visit.req,
            )
            .await?;
            return Ok(error_page(
                status_of(&e),
                "Sign-in not completed",
                &e.to_string(),
                start_again(""),
            ));
        }
    };
    let mut tx = visit.state.store.begin().await?;
    let connection = sources::connection_for(&mut tx, source.uuid, &identity.id).await?;
    let signed_in = match kept.run.link_for {
        Some(id) => session::current(&visit.state, &visit.headers)
            .await?
            .filter(|c| c.user.id == id)
            .map(|c| c.user.id),
        None => None,
    };
    let user_with_email = match identity.verified_email() {
        Some(email) => users::find_by_email(&mut tx, email).await?.map(|u| u.id),
        None => None,
    };
    let user_with_username = match identity.username.as_deref() {
        Some(name) if !name.is_empty() => {
            users::find_by_username(&mut tx, name).await?.map(|u| u.id)
        }
        _ => None,
    };
    let facts = MatchInput {
        connected_user: connection.as_ref().map(|c| c.user),
        signed_in_user: signed_in,
        user_with_email,
        user_with_username,
    };
    let context = SourceIdentity {
        source: source.uuid,
        slug: slug.to_owned(),
        source_name: source.fields.name.clone(),
        identifier: identity.id.clone(),
        username: identity.username.clone(),
        email: identity.email.clone(),
        email_verified: identity.email_verified,
        name: identity.name.clone(),
    };
    let decision = gatehouse_sources::decide(source.fields.user_matching_mode, &identity, facts);
    if let (Some(me), Decision::Authenticate(owner)) = (kept.run.link_for, &decision) {
        if *owner != me {
            gatehouse_store::commit(tx).await?;
            return Ok(error_page(
                StatusCode::CONFLICT,
                "Already connected elsewhere",
                &format!(
                    "This {} account is already connected to another Gatehouse account.",
                    source.fields.name
                ),
                Hint::link("/if/user/", "Back to your page"),
            ));
        }
    }
    let user = match decision {
        Decision::Authenticate(id) => {
            if let Some(c) = &connection {
                sources::touch_connection(&mut tx, c.id).await?;
            }
            Some(users::get(&mut tx, id).await?)
        }
        Decision::Link(id) => {
            let user = users::get(&mut tx, id).await?;
            sources::connect(&mut tx, source.uuid, id, &identity.id).await?;
            audit(
                &mut tx,
                "source_linked",
                Some(&user),
                json!({"source": slug}),
                &visit.req,
            )
            .await?;
            Some(user)
        }
        Decision::Enroll => None,
        Decision::Deny(reason) => {
            audit(
                &mut tx,
                "login_failed",
                None,
                json!({"source": slug, "reason": reason.to_string()}),
                &visit.req,
            )
            .await?;
            gatehouse_store::commit(tx).await?;
            return Ok(error_page(
                StatusCode::FORBIDDEN,
                "Sign-in refused",
                &reason.to_string(),
                start_again(""),
            ));
        }
    };
    if kept.run.link_for.is_some() {
        // Connecting another account from the user page ends there; nothing else to run.
        super::flow::forget(&mut tx, &visit.state, &kept).await?;
        gatehouse_store::commit(tx).await?;
        return Ok(redirect("/if/user/", None));
    }
    // A run of the wrong kind is swapped for the source's flow of the right kind, keeping where
    // the visitor was going: a known person in an enrollment run signs in instead, a new person
    // in a login run goes to the source's enrollment flow (invitation-only in the reference).
    let wanted = if user.is_some() {
        FlowDesignation::Authentication
    } else {
        FlowDesignation::Enrollment
    };
    let fits = match wanted {
        FlowDesignation::Enrollment => kept.run.designation == FlowDesignation::Enrollment,
        _ => kept.run.designation != FlowDesignation::Enrollment,
    };
    if !fits {
        let Some(flow) = flow_for(&mut tx, &source, wanted).await? else {
            gatehouse_store::commit(tx).await?;
            return Ok(error_page(
                StatusCode::FORBIDDEN,
                "No account here",
                &format!("No account here is connected to this {} account, and new accounts cannot sign up through it.", source.fields.name),
                "Sign in another way, or ask your administrator for an invitation.",
            ));
        };
        kept.run = match fresh_run(visit, &mut tx, &flow, kept.run.next.clone()).await? {
            Ok(r) => r,
            Err(page) => return Ok(page),
        };
    }
    let outcome = visit
        .state
        .engine
        .source_identified(&mut tx, &mut kept.run, context, user.as_ref(), &visit.req)
        .await
        .map_err(flow_error)?;
    let response = super::flow::conclude(&mut tx, &visit.state, &mut kept, outcome).await?;
    gatehouse_store::commit(tx).await?;
    Ok(response)
}

async fn audit(
    conn: &mut Conn,
    action: &str,
    user: Option<&users::User>,
    context: serde_json::Value,
    req: &RequestInfo,
) -> Result<(), ApiError> {
    events::record(
        conn,
        action,
        "gatehouse.sources",
        events::user_info(user),
        context,
        Some(req.ip.clone()),
    )
    .await?;
    Ok(())
}

/// The status of a failed sign-in: the visitor's doing (cancelled, replayed, forged) is 4xx, the
/// upstream's or the configuration's is 5xx.
fn status_of(e: &gatehouse_sources::Error) -> StatusCode {
    use gatehouse_sources::Error as E;
    match e {
        E::Denied { .. } => StatusCode::FORBIDDEN,
        E::Upstream { .. } => StatusCode::BAD_GATEWAY,
        E::Settings { .. } | E::Unsupported(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn failure(e: ApiError) -> Response {
    tracing::error!(error = %e, "login source failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Gatehouse could not complete this sign-in.",
        "Try again in a moment. If it keeps happening, the server log has the details.",
    )
}
