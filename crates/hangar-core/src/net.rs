//! Which network addresses the server may reach on a user's behalf (upload from URL, webhooks), and
//! the operator's allow-list that opens specific hosts (SPEC §11).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether an address is one the server must never connect to for a user: anything that is not
/// ordinary global unicast (loopback, private, link-local and cloud metadata, carrier-grade NAT,
/// multicast, reserved and documentation ranges), including IPv4 addresses wrapped in IPv6 forms.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                   // "this network", 0.0.0.0
        || a == 10                           // private
        || a == 127                          // loopback
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 169 && b == 254)            // link-local, cloud metadata (169.254.169.254)
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)    // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)    // documentation
        || (a == 192 && b == 88 && c == 99)  // 6to4 relay anycast
        || (a == 192 && b == 168)            // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113)  // documentation
        || a >= 224 // multicast, reserved, broadcast
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) carry
    // an IPv4 address: judge that one.
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        if s[5] == 0 && s[6] == 0 {
            return true; // ::, ::1 and the rest of ::/96 below 0.1.0.0
        }
        return forbidden_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(s[1], s[2])); // 6to4 embeds the IPv4 address
    }
    // Only global unicast (2000::/3) remains allowed, minus Teredo, ORCHID and documentation.
    (s[0] & 0xe000) != 0x2000
        || (s[0] == 0x2001 && s[1] == 0)           // Teredo
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x10) // ORCHID
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
}

/// Hosts the operator opened despite the rules above: `host` opens every port of it, `host:port`
/// only that port. Hosts compare case-insensitively; IPv6 literals are written `[::1]:port`.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<(String, Option<u16>)>,
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            let (host, port) = split_host_port(entry)
                .ok_or_else(|| format!("invalid allow-list entry {entry:?}"))?;
            out.push((host.to_ascii_lowercase(), port));
        }
        Ok(AllowList { entries: out })
    }

    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.entries
            .iter()
            .any(|(h, p)| *h == host && p.is_none_or(|p| p == port))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn split_host_port(entry: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match entry.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Some((entry.to_string(), None)),
        Some((host, port)) => Some((host.to_string(), Some(port.parse().ok()?))),
        None => Some((entry.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden(s.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.10",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(forbidden(ip), "{ip} must be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2a00:1450::1",
        ] {
            assert!(!forbidden(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn allow_list_entries_open_hosts_or_single_ports() {
        let list =
            AllowList::parse(&["127.0.0.1:8080", "Example.com", "[::1]:9000", "::1"]).unwrap();
        assert!(list.allows("127.0.0.1", 8080));
        assert!(!list.allows("127.0.0.1", 8081));
        assert!(list.allows("example.COM", 1));
        assert!(list.allows("[::1]", 9000));
        assert!(list.allows("::1", 1234));
        assert!(!list.allows("localhost", 8080));
        assert!(AllowList::parse(&["host:notaport"]).is_err());
        assert!(AllowList::parse(&["  "]).unwrap().is_empty());
    }
}
