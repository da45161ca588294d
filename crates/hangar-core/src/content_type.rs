//! What type a new file is stored (and later served) as: the declared one when it says something,
//! else what its first bytes show (`infer`), else what its name suggests (`mime_guess`).

use crate::disposition::normalize_content_type;

/// How many of a file's first bytes the detection looks at (every signature `infer` knows but the
/// ISO 9660 one lies within them).
pub const SNIFF_LEN: usize = 8192;

/// Declared types that say nothing about the bytes: what a client sends when it does not know the
/// type (`application/octet-stream`) or did not choose one (`curl --data-binary` sends a form type).
const UNINFORMATIVE: [&str; 2] = [
    "application/octet-stream",
    "application/x-www-form-urlencoded",
];

/// The type a file is stored as. `declared` is what the client (or a remote server) said, `head` the
/// file's first bytes (at least `SNIFF_LEN` of them when the file is that long), `file_name` its name.
/// A declared type is kept as given (normalized) unless it is absent, invalid or uninformative.
pub fn resolve(declared: Option<&str>, head: &[u8], file_name: Option<&str>) -> String {
    let normalized = normalize_content_type(declared);
    let essence = normalized
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !UNINFORMATIVE.contains(&essence.as_str()) {
        return normalized;
    }
    if let Some(found) = infer::get(head) {
        return found.mime_type().to_string();
    }
    if let Some(guess) = file_name.and_then(|n| mime_guess::from_path(n).first()) {
        return guess.essence_str().to_string();
    }
    "application/octet-stream".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    #[test]
    fn uninformative_types_are_replaced_by_the_bytes() {
        for declared in [
            None,
            Some("application/octet-stream"),
            Some("application/x-www-form-urlencoded"),
            Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            Some("not a type"),
            Some(""),
        ] {
            assert_eq!(
                resolve(declared, PNG, Some("x.bin")),
                "image/png",
                "{declared:?}"
            );
        }
    }

    #[test]
    fn the_name_decides_when_the_bytes_say_nothing() {
        assert_eq!(resolve(None, b"hello", Some("notes.txt")), "text/plain");
        assert_eq!(
            resolve(Some("application/octet-stream"), b"{}", Some("a.json")),
            "application/json"
        );
        assert_eq!(resolve(None, b"<svg/>", Some("a.svg")), "image/svg+xml");
        assert_eq!(
            resolve(None, b"hello", Some("noext")),
            "application/octet-stream"
        );
        assert_eq!(resolve(None, b"", None), "application/octet-stream");
    }

    #[test]
    fn a_declared_type_is_kept() {
        assert_eq!(
            resolve(Some("text/plain"), PNG, Some("a.png")),
            "text/plain"
        );
        assert_eq!(
            resolve(Some("text/plain; charset=utf-8"), b"x", None),
            "text/plain; charset=utf-8"
        );
        // Even a type a browser would run: the safe-serving rules deal with it when it is served.
        assert_eq!(resolve(Some("text/html"), PNG, None), "text/html");
    }
}
