//! The stage kinds, one file each, behind one [`Stage`] trait. The engine ([`crate::run`]) calls
//! [`Stage::enter`] when a run reaches a stage whose binding policies passed, and
//! [`Stage::respond`] when the visitor posts the stage's form; a stage reads and fills the run's
//! context ([`crate::state::FlowRun`]) but never moves its index: it answers with an [`Entry`] or
//! a [`Step`] and the engine moves on, asks again, or stops.
//!
//! A new stage kind is a new file here with a type implementing [`Stage`], plus its line in
//! [`for_kind`].
//!
//! # Layout
//! - [`identification`]: username or email, login-source buttons and the passkey shortcut;
//!   picks the pending user (or, in a sign-up, how the new person identifies).
//! - [`invitation`]: validates `?itoken=` and puts the invitation's fixed data in the context.
//! - [`password`]: checks the pending user's password, throttled.
//! - [`totp`]: a TOTP or recovery code, skipped without a device (or after a passkey, when a
//!   passkey counts as two factors).
//! - [`prompt`]: fields to fill in (enrollment, profile); passwords kept only as hashes.
//! - [`user_write`]: creates or updates the pending user from the prompt data.
//! - [`user_login`]: starts the session, only after an authentication stage succeeded.
//! - [`user_logout`]: ends the session the flow started with.
//! - [`consent`]: asks to share scopes with an application, remembered per user.
//! - [`deny`]: stops the flow with the stage's message.
//! - [`unsupported`]: the kinds this version cannot run yet, refused with a clear message.

pub(crate) mod consent;
pub(crate) mod deny;
pub(crate) mod identification;
pub(crate) mod invitation;
pub(crate) mod password;
pub(crate) mod prompt;
pub(crate) mod totp;
pub(crate) mod unsupported;
pub(crate) mod user_login;
pub(crate) mod user_logout;
pub(crate) mod user_write;

use async_trait::async_trait;
use gatehouse_core::kinds::StageKind;
use gatehouse_store::{events, users, Conn};
use serde_json::Value;

use crate::run::Engine;
use crate::state::{Challenge, FlowRun, PlannedStage, RequestInfo, Response};
use crate::Result;

/// What one call into a stage may use: the engine's throttles, the transaction, the run and the
/// stage's own plan entry.
pub(crate) struct Visit<'a> {
    /// Process-wide limits.
    pub(crate) engine: &'a Engine,
    /// The request's transaction.
    pub(crate) conn: &'a mut Conn,
    /// The run, whose context the stage reads and fills.
    pub(crate) run: &'a mut FlowRun,
    /// The stage being visited (its name and settings).
    pub(crate) stage: &'a PlannedStage,
    /// The HTTP request, for throttles and audit events.
    pub(crate) req: &'a RequestInfo,
}

/// What a stage does when the run reaches it.
#[derive(Debug)]
pub(crate) enum Entry {
    /// Ask the visitor this; the run waits at the stage for a response.
    Ask(Challenge),
    /// Nothing to ask (or the stage did its work without input): move on.
    Pass,
    /// A session started for the pending user: move on, and hand out its cookie at the end.
    LoggedIn {
        /// Cookie value.
        session_key: String,
        /// Cookie Max-Age in seconds; `None` for a browser-session cookie.
        max_age: Option<i64>,
    },
    /// The flow's session ended: move on, and clear its cookie at the end.
    LoggedOut,
    /// Go back to the earlier stage at `index` and ask it again (a taken username sends the
    /// visitor back to the prompt).
    Back {
        /// The stage to return to.
        index: usize,
        /// Its question, with what was entered.
        challenge: Challenge,
        /// Why.
        errors: Vec<String>,
    },
    /// The flow stops here, with a message for the visitor.
    Deny(String),
}

/// What a stage makes of a response.
#[derive(Debug)]
pub(crate) enum Step {
    /// Accepted: on to the next stage.
    Next,
    /// Not accepted: ask again with what went wrong.
    Retry {
        /// The question again.
        challenge: Challenge,
        /// What went wrong.
        errors: Vec<String>,
    },
    /// A field is unacceptable as sent (too long, malformed): HTTP 400 naming it.
    Invalid {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// The flow stops here, with a message for the visitor.
    Deny(String),
    /// The stage takes no input: show the run as it stands.
    Stay,
}

impl Step {
    /// A field too long or malformed.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Step {
        Step::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same question again with one error.
    pub(crate) fn retry(challenge: Challenge, error: impl Into<String>) -> Step {
        Step::Retry {
            challenge,
            errors: vec![error.into()],
        }
    }
}

/// One kind of stage: its challenge and what it makes of the answer.
#[async_trait]
pub(crate) trait Stage: Sync {
    /// The run reached this stage: ask something, pass, or stop.
    async fn enter(&self, visit: Visit<'_>) -> Result<Entry>;

    /// The visitor posted this stage's form. Stages that ask nothing keep the default.
    async fn respond(&self, visit: Visit<'_>, response: &Response) -> Result<Step> {
        let _ = (visit, response);
        Ok(Step::Stay)
    }
}

/// The registry: which implementation runs a stage kind.
pub(crate) fn for_kind(kind: StageKind) -> &'static dyn Stage {
    match kind {
        StageKind::Identification => &identification::Identification,
        StageKind::Password => &password::Password,
        StageKind::Totp => &totp::Totp,
        StageKind::Prompt => &prompt::Prompt,
        StageKind::UserWrite => &user_write::UserWrite,
        StageKind::UserLogin => &user_login::UserLogin,
        StageKind::UserLogout => &user_logout::UserLogout,
        StageKind::Consent => &consent::Consent,
        StageKind::Deny => &deny::Deny,
        StageKind::Invitation => &invitation::Invitation,
        StageKind::Webauthn => &unsupported::Unsupported,
    }
}

/// Records an audit event of the flow engine for `user` (or nobody yet).
pub(crate) async fn audit(
    conn: &mut Conn,
    action: &str,
    user: Option<&users::User>,
    context: Value,
    req: &RequestInfo,
) -> Result<()> {
    events::record(
        conn,
        action,
        "gatehouse.flow",
        events::user_info(user),
        context,
        Some(req.ip.clone()),
    )
    .await?;
    Ok(())
}

/// Runs CPU-heavy work (password hashing) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| crate::Error::Internal(e.to_string()))
}
