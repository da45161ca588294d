//! Client addresses behind trusted proxies: any proxy list and any X-Forwarded-For / Forwarded text
//! is handled without a panic, and headers from a peer that is not trusted never change the answer.
#![no_main]
use hangar_core::forwarded::TrustedProxies;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|input: (&str, [u8; 4], Vec<&str>, Vec<&str>)| {
    let (list, peer, xff, forwarded) = input;
    let Ok(proxies) = TrustedProxies::parse(list) else {
        return;
    };
    let peer = IpAddr::V4(Ipv4Addr::from(peer));
    let client = proxies.client_addr(peer, &xff, &forwarded);
    if !proxies.trusts(peer) || (xff.is_empty() && forwarded.is_empty()) {
        assert_eq!(client, peer);
    }
});
