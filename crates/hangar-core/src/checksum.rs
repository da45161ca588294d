//! Checksums a client declares for the bytes it sends: RFC 9530 `Repr-Digest` / `Content-Digest`
//! (`sha-256=:BASE64:`) or `X-Checksum-SHA256` (hex).

use base64::Engine;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the {0} header names no sha-256 digest")]
    NoSha256(&'static str),
}

/// Reads a declared SHA-256 from header values (name, value pairs as received). Returns the digest as
/// lowercase hex, `None` when nothing was declared. `Repr-Digest` wins over `Content-Digest`, which
/// wins over `X-Checksum-SHA256`; unknown algorithms in a digest dictionary are ignored, as RFC 9530 says.
pub fn declared_sha256<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Option<String>, ChecksumError> {
    let mut repr = None;
    let mut content = None;
    let mut plain = None;
    for (name, value) in headers {
        match name.to_ascii_lowercase().as_str() {
            "repr-digest" => repr = Some(value),
            "content-digest" => content = Some(value),
            "x-checksum-sha256" => plain = Some(value),
            _ => {}
        }
    }
    if let Some(v) = repr {
        return parse_digest_dictionary(v, "Repr-Digest").map(Some);
    }
    if let Some(v) = content {
        return parse_digest_dictionary(v, "Content-Digest").map(Some);
    }
    if let Some(v) = plain {
        let v = v.trim();
        if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Some(v.to_ascii_lowercase()));
        }
        return Err(ChecksumError::Malformed("X-Checksum-SHA256"));
    }
    Ok(None)
}

/// Parses the RFC 8941 dictionary of RFC 9530: `sha-256=:BASE64:, sha-512=:…:`.
fn parse_digest_dictionary(value: &str, header: &'static str) -> Result<String, ChecksumError> {
    for member in value.split(',') {
        let member = member.trim();
        let Some((alg, rest)) = member.split_once('=') else {
            return Err(ChecksumError::Malformed(header));
        };
        if !alg.trim().eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let b64 = rest
            .trim()
            .strip_prefix(':')
            .and_then(|r| r.strip_suffix(':'))
            .ok_or(ChecksumError::Malformed(header))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| ChecksumError::Malformed(header))?;
        if bytes.len() != 32 {
            return Err(ChecksumError::Malformed(header));
        }
        return Ok(hex::encode(bytes));
    }
    Err(ChecksumError::NoSha256(header))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_HEX: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const HELLO_B64: &str = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

    #[test]
    fn reads_each_header_form() {
        let v = format!("sha-256=:{HELLO_B64}:");
        assert_eq!(
            declared_sha256([("Repr-Digest", v.as_str())])
                .unwrap()
                .as_deref(),
            Some(HELLO_HEX)
        );
        let v2 = format!("sha-512=:AAAA:, sha-256=:{HELLO_B64}:");
        assert_eq!(
            declared_sha256([("content-digest", v2.as_str())])
                .unwrap()
                .as_deref(),
            Some(HELLO_HEX)
        );
        let upper = HELLO_HEX.to_uppercase();
        assert_eq!(
            declared_sha256([("X-Checksum-SHA256", upper.as_str())])
                .unwrap()
                .as_deref(),
            Some(HELLO_HEX)
        );
        assert_eq!(
            declared_sha256([("content-type", "text/plain")]).unwrap(),
            None
        );
    }

    #[test]
    fn rejects_malformed_declarations() {
        assert!(declared_sha256([("X-Checksum-SHA256", "abc")]).is_err());
        assert!(declared_sha256([("Repr-Digest", "sha-256=notcolon")]).is_err());
        assert!(declared_sha256([("Repr-Digest", "sha-256=:AAAA:")]).is_err());
        assert_eq!(
            declared_sha256([("Repr-Digest", "md5=:AAAA:")]),
            Err(ChecksumError::NoSha256("Repr-Digest"))
        );
    }
}
