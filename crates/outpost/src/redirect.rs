//! Where a login may return to (`rd`): relative values resolve against the provider's external
//! host; absolute ones must name exactly that origin (scheme, host and port) (forward_domain: a host under the cookie
//! domain), over http(s), without user info. Anything else is ignored — never followed.

use gatehouse_core::kinds::ProxyMode;

/// The return URL for `rd`, or `None` when it must not be followed.
pub fn safe_return(
    rd: &str,
    external_host: &str,
    mode: ProxyMode,
    cookie_domain: &str,
) -> Option<String> {
    if rd.is_empty() || rd.len() > 4096 || rd.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let base = url::Url::parse(external_host).ok()?;
    let target = if rd.starts_with('/') && !rd.starts_with("//") {
        base.join(rd).ok()?
    } else {
        url::Url::parse(rd).ok()?
    };
    if !matches!(target.scheme(), "http" | "https")
        || !target.username().is_empty()
        || target.password().is_some()
    {
        return None;
    }
    let host = target.host_str()?.to_ascii_lowercase();
    let allowed = match mode {
        ProxyMode::ForwardDomain if !cookie_domain.is_empty() => {
            let domain = cookie_domain.trim_start_matches('.').to_ascii_lowercase();
            host == domain || host.ends_with(&format!(".{domain}"))
        }
        _ => {
            target.scheme() == base.scheme()
                && Some(host.as_str()) == base.host_str()
                && target.port_or_known_default() == base.port_or_known_default()
        }
    };
    allowed.then(|| target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "https://app.example.com";

    /// Open-redirect payloads: other hosts, scheme-relative, backslash tricks, user info,
    /// encodings, script schemes, CR/LF — none may be followed.
    fn corpus() -> Vec<String> {
        let hosts = [
            "evil.example",
            "evil.example.com",
            "app.example.com.evil.example",
            "example.com",
            "127.0.0.1",
            "[::1]",
            "app.example.co",
        ];
        let mut payloads = Vec::new();
        for host in hosts {
            for template in [
                "https://{h}",
                "https://{h}/",
                "http://{h}/path",
                "//{h}",
                "//{h}/",
                "///{h}",
                "////{h}",
                "/\\{h}",
                "\\\\{h}",
                "\\/{h}",
                "https:{h}",
                "https:/{h}",
                "https://app.example.com@{h}",
                "https://app.example.com:443@{h}/",
                "https://user:pass@{h}",
                "https://{h}#@app.example.com",
                "https://{h}?@app.example.com",
                "https://{h}\\@app.example.com",
                "%2F%2F{h}",
                "https:%2F%2F{h}",
                "/%09/{h}",
                "//{h}%00.app.example.com",
                "https://{h}%2F%2F..",
                "\t//{h}",
                " //{h}",
                "//{h}\r\nSet-Cookie:x=1",
                "ftp://{h}/",
            ] {
                payloads.push(template.replace("{h}", host));
            }
        }
        payloads.extend(
            [
                "javascript:alert(1)",
                "JavaScript:alert(1)",
                "javascript://app.example.com/%0aalert(1)",
                "data:text/html,<script>alert(1)</script>",
                "vbscript:msgbox(1)",
                "https://app.example.com\r\nLocation: https://evil.example",
                "https://app.example.com%0d%0aSet-Cookie:x=1",
                "https://app.example.com:8443/",
                "http://app.example.com:444/",
                "https://APP.example.com.evil.example/",
                "https://app.example.com.:443.evil.example/",
                "https://xn--app-example-com.evil.example/",
                "https://app%2eexample%2ecom.evil.example/",
                "https://0x7f000001/",
                "https://2130706433/",
                "",
            ]
            .map(str::to_owned),
        );
        payloads
    }

    #[test]
    fn no_payload_of_the_corpus_is_followed() {
        let payloads = corpus();
        assert!(payloads.len() >= 100, "corpus has only {}", payloads.len());
        for rd in &payloads {
            let result = safe_return(rd, APP, ProxyMode::ForwardSingle, "");
            let fine = result
                .as_deref()
                .is_none_or(|r| r.starts_with("https://app.example.com/"));
            assert!(fine, "{rd:?} was accepted as {result:?}");
        }
    }

    #[test]
    fn same_host_targets_are_followed() {
        assert_eq!(
            safe_return("/grafana/d/1?x=1", APP, ProxyMode::ForwardSingle, "").as_deref(),
            Some("https://app.example.com/grafana/d/1?x=1")
        );
        assert_eq!(
            safe_return(
                "https://app.example.com/a",
                APP,
                ProxyMode::ForwardSingle,
                ""
            )
            .as_deref(),
            Some("https://app.example.com/a")
        );
        assert_eq!(
            safe_return(
                "https://APP.example.com:443/a",
                APP,
                ProxyMode::ForwardSingle,
                ""
            )
            .as_deref(),
            Some("https://app.example.com/a")
        );
    }

    #[test]
    fn domain_mode_follows_hosts_under_the_cookie_domain_only() {
        let auth = "https://auth.example.com";
        assert!(safe_return(
            "https://wiki.example.com/x",
            auth,
            ProxyMode::ForwardDomain,
            "example.com"
        )
        .is_some());
        assert!(safe_return(
            "https://example.com/",
            auth,
            ProxyMode::ForwardDomain,
            ".example.com"
        )
        .is_some());
        assert!(safe_return(
            "https://example.com.evil.example/",
            auth,
            ProxyMode::ForwardDomain,
            "example.com"
        )
        .is_none());
        assert!(safe_return(
            "https://notexample.com/",
            auth,
            ProxyMode::ForwardDomain,
            "example.com"
        )
        .is_none());
    }
}
