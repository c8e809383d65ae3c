//! The identity headers an application receives, in Authentik's names. Values that cannot be
//! sent as a header (line breaks, control characters) are dropped rather than passed on, so
//! user attributes can never inject headers; names containing `_` are dropped because proxies
//! treat them inconsistently.

/// Who the session belongs to, as the IdP said at login.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `preferred_username`.
    pub username: String,
    /// Group names (parents included).
    pub groups: Vec<String>,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `sub`.
    pub uid: String,
    /// The raw ID token.
    pub jwt: String,
}

/// Where the headers come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// JWKS URL of the provider's application.
    pub jwks: String,
    /// Outpost name.
    pub outpost: String,
    /// Provider name.
    pub provider: String,
    /// Application slug.
    pub app: String,
    /// Gatehouse version.
    pub version: String,
}

/// Whether `value` may be sent as a header value.
pub fn sendable(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
}

/// The `X-authentik-*` headers for `identity`; empty values are sent too, as Authentik does.
pub fn identity_headers(identity: &Identity, meta: &Meta) -> Vec<(String, String)> {
    let pairs = [
        ("X-authentik-username", identity.username.clone()),
        ("X-authentik-groups", identity.groups.join("|")),
        ("X-authentik-entitlements", String::new()),
        ("X-authentik-email", identity.email.clone()),
        ("X-authentik-name", identity.name.clone()),
        ("X-authentik-uid", identity.uid.clone()),
        ("X-authentik-jwt", identity.jwt.clone()),
        ("X-authentik-meta-jwks", meta.jwks.clone()),
        ("X-authentik-meta-outpost", meta.outpost.clone()),
        ("X-authentik-meta-provider", meta.provider.clone()),
        ("X-authentik-meta-app", meta.app.clone()),
        ("X-authentik-meta-version", meta.version.clone()),
    ];
    pairs
        .into_iter()
        .filter(|(name, value)| !name.contains('_') && sendable(value))
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_identity_and_refuse_injection() {
        let identity = Identity {
            username: "alice".into(),
            groups: vec!["Admins".into(), "Headscale Users".into()],
            email: "alice@example.com".into(),
            name: "Alice\r\nX-Evil: 1".into(),
            uid: "abc".into(),
            jwt: String::new(),
        };
        let headers = identity_headers(&identity, &Meta::default());
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("X-authentik-username"), Some("alice"));
        assert_eq!(get("X-authentik-groups"), Some("Admins|Headscale Users"));
        assert_eq!(
            get("X-authentik-name"),
            None,
            "a value with a line break is dropped"
        );
        assert_eq!(
            get("X-authentik-jwt"),
            Some(""),
            "empty values are still sent"
        );
    }
}
