//! Login sources: the client side of OAuth2 and OpenID Connect, so people can sign in to
//! Gatehouse with an account they already have at Google, GitHub, Facebook or any OpenID
//! Connect provider.
//!
//! This crate knows the protocols and nothing of HTTP routes, flows or storage: the web layer
//! (`/source/oauth/login/<slug>/` and `/source/oauth/callback/<slug>/`) hands it a source's
//! settings as a plain [`SourceSettings`], keeps the [`PendingLogin`] between the two requests,
//! and stores the user-source connection that [`matching::decide`] asks for. A login is two calls:
//!
//! 1. [`SourceClient::start`] → the upstream's authorization URL to redirect the browser to, plus
//!    the [`PendingLogin`] (state, nonce, PKCE verifier) to keep until the callback, once.
//! 2. [`SourceClient::finish`] with the callback's [`CallbackQuery`] → a verified, normalised
//!    [`Identity`], or an [`Error`] whose message tells the user what happened.
//!
//! # Layout
//! - [`settings`]: a source's settings, its preset's endpoints and scopes, and the documented
//!   overrides that point a preset elsewhere.
//! - [`login`]: the two calls above, the state check, and the callback's error parameters.
//! - `oidc`: Google and generic OpenID Connect through the `openidconnect` crate: discovery,
//!   JWKS, `id_token` verification (signature, `iss`, `aud`, `exp`, `nonce`), userinfo.
//! - `oauth`: plain OAuth2 through the `oauth2` crate, shared by GitHub and Facebook: the
//!   authorization URL and the code exchange, with the refusals both answer in their own shapes.
//! - `github`, `facebook`: each preset's profile calls (`/user` + `/user/emails`, Graph `me`).
//! - [`identity`]: the normalised [`Identity`] every source produces.
//! - [`matching`]: the pure decision what an identity means for local users (authenticate,
//!   link, enroll, deny), with Authentik's user matching modes.
//! - [`error`]: the crate's one error type.
//!
//! Stand-ins for the upstream services live in the testkit (`gatehouse_testkit::upstream`).

pub mod error;
mod facebook;
mod github;
pub mod identity;
pub mod login;
pub mod matching;
mod oauth;
mod oidc;
pub mod settings;

pub use error::{Error, Result};
pub use identity::Identity;
pub use login::{CallbackQuery, LoginStart, PendingLogin, SourceClient};
pub use matching::{decide, Decision, DenyReason, MatchInput};
pub use settings::SourceSettings;
