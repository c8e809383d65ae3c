//! The plain data of a flow run: the plan fixed at start and its context ([`FlowRun`]), what a
//! stage asks ([`Challenge`]), what comes back ([`Response`]) and what the web layer does next
//! ([`Outcome`]). The engine ([`crate::run`]) moves a run along; the stages ([`crate::stages`])
//! read and fill its context; the web layer stores it server-side and renders challenges.

use std::collections::HashMap;

use gatehouse_core::kinds::{FlowDesignation, PolicyEngineMode, StageKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Facts about the HTTP request that policies and audit events use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RequestInfo {
    /// Client address.
    pub ip: String,
    /// Host the request was sent to.
    pub host: String,
    /// Path.
    pub path: String,
    /// Method.
    pub method: String,
    /// Browser.
    pub user_agent: String,
}

/// The application a flow runs for (authorization flows started by an OAuth2 authorize).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppContext {
    /// Application id.
    pub uuid: Uuid,
    /// Its display name.
    pub name: String,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// Ask for consent even when it was given before (the client sent `prompt=consent`).
    #[serde(default)]
    pub ask_again: bool,
}

/// One stage of the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedStage {
    /// The stage binding (policy-binding target).
    pub binding: Uuid,
    /// Stage name.
    pub name: String,
    /// What the stage does.
    pub kind: StageKind,
    /// Its settings.
    pub settings: Value,
    /// How the binding's policies combine (runs planned before this field existed combined
    /// them with "all").
    #[serde(default = "all")]
    pub policy_engine_mode: PolicyEngineMode,
}

fn all() -> PolicyEngineMode {
    PolicyEngineMode::All
}

/// A flow in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowRun {
    /// The flow.
    pub flow: Uuid,
    /// Its slug.
    pub slug: String,
    /// Its title.
    pub title: String,
    /// Its designation.
    pub designation: FlowDesignation,
    /// The stages, fixed at start.
    pub stages: Vec<PlannedStage>,
    /// The current stage.
    pub index: usize,
    /// Anti-forgery token every form post must carry.
    pub csrf: String,
    /// Where to go when the flow ends (a same-site path).
    pub next: String,
    /// The user being logged in, once identified.
    pub pending_user: Option<i64>,
    /// What the visitor typed to identify themselves.
    pub identifier: Option<String>,
    /// Whether a password or passkey stage succeeded for `pending_user`.
    pub authenticated: bool,
    /// Whether that was a passkey (user-verifying, so it also counts as the second factor).
    #[serde(default)]
    pub via_passkey: bool,
    /// The session that was active when the flow started.
    pub session: Option<Uuid>,
    /// The user of that session.
    pub session_user: Option<i64>,
    /// Messages of stage policies that skipped their stage.
    pub denials: Vec<String>,
    /// The application being authorised, for consent.
    #[serde(default)]
    pub application: Option<AppContext>,
    /// Whether the visitor ticked "remember me".
    #[serde(default)]
    pub remember_me: bool,
    /// Values entered at prompt stages (a password only as its argon2 hash, `password_hash`),
    /// and an invitation's fixed data.
    #[serde(default)]
    pub prompt_data: serde_json::Map<String, Value>,
    /// The `?itoken=` the flow was opened with, for the invitation stage.
    #[serde(default)]
    pub itoken: Option<String>,
    /// The invitation the invitation stage accepted; checked again before every later stage.
    #[serde(default)]
    pub invitation: Option<InvitationContext>,
    /// Who a login source says the visitor is (pre-fills prompts, linked at user_write).
    #[serde(default)]
    pub source: Option<SourceIdentity>,
    /// A login through a source in progress: what its callback must match, used once.
    #[serde(default)]
    pub source_login: Option<PendingSourceLogin>,
    /// Set when a signed-in user connects another login source from the user page.
    #[serde(default)]
    pub link_for: Option<i64>,
    /// Sign-up with a passkey alone: the new user's id, and the credential once made.
    #[serde(default)]
    pub passkey_enrollment: Option<PasskeyEnrollment>,
}

/// The invitation a run was opened with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationContext {
    /// Its id (the `itoken`).
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// Data applied at enrollment, e.g. `{"group": "Headscale Users"}`.
    pub fixed_data: Value,
    /// Set once this run's new user took it (user_write): later stages no longer check it.
    #[serde(default)]
    pub claimed: bool,
}

/// A person as a login source identified them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// The source.
    pub source: Uuid,
    /// Its slug.
    pub slug: String,
    /// Its display name.
    pub source_name: String,
    /// The stable id at the source.
    pub identifier: String,
    /// Username there, if any.
    pub username: Option<String>,
    /// Email there, if any.
    pub email: Option<String>,
    /// Whether the source verified that email.
    pub email_verified: bool,
    /// Display name there, if any.
    pub name: Option<String>,
}

/// A login through a source between its start and its callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingSourceLogin {
    /// The source's slug: the callback must be this source's.
    pub slug: String,
    /// The protocol's kept values (state, nonce, PKCE verifier), opaque to the engine.
    pub pending: Value,
}

/// A sign-up with a passkey alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyEnrollment {
    /// The new user's UUID, chosen before the account exists: the passkey's user handle.
    pub user: Uuid,
    /// The registered credential's id (base64url), once the browser made it.
    pub credential_id: Option<String>,
    /// The registered credential (webauthn-rs JSON), once the browser made it.
    pub credential: Option<String>,
}

/// A login source's button on the identification page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceButton {
    /// The source's slug (`/source/oauth/login/<slug>/`).
    pub slug: String,
    /// Its label.
    pub name: String,
}

/// What the visitor is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Username or email, login sources, a passkey.
    Identification {
        /// What was typed before (after an error).
        identifier: String,
        /// Whether to ask for a username or email at all (a social/passkey-only sign-up asks
        /// for neither).
        user_fields: bool,
        /// The login sources offered.
        sources: Vec<SourceButton>,
        /// A sign-up (enrollment) rather than a login: the passkey button makes a new passkey.
        enrollment: bool,
        /// Whether to offer a passkey.
        passkey: bool,
    },
    /// Password for the identified user.
    Password {
        /// Shown as "Logging in as …".
        identifier: String,
        /// Offer a "remember me" box (the login stage has a remember-me offset).
        remember_me: bool,
    },
    /// Fields to fill in (enrollment, profile).
    Prompt {
        /// The fields, with what was entered before (passwords never).
        fields: Vec<PromptField>,
    },
    /// A TOTP code.
    Totp,
    /// Create the passkey the new account will sign in with.
    PasskeyEnrollment {
        /// The new user's name, shown by the authenticator.
        name: String,
        /// Their username.
        username: String,
    },
    /// Consent to share data with an application.
    Consent {
        /// The application's name.
        application: String,
        /// What it asks for.
        scopes: Vec<String>,
    },
}

/// One field of a prompt stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptField {
    /// Form name and key in the prompt data, e.g. `username`.
    pub field_key: String,
    /// Label shown.
    pub label: String,
    /// `text`, `email`, `password` or `username`.
    #[serde(rename = "type", default = "text_type")]
    pub kind: String,
    /// Must be filled in.
    #[serde(default)]
    pub required: bool,
    /// Value to show (filled in by the engine, never from settings for passwords).
    #[serde(default)]
    pub value: String,
    /// Where the initial value comes from when nothing was entered yet: `source.name`,
    /// `source.email`, `source.username` (a login source's identity).
    #[serde(default, skip_serializing)]
    pub initial_from: Option<String>,
}

fn text_type() -> String {
    "text".into()
}

/// A form post.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Form fields by name.
    pub fields: HashMap<String, String>,
}

impl Response {
    /// The value of field `name`, empty when it was not sent.
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// What the web layer should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Show a stage, with errors from the last attempt.
    Show {
        /// The stage's question.
        challenge: Challenge,
        /// What went wrong last time.
        errors: Vec<String>,
    },
    /// A field was unacceptable as sent (too long, malformed): HTTP 400 naming it.
    Invalid {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// A session started: set the cookie, then redirect.
    LoggedIn {
        /// Cookie value.
        session_key: String,
        /// Cookie Max-Age in seconds; `None` for a browser-session cookie.
        max_age: Option<i64>,
        /// Where to go.
        redirect: String,
    },
    /// The session ended: clear the cookie, then redirect.
    LoggedOut {
        /// Where to go.
        redirect: String,
    },
    /// The flow ended without a new session.
    Finished {
        /// Where to go.
        redirect: String,
    },
    /// The flow refuses to continue.
    Denied {
        /// Why, for the visitor.
        message: String,
    },
}
