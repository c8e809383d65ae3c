//! Facebook's profile: Graph API `GET /v<N>/me?fields=id,name,email` (the preset's profile URL).
//! `id` is the app-scoped user id. Graph returns `email` only when the person granted the
//! `email` permission and has a confirmed, reachable address (Facebook's stated behaviour), so a
//! returned address counts as verified and a missing one leaves the identity without email, as
//! Authentik treats it. `name` doubles as the suggested username, as in Authentik.
//!
//! The login dialog takes PKCE (`code_challenge`, S256) as Facebook's manual login flow
//! documents; the code exchange is a form POST to `oauth/access_token` with the secret in the
//! body, which Graph accepts like the documented GET and which keeps the secret out of URLs.

use oauth2::AccessToken;
use openidconnect::url::Url;

use crate::identity::text;
use crate::oauth::get_json;
use crate::{Error, Identity, Result};

/// The identity behind `token`.
pub(crate) async fn identity(
    http: &reqwest::Client,
    profile_url: &Url,
    token: &AccessToken,
) -> Result<Identity> {
    let me = get_json(http, profile_url, token, &[]).await?;
    let id = text(&me, "id")
        .ok_or_else(|| Error::upstream("read your profile", "Graph API's me has no id"))?;
    let (name, email) = (text(&me, "name"), text(&me, "email"));
    Ok(Identity {
        id,
        username: name.clone(),
        email_verified: email.is_some(),
        email,
        name,
        attributes: me,
    })
}
