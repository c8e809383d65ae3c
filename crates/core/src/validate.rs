//! Field rules shared by the API and the declarative config. Each failure names the field's
//! problem and how to fix it; callers attach the field name.

/// Longest accepted free-text field, to keep rows and headers small.
pub const MAX_TEXT: usize = 1024;

/// A slug: lowercase letters, digits, `-` and `_`, 1–100 characters (used in URLs).
pub fn slug(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 100 {
        return Err("must be 1 to 100 characters long.".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "`{value}` may only contain lowercase letters, digits, hyphens and underscores."
        ));
    }
    Ok(())
}

/// A required name or title: not blank, at most [`MAX_TEXT`] characters, no control characters.
pub fn name(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("This field may not be blank.".into());
    }
    text(value)
}

/// Optional free text: at most [`MAX_TEXT`] characters, no control characters.
pub fn text(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_TEXT {
        return Err(format!(
            "Ensure this field has no more than {MAX_TEXT} characters."
        ));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("may not contain control characters (line breaks, tabs, …).".into());
    }
    Ok(())
}

/// A username: 1–150 characters, no whitespace or control characters.
pub fn username(value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().count() > 150 {
        return Err("must be 1 to 150 characters long.".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("may not contain spaces or control characters.".into());
    }
    Ok(())
}

/// An email address: empty, or one `@` with text on both sides, at most 254 characters.
pub fn email(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let valid = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid email address, e.g. alice@example.com."
        ))
    }
}

/// An absolute http(s) URL with a host and nothing after the host but an optional path.
pub fn http_url(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| format!("`{value}` must start with https:// or http://."))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty()
        || host.contains('@')
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{value}` is not a valid URL: write e.g. https://app.example.com."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(slug("headscale").is_ok());
        assert!(slug("domain-wide_catch-all2").is_ok());
        assert!(slug("").is_err());
        assert!(slug("Grafana").is_err());
        assert!(slug("a/b").is_err());
    }

    #[test]
    fn emails_and_urls() {
        assert!(email("").is_ok());
        assert!(email("alice@example.com").is_ok());
        assert!(email("alice").is_err());
        assert!(email("a@b@example.com").is_err());
        assert!(http_url("https://app.example.com").is_ok());
        assert!(http_url("https://app.example.com:8443/x").is_ok());
        assert!(http_url("app.example.com").is_err());
        assert!(http_url("https://user@evil.example").is_err());
        assert!(http_url("https://").is_err());
    }
}

/// Percent-encodes a value for a URL query.
pub fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The host of an http(s) URL, without port, lowercase.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Checks the settings of a proxy provider; returns `(field, message)` for each problem.
///
/// In forward_domain mode the external host must sit under the cookie domain, or the login
/// callback sets a cookie the protected apps never see (SPEC T6).
pub fn proxy_settings(
    mode: crate::kinds::ProxyMode,
    external_host: &str,
    internal_host: &str,
    cookie_domain: &str,
    skip_path_regex: &str,
) -> Vec<(&'static str, String)> {
    use crate::kinds::ProxyMode;
    let mut problems = Vec::new();
    if let Err(e) = http_url(external_host) {
        problems.push(("external_host", e));
    }
    if mode == ProxyMode::Proxy {
        if internal_host.is_empty() {
            problems.push((
                "internal_host",
                "Proxy mode needs the upstream URL, e.g. http://app.internal:8080.".to_owned(),
            ));
        } else if let Err(e) = http_url(internal_host) {
            problems.push(("internal_host", e));
        }
    }
    if mode == ProxyMode::ForwardDomain {
        let domain = cookie_domain.trim_start_matches('.').to_ascii_lowercase();
        let host = url_host(external_host).unwrap_or_default();
        if domain.is_empty() {
            problems.push((
                "cookie_domain",
                "forward_domain mode needs the parent domain, e.g. example.com.".to_owned(),
            ));
        } else if host != domain && !host.ends_with(&format!(".{domain}")) {
            problems.push((
                "external_host",
                format!("`{host}` is not under the cookie domain `{domain}`: the login callback would set a cookie the apps never see."),
            ));
        }
    }
    for line in skip_path_regex.lines().filter(|l| !l.trim().is_empty()) {
        if let Err(e) = regex::Regex::new(line) {
            problems.push((
                "skip_path_regex",
                format!("`{line}` is not a valid regular expression: {e}"),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod proxy_tests {
    use super::*;
    use crate::kinds::ProxyMode;

    #[test]
    fn domain_mode_needs_external_host_under_cookie_domain() {
        assert!(proxy_settings(
            ProxyMode::ForwardDomain,
            "https://auth.example.com",
            "",
            "example.com",
            ""
        )
        .is_empty());
        let problems = proxy_settings(
            ProxyMode::ForwardDomain,
            "https://auth.example.org",
            "",
            "example.com",
            "",
        );
        assert_eq!(problems[0].0, "external_host");
        assert_eq!(
            proxy_settings(
                ProxyMode::ForwardDomain,
                "https://a.example.com",
                "",
                "",
                ""
            )[0]
            .0,
            "cookie_domain"
        );
    }

    #[test]
    fn bad_skip_regex_and_missing_upstream_are_named() {
        let problems = proxy_settings(
            ProxyMode::Proxy,
            "https://app.example.com",
            "",
            "",
            "^/api/(\n^/health$",
        );
        let fields: Vec<&str> = problems.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, vec!["internal_host", "skip_path_regex"]);
    }

    #[test]
    fn hosts_are_extracted_without_port_or_userinfo() {
        assert_eq!(
            url_host("https://App.Example.com:8443/x").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(
            url_host("https://user@evil.example/").as_deref(),
            Some("evil.example")
        );
        assert_eq!(url_host("nonsense"), None);
    }
}
