//! The identity a login source vouches for, in one shape whatever the upstream: what
//! [`crate::matching`] decides on, what the prompt stage pre-fills, and what the web layer keeps
//! in the flow context.

use serde::{Deserialize, Serialize};

/// A person as the upstream describes them after a verified login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The upstream's stable identifier: OIDC and Google `sub`, GitHub's numeric `id`, Facebook's
    /// `id`. The user-source connection is keyed by it; it never changes when the person renames
    /// themselves or changes their email.
    pub id: String,
    /// A suggested username (GitHub `login`, Facebook `name`, OIDC `nickname` or
    /// `preferred_username`, Google's email address).
    pub username: Option<String>,
    /// The email address the upstream gave. GitHub: only a verified primary address, else none.
    pub email: Option<String>,
    /// Whether the upstream vouches for `email`. Only a verified email may link to an existing
    /// user.
    pub email_verified: bool,
    /// The display name.
    pub name: Option<String>,
    /// Everything the upstream said about the person (userinfo claims, GitHub `/user` plus its
    /// `emails`, Graph `me`), for expression policies and property mappings.
    pub attributes: serde_json::Value,
}

impl Identity {
    /// The email address, if and only if the upstream verified it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

/// A non-empty string field of an upstream's JSON profile or claims, the one way every source
/// reads them.
pub(crate) fn text(profile: &serde_json::Value, key: &str) -> Option<String> {
    profile
        .get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
