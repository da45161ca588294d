//! The SSRF address rules: any URL host or address, in any spelling, is classified without a panic;
//! an IPv4 address and its IPv4-mapped IPv6 form are judged the same; allow-lists parse safely.
#![no_main]
use hangar_core::net::{is_forbidden, AllowList};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|input: ([u8; 4], [u8; 16], &str)| {
    let (v4, v6, text) = input;
    let v4 = Ipv4Addr::from(v4);
    assert_eq!(is_forbidden(IpAddr::V4(v4)), is_forbidden(IpAddr::V6(v4.to_ipv6_mapped())));
    let _ = is_forbidden(IpAddr::V6(Ipv6Addr::from(v6)));
    for loopback in [IpAddr::V4(Ipv4Addr::new(127, v4.octets()[1], v4.octets()[2], v4.octets()[3])), IpAddr::V6(Ipv6Addr::LOCALHOST)] {
        assert!(is_forbidden(loopback));
    }
    if let Ok(url) = url::Url::parse(text) {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => {
                let _ = is_forbidden(IpAddr::V4(ip));
            }
            Some(url::Host::Ipv6(ip)) => {
                let _ = is_forbidden(IpAddr::V6(ip));
            }
            _ => {}
        }
    }
    let entries: Vec<&str> = text.split(',').collect();
    if let Ok(list) = AllowList::parse(&entries) {
        let _ = list.allows(text, 80);
    }
});
