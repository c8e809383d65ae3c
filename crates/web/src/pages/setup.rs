//! `/if/flow/initial-setup/?token=…`: the one-time page where the first admin sets a password and
//! receives an API token. The link is printed at start-up when `admin` has neither; it works
//! once and expires after a day.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use gatehouse_core::kinds::TokenIntent;
use gatehouse_core::secret;
use gatehouse_store::{tokens, users};
use serde::Deserialize;

use super::Template;
use crate::bootstrap::SETUP_TOKEN;
use crate::AppState;

/// The set-up routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/if/flow/initial-setup/", get(show).post(submit))
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_repeat: String,
}

/// The set-up page in the one layout, with the headers every page carries: it shows the admin
/// API token once, so it must never be cached, framed or run scripts from elsewhere.
fn page(title: &str, body: &impl Template) -> Response {
    super::page(StatusCode::OK, title, body)
}

/// Why a set-up link cannot be used (`templates/setup_invalid.html`).
#[derive(Template)]
#[template(path = "setup_invalid.html")]
struct Invalid<'a> {
    why: &'a str,
}

/// The set-up form (`templates/setup.html`).
#[derive(Template)]
#[template(path = "setup.html")]
struct SetupBody<'a> {
    token: &'a str,
    /// Why the last attempt was not accepted.
    error: Option<&'a str>,
}

/// Set-up done: the API token, shown only now (`templates/setup_done.html`).
#[derive(Template)]
#[template(path = "setup_done.html")]
struct Done<'a> {
    key: &'a str,
}

/// The database refused the set-up.
#[derive(Template)]
#[template(
    source = "<p class=error>The database did not accept the change; nothing was saved. Reload and try again.</p>",
    ext = "html"
)]
struct Failed;

/// Why a set-up token cannot be used; shown to the visitor.
async fn check(state: &AppState, token: &str) -> Result<tokens::Token, (StatusCode, Response)> {
    let invalid = |why: &str| {
        (
            StatusCode::FORBIDDEN,
            page("Set-up link not valid", &Invalid { why }),
        )
    };
    if token.is_empty() {
        return Err(invalid("This link has no token."));
    }
    let mut conn = state
        .store
        .conn()
        .await
        .map_err(|_| invalid("The database is unavailable; try again."))?;
    let found = tokens::find_by_key(&mut conn, token)
        .await
        .map_err(|_| invalid("The database is unavailable; try again."))?;
    match found {
        Some(t)
            if t.fields.identifier == SETUP_TOKEN && t.fields.intent == TokenIntent::Recovery =>
        {
            if t.is_expired(Utc::now()) {
                Err(invalid("This set-up link has expired."))
            } else {
                Ok(t)
            }
        }
        _ => Err(invalid(
            "This set-up link was already used or never existed.",
        )),
    }
}

async fn show(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> Result<Response, (StatusCode, Response)> {
    check(&state, &q.token).await?;
    Ok(page(
        "Set up Gatehouse",
        &SetupBody {
            token: &q.token,
            error: None,
        },
    ))
}

async fn submit(
    State(state): State<AppState>,
    Form(f): Form<SetupForm>,
) -> Result<Response, (StatusCode, Response)> {
    let setup = check(&state, &f.token).await?;
    let retry = |msg: &str| {
        (
            StatusCode::BAD_REQUEST,
            page(
                "Set up Gatehouse",
                &SetupBody {
                    token: &f.token,
                    error: Some(msg),
                },
            ),
        )
    };
    if f.password.chars().count() < 8 {
        return Err(retry("The password must have at least 8 characters."));
    }
    if f.password.len() > 1024 {
        return Err(retry("The password must have at most 1024 characters."));
    }
    if f.password != f.password_repeat {
        return Err(retry("The two passwords differ."));
    }
    let failed = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            page("Set-up failed", &Failed),
        )
    };
    let password = f.password.clone();
    let hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|_| failed())?
        .map_err(|_| failed())?;
    let key = secret::new_token();
    let result: gatehouse_store::Result<()> = async {
        let mut tx = state.store.begin().await?;
        // Deleting the set-up token first makes a concurrent second submit fail: valid once.
        tokens::delete(&mut tx, setup.uuid).await?;
        users::set_password_hash(&mut tx, setup.fields.user, Some(&hash)).await?;
        tokens::create(
            &mut tx,
            &tokens::TokenFields {
                identifier: format!("admin-api-{}", Utc::now().format("%Y%m%d%H%M%S")),
                intent: TokenIntent::Api,
                user: setup.fields.user,
                description: "Created on the initial set-up page".into(),
                expiring: false,
                expires: None,
                managed: None,
            },
            &key,
        )
        .await?;
        gatehouse_store::commit(tx).await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "initial set-up failed");
        return Err(match e {
            gatehouse_store::Error::NotFound { .. } => {
                check(&state, "").await.err().unwrap_or_else(failed)
            }
            _ => failed(),
        });
    }
    tracing::info!("initial set-up done: admin password set and API token issued");
    Ok(page("Gatehouse is ready", &Done { key: &key }))
}
