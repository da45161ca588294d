//! Turning rows into domain records.

use hangar_core::access::Scope;
use hangar_core::model::*;
use hangar_core::AttachmentState;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

pub const MEMBER_COLUMNS: &str = "m.id, m.username, m.display_name, m.role, m.created_utc";

pub fn member(row: &SqliteRow) -> Member {
    Member {
        id: row.get("id"),
        username: row.get("username"),
        display_name: row.get("display_name"),
        role: Role::parse(row.get::<&str, _>("role")).unwrap_or(Role::Member),
        created_utc: row.get("created_utc"),
    }
}

pub const ATTACHMENT_COLUMNS: &str = "a.id, a.uploader_id, a.file_name, a.content_type, a.size, a.sha256, \
    a.state, a.media_context, a.has_thumbnail, a.public, a.link_version, a.created_utc, a.modified_utc, \
    a.message_id, a.room_id";

pub fn attachment(row: &SqliteRow) -> Attachment {
    Attachment {
        id: row.get("id"),
        uploader_id: row.get("uploader_id"),
        file_name: row.get("file_name"),
        content_type: row.get("content_type"),
        size: row.get("size"),
        sha256: row.get("sha256"),
        state: AttachmentState::parse(row.get::<&str, _>("state"))
            .unwrap_or(AttachmentState::ChecksumVerificationOnServerSideFailed),
        media_context: row.get("media_context"),
        has_thumbnail: row.get::<i64, _>("has_thumbnail") != 0,
        public: row.get::<i64, _>("public") != 0,
        link_version: row.get("link_version"),
        created_utc: row.get("created_utc"),
        modified_utc: row.get("modified_utc"),
        message_id: row.get("message_id"),
        room_id: row.get("room_id"),
    }
}

/// An attachment row joined with its link columns (`class_name`, `details`, `owner_id`).
pub fn linked_attachment(row: &SqliteRow) -> (i64, LinkedAttachment) {
    let attachment = attachment(row);
    let details = serde_json::from_str(row.get::<&str, _>("details")).unwrap_or_default();
    (
        row.get("owner_id"),
        LinkedAttachment {
            link: AttachmentLink {
                attachment_id: attachment.id,
                class_name: row.get("class_name"),
                details,
            },
            attachment,
        },
    )
}

pub fn token(row: &SqliteRow) -> PersonalToken {
    PersonalToken {
        id: row.get("id"),
        member_id: row.get("member_id"),
        name: row.get("name"),
        scope: Scope::parse_personal(row.get::<&str, _>("scope")).unwrap_or(Scope::ReadOnly),
        expires_utc: row.get("expires_utc"),
        created_utc: row.get("created_utc"),
        last_used_utc: row.get("last_used_utc"),
    }
}
