//! Where the provider may send a browser: the registered redirect URIs (strict or regex, as in
//! Authentik) and query parameters appended to them. Checked before anything else at the
//! authorize endpoint, so an unknown redirect URI gets an error page, never a redirect.

use gatehouse_core::kinds::MatchingMode;
use gatehouse_store::providers::OAuth2Settings;

/// Whether `uri` is one of the provider's registered redirect URIs.
pub fn redirect_allowed(settings: &OAuth2Settings, uri: &str) -> bool {
    settings
        .redirect_uris
        .iter()
        .any(|r| match r.matching_mode {
            MatchingMode::Strict => r.url == uri,
            MatchingMode::Regex => regex_full_match(&r.url, uri),
        })
}

fn regex_full_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(text))
}

/// `base` with `params` appended to its query.
pub fn url_with(base: &str, params: &[(&str, &str)]) -> String {
    let encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", gatehouse_core::validate::url_encode(v)))
        .collect();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{}", encoded.join("&"))
}
