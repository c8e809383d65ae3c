//! Wire types of the Gatehouse REST API (`/api/v3/`), shared by the server and the CLI.
//!
//! Shapes and field names follow Authentik's v3 API so that existing scripts and the
//! `authentik-client` SDK (which validates responses strictly) keep working: where the SDK
//! requires a field Gatehouse has no concept for, it gets a sensible empty value.
//!
//! Response types are plain structs; request types have every field optional so one type serves
//! create (`POST`, required fields checked by the server), replace (`PUT`) and partial update
//! (`PATCH`), and they refuse unknown fields.
//!
//! # Layout
//! - [`page`]: the pagination envelope.
//! - [`authenticators`]: passkeys and TOTP devices (never their secrets).
//! - [`core`]: users, groups, applications, tokens.
//! - [`providers`]: OAuth2 and proxy providers.
//! - [`flows`]: flows, policy bindings, invitations.
//! - [`policies`]: expression and reputation policies, reputation scores.
//! - [`stages`]: stages of each kind and their bindings into flows.
//! - [`sources`], [`outposts`], [`events`].
//! - [`declarative`]: plan/apply of the declarative config.

pub mod authenticators;
pub mod core;
pub mod declarative;
pub mod events;
pub mod flows;
pub mod outposts;
pub mod page;
pub mod policies;
pub mod providers;
pub mod sources;
pub mod stages;

use serde::{Deserialize, Deserializer};

/// Distinguishes "field absent" (`None`) from "field set to null" (`Some(None)`) in PATCH bodies.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `{"pk": …}`: the body of `add_user` / `remove_user`.
#[derive(Debug, Clone, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserAccountRequest {
    /// The user's integer id.
    pub pk: i64,
}

/// `{"password": …}`: the body of `set_password`.
#[derive(Debug, Clone, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordSetRequest {
    /// The new password.
    pub password: String,
}

/// `{"password": …}`: the body of `set_password_hash`, an encoded hash carried over from
/// another identity provider (Authentik's Django forms or an argon2id PHC string).
#[derive(Debug, Clone, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPasswordHashSetRequest {
    /// The encoded hash, e.g. `pbkdf2_sha256$1000000$<salt>$<hash>`.
    pub password: String,
}
