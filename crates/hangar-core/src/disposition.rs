//! How user content is labelled when served: Content-Disposition (RFC 6266 with RFC 5987 names) and
//! which media types a browser may render inline on our origin: an allow-list of passive types, so a
//! type nobody thought of (a new script or document format) is downloaded, never rendered.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 5987 `attr-char`: everything else is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="ascii"; filename*=UTF-8''pct` (or `inline; …`). The ASCII fallback replaces
/// anything a quoted-string cannot carry safely by `_`.
pub fn content_disposition(inline: bool, file_name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    // Built in one string: every download sends this header.
    let mut out = String::with_capacity(kind.len() + 32 + 2 * file_name.len());
    out.push_str(kind);
    out.push_str("; filename=\"");
    out.extend(file_name.chars().map(|c| {
        if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
            c
        } else {
            '_'
        }
    }));
    out.push_str("\"; filename*=UTF-8''");
    out.extend(utf8_percent_encode(file_name, ATTR_CHAR_ESCAPES));
    out
}

/// Media types that a browser would run as a document or script: served only as downloads.
/// Media types shown inline: raster images, audio, video and plain text, which browsers display
/// without running anything (with `nosniff` they are not re-interpreted). SVG, HTML, XML, PDF and
/// every type not listed here are sent as `attachment`.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/flac",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "text/plain",
];

/// Whether a browser may render this type inline on our origin (see `INLINE_TYPES`).
pub fn is_inline_safe(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    INLINE_TYPES.iter().any(|t| t.eq_ignore_ascii_case(essence))
}

/// A stored media type: a syntactically valid `type/subtype` (parameters kept), else octet-stream.
pub fn normalize_content_type(given: Option<&str>) -> String {
    let Some(given) = given
        .map(str::trim)
        .filter(|g| !g.is_empty() && g.len() <= 255)
    else {
        return "application/octet-stream".into();
    };
    let essence = given.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s))
            if token(t) && token(s) && given.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
        {
            given.to_string()
        }
        _ => "application/octet-stream".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_names_get_both_forms() {
        let cd = content_disposition(false, "résumé \"final\".pdf");
        assert_eq!(
            cd,
            "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert!(content_disposition(true, "a.png").starts_with("inline; filename=\"a.png\""));
    }

    #[test]
    fn only_passive_types_are_shown_inline() {
        for t in [
            "text/html",
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xml",
            "text/javascript",
            "application/xhtml+xml",
            "application/pdf",
            "application/octet-stream",
            "text/css",
            "application/x-shockwave-flash",
            "text/vtt",
            "",
            "image/png+xml",
        ] {
            assert!(!is_inline_safe(t), "{t}");
        }
        for t in [
            "image/png",
            "IMAGE/PNG",
            "text/plain",
            "text/plain; charset=utf-8",
            "video/mp4",
            "audio/mpeg",
        ] {
            assert!(is_inline_safe(t), "{t}");
        }
    }

    #[test]
    fn content_types_are_validated() {
        assert_eq!(normalize_content_type(Some("image/png")), "image/png");
        assert_eq!(
            normalize_content_type(Some("text/plain; charset=utf-8")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            normalize_content_type(Some("garbage")),
            "application/octet-stream"
        );
        assert_eq!(
            normalize_content_type(Some("a/b\r\nX: y")),
            "application/octet-stream"
        );
        assert_eq!(normalize_content_type(None), "application/octet-stream");
    }
}
