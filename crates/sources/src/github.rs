//! GitHub's profile: `GET /user` for the numeric `id`, `login` and `name`, and
//! `GET /user/emails` for the address. Only the primary address counts, and only if GitHub
//! verified it (the rule; `/user`'s `email` is the public address, which may be any of
//! them); if the list cannot be read, the identity has no email. Emails are read from the
//! profile URL plus `/emails`, so one `profile_url` override moves both, as in Authentik.
//!
//! Requests follow GitHub's REST documentation: bearer token, `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version`, and the client's User-Agent (GitHub refuses requests without one).

use oauth2::AccessToken;
use openidconnect::url::Url;
use serde::Deserialize;

use crate::identity::text;
use crate::oauth::get_json;
use crate::{Error, Identity, Result};

const HEADERS: &[(&str, &str)] = &[
    ("Accept", "application/vnd.github+json"),
    ("X-GitHub-Api-Version", "2022-11-28"),
];

/// One entry of `GET /user/emails`.
#[derive(Debug, Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// The identity behind `token`.
pub(crate) async fn identity(
    http: &reqwest::Client,
    profile_url: &Url,
    token: &AccessToken,
) -> Result<Identity> {
    let mut user = get_json(http, profile_url, token, HEADERS).await?;
    let id = user
        .get("id")
        .and_then(|id| id.as_u64())
        .ok_or_else(|| Error::upstream("read your profile", "GitHub's /user has no numeric id"))?;
    let emails_url = Url::parse(&format!(
        "{}/emails",
        profile_url.as_str().trim_end_matches('/')
    ))
    .map_err(|e| Error::upstream("read your email addresses", e))?;
    // As in Authentik, an unreadable address list (a GitHub App without the email permission)
    // means no email rather than no login: an identity without email never links. Why is kept.
    let (emails, email) = match get_json(http, &emails_url, token, HEADERS).await {
        Ok(emails) => match serde_json::from_value::<Vec<Email>>(emails.clone()) {
            Ok(list) => {
                let primary = list.into_iter().find(|e| e.primary && e.verified);
                (emails, primary.map(|e| e.email))
            }
            Err(e) => (
                format!("unexpected shape of /user/emails ({e})").into(),
                None,
            ),
        },
        Err(e) => (e.to_string().into(), None),
    };
    let (username, name) = (text(&user, "login"), text(&user, "name"));
    if let Some(object) = user.as_object_mut() {
        // The list, or (as a string) why there is none.
        object.insert("emails".into(), emails);
    }
    Ok(Identity {
        id: id.to_string(),
        username,
        email_verified: email.is_some(),
        email,
        name,
        attributes: user,
    })
}
