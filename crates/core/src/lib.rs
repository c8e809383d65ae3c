//! Domain vocabulary of Gatehouse: the kinds of objects an operator configures, the rules their
//! values must follow, and the secrets they carry.
//!
//! # Layout
//! - [`kinds`]: closed sets of values (user types, flow designations, proxy modes, …) shared by the
//!   store, the API and the declarative config, spelled exactly as Authentik spells them.
//! - [`client_address`]: which address a request comes from when trusted proxies sit in front
//!   (`X-Forwarded-For`, `Forwarded`), for throttles, reputation, events and policies.
//! - [`duration`]: Authentik's duration strings (`weeks=4`, `hours=1;minutes=30`).
//! - [`secret`]: random tokens, their hashes at rest, and argon2id password hashing.
//! - [`django_hash`]: password hashes carried over from Authentik (Django's encoded form).
//! - [`validate`]: field rules (slugs, names, emails, URLs) with messages that name the fix.
//!
//! Nothing here speaks HTTP or SQL; `gatehouse-store` persists these values and `gatehouse-web`
//! serves them.

pub mod client_address;
pub mod django_hash;
pub mod duration;
pub mod kinds;
pub mod presets;
pub mod secret;
pub mod validate;

pub use duration::Duration;
