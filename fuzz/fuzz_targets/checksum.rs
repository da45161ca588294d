//! Declared checksum headers: never a panic, and an accepted declaration is 64 lowercase hex digits.
#![no_main]
use hangar_core::checksum::declared_sha256;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 4] = ["repr-digest", "content-digest", "x-checksum-sha256", "content-type"];

fuzz_target!(|input: (u8, &str, u8, &str)| {
    let (a, va, b, vb) = input;
    let headers = [(NAMES[a as usize % 4], va), (NAMES[b as usize % 4], vb)];
    if let Ok(Some(hex)) = declared_sha256(headers) {
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    }
});
