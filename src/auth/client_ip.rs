//! The client's IP address: the TCP peer, or, only when the peer is one of
//! `auth.trusted_proxies`, the nearest untrusted hop of `X-Forwarded-For`. Anyone can send
//! `X-Forwarded-For`; believing it from anyone else would let a caller pick its own rate-limit
//! bucket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use crate::config::{AuthConfig, IpNet, canonical};

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// The proxies of a loaded `[auth]` (parsed by config validation).
    pub(crate) fn new(auth: &AuthConfig) -> Self {
        Self(auth.trusted_proxy_nets.clone())
    }

    /// Trusts exactly `nets` (parsed by config validation, e.g. `callbacks.trusted_sources`).
    pub(crate) fn from_nets(nets: Arc<[IpNet]>) -> Self {
        Self(nets)
    }

    /// True when `ip` is one of the trusted proxies.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a request. Without a known peer (no `ConnectInfo`), `0.0.0.0`.
    pub(crate) fn client_ip(&self, parts: &Parts) -> IpAddr {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        };
        let mut client = canonical(peer.ip());
        if !self.trusts(client) {
            return client;
        }
        // Right to left: each hop was appended by the proxy before it. Stop at the first hop we
        // do not trust (the client as our proxies saw it), or at anything unparsable.
        let hops: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// A hop: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, forwarded: &[&str]) -> Parts {
        let mut request = Request::builder();
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        let mut request = request.body(()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        request.into_parts().0
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies(entries.iter().map(|e| e.parse().unwrap()).collect())
    }

    #[test]
    fn ranges_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.1.1".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::1/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            none.client_ip(&parts("198.51.100.7:4000", &["203.0.113.1"])),
            ip("198.51.100.7")
        );
        let proxies = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client_ip(&parts("10.0.0.2:4000", &["203.0.113.1, 10.0.0.9"])),
            ip("203.0.113.1")
        );
        // A spoofed left-most entry is skipped: the nearest untrusted hop wins.
        assert_eq!(
            proxies.client_ip(&parts("10.0.0.2:4000", &["1.1.1.1", "203.0.113.1"])),
            ip("203.0.113.1")
        );
        assert_eq!(
            proxies.client_ip(&parts("10.0.0.2:4000", &["garbage, 203.0.113.5:999"])),
            ip("203.0.113.5")
        );
        assert_eq!(
            proxies.client_ip(&parts("10.0.0.2:4000", &[])),
            ip("10.0.0.2")
        );
        assert_eq!(
            proxies.client_ip(&parts("10.0.0.2:4000", &["10.0.0.3, garbage"])),
            ip("10.0.0.2")
        );
        let no_peer = Request::new(()).into_parts().0;
        assert_eq!(proxies.client_ip(&no_peer), ip("0.0.0.0"));
    }
}
