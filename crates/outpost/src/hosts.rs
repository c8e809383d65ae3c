//! Which proxy provider a request is for, by host: an exact match on the host (and port) of a
//! provider's external host; else, among forward_domain providers, the longest cookie domain
//! the host is under; else the only provider, when the outpost serves exactly one.

use gatehouse_core::kinds::ProxyMode;

/// What the outpost needs to know about one proxy provider to route a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Provider id.
    pub provider: i64,
    /// `host[:port]` of the external host, lowercase.
    pub authority: String,
    /// Forward single, forward domain or proxy.
    pub mode: ProxyMode,
    /// Cookie domain without a leading dot, lowercase (forward_domain).
    pub cookie_domain: String,
}

/// `host[:port]` of a URL, lowercase; `None` when it has none.
pub fn authority(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// The routes of the providers an outpost serves.
#[derive(Debug, Clone, Default)]
pub struct Table {
    routes: Vec<Route>,
}

impl Table {
    /// A table over `routes`.
    pub fn new(routes: Vec<Route>) -> Table {
        Table { routes }
    }

    /// The route for a request to `host` (as sent in `X-Forwarded-Host` or `Host`).
    pub fn select(&self, host: &str) -> Option<&Route> {
        // Hosts arrive lowercase almost always: allocate only when they do not.
        let host = host.trim();
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        if let Some(exact) = self.routes.iter().find(|r| r.authority == host) {
            return Some(exact);
        }
        let bare = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        let under = |domain: &str| {
            bare == domain
                || bare
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        let domain = self
            .routes
            .iter()
            .filter(|r| r.mode == ProxyMode::ForwardDomain && !r.cookie_domain.is_empty())
            .filter(|r| under(&r.cookie_domain))
            .max_by_key(|r| r.cookie_domain.len());
        if domain.is_some() {
            return domain;
        }
        match self.routes.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(provider: i64, url: &str, mode: ProxyMode, cookie_domain: &str) -> Route {
        Route {
            provider,
            authority: authority(url).unwrap_or_default(),
            mode,
            cookie_domain: cookie_domain.into(),
        }
    }

    #[test]
    fn exact_host_wins_then_longest_cookie_domain_then_the_only_provider() {
        let table = Table::new(vec![
            route(
                1,
                "https://grafana.example.com",
                ProxyMode::ForwardSingle,
                "",
            ),
            route(
                2,
                "https://auth.example.com",
                ProxyMode::ForwardDomain,
                "example.com",
            ),
            route(
                3,
                "https://auth.lab.example.com",
                ProxyMode::ForwardDomain,
                "lab.example.com",
            ),
            route(4, "http://app.localhost:8080", ProxyMode::ForwardSingle, ""),
        ]);
        assert_eq!(
            table.select("grafana.example.com").map(|r| r.provider),
            Some(1)
        );
        assert_eq!(
            table.select("Wiki.Example.com").map(|r| r.provider),
            Some(2)
        );
        assert_eq!(
            table.select("nas.lab.example.com").map(|r| r.provider),
            Some(3)
        );
        assert_eq!(
            table.select("app.localhost:8080").map(|r| r.provider),
            Some(4)
        );
        assert_eq!(
            table.select("app.localhost:9090").map(|r| r.provider),
            None,
            "ports count for exact matches"
        );
        assert_eq!(table.select("evil.example.org").map(|r| r.provider), None);
        assert_eq!(
            table.select("notexample.com").map(|r| r.provider),
            None,
            "a suffix must be a whole label"
        );
        let single = Table::new(vec![route(
            9,
            "https://only.example.com",
            ProxyMode::ForwardSingle,
            "",
        )]);
        assert_eq!(
            single.select("anything.example.net").map(|r| r.provider),
            Some(9)
        );
    }
}
