//! The client's address behind reverse proxies. The TCP peer is the client unless it is one of
//! the operator's `trusted_proxies`; then the proxies' `X-Forwarded-For` (or, without it, the
//! RFC 7239 `Forwarded` header) is read from the right, and the first address that is not a
//! trusted proxy is the client. Nothing a client writes into those headers counts unless a
//! trusted proxy passed it on, and an address a client prepends never wins over the one the
//! proxy appended. `gatehouse-web` resolves the address once per request with this; throttles,
//! reputation, audit events and policies all read that one answer.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The networks whose forwarding headers are believed: the operator's ingress or load balancer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `trusted_proxies` entry that is not an address or CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR network; give e.g. 10.0.0.0/8, 192.0.2.7 or fd00::/8")]
pub struct BadNetwork(pub String);

impl TrustedProxies {
    /// Parses entries such as `10.0.0.0/8` or `192.0.2.7` (a single address is a /32 or /128).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, BadNetwork> {
        entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                IpNet::from_str(e)
                    .or_else(|_| IpAddr::from_str(e).map(IpNet::from))
                    .map_err(|_| BadNetwork(e.to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted (forwarding headers are then always ignored).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` that carried these `X-Forwarded-For` and
    /// `Forwarded` header values (in order of appearance). An entry that cannot be read stops
    /// the walk at the trusted hop that reported it: a garbled chain never yields a chosen
    /// address.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str], forwarded: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<Option<IpAddr>> = if forwarded_for.iter().any(|v| !v.trim().is_empty()) {
            forwarded_for
                .iter()
                .flat_map(|v| v.split(','))
                .map(|hop| parse_hop(hop.trim()))
                .collect()
        } else {
            forwarded
                .iter()
                .flat_map(|v| v.split(','))
                .filter_map(forwarded_for_param)
                .map(|hop| parse_hop(&hop))
                .collect()
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                None => return client,
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as dual-stack listeners report) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The `for=` value of one `Forwarded` element, quotes removed.
fn forwarded_for_param(element: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// One hop: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return IpAddr::from_str(rest.split(']').next()?).ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    IpAddr::from_str(host).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.7"]).unwrap_or_default()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let p = proxies();
        let peer = ip("198.51.100.1");
        assert_eq!(p.client(peer, &["203.0.113.9"], &[]), peer);
        assert_eq!(p.client(peer, &[], &["for=203.0.113.9"]), peer);
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &["203.0.113.9"], &[]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let p = proxies();
        let peer = ip("10.1.2.3");
        // A client-written first entry never wins over what the proxy appended.
        assert_eq!(
            p.client(peer, &["1.1.1.1, 203.0.113.9"], &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client(peer, &["1.1.1.1", "203.0.113.9, 10.9.9.9"], &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client(
                peer,
                &[],
                &["for=1.1.1.1, for=\"[2001:db8::1]:443\";proto=https"]
            ),
            ip("2001:db8::1")
        );
        assert_eq!(
            p.client(peer, &["203.0.113.9:5555"], &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client(ip("::ffff:192.0.2.7"), &["203.0.113.9"], &[]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn garbage_or_an_all_trusted_chain_stops_at_a_trusted_hop() {
        let p = proxies();
        let peer = ip("10.1.2.3");
        assert_eq!(p.client(peer, &["203.0.113.9, unknown"], &[]), peer);
        assert_eq!(p.client(peer, &["10.4.4.4"], &[]), ip("10.4.4.4"));
        assert_eq!(p.client(peer, &[], &[]), peer);
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33"]),
            Err(BadNetwork("10.0.0.0/33".into()))
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]).is_ok());
    }
}
