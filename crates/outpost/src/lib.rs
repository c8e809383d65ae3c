//! The forward-auth outpost's rules, kept free of HTTP and storage so they are cheap on the hot
//! path and easy to test: which provider a request is for, which URL the visitor asked for,
//! where a login may return to, what the session cookie is called, and which identity headers
//! the application receives. Compatible with Authentik's proxy outpost (SPEC §3.1).
//!
//! # Layout
//! - [`hosts`]: the provider table and selection by host.
//! - [`redirect`]: the `rd` rules: never an open redirect.
//! - [`headers`]: the `X-authentik-*` identity headers.

pub mod headers;
pub mod hosts;
pub mod redirect;

use sha2::{Digest, Sha256};

/// The path prefix of every outpost route.
pub const PREFIX: &str = "/outpost.goauthentik.io";

/// The callback path (with Authentik's marker parameter) under an external host.
pub const CALLBACK: &str = "/outpost.goauthentik.io/callback?X-authentik-auth-callback=true";

/// The session cookie of a provider: `authentik_proxy_` and the first 8 hex digits of the
/// SHA-256 of its client id, as Authentik names it.
pub fn cookie_name(client_id: &str) -> String {
    let digest = Sha256::digest(client_id.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("authentik_proxy_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_follow_authentik() {
        let name = cookie_name("abc");
        assert!(name.starts_with("authentik_proxy_"));
        assert_eq!(name.len(), "authentik_proxy_".len() + 8);
        assert_eq!(name, cookie_name("abc"));
        assert_ne!(name, cookie_name("abd"));
        // sha256("abc") starts with ba7816bf.
        assert_eq!(name, "authentik_proxy_ba7816bf");
    }
}
