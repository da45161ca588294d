//! Turning rows into domain records, once for every backend: `StoreRow` is the handful of typed
//! reads a record needs, which each driver's row type answers in its own way (a flag is an integer
//! in SQLite, a boolean in PostgreSQL).

use hangar_core::access::Scope;
use hangar_core::app_model::{AppDoc, ItemKind};
use hangar_core::model::*;
use hangar_core::storage_path::StoragePath;
use hangar_core::store::StoreResult;
use hangar_core::store::{AppItem, AppRecord, AppToken, Delivery, EventRecord, StoreError};
use hangar_core::AttachmentState;
use serde_json::Value;
use sqlx::{ColumnIndex, Row};

/// The typed reads of a row, by column name or position.
pub(crate) trait StoreRow: Row + Sized {
    fn int<I: ColumnIndex<Self>>(&self, at: I) -> i64;
    fn opt_int<I: ColumnIndex<Self>>(&self, at: I) -> Option<i64>;
    fn text<I: ColumnIndex<Self>>(&self, at: I) -> String;
    fn opt_text<I: ColumnIndex<Self>>(&self, at: I) -> Option<String>;
    fn flag<I: ColumnIndex<Self>>(&self, at: I) -> bool;
}

macro_rules! store_row {
    ($row:ty, |$r:ident, $at:ident| $flag:expr) => {
        impl StoreRow for $row {
            fn int<I: ColumnIndex<Self>>(&self, at: I) -> i64 {
                self.get(at)
            }
            fn opt_int<I: ColumnIndex<Self>>(&self, at: I) -> Option<i64> {
                self.get(at)
            }
            fn text<I: ColumnIndex<Self>>(&self, at: I) -> String {
                self.get(at)
            }
            fn opt_text<I: ColumnIndex<Self>>(&self, at: I) -> Option<String> {
                self.get(at)
            }
            fn flag<I: ColumnIndex<Self>>(&self, $at: I) -> bool {
                let $r = self;
                $flag
            }
        }
    };
}

store_row!(sqlx::sqlite::SqliteRow, |r, at| r.get::<i64, _>(at) != 0);
store_row!(sqlx::postgres::PgRow, |r, at| r.get::<bool, _>(at));

/// The typed reads of a row by column name, for records read through sqlx and through the SQLite
/// group writer's rusqlite connection alike.
pub(crate) trait NamedRow {
    fn int_at(&self, name: &str) -> i64;
    fn opt_int_at(&self, name: &str) -> Option<i64>;
    fn text_at(&self, name: &str) -> String;
    fn opt_text_at(&self, name: &str) -> Option<String>;
    fn flag_at(&self, name: &str) -> bool;
}

impl<R: StoreRow> NamedRow for R
where
    for<'a> &'a str: ColumnIndex<R>,
{
    fn int_at(&self, name: &str) -> i64 {
        self.int(name)
    }
    fn opt_int_at(&self, name: &str) -> Option<i64> {
        self.opt_int(name)
    }
    fn text_at(&self, name: &str) -> String {
        self.text(name)
    }
    fn opt_text_at(&self, name: &str) -> Option<String> {
        self.opt_text(name)
    }
    fn flag_at(&self, name: &str) -> bool {
        self.flag(name)
    }
}

/// The columns are those of this crate's own `SELECT`s, of the types its schema gives them: a
/// failing read would be a bug here, and reads as the type's default rather than a panic (sqlx's
/// `Row::get` panics instead).
impl NamedRow for rusqlite::Row<'_> {
    fn int_at(&self, name: &str) -> i64 {
        self.get(name).unwrap_or_default()
    }
    fn opt_int_at(&self, name: &str) -> Option<i64> {
        self.get(name).unwrap_or_default()
    }
    fn text_at(&self, name: &str) -> String {
        self.get(name).unwrap_or_default()
    }
    fn opt_text_at(&self, name: &str) -> Option<String> {
        self.get(name).unwrap_or_default()
    }
    fn flag_at(&self, name: &str) -> bool {
        self.get::<_, i64>(name).is_ok_and(|v| v != 0)
    }
}

pub(crate) const MEMBER_COLUMNS: &str = "m.id, m.username, m.display_name, m.role, m.created_utc";

pub(crate) fn member<R: StoreRow>(row: &R) -> Member
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Member {
        id: row.int("id"),
        username: row.text("username"),
        display_name: row.text("display_name"),
        role: Role::parse(&row.text("role")).unwrap_or(Role::Member),
        created_utc: row.int("created_utc"),
    }
}

/// An attachment's columns, with what its bytes' previews tell (SPEC §9.3): a preview exists for
/// the bytes of a ready attachment, and the original's size as displayed.
pub(crate) const ATTACHMENT_COLUMNS: &str =
    "a.id, a.uploader_id, a.file_name, a.content_type, a.size, a.sha256, \
    a.state, a.media_context, \
    EXISTS (SELECT 1 FROM preview_sources ps WHERE ps.sha256 = a.sha256 AND ps.state = 'ready' \
        AND a.state = 'ReadyForDownloadFromServerToClient') AS has_thumbnail, \
    (SELECT ps.width FROM preview_sources ps WHERE ps.sha256 = a.sha256 AND ps.state = 'ready' \
        AND a.state = 'ReadyForDownloadFromServerToClient') AS width, \
    (SELECT ps.height FROM preview_sources ps WHERE ps.sha256 = a.sha256 AND ps.state = 'ready' \
        AND a.state = 'ReadyForDownloadFromServerToClient') AS height, \
    a.public, a.link_version, a.created_utc, a.modified_utc, a.message_id, a.room_id";

pub(crate) fn attachment(row: &impl NamedRow) -> Attachment {
    Attachment {
        id: row.int_at("id"),
        uploader_id: row.int_at("uploader_id"),
        file_name: row.text_at("file_name"),
        content_type: row.text_at("content_type"),
        size: row.int_at("size"),
        sha256: row.opt_text_at("sha256"),
        state: AttachmentState::parse(&row.text_at("state"))
            .unwrap_or(AttachmentState::ChecksumVerificationOnServerSideFailed),
        media_context: row.opt_text_at("media_context"),
        has_thumbnail: row.flag_at("has_thumbnail"),
        width: row.opt_int_at("width"),
        height: row.opt_int_at("height"),
        public: row.flag_at("public"),
        link_version: row.int_at("link_version"),
        created_utc: row.int_at("created_utc"),
        modified_utc: row.int_at("modified_utc"),
        message_id: row.opt_int_at("message_id"),
        room_id: row.opt_int_at("room_id"),
    }
}

/// An attachment row joined with its link columns (`class_name`, `details`, `owner_id`).
pub(crate) fn linked_attachment<R: StoreRow>(row: &R) -> (i64, LinkedAttachment)
where
    for<'a> &'a str: ColumnIndex<R>,
{
    let attachment = attachment(row);
    let details = serde_json::from_str(&row.text("details")).unwrap_or_default();
    (
        row.int("owner_id"),
        LinkedAttachment {
            link: AttachmentLink {
                attachment_id: attachment.id,
                class_name: row.text("class_name"),
                details,
            },
            attachment,
        },
    )
}

pub(crate) const PERSONAL_TOKEN_COLUMNS: &str =
    "t.id, t.member_id, t.name, t.scope, t.expires_utc, t.created_utc, t.last_used_utc";

/// A personal token from the seven `PERSONAL_TOKEN_COLUMNS` starting at position `at`.
pub(crate) fn personal_token_at<R: StoreRow>(row: &R, at: usize) -> PersonalToken
where
    usize: ColumnIndex<R>,
{
    PersonalToken {
        id: row.int(at),
        member_id: row.int(at + 1),
        name: row.text(at + 2),
        scope: Scope::parse_personal(&row.text(at + 3)).unwrap_or(Scope::ReadOnly),
        expires_utc: row.opt_int(at + 4),
        created_utc: row.int(at + 5),
        last_used_utc: row.opt_int(at + 6),
        made_with: None,
    }
}

pub(crate) fn space<R: StoreRow>(row: &R) -> Space
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Space {
        id: row.text("id"),
        name: row.text("name"),
        quota_bytes: row.opt_int("quota_bytes"),
        used_bytes: row.int("used_bytes"),
        created_utc: row.int("created_utc"),
        members: Vec::new(),
    }
}

fn stored_path(path: &str) -> StoreResult<StoragePath> {
    StoragePath::parse(path).map_err(|e| StoreError::Backend(format!("stored path {path:?}: {e}")))
}

pub(crate) fn storage_entry<R: StoreRow>(row: &R) -> StoreResult<StorageEntry>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(StorageEntry {
        space_id: row.text("space_id"),
        path: stored_path(&row.text("path"))?,
        kind: if row.text("kind") == "dir" {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        size: row.int("size"),
        content_type: row.opt_text("content_type"),
        sha256: row.opt_text("sha256"),
        meta: row
            .opt_text("meta")
            .and_then(|m| serde_json::from_str(&m).ok()),
        created_utc: row.int("created_utc"),
        modified_utc: row.int("modified_utc"),
    })
}

/// The columns `share_link` reads, from `share_links l JOIN members m ON m.id = l.creator_id`.
pub(crate) const SHARE_LINK_COLUMNS: &str = "l.id, l.creator_id, l.attachment_id, l.space_id, \
     l.path, l.password_hash, l.expires_utc, l.max_downloads, l.downloads, l.created_utc, \
     m.role AS creator_role, m.is_app AS creator_is_app";

pub(crate) fn share_link<R: StoreRow>(row: &R) -> StoreResult<ShareLink>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    let target = match (row.opt_int("attachment_id"), row.opt_text("space_id")) {
        (Some(id), _) => ShareTarget::Attachment(id),
        (None, Some(space_id)) => ShareTarget::StorageFile {
            space_id,
            path: stored_path(&row.opt_text("path").unwrap_or_default())?,
        },
        (None, None) => return Err(StoreError::Backend("a share link without a target".into())),
    };
    Ok(ShareLink {
        id: row.int("id"),
        creator_id: row.int("creator_id"),
        creator_is_admin: row.text("creator_role") == "admin",
        creator_is_app: row.flag("creator_is_app"),
        target,
        password_hash: row.opt_text("password_hash"),
        expires_utc: row.opt_int("expires_utc"),
        max_downloads: row.opt_int("max_downloads"),
        downloads: row.int("downloads"),
        created_utc: row.int("created_utc"),
    })
}

pub(crate) fn pending_upload<R: StoreRow>(row: &R) -> StoreResult<PendingUpload>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(PendingUpload {
        id: row.text("id"),
        space_id: row.text("space_id"),
        path: stored_path(&row.text("path"))?,
        size: row.int("size"),
        content_type: row.text("content_type"),
        meta: serde_json::from_str(&row.text("meta")).unwrap_or_default(),
        uploader_id: row.int("uploader_id"),
        reservation_id: row.int("reservation_id"),
        state: UploadState::parse(&row.text("state")).unwrap_or(UploadState::Done),
        expires_utc: row.int("expires_utc"),
    })
}

pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, event_type, space_id, actor_id, payload, created_utc";

pub(crate) fn event<R: StoreRow>(row: &R) -> EventRecord
where
    for<'a> &'a str: ColumnIndex<R>,
{
    EventRecord {
        seq: row.int("seq"),
        id: row.text("id"),
        event_type: row.text("event_type"),
        space_id: row.opt_text("space_id"),
        actor_id: row.opt_int("actor_id"),
        payload: json(&row.text("payload")),
        created_utc: row.int("created_utc"),
    }
}

/// The outbox record as the storage API lists it.
pub(crate) fn storage_event(e: EventRecord) -> Event {
    Event {
        seq: e.seq,
        id: e.id,
        event_type: e.event_type,
        space_id: e.space_id,
        actor_id: e.actor_id,
        payload: e.payload,
        created_utc: e.created_utc,
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

pub(crate) const APP_COLUMNS: &str =
    "a.id, a.client_id, a.name, a.bot_member_id, a.archived, a.doc, a.version, a.created_utc";
pub(crate) const TOKEN_COLUMNS: &str = "t.id, t.app_id, t.kind, t.name, t.scope, t.member_id, \
     t.expires_utc, t.created_utc, t.last_used_utc, t.data";
pub(crate) const DELIVERY_COLUMNS: &str = "id, app_id, webhook_id, kind, body, status, attempts, \
     next_attempt_utc, last_status, last_error, created_utc";

/// An application from the eight `APP_COLUMNS` starting at position `at`.
pub(crate) fn app<R: StoreRow>(row: &R, at: usize) -> StoreResult<AppRecord>
where
    usize: ColumnIndex<R>,
{
    Ok(AppRecord {
        id: row.int(at),
        client_id: row.text(at + 1),
        name: row.text(at + 2),
        bot_member_id: row.int(at + 3),
        archived: row.flag(at + 4),
        doc: AppDoc::from_json(&row.text(at + 5))?,
        version: row.int(at + 6),
        created_utc: row.int(at + 7),
    })
}

/// An application token from the ten `TOKEN_COLUMNS` starting at position `at`.
pub(crate) fn app_token<R: StoreRow>(row: &R, at: usize) -> AppToken
where
    usize: ColumnIndex<R>,
{
    AppToken {
        id: row.int(at),
        app_id: row.int(at + 1),
        kind: row.text(at + 2),
        name: row.text(at + 3),
        scope: row.text(at + 4),
        member_id: row.opt_int(at + 5),
        expires_utc: row.opt_int(at + 6),
        created_utc: row.int(at + 7),
        last_used_utc: row.opt_int(at + 8),
        data: json(&row.text(at + 9)),
        made_with: None,
        minted_by: None,
    }
}

/// A member from the five `MEMBER_COLUMNS` starting at position `at` (where names repeat).
pub(crate) fn member_at<R: StoreRow>(row: &R, at: usize) -> Member
where
    usize: ColumnIndex<R>,
{
    Member {
        id: row.int(at),
        username: row.text(at + 1),
        display_name: row.text(at + 2),
        role: Role::parse(&row.text(at + 3)).unwrap_or(Role::Member),
        created_utc: row.int(at + 4),
    }
}

pub(crate) fn app_item<R: StoreRow>(row: &R) -> StoreResult<AppItem>
where
    for<'a> &'a str: ColumnIndex<R>,
{
    let kind = row.text("kind");
    Ok(AppItem {
        app_id: row.int("app_id"),
        kind: ItemKind::parse(&kind).ok_or_else(|| {
            StoreError::Backend(format!("unknown application item kind {kind:?}"))
        })?,
        scope: row.text("scope"),
        key: row.text("key"),
        value: json(&row.text("value")),
        created_utc: row.int("created_utc"),
        version: row.int("version"),
    })
}

pub(crate) fn delivery<R: StoreRow>(row: &R) -> Delivery
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Delivery {
        id: row.text("id"),
        app_id: row.int("app_id"),
        webhook_id: row.opt_text("webhook_id"),
        kind: row.text("kind"),
        body: row.text("body"),
        status: row.text("status"),
        attempts: row.int("attempts"),
        next_attempt_utc: row.int("next_attempt_utc"),
        last_status: row.opt_int("last_status"),
        last_error: row.opt_text("last_error"),
        created_utc: row.int("created_utc"),
    }
}

pub(crate) const MESSAGE_COLUMNS: &str =
    "msg.seq, msg.id, msg.channel_id, msg.author_id, m.username, msg.text, msg.created_utc";

/// A message (without its attachments) from `MESSAGE_COLUMNS`.
pub(crate) fn message<R: StoreRow>(row: &R) -> Message
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Message {
        id: row.int("id"),
        channel_id: row.int("channel_id"),
        author_id: row.int("author_id"),
        author: row.text("username"),
        text: row.text("text"),
        created_utc: row.int("created_utc"),
        attachments: Vec::new(),
        seq: row.int("seq"),
    }
}

pub(crate) const ISSUE_COLUMNS: &str =
    "i.id, i.project_id, p.key, i.number, i.title, i.status, i.author_id, i.created_utc, i.updated_utc";

/// An issue (without its attachments) from `ISSUE_COLUMNS`.
pub(crate) fn issue<R: StoreRow>(row: &R) -> Issue
where
    for<'a> &'a str: ColumnIndex<R>,
{
    Issue {
        id: row.int("id"),
        project_id: row.int("project_id"),
        project_key: row.text("key"),
        number: row.int("number"),
        title: row.text("title"),
        status: row.text("status"),
        author_id: row.opt_int("author_id"),
        created_utc: row.int("created_utc"),
        updated_utc: row.int("updated_utc"),
        attachments: Vec::new(),
    }
}

pub(crate) const TUS_COLUMNS: &str =
    "id, owner_id, length, \"offset\", metadata, file_name, content_type, \
    attachment_id, space_id, path, declared_sha256, state, lease_until, expires_utc, created_utc";

pub(crate) fn tus_upload<R: StoreRow>(row: &R) -> hangar_core::tus::TusUpload
where
    for<'a> &'a str: ColumnIndex<R>,
{
    use hangar_core::tus::{TusState, TusTarget, TusUpload};
    let target = match row.opt_int("attachment_id") {
        Some(attachment_id) => TusTarget::Attachment { attachment_id },
        None => TusTarget::Storage {
            space_id: row.opt_text("space_id").unwrap_or_default(),
            path: row.opt_text("path").unwrap_or_default(),
        },
    };
    TusUpload {
        id: row.text("id"),
        owner_id: row.int("owner_id"),
        length: row.int("length"),
        offset: row.int("offset"),
        metadata: row.text("metadata"),
        file_name: row.text("file_name"),
        content_type: row.text("content_type"),
        target,
        declared_sha256: row.opt_text("declared_sha256"),
        // The column's CHECK admits only the three states.
        state: TusState::parse(&row.text("state")).unwrap_or(TusState::Done),
        lease_until: row.opt_int("lease_until"),
        expires_utc: row.int("expires_utc"),
        created_utc: row.int("created_utc"),
    }
}
