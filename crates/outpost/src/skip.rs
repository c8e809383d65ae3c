//! Skip paths (`skip_path_regex`): what passes without a session. The match runs on the
//! normalised path, but the application behind reads the raw one, and servers disagree about
//! `;` parameters (`/public/..;/admin` is `/admin` to Tomcat), encoded `/`, `\` and `.`, and
//! dot segments. A raw path with any of those is never skipped: it goes through authentication
//! like every protected path, so what was checked is what the application serves (#13 item 4).
//! The routes ([`crate::routes`]) call [`matches`] for every endpoint and proxy mode alike.

use gatehouse_core::kinds::ProxyMode;

use crate::cache::ProxyProvider;

/// Whether `url` matches one of the provider's skip paths (the path, or in forward_domain
/// mode the whole URL, as Authentik matches), and its raw path is unambiguous.
pub fn matches(p: &ProxyProvider, url: &str) -> bool {
    if p.skip.is_empty() || ambiguous_path(url) {
        return false;
    }
    let subject = match p.config.mode {
        ProxyMode::ForwardDomain => url.to_owned(),
        _ => url::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default(),
    };
    p.skip.iter().any(|re| re.is_match(&subject))
}

/// Whether the raw path of `url` (as the proxy sent it: `scheme://host/path?query`, or a bare
/// path) could name another resource once an application normalises it: a `;` parameter, a
/// `\`, an encoded `/`, `\`, `.` or `%`, a control character, or a `.`/`..` segment.
pub fn ambiguous_path(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = match after_scheme.find('/') {
        Some(i) if url.contains("://") => &after_scheme[i..],
        Some(_) => after_scheme,
        None => return false,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    path.contains([';', '\\'])
        || path.chars().any(char::is_control)
        || ["%2f", "%5c", "%2e", "%25", "%3b", "%00"]
            .iter()
            .any(|encoded| lower.contains(encoded))
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_an_application_may_read_differently_are_ambiguous() {
        for url in [
            "https://app.example.com/public/..;/admin",
            "https://app.example.com/public/..%2fadmin",
            "https://app.example.com/public/%2E%2E%2Fadmin",
            "https://app.example.com/public/..%5cadmin",
            "https://app.example.com/public/..\\admin",
            "https://app.example.com/public/../admin",
            "https://app.example.com/public/./x",
            "https://app.example.com/public/%252e%252e/admin",
            "/public/..;/admin",
        ] {
            assert!(ambiguous_path(url), "{url}");
        }
        for url in [
            "https://app.example.com/public/style.css",
            "https://app.example.com/public/a..b?next=/x/../y;z",
            "https://app.example.com",
            "/public/logo.png?v=1",
        ] {
            assert!(!ambiguous_path(url), "{url}");
        }
    }
}
