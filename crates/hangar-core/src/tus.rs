//! Resumable uploads (tus 1.0, SPEC §9.1): the upload as the database keeps it, and the pure rules
//! of its wire format (`Upload-Metadata`, the `target` key, `Upload-Checksum`).

use base64::Engine;
use std::collections::BTreeMap;

/// Where a tus upload's bytes go once they are whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TusTarget {
    /// An attachment (as `POST /uploads`), which exists from the upload's creation.
    Attachment { attachment_id: i64 },
    /// A workspace storage file (SPEC §6).
    Storage { space_id: String, path: String },
}

/// Where a tus upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TusState {
    /// Bytes arrive (`offset` < `length`).
    Receiving,
    /// Every byte arrived; the whole file is being verified and recorded.
    Completing,
    /// Recorded: only `HEAD` still answers, until the upload expires.
    Done,
}

impl TusState {
    pub fn as_str(self) -> &'static str {
        match self {
            TusState::Receiving => "receiving",
            TusState::Completing => "completing",
            TusState::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<TusState> {
        [TusState::Receiving, TusState::Completing, TusState::Done]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One resumable upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TusUpload {
    /// 128 random bits in hex: the URL's last segment and the partial upload's name.
    pub id: String,
    /// The member (or application's bot member) that created it: only it may continue or end it.
    pub owner_id: i64,
    pub length: i64,
    pub offset: i64,
    /// The client's `Upload-Metadata`, as sent (echoed by `HEAD`).
    pub metadata: String,
    pub file_name: String,
    pub content_type: String,
    pub target: TusTarget,
    /// The whole-file SHA-256 the client declared (`sha256` metadata key), lowercase hex.
    pub declared_sha256: Option<String>,
    pub state: TusState,
    /// A request writing bytes holds the upload until then (epoch ms); none when idle.
    pub lease_until: Option<i64>,
    /// `Upload-Expires` (epoch ms): past it, an idle upload fails and its bytes are freed.
    pub expires_utc: i64,
    pub created_utc: i64,
}

/// Why a request may not write to an upload now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TusClaim {
    /// The caller holds the upload until the lease ends.
    Claimed,
    /// The upload is at another offset (its offset).
    WrongOffset(i64),
    /// Another request is writing to it.
    Busy,
    /// Its bytes are complete (or it is gone).
    NotReceiving,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("Upload-Metadata is a comma-separated list of `key base64-value` pairs")]
    Malformed,
    #[error("the value of {0:?} in Upload-Metadata is not valid base64 of UTF-8 text")]
    BadValue(String),
    #[error("the key {0:?} appears twice in Upload-Metadata")]
    Duplicate(String),
}

/// Parses `Upload-Metadata`: `key value,key value` where each value is base64 (standard alphabet,
/// padding optional) and may be absent.
pub fn parse_metadata(header: &str) -> Result<BTreeMap<String, String>, MetadataError> {
    let mut out = BTreeMap::new();
    if header.trim().is_empty() {
        return Ok(out);
    }
    for pair in header.split(',') {
        let mut parts = pair.trim().split(' ').filter(|p| !p.is_empty());
        let key = parts.next().ok_or(MetadataError::Malformed)?;
        if key.is_empty() || !key.is_ascii() || key.bytes().any(|b| b.is_ascii_control()) {
            return Err(MetadataError::Malformed);
        }
        let value = match parts.next() {
            None => String::new(),
            Some(v) => {
                let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(v.trim_end_matches('='))
                    .map_err(|_| MetadataError::BadValue(key.to_string()))?;
                String::from_utf8(decoded).map_err(|_| MetadataError::BadValue(key.to_string()))?
            }
        };
        if parts.next().is_some() {
            return Err(MetadataError::Malformed);
        }
        if out.insert(key.to_string(), value).is_some() {
            return Err(MetadataError::Duplicate(key.to_string()));
        }
    }
    Ok(out)
}

/// A `target` metadata value: absent (an attachment) or `space:{spaceId}:{pathId}`.
pub fn parse_target(value: &str) -> Option<(String, String)> {
    let rest = value.strip_prefix("space:")?;
    let (space, path_id) = rest.split_once(':')?;
    if space.is_empty() || path_id.is_empty() {
        return None;
    }
    Some((space.to_string(), path_id.to_string()))
}

/// `Upload-Checksum: ALGORITHM BASE64DIGEST` → the algorithm's name and the digest's bytes.
pub fn parse_upload_checksum(header: &str) -> Option<(String, Vec<u8>)> {
    let (name, digest) = header.trim().split_once(' ')?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .ok()?;
    Some((name.to_ascii_lowercase(), digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode() {
        let parsed =
            parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
                .unwrap();
        assert_eq!(parsed["filename"], "world_domination_plan.pdf");
        assert_eq!(parsed["is_confidential"], "");
        assert_eq!(parse_metadata("").unwrap().len(), 0);
        assert_eq!(
            parse_metadata("filename !!!").unwrap_err(),
            MetadataError::BadValue("filename".into())
        );
        assert_eq!(
            parse_metadata("a YQ,a YQ").unwrap_err(),
            MetadataError::Duplicate("a".into())
        );
        assert_eq!(
            parse_metadata("a YQ b").unwrap_err(),
            MetadataError::Malformed
        );
        // Unpadded values are accepted (some clients strip the padding).
        assert_eq!(parse_metadata("k YWI").unwrap()["k"], "ab");
    }

    #[test]
    fn targets_and_checksums() {
        assert_eq!(
            parse_target("space:docs:YS50eHQ"),
            Some(("docs".into(), "YS50eHQ".into()))
        );
        assert_eq!(parse_target("space:docs:"), None);
        assert_eq!(parse_target("channel:1"), None);
        assert_eq!(
            parse_upload_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Some((
                "sha1".into(),
                hex_bytes("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed")
            ))
        );
        assert_eq!(parse_upload_checksum("sha1"), None);
        assert_eq!(parse_upload_checksum("sha1 ***"), None);
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
