//! The flow engine: a flow run is a plan fixed at start (the flow's stages in order) plus an
//! index and a context (pending user, identifier typed, where to go next), stored server-side
//! under an opaque cookie. Each stage turns into a [`Challenge`] (plain data the web layer
//! renders) and accepts a [`Response`] (form fields) that moves the run on, asks again with
//! errors, or denies.
//!
//! # Layout
//! - [`policy`]: policies and bindings → `Pass | Fail | NotApplicable`. A policy that needs a
//!   user before one is identified is *not applicable*, so it never denies every anonymous
//!   visitor (SPEC T4).
//! - [`run`]: starting, resuming and advancing a flow run; the stages' behaviour.
//! - [`throttle`]: per (identifier, IP) and per-IP rate limits with back-off, never a lock-out.

pub mod policy;
pub mod run;
pub mod throttle;

pub use run::{Challenge, Engine, FlowRun, Outcome, RequestInfo, Response};

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
