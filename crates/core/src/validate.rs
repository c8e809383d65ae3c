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
        return Err(format!("Ensure this field has no more than {MAX_TEXT} characters."));
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
        && value
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
    if valid {
        Ok(())
    } else {
        Err(format!("`{value}` is not a valid email address, e.g. alice@example.com."))
    }
}

/// An absolute http(s) URL with a host and nothing after the host but an optional path.
pub fn http_url(value: &str) -> Result<(), String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| format!("`{value}` must start with https:// or http://."))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{value}` is not a valid URL: write e.g. https://app.example.com."));
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
