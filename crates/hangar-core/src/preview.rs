//! Previews (SPEC §9.3) as the rest of the system sees them: which files get a preview job, the sizes
//! a client may ask for, and what the metadata store keeps of them.

/// The sizes of `GET /api/v1/attachments/{id}/preview?size=N`: the longer side in pixels.
pub const SIZES: [i64; 3] = [64, 256, 1024];

/// The size answered when a client names none.
pub const DEFAULT_SIZE: i64 = 256;

/// Whether a file of this stored type is worth a preview job: images of the formats previewed and
/// videos (posters, where `ffmpeg` is installed). The job tells the format from the bytes; this only
/// keeps every other file out of the queue.
pub fn wants_preview(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "image/png" | "image/jpeg" | "image/jpg" | "image/pjpeg" | "image/gif" | "image/webp"
    ) || is_video(&essence)
}

/// Whether a stored type is a video (previewed by a poster frame).
pub fn is_video(content_type: &str) -> bool {
    content_type
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("video/"))
}

/// One stored preview of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRecord {
    /// The size asked for (one of `SIZES`).
    pub size: i64,
    /// The preview's own blob.
    pub sha256: String,
    pub bytes: i64,
    pub content_type: String,
    pub width: i64,
    pub height: i64,
}

/// A preview about to be recorded: its blob is committed under `hold` (see `BlobHold`).
#[derive(Debug, Clone)]
pub struct NewPreview {
    pub record: PreviewRecord,
    pub hold: Option<crate::model::BlobHold>,
}

/// What is known of a source's previews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewSource {
    /// Its previews exist; the original's size as displayed (after EXIF orientation).
    Ready { width: i64, height: i64 },
    /// It has none and will get none: not a decodable image, or past the limits.
    Unavailable,
}

/// How recording a source's previews ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewRecorded {
    Recorded,
    /// Another worker recorded them first: release these.
    AlreadyThere,
    /// Nothing references the source any more: release these.
    SourceGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_and_videos_are_queued() {
        assert!(wants_preview("image/png"));
        assert!(wants_preview("IMAGE/JPEG; charset=binary"));
        assert!(wants_preview("image/webp"));
        assert!(wants_preview("video/mp4"));
        assert!(!wants_preview("image/svg+xml"));
        assert!(!wants_preview("text/plain"));
        assert!(!wants_preview("application/octet-stream"));
        assert!(!wants_preview(""));
    }
}
