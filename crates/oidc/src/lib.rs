//! The OAuth2/OIDC provider of Gatehouse, apart from its HTTP wiring: signing keys, what
//! tokens claim, how token responses are minted and stored, PKCE, and redirect-URI matching.
//! The web crate's `oidc` module holds the axum handlers at Authentik's paths
//! (`/application/o/...`) and maps [`Error`] to its `ApiError`; the login sources (the client
//! side of OIDC) are the `sources` crate.
//!
//! # Layout
//! - [`keys`]: the signing keys (RS256, ES256), kept in the database for every replica, held
//!   parsed in memory ([`Keyring`]); rotation; verification of our own tokens.
//! - [`claims`]: the `sub` and claims of a user for the granted scopes and scope mappings.
//! - [`tokens`]: access-token claims, minting and storing a token response, PKCE.
//! - [`redirect`]: registered redirect URIs (strict or regex) and query parameters on them.

pub mod claims;
pub mod keys;
pub mod redirect;
pub mod tokens;

pub use claims::{uid, user_claims};
pub use keys::Keyring;
pub use redirect::{redirect_allowed, url_with};
pub use tokens::issuer;

/// Scopes Gatehouse understands; others are dropped from the grant.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];

/// What went wrong in the provider's logic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] gatehouse_store::Error),
    /// An internal failure (key generation or parsing, signing, a task join).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A provider result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
