//! pathIds and storage paths: decoding never panics, and an accepted path obeys every rule and
//! round-trips through its canonical id.
#![no_main]
use hangar_core::storage_path::StoragePath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for parsed in [StoragePath::from_id(text), StoragePath::parse(text)] {
        let Ok(path) = parsed else { continue };
        let s = path.as_str();
        assert!(!s.is_empty() && s.len() <= 1024);
        assert!(!s.starts_with('/') && !s.ends_with('/'));
        assert!(s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
        assert!(!s.chars().any(char::is_control));
        assert_eq!(StoragePath::from_id(&path.id()).as_ref(), Ok(&path));
        for dir in path.ancestors() {
            assert!(path.is_inside(&dir));
        }
        if let Some(parent) = path.parent() {
            assert_eq!(path.rebase(&parent, &parent), Some(path.clone()));
        }
    }
});
