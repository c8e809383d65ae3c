//! Endpoints of the well-known login services, so an operator only supplies a client id and
//! secret for Google, GitHub or Facebook.

use crate::kinds::SourceProviderType;

/// The fixed endpoints of a login service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePreset {
    /// Display name.
    pub verbose_name: &'static str,
    /// Authorization endpoint.
    pub authorization_url: &'static str,
    /// Token endpoint.
    pub access_token_url: &'static str,
    /// Userinfo endpoint.
    pub profile_url: &'static str,
    /// OIDC discovery document, when the service has one.
    pub oidc_well_known_url: &'static str,
}

/// The preset of `kind`; `None` for services whose URLs the operator must give (generic OIDC).
pub fn source_preset(kind: SourceProviderType) -> Option<SourcePreset> {
    match kind {
        SourceProviderType::Google => Some(SourcePreset {
            verbose_name: "Google",
            authorization_url: "https://accounts.google.com/o/oauth2/v2/auth",
            access_token_url: "https://oauth2.googleapis.com/token",
            profile_url: "https://openidconnect.googleapis.com/v1/userinfo",
            oidc_well_known_url: "https://accounts.google.com/.well-known/openid-configuration",
        }),
        SourceProviderType::Github => Some(SourcePreset {
            verbose_name: "GitHub",
            authorization_url: "https://github.com/login/oauth/authorize",
            access_token_url: "https://github.com/login/oauth/access_token",
            profile_url: "https://api.github.com/user",
            oidc_well_known_url: "",
        }),
        SourceProviderType::Facebook => Some(SourcePreset {
            verbose_name: "Facebook",
            authorization_url: "https://www.facebook.com/v19.0/dialog/oauth",
            access_token_url: "https://graph.facebook.com/v19.0/oauth/access_token",
            profile_url: "https://graph.facebook.com/v19.0/me?fields=id,name,email",
            oidc_well_known_url: "",
        }),
        _ => None,
    }
}
