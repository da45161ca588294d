//! Which address a request comes from when it passed through the operator's reverse proxies
//! (`--trusted-proxies`): the rules for `X-Forwarded-For` and `Forwarded` (RFC 7239) `for=`, on the
//! header values as text. The HTTP edge (`hangar_api::client`) applies them to each request.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an address or network (CIDR such as 10.0.0.0/8 or ::1)")]
pub struct BadProxy(String);

/// The proxies whose forwarding headers are believed (`--trusted-proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of networks (`10.0.0.0/8`) or single addresses (`127.0.0.1`, `::1`).
    pub fn parse(list: &str) -> Result<TrustedProxies, BadProxy> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(BadProxy(item.to_string())),
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a request that came from `peer`, given the values of its `X-Forwarded-For`
    /// and `Forwarded` headers in order: the peer itself unless it is trusted; then, walking the
    /// forwarded chain from the right (the hop nearest to us), the first address that is not a
    /// trusted proxy. Addresses a client wrote itself sit to the left of the one its first trusted
    /// proxy appended, so they are never reached. A hop that does not parse ends the walk at the last
    /// trusted one; a chain of trusted proxies only yields its left-most address. `Forwarded` is read
    /// only when there is no `X-Forwarded-For`.
    pub fn client_addr(
        &self,
        peer: IpAddr,
        x_forwarded_for: &[&str],
        forwarded: &[&str],
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(x_forwarded_for, forwarded);
        let mut client = peer;
        for hop in chain.iter().rev() {
            let Some(ip) = hop else {
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let list: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&list.join(","))
    }
}

/// The forwarded hops, left (the original client, as claimed) to right (the last proxy's peer): every
/// `X-Forwarded-For` value in order, or when there is none, the `for=` of every `Forwarded` element.
/// A hop that is not an address (`unknown`, an obfuscated `_name`, garbage) is `None`.
fn forwarded_chain(x_forwarded_for: &[&str], forwarded: &[&str]) -> Vec<Option<IpAddr>> {
    if !x_forwarded_for.is_empty() {
        return x_forwarded_for
            .iter()
            .flat_map(|text| text.split(',').map(parse_hop))
            .collect();
    }
    forwarded
        .iter()
        .flat_map(|text| text.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_hop(value.trim().trim_matches('"')))
        })
        .collect()
}

/// `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, `192.0.2.1:4711` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_parse_and_bad_entries_are_refused() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1,::1, 192.168.1.7/24").unwrap();
        assert!(t.trusts(ip("10.1.2.3")));
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(t.trusts(ip("::1")));
        assert!(t.trusts(ip("192.168.1.200")), "host bits are ignored");
        assert!(t.trusts(ip("::ffff:10.0.0.1")), "IPv4-mapped peers match");
        assert_eq!(
            t.to_string(),
            "10.0.0.0/8,127.0.0.1/32,::1/128,192.168.1.0/24"
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "proxy.example", "10.0.0.1/x", "1.2.3"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let spoofed = (["203.0.113.9"], ["for=198.51.100.1"]);
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_addr(ip("192.0.2.5"), &spoofed.0, &spoofed.1),
            ip("192.0.2.5")
        );
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            proxies.client_addr(ip("192.0.2.5"), &spoofed.0, &spoofed.1),
            ip("192.0.2.5")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        let client = |xff: &[&str]| proxies.client_addr(peer, xff, &[]);
        // The client wrote 1.1.1.1 itself; its proxy appended the address it saw.
        assert_eq!(
            client(&["1.1.1.1, 203.0.113.9, 10.0.0.2"]),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        assert_eq!(client(&["1.1.1.1", "203.0.113.9"]), ip("203.0.113.9"));
        // No header: the proxy itself.
        assert_eq!(client(&[]), peer);
        // Only trusted hops: the left-most.
        assert_eq!(client(&["10.9.9.9, 10.0.0.2"]), ip("10.9.9.9"));
        // Garbage next to the proxy stops the walk at the last trusted hop.
        assert_eq!(client(&["203.0.113.9, nonsense, 10.0.0.2"]), ip("10.0.0.2"));
        // Ports and brackets.
        assert_eq!(client(&["[2001:db8::7]:443"]), ip("2001:db8::7"));
        assert_eq!(client(&["192.0.2.8:1234"]), ip("192.0.2.8"));
        // An IPv4-mapped client is written as IPv4.
        assert_eq!(client(&["::ffff:192.0.2.9"]), ip("192.0.2.9"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let peer = ip("127.0.0.1");
        let forwarded =
            ["for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=203.0.113.43"];
        assert_eq!(
            proxies.client_addr(peer, &[], &forwarded),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(proxies.client_addr(peer, &[], &["for=unknown"]), peer);
        assert_eq!(
            proxies.client_addr(peer, &["203.0.113.9"], &["for=192.0.2.60"]),
            ip("203.0.113.9")
        );
    }
}
