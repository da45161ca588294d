//! File names and Content-Disposition: a sanitized name is short and harmless, and the header built
//! from it is a valid header value whatever the name.
#![no_main]
use hangar_core::disposition::{content_disposition, normalize_content_type};
use hangar_core::filename::sanitize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    let clean = sanitize(name);
    assert!(!clean.is_empty() && clean.len() <= 255);
    assert!(!clean.contains(['/', '\\']));
    assert!(!clean.chars().any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')));
    assert!(clean != "." && clean != "..");
    for inline in [true, false] {
        let header = content_disposition(inline, &clean);
        assert!(header.bytes().all(|b| (0x20..0x7f).contains(&b)), "{header:?}");
    }
    let content_type = normalize_content_type(Some(name));
    assert!(content_type.bytes().all(|b| (0x20..0x7f).contains(&b)));
    assert_eq!(normalize_content_type(Some(&content_type)), content_type);
});
