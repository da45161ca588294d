//! File names given by clients, made safe to store and to send back in headers (SPEC §11).

/// Longest stored file name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Characters that reorder text when displayed (bidi embeddings, overrides and isolates): a name like
/// `invoice\u{202E}gpj.exe` would otherwise show as `invoiceexe.jpg`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Makes a client's file name safe: control characters and bidi controls removed, `/` and `\` replaced
/// by `_`, at most 255 UTF-8 bytes keeping the extension, never empty and never `.` or `..`.
pub fn sanitize(name: &str) -> String {
    sanitized(name).into_owned()
}

/// `sanitize` without a copy when the name is already safe, as stored names are (every download
/// sanitizes its name again).
pub fn sanitized(name: &str) -> std::borrow::Cow<'_, str> {
    let safe = name.len() <= MAX_NAME_BYTES
        && !matches!(name, "" | "." | "..")
        && name.trim().len() == name.len()
        && !name
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c) || c == '/' || c == '\\');
    if safe {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(cleaned(name))
    }
}

fn cleaned(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim().to_string();
    let cleaned = match cleaned.as_str() {
        "" => "file".to_string(),
        "." | ".." => "_".to_string(),
        _ => cleaned,
    };
    truncate_keeping_extension(&cleaned, MAX_NAME_BYTES)
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    // Keep a short extension (up to 16 bytes) so the file still opens with the right program.
    let ext = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 16 => &name[dot..],
        _ => "",
    };
    let stem = &name[..name.len() - ext.len()];
    let mut cut = max - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &stem[..cut], ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_defused() {
        assert_eq!(sanitize("../x"), ".._x");
        assert_eq!(sanitize("a\\b/c.txt"), "a_b_c.txt");
        assert_eq!(sanitize("nul\0byte.txt"), "nulbyte.txt");
        assert_eq!(sanitize("invoice\u{202E}gpj.exe"), "invoicegpj.exe");
        assert_eq!(sanitize("\u{2066}a\u{2069}"), "a");
        assert_eq!(sanitize(""), "file");
        assert_eq!(sanitize(".."), "_");
        assert_eq!(sanitize("line\nbreak"), "linebreak");
    }

    #[test]
    fn long_names_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.png", "a".repeat(300));
        let s = sanitize(&long);
        assert_eq!(s.len(), 255);
        assert!(s.ends_with(".png"));
        let wide = format!("{}.txt", "é".repeat(200));
        let s = sanitize(&wide);
        assert!(s.len() <= 255 && s.ends_with(".txt"));
        assert!(std::str::from_utf8(s.as_bytes()).is_ok());
        let noext = "ж".repeat(300);
        assert!(sanitize(&noext).len() <= 255);
    }

    #[test]
    fn names_left_as_they_are_are_the_ones_cleaning_would_not_change() {
        let long = "a".repeat(300);
        for name in [
            "report.pdf",
            "Ünïcödé ファイル.txt",
            " leading",
            "trailing\u{3000}",
            "a/b",
            "a\\b",
            "tab\tname",
            "del\u{7f}",
            "\u{202D}x",
            ".",
            "..",
            "...",
            "",
            &long,
            &"a".repeat(255),
        ] {
            let kept = matches!(sanitized(name), std::borrow::Cow::Borrowed(_));
            assert_eq!(sanitized(name), cleaned(name), "{name:?}");
            assert_eq!(kept, cleaned(name) == name, "{name:?}");
        }
    }
}
