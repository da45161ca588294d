//! The JSON shapes of domain records that several API families answer with.

use hangar_core::model::Attachment;
use serde_json::{json, Value};

/// An attachment's metadata as the Attachments API and message listings show it.
pub fn attachment_json(a: &Attachment) -> Value {
    let mut v = json!({
        "attachmentId": a.id,
        "attachmentState": a.state,
        "createdUtc": a.created_utc,
        "lastModifiedUtc": a.modified_utc,
        "fileChecksum": a.sha256,
        "fileName": a.file_name,
        "fileSize": a.size,
        "contentType": a.content_type,
        "hasThumbnail": a.has_thumbnail,
        "roomId": a.room_id,
        "textMessageId": a.message_id,
        "public": a.public,
    });
    // The original's size as displayed, once a preview exists (SPEC §9.3).
    if let (Some(width), Some(height), Some(obj)) = (a.width, a.height, v.as_object_mut()) {
        obj.insert("width".into(), width.into());
        obj.insert("height".into(), height.into());
    }
    v
}
