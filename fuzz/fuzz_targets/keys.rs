//! GPG key blocks, SSH key lines and chat-message link extraction: never panic on any input, and
//! what they accept is well-formed.
#![no_main]
use hangar_core::apps::{gpg_fingerprint, links_in, parse_ssh_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(fp) = gpg_fingerprint(input) {
        assert_eq!(fp.len(), 40);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let armored = format!("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{input}\n-----END PGP PUBLIC KEY BLOCK-----");
    let _ = gpg_fingerprint(&armored);
    if let Ok(k) = parse_ssh_key(input) {
        assert!(k.fingerprint.starts_with("SHA256:"));
        assert!(input.starts_with(&k.key_type) || input.trim_start().starts_with(&k.key_type));
    }
    for (link, host) in links_in(input) {
        assert!(link.starts_with("http://") || link.starts_with("https://"));
        assert_eq!(host, host.to_ascii_lowercase());
    }
});
