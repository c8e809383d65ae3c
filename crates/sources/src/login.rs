//! The two steps of a login through a source: [`SourceClient::start`] before the browser goes to
//! the upstream, [`SourceClient::finish`] when it comes back to the callback. Between them the
//! caller keeps the [`PendingLogin`] (server-side, e.g. in the flow context) and must use it once:
//! replay protection is the caller's, by deleting it when the callback arrives.
//!
//! The callback is checked in this order: `state` (constant-time, so a forged callback learns
//! nothing), the upstream's `error`, then the code exchange and the protocol's own checks.

use openidconnect::RedirectUrl;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::shorten;
use crate::settings::{OAuthPreset, Protocol};
use crate::{facebook, github, oauth, oidc, Error, Identity, Result, SourceSettings};

/// How long one upstream request may take before the login fails with a clear message.
const UPSTREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The OAuth2/OIDC client for all sources: one HTTP connection pool, no per-source state.
#[derive(Debug, Clone)]
pub struct SourceClient {
    http: reqwest::Client,
}

/// What [`SourceClient::start`] produces.
#[derive(Debug, Clone)]
pub struct LoginStart {
    /// Where to send the browser (a 302 to the upstream's authorization endpoint).
    pub redirect_url: String,
    /// What to keep until the callback, and use once.
    pub pending: PendingLogin,
}

/// The secrets of one login in progress, kept server-side between start and callback.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The `state` sent to the upstream; the callback must carry it back.
    pub state: String,
    /// The OIDC `nonce` the `id_token` must carry (none for plain OAuth2 sources).
    pub nonce: Option<String>,
    /// The PKCE (S256) code verifier, sent with the code exchange.
    pub pkce_verifier: String,
}

impl std::fmt::Debug for PendingLogin {
    // These values are bearer secrets until the callback: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingLogin { <redacted> }")
    }
}

/// The query string of `/source/oauth/callback/<slug>/`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallbackQuery {
    /// The authorization code, on success.
    pub code: Option<String>,
    /// The state sent at start.
    pub state: Option<String>,
    /// The OAuth2 error code, when the upstream refused (`access_denied` when the person
    /// declined).
    pub error: Option<String>,
    /// The upstream's explanation of `error`.
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    // The code is a one-time credential: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish_non_exhaustive()
    }
}

impl SourceClient {
    /// A client whose HTTP requests follow no redirects (an upstream cannot bounce token or
    /// profile requests elsewhere) and give up after a bounded time.
    pub fn new() -> Result<SourceClient> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(UPSTREAM_TIMEOUT)
            // GitHub's API refuses requests without a User-Agent.
            .user_agent(concat!("Gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::upstream("set up the HTTP client", e))?;
        Ok(SourceClient { http })
    }

    /// Begins a login: the authorization URL (with `state`, PKCE S256 and, for OIDC, `nonce`)
    /// and the values to keep. `callback_url` is this source's absolute
    /// `/source/oauth/callback/<slug>/` URL, as registered at the upstream. OIDC sources read
    /// their discovery document here.
    pub async fn start(&self, source: &SourceSettings, callback_url: &str) -> Result<LoginStart> {
        let callback = redirect_url(callback_url)?;
        let scopes = source.scopes();
        let (redirect_url, pending) = match source.protocol()? {
            Protocol::Oidc(endpoints) => {
                oidc::authorize(&self.http, source, &endpoints, callback, &scopes).await?
            }
            Protocol::OAuth(endpoints) => oauth::authorize(source, &endpoints, callback, &scopes),
        };
        Ok(LoginStart {
            redirect_url: redirect_url.into(),
            pending,
        })
    }

    /// Completes a login from the callback's query and the kept [`PendingLogin`]: checks the
    /// state and the upstream's error, exchanges the code (with the PKCE verifier), verifies the
    /// `id_token` for OIDC, and reads the profile. The same `callback_url` as at start.
    pub async fn finish(
        &self,
        source: &SourceSettings,
        callback_url: &str,
        pending: &PendingLogin,
        query: &CallbackQuery,
    ) -> Result<Identity> {
        let callback = redirect_url(callback_url)?;
        let protocol = source.protocol()?;
        check_state(pending, query)?;
        if let Some(error) = query.error.as_deref().filter(|e| !e.is_empty()) {
            return Err(if error == "access_denied" {
                Error::Denied {
                    service: source.service(),
                }
            } else {
                Error::Refused {
                    service: source.service(),
                    error: shorten(error),
                    description: query.error_description.as_deref().map(shorten),
                }
            });
        }
        let code = query
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(Error::MissingCode)?;
        match protocol {
            Protocol::Oidc(endpoints) => {
                oidc::finish(&self.http, source, &endpoints, callback, pending, code).await
            }
            Protocol::OAuth(endpoints) => {
                let token =
                    oauth::exchange(&self.http, source, &endpoints, callback, pending, code)
                        .await?;
                match endpoints.preset {
                    OAuthPreset::Github => {
                        github::identity(&self.http, &endpoints.profile, &token).await
                    }
                    OAuthPreset::Facebook => {
                        facebook::identity(&self.http, &endpoints.profile, &token).await
                    }
                }
            }
        }
    }
}

fn redirect_url(callback_url: &str) -> Result<RedirectUrl> {
    RedirectUrl::new(callback_url.to_owned()).map_err(|e| Error::Settings {
        field: "callback_url",
        problem: format!(
            "{callback_url:?} is not an absolute URL ({e}); set the server's external URL"
        ),
    })
}

/// The callback's state must be the one this login started with; compared in constant time.
fn check_state(pending: &PendingLogin, query: &CallbackQuery) -> Result<()> {
    let returned = query.state.as_deref().unwrap_or_default();
    let matches: bool = returned.as_bytes().ct_eq(pending.state.as_bytes()).into();
    if matches && !pending.state.is_empty() {
        Ok(())
    } else {
        Err(Error::StateMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: "s3cr3t-state".into(),
            nonce: None,
            pkce_verifier: "v".into(),
        }
    }

    #[test]
    fn a_missing_or_different_state_is_refused() {
        let missing = CallbackQuery::default();
        assert!(matches!(
            check_state(&pending(), &missing),
            Err(Error::StateMismatch)
        ));
        let other = CallbackQuery {
            state: Some("s3cr3t-statf".into()),
            ..CallbackQuery::default()
        };
        assert!(matches!(
            check_state(&pending(), &other),
            Err(Error::StateMismatch)
        ));
        let same = CallbackQuery {
            state: Some("s3cr3t-state".into()),
            ..CallbackQuery::default()
        };
        assert!(check_state(&pending(), &same).is_ok());
    }

    #[test]
    fn an_empty_kept_state_never_matches() {
        let empty = PendingLogin {
            state: String::new(),
            ..pending()
        };
        let query = CallbackQuery {
            state: Some(String::new()),
            ..CallbackQuery::default()
        };
        assert!(matches!(
            check_state(&empty, &query),
            Err(Error::StateMismatch)
        ));
    }

    #[test]
    fn pending_login_and_code_stay_out_of_debug_output() {
        let query = CallbackQuery {
            code: Some("one-time-code".into()),
            ..CallbackQuery::default()
        };
        assert!(!format!("{:?}{query:?}", pending()).contains("s3cr3t"));
        assert!(!format!("{query:?}").contains("one-time-code"));
    }
}
