//! The one error type of the login sources. Each message is written for the person signing in
//! (what happened, what to do); the web layer shows it on the error page and logs it. Messages
//! never carry tokens, codes or secrets.

use gatehouse_core::kinds::SourceProviderType;

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a login through a source did not produce an identity.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The person declined at the upstream (`error=access_denied`).
    #[error("You cancelled the sign-in at {service}, so you are not signed in. Try again and allow access, or choose another way to sign in.")]
    Denied {
        /// The upstream's name (e.g. "GitHub").
        service: String,
    },
    /// The upstream answered the authorization request with another error.
    #[error("{service} refused the sign-in ({error}{}). Try again; if it keeps failing, ask an administrator to check the login source's settings.", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused {
        /// The upstream's name.
        service: String,
        /// The OAuth2 `error` code.
        error: String,
        /// The upstream's `error_description`, shortened.
        description: Option<String>,
    },
    /// The callback's `state` is missing or is not the one this login started with.
    #[error("This sign-in response does not belong to the sign-in you started (missing or wrong state). Start the sign-in again from the login page.")]
    StateMismatch,
    /// The callback carries neither a code nor an error.
    #[error("The login service sent no authorization code. Start the sign-in again from the login page.")]
    MissingCode,
    /// The upstream's token endpoint refused the code (used already, expired, wrong client).
    #[error("The login service refused to complete the sign-in ({error}{}); the link may have been used already or have expired. Start the sign-in again from the login page.", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    TokenRefused {
        /// The OAuth2 `error` code (or the upstream's own error type).
        error: String,
        /// The upstream's description, shortened.
        description: Option<String>,
    },
    /// The `id_token` failed verification (signature, issuer, audience, expiry or nonce).
    #[error("The login service's ID token failed verification ({0}), so the sign-in was refused. Start the sign-in again; if it keeps failing, ask an administrator.")]
    IdToken(String),
    /// The upstream could not be reached or answered something unusable.
    #[error("Could not {step} at the login service: {detail}. Try again later; if it keeps failing, ask an administrator.")]
    Upstream {
        /// What was being done, as a verb phrase ("exchange the authorization code").
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The source's settings cannot work (a missing client id, a URL that does not parse).
    #[error("The login source is misconfigured: {field}: {problem}. An administrator must fix the source's settings.")]
    Settings {
        /// The setting's name, as in the API.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The source's provider type has no client here yet.
    #[error("Login sources of type {0} are not supported yet; use provider type openidconnect with the service's discovery URL (oidc_well_known_url).")]
    Unsupported(SourceProviderType),
}

impl Error {
    /// An [`Error::Upstream`] for `step` from any displayable cause.
    pub(crate) fn upstream(step: &'static str, detail: impl std::fmt::Display) -> Error {
        Error::Upstream {
            step,
            detail: detail.to_string(),
        }
    }
}

/// Upstream-supplied text is shown to the user: keep it to one short line.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    let line: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if text.chars().count() > MAX {
        format!("{line}…")
    } else {
        line
    }
}
