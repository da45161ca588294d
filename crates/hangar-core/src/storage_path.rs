//! Paths inside a space's storage, and their base64 `pathId` form in URLs (SPEC §6). Paths are
//! validated, never rewritten: what is refused is refused with the reason, and two paths are the same
//! only when their bytes are.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;

/// Longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path id is not valid base64")]
    BadBase64,
    #[error("the path is not valid UTF-8")]
    NotUtf8,
    #[error("the path is empty")]
    Empty,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("the path starts with '/'")]
    LeadingSlash,
    #[error("the path ends with '/'")]
    TrailingSlash,
    #[error("the path has an empty segment ('//')")]
    EmptySegment,
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("the path contains a NUL or control character")]
    ControlCharacter,
}

/// A valid path such as `photos/profile.png`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoragePath(String);

impl StoragePath {
    pub fn parse(path: &str) -> Result<StoragePath, PathError> {
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if path.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if path.starts_with('/') {
            return Err(PathError::LeadingSlash);
        }
        if path.ends_with('/') {
            return Err(PathError::TrailingSlash);
        }
        for segment in path.split('/') {
            match segment {
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::DotSegment),
                _ => {}
            }
        }
        Ok(StoragePath(path.to_string()))
    }

    /// Decodes a `pathId`: standard or URL-safe base64, with or without padding.
    pub fn from_id(id: &str) -> Result<StoragePath, PathError> {
        let bytes = decode_id(id)?;
        let path = String::from_utf8(bytes).map_err(|_| PathError::NotUtf8)?;
        StoragePath::parse(&path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical `pathId`: URL-safe base64 without padding.
    pub fn id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// The last segment.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The directory holding this entry; `None` at the top level.
    pub fn parent(&self) -> Option<StoragePath> {
        self.0
            .rsplit_once('/')
            .map(|(p, _)| StoragePath(p.to_string()))
    }

    /// Every directory above this entry, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> Vec<StoragePath> {
        let mut out = Vec::new();
        for (i, b) in self.0.bytes().enumerate() {
            if b == b'/' {
                out.push(StoragePath(self.0[..i].to_string()));
            }
        }
        out
    }

    /// Whether `self` lies strictly inside the directory `dir`.
    pub fn is_inside(&self, dir: &StoragePath) -> bool {
        self.0.len() > dir.0.len()
            && self.0.starts_with(&dir.0)
            && self.0.as_bytes()[dir.0.len()] == b'/'
    }

    /// This path with the directory prefix `from` replaced by `to` (for moves of directories).
    pub fn rebase(&self, from: &StoragePath, to: &StoragePath) -> Option<StoragePath> {
        if self == from {
            return Some(to.clone());
        }
        self.is_inside(from)
            .then(|| StoragePath(format!("{}{}", to.0, &self.0[from.0.len()..])))
    }
}

/// Base64 in either alphabet, padded or not. Mixed alphabets are accepted: `+` and `-` (and `/` and
/// `_`) mean the same 6 bits in the two alphabets, so there is no ambiguity.
pub fn decode_id(id: &str) -> Result<Vec<u8>, PathError> {
    let trimmed = id.trim_end_matches('=');
    if id.len() - trimmed.len() > 2 {
        return Err(PathError::BadBase64);
    }
    let normalized: String = trimmed
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD
        .decode(normalized)
        .map_err(|_| PathError::BadBase64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_example_decodes() {
        let p = StoragePath::from_id("cGhvdG9zL3Byb2ZpbGUucG5n").unwrap();
        assert_eq!(p.as_str(), "photos/profile.png");
        assert_eq!(p.id(), "cGhvdG9zL3Byb2ZpbGUucG5n");
        assert_eq!(p.name(), "profile.png");
        assert_eq!(p.parent().unwrap().as_str(), "photos");
    }

    #[test]
    fn both_alphabets_with_or_without_padding_name_the_same_path() {
        // "a?>" encodes to "YT8+" (standard) and "YT8-" (URL-safe).
        let std = StoragePath::from_id("YT8+").unwrap();
        assert_eq!(std, StoragePath::from_id("YT8-").unwrap());
        assert_eq!(std.id(), "YT8-");
        let padded = StoragePath::from_id("YQ==").unwrap();
        assert_eq!(padded, StoragePath::from_id("YQ").unwrap());
        assert_eq!(padded.as_str(), "a");
        assert_eq!(StoragePath::from_id("YQ==="), Err(PathError::BadBase64));
        assert_eq!(StoragePath::from_id("!!!"), Err(PathError::BadBase64));
        assert_eq!(StoragePath::from_id("Y"), Err(PathError::BadBase64));
    }

    #[test]
    fn forbidden_paths_are_refused_with_their_reason() {
        let cases = [
            ("", PathError::Empty),
            ("/a", PathError::LeadingSlash),
            ("a/", PathError::TrailingSlash),
            ("a//b", PathError::EmptySegment),
            ("a/./b", PathError::DotSegment),
            ("../etc/passwd", PathError::DotSegment),
            ("a/..", PathError::DotSegment),
            ("a\0b", PathError::ControlCharacter),
            ("a\nb", PathError::ControlCharacter),
        ];
        for (path, err) in cases {
            assert_eq!(StoragePath::parse(path), Err(err), "{path:?}");
        }
        assert_eq!(
            StoragePath::parse(&"a".repeat(1025)),
            Err(PathError::TooLong)
        );
        assert!(StoragePath::parse(&"a".repeat(1024)).is_ok());
        let not_utf8 = URL_SAFE_NO_PAD.encode([0xff, 0xfe]);
        assert_eq!(StoragePath::from_id(&not_utf8), Err(PathError::NotUtf8));
    }

    #[test]
    fn no_unicode_normalization() {
        let composed = StoragePath::parse("caf\u{e9}").unwrap();
        let decomposed = StoragePath::parse("cafe\u{301}").unwrap();
        assert_ne!(composed, decomposed);
        assert_ne!(composed.id(), decomposed.id());
    }

    #[test]
    fn ancestors_inside_and_rebase() {
        let p = StoragePath::parse("a/b/c.txt").unwrap();
        let names: Vec<_> = p
            .ancestors()
            .iter()
            .map(|a| a.as_str().to_string())
            .collect();
        assert_eq!(names, ["a", "a/b"]);
        let a = StoragePath::parse("a").unwrap();
        let ab = StoragePath::parse("ab").unwrap();
        assert!(p.is_inside(&a));
        assert!(!ab.is_inside(&a));
        assert!(!a.is_inside(&a));
        let z = StoragePath::parse("z/y").unwrap();
        assert_eq!(p.rebase(&a, &z).unwrap().as_str(), "z/y/b/c.txt");
        assert_eq!(ab.rebase(&a, &z), None);
    }
}
