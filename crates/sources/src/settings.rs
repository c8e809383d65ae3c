//! A login source's settings as the web layer hands them over, and what they resolve to: the
//! preset's endpoints (from `gatehouse_core::presets`) unless a documented override is set, and
//! the scopes to ask for.
//!
//! The override fields keep Authentik's names, so an exported Authentik source means the same
//! here. They are how a deployment reaches a self-hosted or regional endpoint, and how the tests
//! point the real preset code at local stand-ins: nothing else about a preset changes.

use gatehouse_core::kinds::SourceProviderType;
use gatehouse_core::presets::source_preset;
use openidconnect::url::Url;

use crate::{Error, Result};

/// The settings of one login source that the protocol needs (no flows, no matching mode).
#[derive(Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// Button label, used in messages ("You cancelled the sign-in at GitHub").
    pub name: String,
    /// Which protocol and preset the source uses.
    pub provider_type: SourceProviderType,
    /// OAuth client id registered at the upstream (also the `aud` an `id_token` must carry).
    pub consumer_key: String,
    /// OAuth client secret registered at the upstream.
    pub consumer_secret: String,
    /// Authorization endpoint; empty: the preset's (or, for OIDC, the discovery document's).
    pub authorization_url: String,
    /// Token endpoint; empty: the preset's (or the discovery document's).
    pub access_token_url: String,
    /// Profile endpoint (OIDC userinfo, GitHub `/user`, Graph `me`); empty: the preset's (or the
    /// discovery document's). GitHub's emails are read from this URL plus `/emails`.
    pub profile_url: String,
    /// OIDC discovery document; required for generic OpenID Connect, empty for Google means
    /// Google's own.
    pub oidc_well_known_url: String,
    /// OIDC signing keys; empty: the discovery document's `jwks_uri`.
    pub oidc_jwks_url: String,
    /// Extra scopes, separated by spaces or commas; a leading `*` replaces the preset's scopes.
    pub additional_scopes: String,
}

impl std::fmt::Debug for SourceSettings {
    // The secret stays out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSettings")
            .field("name", &self.name)
            .field("provider_type", &self.provider_type)
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"<redacted>")
            .field("authorization_url", &self.authorization_url)
            .field("access_token_url", &self.access_token_url)
            .field("profile_url", &self.profile_url)
            .field("oidc_well_known_url", &self.oidc_well_known_url)
            .field("oidc_jwks_url", &self.oidc_jwks_url)
            .field("additional_scopes", &self.additional_scopes)
            .finish()
    }
}

/// Where an OpenID Connect source's endpoints come from: discovery, then any override.
#[derive(Debug, Clone)]
pub(crate) struct OidcEndpoints {
    pub(crate) well_known: Url,
    pub(crate) authorization: Option<Url>,
    pub(crate) token: Option<Url>,
    pub(crate) userinfo: Option<Url>,
    pub(crate) jwks: Option<Url>,
}

/// The plain OAuth2 presets, which differ only in how they read the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OAuthPreset {
    Github,
    Facebook,
}

/// A plain OAuth2 source's endpoints, preset or overridden.
#[derive(Debug, Clone)]
pub(crate) struct OAuthEndpoints {
    pub(crate) preset: OAuthPreset,
    pub(crate) authorization: Url,
    pub(crate) token: Url,
    pub(crate) profile: Url,
}

/// The protocol a source speaks, with its endpoints.
#[derive(Debug, Clone)]
pub(crate) enum Protocol {
    Oidc(OidcEndpoints),
    OAuth(OAuthEndpoints),
}

impl SourceSettings {
    /// The name to show in messages: the source's, else its preset's.
    pub(crate) fn service(&self) -> String {
        if !self.name.trim().is_empty() {
            return self.name.clone();
        }
        source_preset(self.provider_type)
            .map(|p| p.verbose_name.to_owned())
            .unwrap_or_else(|| "the login service".into())
    }

    /// The protocol and endpoints, after checking that the client credentials are set.
    pub(crate) fn protocol(&self) -> Result<Protocol> {
        if self.consumer_key.trim().is_empty() {
            return Err(Error::Settings {
                field: "consumer_key",
                problem: "the client id is empty; copy it from the upstream's app registration"
                    .into(),
            });
        }
        if self.consumer_secret.is_empty() {
            return Err(Error::Settings {
                field: "consumer_secret",
                problem: "the client secret is empty (a source without one is disabled)".into(),
            });
        }
        let preset = source_preset(self.provider_type);
        let fixed = |field, own: &str, preset_url: Option<&str>| -> Result<Url> {
            match (own.trim(), preset_url) {
                ("", Some(url)) => parse(field, url),
                ("", None) => Err(Error::Settings {
                    field,
                    problem: "required for this provider type".into(),
                }),
                (own, _) => parse(field, own),
            }
        };
        match self.provider_type {
            SourceProviderType::Google | SourceProviderType::OpenIdConnect => {
                let well_known = fixed(
                    "oidc_well_known_url",
                    &self.oidc_well_known_url,
                    preset.map(|p| p.oidc_well_known_url),
                )?;
                Ok(Protocol::Oidc(OidcEndpoints {
                    well_known,
                    authorization: optional("authorization_url", &self.authorization_url)?,
                    token: optional("access_token_url", &self.access_token_url)?,
                    userinfo: optional("profile_url", &self.profile_url)?,
                    jwks: optional("oidc_jwks_url", &self.oidc_jwks_url)?,
                }))
            }
            SourceProviderType::Github | SourceProviderType::Facebook => {
                let kind = if self.provider_type == SourceProviderType::Github {
                    OAuthPreset::Github
                } else {
                    OAuthPreset::Facebook
                };
                Ok(Protocol::OAuth(OAuthEndpoints {
                    preset: kind,
                    authorization: fixed(
                        "authorization_url",
                        &self.authorization_url,
                        preset.map(|p| p.authorization_url),
                    )?,
                    token: fixed(
                        "access_token_url",
                        &self.access_token_url,
                        preset.map(|p| p.access_token_url),
                    )?,
                    profile: fixed(
                        "profile_url",
                        &self.profile_url,
                        preset.map(|p| p.profile_url),
                    )?,
                }))
            }
            other => Err(Error::Unsupported(other)),
        }
    }

    /// The scopes to request: the preset's (as Authentik asks for them), then the additional
    /// ones; `*` at the start of `additional_scopes` replaces the preset's.
    pub(crate) fn scopes(&self) -> Vec<String> {
        let preset: &[&str] = match self.provider_type {
            SourceProviderType::Github => &["read:user", "user:email"],
            SourceProviderType::Facebook => &["email"],
            _ => &["openid", "email", "profile"],
        };
        let extra = self.additional_scopes.trim();
        let (mut scopes, extra) = match extra.strip_prefix('*') {
            Some(rest) => (Vec::new(), rest),
            None => (preset.iter().map(|s| (*s).to_owned()).collect(), extra),
        };
        for scope in extra.split(|c: char| c.is_whitespace() || c == ',') {
            if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        scopes
    }
}

fn parse(field: &'static str, url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| Error::Settings {
        field,
        problem: format!("{url:?} is not a URL ({e})"),
    })?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(Error::Settings {
            field,
            problem: format!("{url:?} must be an https:// URL"),
        });
    }
    Ok(parsed)
}

fn optional(field: &'static str, url: &str) -> Result<Option<Url>> {
    match url.trim() {
        "" => Ok(None),
        url => parse(field, url).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github() -> SourceSettings {
        SourceSettings {
            name: "GitHub".into(),
            provider_type: SourceProviderType::Github,
            consumer_key: "id".into(),
            consumer_secret: "secret".into(),
            authorization_url: String::new(),
            access_token_url: String::new(),
            profile_url: String::new(),
            oidc_well_known_url: String::new(),
            oidc_jwks_url: String::new(),
            additional_scopes: String::new(),
        }
    }

    #[test]
    fn presets_use_the_public_endpoints_unless_overridden() -> Result<()> {
        let Protocol::OAuth(endpoints) = github().protocol()? else {
            panic!("GitHub is plain OAuth2");
        };
        assert_eq!(
            endpoints.token.as_str(),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(endpoints.profile.as_str(), "https://api.github.com/user");
        let moved = SourceSettings {
            profile_url: "http://127.0.0.1:1/user".into(),
            ..github()
        };
        let Protocol::OAuth(endpoints) = moved.protocol()? else {
            panic!("GitHub is plain OAuth2");
        };
        assert_eq!(endpoints.profile.as_str(), "http://127.0.0.1:1/user");
        assert_eq!(
            endpoints.authorization.as_str(),
            "https://github.com/login/oauth/authorize"
        );
        Ok(())
    }

    #[test]
    fn generic_oidc_without_discovery_url_names_the_setting() {
        let settings = SourceSettings {
            provider_type: SourceProviderType::OpenIdConnect,
            ..github()
        };
        let err = settings
            .protocol()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("oidc_well_known_url"), "{err}");
    }

    #[test]
    fn empty_secret_or_bad_url_is_a_settings_error() {
        let no_secret = SourceSettings {
            consumer_secret: String::new(),
            ..github()
        };
        assert!(matches!(
            no_secret.protocol(),
            Err(Error::Settings {
                field: "consumer_secret",
                ..
            })
        ));
        let bad = SourceSettings {
            access_token_url: "ftp://example.com/token".into(),
            ..github()
        };
        assert!(matches!(
            bad.protocol(),
            Err(Error::Settings {
                field: "access_token_url",
                ..
            })
        ));
    }

    #[test]
    fn additional_scopes_extend_or_replace_the_presets() {
        let extended = SourceSettings {
            additional_scopes: "repo, read:org".into(),
            ..github()
        };
        assert_eq!(
            extended.scopes(),
            ["read:user", "user:email", "repo", "read:org"]
        );
        let replaced = SourceSettings {
            additional_scopes: "*read:user".into(),
            ..github()
        };
        assert_eq!(replaced.scopes(), ["read:user"]);
    }
}
