//! The flow engine: a flow run is a plan fixed at start (the flow's stages in order) plus an
//! index and a context (pending user, identifier typed, where to go next), kept between requests
//! by [`keep`]. Each stage turns into a [`Challenge`] (plain data the web layer
//! renders) and accepts a [`Response`] (form fields) that moves the run on, asks again with
//! errors, or denies.
//!
//! # Layout
//! - [`policy`]: policies and bindings → `Pass | Fail | NotApplicable`. A policy that needs a
//!   user before one is identified is *not applicable*, so it never denies every anonymous
//!   visitor (SPEC T4).
//! - [`run`]: the engine loop: starting a run, stage policies at entry, moving the index,
//!   assembling the [`Outcome`].
//! - `stages`: one file per stage kind behind one trait (its challenge, its response, next /
//!   retry / deny); a new stage kind is a new file plus a line in its registry.
//! - `state`: the plain data of a run ([`FlowRun`], [`Challenge`], [`Response`], [`Outcome`]).
//! - [`keep`]: where a run waits between requests: an anonymous one sealed in the browser's
//!   cookie, any other in a row.
//! - [`throttle`]: failed attempts per account and per client address, with back-off, never a
//!   lock-out.

pub mod keep;
pub mod policy;
pub mod run;
mod stages;
mod state;
pub mod throttle;

pub use run::Engine;
pub use stages::password::BAD_CREDENTIALS;
pub use stages::totp::{check_code as check_totp_code, totp_for, BAD_CODE};
pub use state::{
    AppContext, Challenge, FlowRun, InvitationContext, Outcome, PasskeyEnrollment,
    PendingSourceLogin, PlannedStage, PromptField, RequestInfo, Response, SourceButton,
    SourceIdentity,
};

/// What went wrong in the engine, apart from the user-facing outcomes of a flow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] gatehouse_store::Error),
    /// A stage or policy is configured in a way the engine cannot use.
    #[error("misconfigured {what}: {message}")]
    Config {
        /// Which object.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// An internal failure (hashing, task join).
    #[error("internal error: {0}")]
    Internal(String),
}

/// An engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
