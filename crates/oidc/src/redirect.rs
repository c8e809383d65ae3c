//! Where the provider may send a browser: the registered redirect URIs (strict or regex, as in
//! Authentik, each for authorization responses or for the return after logout) and query
//! parameters appended to them. Checked before anything else at the authorize endpoint, so an
//! unknown redirect URI gets an error page, never a redirect; end-session checks its
//! `post_logout_redirect_uri` with the same matcher.
//!
//! A candidate is parsed as a URL the way a browser parses it (WHATWG, the `url` crate), so the
//! decision is about where the browser would really go:
//! - **strict** entries match byte for byte, except that a loopback entry
//!   (`http://127.0.0.1/...`, `http://[::1]/...`) matches any port, which a native app picks at
//!   run time (RFC 8252 §7.3);
//! - **regex** entries begin with a literal origin (`https://app\.example\.com`) that the
//!   candidate's scheme, host and port must equal exactly; the regular expression applies to
//!   the rest only (path and query), anchored at both ends. So `https://rp\.example\.com.*`
//!   allows any path on that host and never `https://rp.example.com.evil.net/` (issue #13,
//!   item 5). An entry whose origin is not literal (a pattern in the host, an optional port)
//!   is refused when it is registered, by [`check`]; list each host as an entry of its own.

use gatehouse_core::kinds::{MatchingMode, RedirectUriType};
use gatehouse_store::providers::OAuth2Settings;
use regex::Regex;
use url::{Host, Position, Url};

/// Why a redirect URI cannot be registered; the message names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A strict entry that is not an absolute URL.
    #[error("`{0}` is not an absolute URI, e.g. https://app.example.com/callback.")]
    NotAbsolute(String),
    /// A regex entry that does not compile.
    #[error("`{url}` is not a valid regular expression: {reason}")]
    BadRegex {
        /// The registered pattern.
        url: String,
        /// What the regex parser said.
        reason: String,
    },
    /// A regex entry whose scheme, host or port is not written literally.
    #[error(
        "The regex redirect URI `{0}` must begin with a literal origin: scheme, host and port \
         written out (dots escaped as `\\.`), followed by `/`, `.*` or the end, e.g. \
         `https://app\\.example\\.com/callback/.*`. Register each host or port as an entry of \
         its own, or use a strict entry."
    )]
    OriginNotLiteral(String),
}

/// Whether `url` may be registered as a redirect URI of `mode`: what the API and the
/// declarative config check, so the matcher never meets an entry it cannot read.
pub fn check(mode: MatchingMode, url: &str) -> Result<(), PatternError> {
    match mode {
        MatchingMode::Strict => {
            if url.contains("://") && Url::parse(url).is_ok() && plain_ascii(url) {
                Ok(())
            } else {
                Err(PatternError::NotAbsolute(url.to_owned()))
            }
        }
        MatchingMode::Regex => RegexEntry::parse(url).map(|_| ()),
    }
}

/// Whether `uri` is one of the provider's registered redirect URIs of type `kind`.
pub fn redirect_allowed(settings: &OAuth2Settings, kind: RedirectUriType, uri: &str) -> bool {
    if !plain_ascii(uri) {
        return false;
    }
    let candidate = Url::parse(uri).ok();
    settings
        .redirect_uris
        .iter()
        .filter(|r| r.redirect_uri_type == kind)
        .any(|r| match r.matching_mode {
            MatchingMode::Strict => {
                r.url == uri
                    || candidate
                        .as_ref()
                        .is_some_and(|c| loopback_match(&r.url, uri, c))
            }
            // An entry stored before registration checked the origin is refused, not guessed at.
            MatchingMode::Regex => match (RegexEntry::parse(&r.url), &candidate) {
                (Ok(entry), Some(c)) => entry.matches(c),
                _ => false,
            },
        })
}

/// Printable ASCII without spaces: what a redirect URI sent in a `Location` header is. The URL
/// parser would silently drop tabs and newlines, so a URI with them is refused instead.
fn plain_ascii(uri: &str) -> bool {
    !uri.is_empty() && uri.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 8252 §7.3: a strict loopback entry matches the same URI with any port. The candidate
/// must be in the parser's own spelling, so what is compared is what the browser will open.
fn loopback_match(registered: &str, raw: &str, candidate: &Url) -> bool {
    let Ok(registered) = Url::parse(registered) else {
        return false;
    };
    let loopback = |u: &Url| {
        u.scheme() == "http"
            && match u.host() {
                Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
                Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
                _ => false,
            }
    };
    if !loopback(&registered) || !loopback(candidate) || candidate.as_str() != raw {
        return false;
    }
    let mut moved = candidate.clone();
    moved.set_port(registered.port()).is_ok() && moved.as_str() == registered.as_str()
}

/// A regex entry split into its literal origin and the pattern for the rest.
struct RegexEntry {
    /// Scheme, host and port as the parser reads them.
    origin: Url,
    /// The rest of the pattern, anchored.
    rest: Regex,
}

/// Characters that stand for themselves in a regex when escaped and may appear in an origin.
const ESCAPED_LITERALS: &[char] = &['.', '-', '/', ':', '[', ']'];

/// Characters with a meaning in a regex: where one appears, the literal origin has ended.
const METACHARACTERS: &[char] = &[
    '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '^', '$', '\\',
];

impl RegexEntry {
    fn parse(pattern: &str) -> Result<Self, PatternError> {
        Regex::new(pattern).map_err(|e| PatternError::BadRegex {
            url: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        let not_literal = || PatternError::OriginNotLiteral(pattern.to_owned());
        // Patterns are matched whole; a leading `^` says so again.
        let body = pattern.strip_prefix('^').unwrap_or(pattern);
        let mut origin = String::new();
        let mut authority = false;
        let mut end = body.len();
        let mut chars = body.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            let literal = match c {
                '\\' => match chars.peek() {
                    Some(&(_, next)) if ESCAPED_LITERALS.contains(&next) => {
                        chars.next();
                        next
                    }
                    _ => {
                        end = at;
                        break;
                    }
                },
                c if METACHARACTERS.contains(&c) => {
                    end = at;
                    break;
                }
                c => c,
            };
            if authority && literal == '/' {
                end = at;
                break;
            }
            let allowed = literal.is_ascii_alphanumeric()
                || matches!(literal, '-' | '_' | '.' | ':' | '[' | ']')
                || (!authority && literal == '/');
            if !allowed {
                return Err(not_literal());
            }
            origin.push(literal);
            if !authority && origin.ends_with("://") {
                authority = true;
            }
        }
        let rest = &body[end..];
        let rest = match rest {
            // The bare origin: its root, as a browser opens it.
            "" | "$" => "/",
            r if r.starts_with('/') || r.starts_with("\\/") => r,
            r if r.starts_with(".*") || r.starts_with(".+") => r,
            _ => return Err(not_literal()),
        };
        if !authority {
            return Err(not_literal());
        }
        let parsed = Url::parse(&origin).map_err(|_| not_literal())?;
        let bare = parsed.host_str().is_some_and(|h| !h.is_empty())
            && parsed.username().is_empty()
            && parsed.password().is_none()
            && matches!(parsed.path(), "" | "/")
            && parsed.query().is_none();
        if !bare {
            return Err(not_literal());
        }
        let rest = Regex::new(&format!("^(?:{rest})$")).map_err(|e| PatternError::BadRegex {
            url: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(RegexEntry {
            origin: parsed,
            rest,
        })
    }

    /// Same scheme, host and port as the origin, no user info or fragment, and the path and
    /// query match the rest of the pattern.
    fn matches(&self, candidate: &Url) -> bool {
        candidate.scheme() == self.origin.scheme()
            && candidate.host() == self.origin.host()
            && candidate.port_or_known_default() == self.origin.port_or_known_default()
            && candidate.username().is_empty()
            && candidate.password().is_none()
            && candidate.fragment().is_none()
            && self
                .rest
                .is_match(&candidate[Position::BeforePath..Position::AfterQuery])
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::kinds::{ClientType, IssuerMode, SigningAlgorithm, SubMode};
    use gatehouse_store::providers::RedirectUri;

    fn settings(uris: &[(MatchingMode, RedirectUriType, &str)]) -> OAuth2Settings {
        OAuth2Settings {
            client_type: ClientType::Confidential,
            access_code_validity: "minutes=1".into(),
            include_claims_in_id_token: true,
            sub_mode: SubMode::HashedUserId,
            signing_algorithm: SigningAlgorithm::Es256,
            issuer_mode: IssuerMode::PerProvider,
            logout_uri: String::new(),
            redirect_uris: uris
                .iter()
                .map(|(matching_mode, kind, url)| RedirectUri {
                    matching_mode: *matching_mode,
                    redirect_uri_type: *kind,
                    url: (*url).to_owned(),
                })
                .collect(),
        }
    }

    fn regex(pattern: &str) -> OAuth2Settings {
        settings(&[(MatchingMode::Regex, RedirectUriType::Authorization, pattern)])
    }

    fn allowed(s: &OAuth2Settings, uri: &str) -> bool {
        redirect_allowed(s, RedirectUriType::Authorization, uri)
    }

    #[test]
    fn a_regex_entry_allows_paths_on_its_origin_only() {
        let s = regex(r"https://rp2\.example\.com.*");
        for ok in [
            "https://rp2.example.com/cb",
            "https://rp2.example.com/",
            "https://rp2.example.com",
            "https://rp2.example.com:443/cb?x=1",
            "HTTPS://RP2.EXAMPLE.COM/cb",
        ] {
            assert!(allowed(&s, ok), "{ok}");
        }
        for bad in [
            "https://rp2.example.com.evil.net/steal",
            "https://rp2.example.com@evil.net/",
            "https://rp2.example.com:444/",
            "https://rp2.example.com:443@evil.net/",
            "https://rp2.example.comevil.net/",
            "http://rp2.example.com/cb",
            "https://user@rp2.example.com/cb",
            "https://rp2.example.com/cb#frag",
            "https://rp2.example.com/cb\r\nSet-Cookie:x",
            "//rp2.example.com/cb",
            "rp2.example.com/cb",
            "javascript://rp2.example.com/%0aalert(1)",
        ] {
            assert!(!allowed(&s, bad), "{bad}");
        }
    }

    #[test]
    fn the_rest_of_a_regex_entry_is_anchored_on_the_path() {
        let s = regex(r"^https://rp\.example\.com/cb/[a-z]+$");
        assert!(allowed(&s, "https://rp.example.com/cb/abc"));
        assert!(!allowed(&s, "https://rp.example.com/cb/abc/x"));
        assert!(!allowed(&s, "https://rp.example.com/x/cb/abc"));
        // Dot segments are resolved as the browser resolves them.
        assert!(!allowed(&s, "https://rp.example.com/cb/../admin"));
        let root = regex(r"https://rp\.example\.com");
        assert!(allowed(&root, "https://rp.example.com/"));
        assert!(!allowed(&root, "https://rp.example.com/x"));
        let port = regex(r"https://rp\.example\.com:8443/.*");
        assert!(allowed(&port, "https://rp.example.com:8443/cb"));
        assert!(!allowed(&port, "https://rp.example.com/cb"));
    }

    #[test]
    fn regex_entries_without_a_literal_origin_are_refused_with_the_fix() {
        for pattern in [
            r"https://.*\.example\.com/cb",
            r"https?://rp\.example\.com/cb",
            r"https://rp\.example\.com(:8443)?/cb",
            r"https://rp[0-9]\.example\.com/cb",
            r"https://rp\d\.example\.com/cb",
            r"(?i)https://rp\.example\.com/cb",
            r"https://rp.example.com/cb",
            r"https://user@rp\.example\.com/cb",
            r".*",
            r"/cb",
        ] {
            let e = check(MatchingMode::Regex, pattern).expect_err(pattern);
            assert!(
                matches!(e, PatternError::OriginNotLiteral(_)),
                "{pattern}: {e}"
            );
            assert!(e.to_string().contains("literal origin"), "{e}");
            // Had it been stored anyway, it matches nothing.
            assert!(!allowed(&regex(pattern), "https://rp.example.com/cb"));
        }
        for pattern in [
            r"https://rp2\.example\.com.*",
            r"^https://rp\.example\.com/cb$",
            r"https:\/\/rp\.example\.com\/cb\/.*",
            r"http://\[::1\]:8080/cb",
            r"https://rp\.example\.com",
        ] {
            assert_eq!(check(MatchingMode::Regex, pattern), Ok(()), "{pattern}");
        }
        assert!(matches!(
            check(MatchingMode::Regex, "https://(unclosed"),
            Err(PatternError::BadRegex { .. })
        ));
    }

    #[test]
    fn strict_entries_match_exactly_but_loopback_ports_vary() {
        let s = settings(&[
            (
                MatchingMode::Strict,
                RedirectUriType::Authorization,
                "https://rp1.example.com/cb",
            ),
            (
                MatchingMode::Strict,
                RedirectUriType::Authorization,
                "http://127.0.0.1/native/cb",
            ),
            (
                MatchingMode::Strict,
                RedirectUriType::Authorization,
                "http://[::1]:9000/cb",
            ),
        ]);
        assert!(allowed(&s, "https://rp1.example.com/cb"));
        assert!(!allowed(&s, "https://rp1.example.com:8443/cb"));
        assert!(!allowed(&s, "https://rp1.example.com/cb/"));
        assert!(allowed(&s, "http://127.0.0.1:51234/native/cb"));
        assert!(allowed(&s, "http://127.0.0.1/native/cb"));
        assert!(allowed(&s, "http://[::1]:40000/cb"));
        assert!(!allowed(&s, "http://127.0.0.1:51234/native/other"));
        assert!(!allowed(&s, "http://127.0.0.1:51234/native/cb?x=1"));
        assert!(!allowed(&s, "https://127.0.0.1:51234/native/cb"));
        assert!(!allowed(&s, "http://localhost:51234/native/cb"));
        assert!(!allowed(&s, "http://127.0.0.1:51234@evil.net/native/cb"));
        assert!(!allowed(&s, "http://127.0.0.1:51234/native/./cb"));
    }

    #[test]
    fn each_entry_serves_its_own_purpose() {
        let s = settings(&[
            (
                MatchingMode::Strict,
                RedirectUriType::Authorization,
                "https://rp.example.com/cb",
            ),
            (
                MatchingMode::Strict,
                RedirectUriType::Logout,
                "https://rp.example.com/bye",
            ),
        ]);
        assert!(allowed(&s, "https://rp.example.com/cb"));
        assert!(!allowed(&s, "https://rp.example.com/bye"));
        assert!(redirect_allowed(
            &s,
            RedirectUriType::Logout,
            "https://rp.example.com/bye"
        ));
        assert!(!redirect_allowed(
            &s,
            RedirectUriType::Logout,
            "https://rp.example.com/cb"
        ));
    }

    #[test]
    fn strict_entries_must_be_absolute_urls() {
        for ok in ["https://rp.example.com/cb", "app.immich:///oauth-callback"] {
            assert_eq!(check(MatchingMode::Strict, ok), Ok(()), "{ok}");
        }
        for bad in [
            "/cb",
            "rp.example.com/cb",
            "https://rp.example.com/a b",
            "https://",
        ] {
            assert!(check(MatchingMode::Strict, bad).is_err(), "{bad}");
        }
    }
}
