//! Facebook's profile: Graph API `GET /v<N>/me?fields=id,name,email` (the preset's profile URL).
//! `id` is the app-scoped user id. Graph returns `email` only when the person has a valid
//! (confirmed) address and granted the `email` permission, so a returned address counts as
//! verified and a missing one leaves the identity without email, as Authentik treats it.
//! `name` doubles as the suggested username, as in Authentik.

use oauth2::AccessToken;
use openidconnect::url::Url;

use crate::oauth::get_json;
use crate::{Error, Identity, Result};

/// The identity behind `token`.
pub(crate) async fn identity(
    http: &reqwest::Client,
    profile_url: &Url,
    token: &AccessToken,
) -> Result<Identity> {
    let me = get_json(http, profile_url, token, &[]).await?;
    let text = |key: &str| {
        me.get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let id = text("id")
        .ok_or_else(|| Error::upstream("read your profile", "Graph API's me has no id"))?;
    let (name, email) = (text("name"), text("email"));
    Ok(Identity {
        id,
        username: name.clone(),
        email_verified: email.is_some(),
        email,
        name,
        attributes: me,
    })
}
