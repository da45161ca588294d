//! The records Hangar keeps: members, tokens, spaces, channels, messages, projects, issues, attachments.

use crate::AttachmentState;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub created_utc: i64,
}

#[derive(Debug, Clone)]
pub struct PersonalToken {
    pub id: i64,
    pub member_id: i64,
    pub name: String,
    /// Everything (`Scope::All`) or only reading (`Scope::ReadOnly`).
    pub scope: crate::access::Scope,
    pub expires_utc: Option<i64>,
    pub created_utc: i64,
    pub last_used_utc: Option<i64>,
    /// The personal token this one was made with: revoking that one revokes this one. Written at
    /// creation; reads leave it None.
    pub made_with: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Space {
    pub id: String,
    pub name: String,
    pub quota_bytes: Option<i64>,
    pub used_bytes: i64,
    pub created_utc: i64,
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub created_utc: i64,
    pub members: Vec<String>,
}

/// How an attachment appears where it is attached: its class (`ImageAttachment`, `FileAttachment`,
/// `VideoAttachment`) and the client's extra fields (width, height, …) as given.
#[derive(Debug, Clone)]
pub struct AttachmentLink {
    pub attachment_id: i64,
    pub class_name: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// An attachment as listed under a message or issue: the link plus the attachment's own facts.
#[derive(Debug, Clone)]
pub struct LinkedAttachment {
    pub link: AttachmentLink,
    pub attachment: Attachment,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: i64,
    pub channel_id: i64,
    pub author_id: i64,
    pub author: String,
    pub text: String,
    pub created_utc: i64,
    pub attachments: Vec<LinkedAttachment>,
    /// Position in the channel, for cursors.
    pub seq: i64,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: i64,
    pub key: String,
    pub name: String,
    pub created_utc: i64,
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub id: i64,
    pub project_id: i64,
    pub project_key: String,
    pub number: i64,
    pub title: String,
    pub status: String,
    /// Who opened it (None for issues older than the record of it).
    pub author_id: Option<i64>,
    pub created_utc: i64,
    pub updated_utc: i64,
    pub attachments: Vec<LinkedAttachment>,
}

impl Issue {
    /// The issue's key, such as `MY-PROJECT-T-39`.
    pub fn key(&self) -> String {
        format!("{}-T-{}", self.project_key, self.number)
    }
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: i64,
    pub uploader_id: i64,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    /// SHA-256 hex of the bytes received (also when they did not match the declared checksum).
    pub sha256: Option<String>,
    pub state: AttachmentState,
    /// The `spaceMediaType` context given at upload, if any.
    pub media_context: Option<String>,
    pub has_thumbnail: bool,
    /// The original's size as displayed (after EXIF orientation), known once its preview exists.
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub public: bool,
    /// Bumped on every revocation: public-link tokens are derived from it, so old links die.
    pub link_version: i64,
    pub created_utc: i64,
    pub modified_utc: i64,
    /// The first message this attachment was attached to, and its channel.
    pub message_id: Option<i64>,
    pub room_id: Option<i64>,
}

/// What keeps an upload's committed bytes from the collector until its record refers to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobHold {
    /// A pin on the blob (`BlobLifecycleStore::pin_blob`), dropped by the record.
    Pin(String),
    /// Bytes placed durably under an object key that only this upload knows (a packed body's
    /// slot). No pin is needed: nothing collects an object that no row records, and the sweep of
    /// unrecorded objects leaves young ones alone. The record writes the key on the blob's row when
    /// it makes the row; when the content is stored already, it queues the discard of this copy
    /// (`jobs::DiscardObject`). It is refused, like any reference, while the blob is being
    /// deleted: the caller waits and records again.
    Placed(String),
}

impl BlobHold {
    /// The pin to drop, if the hold is one.
    pub fn pin(&self) -> Option<&str> {
        match self {
            BlobHold::Pin(pin) => Some(pin),
            BlobHold::Placed(_) => None,
        }
    }

    /// The object key to record, if the bytes were placed under one.
    pub fn placed(&self) -> Option<&str> {
        match self {
            BlobHold::Pin(_) => None,
            BlobHold::Placed(key) => Some(key),
        }
    }
}

/// An attachment about to be recorded. When `blob` is set the attachment references that blob.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub id: i64,
    pub uploader_id: i64,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub state: AttachmentState,
    pub media_context: Option<String>,
    pub stores_blob: bool,
    /// What holds the upload's bytes until the transaction that records the reference.
    pub hold: Option<BlobHold>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
        }
    }
}

/// A file or directory in a space's storage.
#[derive(Debug, Clone)]
pub struct StorageEntry {
    pub space_id: String,
    pub path: crate::storage_path::StoragePath,
    pub kind: EntryKind,
    pub size: i64,
    pub content_type: Option<String>,
    pub sha256: Option<String>,
    pub meta: Option<serde_json::Value>,
    pub created_utc: i64,
    pub modified_utc: i64,
}

/// The facts of a file about to be written (its blob is already committed).
#[derive(Debug, Clone)]
pub struct NewStorageFile {
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
    pub meta: Option<serde_json::Value>,
    /// What holds the upload's bytes until the transaction that records the reference.
    pub hold: Option<BlobHold>,
}

/// The result of writing a file: the entry, and whether it is new.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub entry: StorageEntry,
    pub created: bool,
}

/// A space's quota and what counts against it.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub quota_bytes: Option<i64>,
    pub used_bytes: i64,
    pub reserved_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    Pending,
    Receiving,
    Done,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Pending => "pending",
            UploadState::Receiving => "receiving",
            UploadState::Done => "done",
        }
    }
    pub fn parse(s: &str) -> Option<UploadState> {
        match s {
            "pending" => Some(UploadState::Pending),
            "receiving" => Some(UploadState::Receiving),
            "done" => Some(UploadState::Done),
            _ => None,
        }
    }
}

/// A two-stage upload: declared at the first stage, waiting for its bytes at a signed URL.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub id: String,
    pub space_id: String,
    pub path: crate::storage_path::StoragePath,
    pub size: i64,
    pub content_type: String,
    pub meta: serde_json::Value,
    pub uploader_id: i64,
    pub reservation_id: i64,
    pub state: UploadState,
    pub expires_utc: i64,
}

/// A domain event recorded in the outbox.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub space_id: Option<String>,
    pub actor_id: Option<i64>,
    pub payload: serde_json::Value,
    pub created_utc: i64,
}

/// What a share link serves: an attachment, or the file at a path of a space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareTarget {
    Attachment(i64),
    StorageFile {
        space_id: String,
        path: crate::storage_path::StoragePath,
    },
}

/// A share link (SPEC §9.4). Its token is never kept: the store holds only its SHA-256.
#[derive(Debug, Clone)]
pub struct ShareLink {
    pub id: i64,
    /// The member (or application's bot member) who made it.
    pub creator_id: i64,
    /// Whether the creator is an administrator (read with the link; ignored when writing).
    pub creator_is_admin: bool,
    /// Whether the creator is an application's bot member (read with the link; ignored when
    /// writing).
    pub creator_is_app: bool,
    pub target: ShareTarget,
    /// Argon2id hash of the password, if the link has one.
    pub password_hash: Option<String>,
    pub expires_utc: Option<i64>,
    pub max_downloads: Option<i64>,
    /// Downloads counted so far (each GET from byte 0 once).
    pub downloads: i64,
    pub created_utc: i64,
}

impl ShareLink {
    /// Whether the link has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expires_utc.is_some_and(|e| e <= now)
    }

    /// Whether every allowed download has been counted.
    pub fn used_up(&self) -> bool {
        self.max_downloads.is_some_and(|m| self.downloads >= m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_link_ends_at_its_expiry_and_its_cap() {
        let mut link = ShareLink {
            id: 1,
            creator_id: 2,
            creator_is_admin: false,
            creator_is_app: false,
            target: ShareTarget::Attachment(3),
            password_hash: None,
            expires_utc: None,
            max_downloads: None,
            downloads: 10,
            created_utc: 0,
        };
        assert!(!link.expired(i64::MAX) && !link.used_up());
        link.expires_utc = Some(100);
        assert!(!link.expired(99));
        assert!(link.expired(100));
        link.max_downloads = Some(11);
        assert!(!link.used_up());
        link.downloads = 11;
        assert!(link.used_up());
    }
}
