//! Who is on the other end of a request: the TCP peer, or, when the peer is one of the operator's
//! `--trusted-proxies`, the address those proxies forwarded (`hangar_core::forwarded`). Everything
//! that needs a client address (the access log, throttles) takes `ClientAddr`.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use hangar_core::forwarded::{BadProxy, TrustedProxies};

/// The client address of a request. Put on every request by the router (`observe`, from the
/// connection's `ConnectInfo<SocketAddr>` and `Settings::trusted_proxies`); a request served
/// without connection information (an in-memory test call) has the unspecified address `0.0.0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or_else(|| ClientAddr(peer_of(parts))))
    }
}

fn peer_of(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
            c.0.ip().to_canonical()
        })
}

/// The client behind a request from `peer` with these headers (see `TrustedProxies::client_addr`).
pub fn client_addr(proxies: &TrustedProxies, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
    if !proxies.trusts(peer) {
        return ClientAddr(peer.to_canonical());
    }
    // A value that is not text is kept, as a hop that is not an address.
    let values = |name: &str| -> Vec<Cow<'_, str>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect()
    };
    let (xff, forwarded) = (values("x-forwarded-for"), values("forwarded"));
    let xff: Vec<&str> = xff.iter().map(|v| v.as_ref()).collect();
    let forwarded: Vec<&str> = forwarded.iter().map(|v| v.as_ref()).collect();
    ClientAddr(proxies.client_addr(peer, &xff, &forwarded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn spoofed_headers_count_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = headers(&[
            ("x-forwarded-for", b"203.0.113.9"),
            ("x-forwarded-for", b"198.51.100.4"),
            ("forwarded", b"for=192.0.2.1"),
        ]);
        assert_eq!(
            client_addr(&proxies, ip("192.0.2.5"), &h).0,
            ip("192.0.2.5")
        );
        assert_eq!(
            client_addr(&proxies, ip("10.0.0.1"), &h).0,
            ip("198.51.100.4")
        );
        let h = headers(&[("forwarded", b"for=192.0.2.1")]);
        assert_eq!(client_addr(&proxies, ip("10.0.0.1"), &h).0, ip("192.0.2.1"));
        // Bytes that are not text next to the proxy: the proxy is the client.
        let h = headers(&[("x-forwarded-for", b"203.0.113.9, \xff")]);
        assert_eq!(client_addr(&proxies, ip("10.0.0.1"), &h).0, ip("10.0.0.1"));
        // An IPv4 peer seen on an IPv6 socket is written as IPv4.
        let none = TrustedProxies::default();
        let peer = ip("::ffff:192.0.2.7");
        assert_eq!(
            client_addr(&none, peer, &HeaderMap::new()).0,
            ip("192.0.2.7")
        );
    }
}
