//! What every backend decides the same way: pure functions over what its SQL read, so that the
//! SQLite and PostgreSQL stores differ only in how they read, lock and write.

use hangar_core::model::{AttachmentLink, NewAttachment};
use hangar_core::storage_path::StoragePath;
use hangar_core::store::{Collect, StoreError, StoreResult};

/// A reservation (and a two-stage upload's receiving state) is a lease that its upload renews while
/// bytes arrive; one whose process died runs out after this long and stops counting.
pub(crate) const RESERVATION_LEASE_MS: i64 = 10 * 60 * 1000;

/// Longest error text kept with a job.
pub(crate) const MAX_ERROR_LEN: usize = 2000;

pub(crate) fn refused(code: &'static str, reason: String) -> StoreError {
    StoreError::Refused { code, reason }
}

/// Disabling, demoting or deleting the only active administrator would leave nobody to manage the
/// installation.
pub(crate) fn last_admin() -> StoreError {
    refused(
        "last-admin",
        "this is the last active administrator: make another member an administrator first".into(),
    )
}

/// A deleted member's row keeps its id (its files and messages refer to it); its username becomes
/// one no valid username can equal (`~` is not allowed in usernames), so the name is free again.
pub(crate) fn tombstone_username(member_id: i64) -> String {
    format!("~deleted~{member_id}")
}

/// Unfinished two-stage uploads one member may hold at once: each holds a quota reservation until it
/// expires, so without a cap one member could reserve a space full with declarations alone.
pub const MAX_OPEN_UPLOADS_PER_MEMBER: i64 = 100;

pub(crate) fn too_many_uploads() -> StoreError {
    refused(
        "too-many-uploads",
        format!(
            "at most {MAX_OPEN_UPLOADS_PER_MEMBER} two-stage uploads may wait for their bytes at once: \
             finish or let some expire first"
        ),
    )
}

/// `lastUsed` of a session is written at most this often.
pub(crate) const SESSION_USE_RESOLUTION_MS: i64 = 60_000;

/// The `parent` column of an entry: its directory's path, '' at the top level.
pub(crate) fn parent_of(path: &StoragePath) -> String {
    path.parent()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default()
}

/// The bounds `[low, high)` of the paths strictly inside `dir`: they all start with `dir/`, and `0`
/// is the byte after `/`.
pub(crate) fn inside_bounds(dir: &StoragePath) -> (String, String) {
    (format!("{}/", dir.as_str()), format!("{}0", dir.as_str()))
}

/// Whether `extra` more bytes fit a quota beside what is used and reserved.
pub(crate) fn fits_quota(quota: Option<i64>, used: i64, reserved: i64, extra: i64) -> bool {
    quota.is_none_or(|q| used.saturating_add(reserved).saturating_add(extra) <= q)
}

/// The links that attach freshly uploaded files to a message.
pub(crate) fn file_links(new: &[NewAttachment]) -> Vec<AttachmentLink> {
    new.iter()
        .map(|a| {
            let mut details = serde_json::Map::new();
            details.insert("sizeBytes".into(), a.size.into());
            details.insert("filename".into(), a.file_name.clone().into());
            AttachmentLink {
                attachment_id: a.id,
                class_name: "FileAttachment".into(),
                details,
            }
        })
        .collect()
}

/// Whether an event may be recorded as already dispatched when no subscription exists as it is
/// committed: every event but a new chat message, whose dispatch also unfurls its links for the
/// applications that registered unfurl domains (`hangar_jobs::webhooks`). A subscription created
/// later receives the events committed after it, as it would if the dispatch had run at once.
pub(crate) fn may_skip_dispatch(event_type: &str) -> bool {
    event_type != "ChatMessage.Created"
}

/// The `Attachment.Created` event's payload.
pub(crate) fn attachment_created(a: &NewAttachment, message_id: Option<i64>) -> serde_json::Value {
    serde_json::json!({
        "attachmentId": a.id, "fileName": a.file_name, "fileSize": a.size,
        "fileChecksum": a.sha256, "attachmentState": a.state.as_str(), "textMessageId": message_id,
    })
}

/// A new attachment as its row reads once recorded at `now` without a link (private, its public
/// link never revoked), given the width and height of its content's ready preview, if any.
pub(crate) fn recorded_attachment(
    a: &NewAttachment,
    now: i64,
    preview: Option<(Option<i64>, Option<i64>)>,
) -> hangar_core::model::Attachment {
    let (width, height) = preview.unwrap_or_default();
    hangar_core::model::Attachment {
        id: a.id,
        uploader_id: a.uploader_id,
        file_name: a.file_name.clone(),
        content_type: a.content_type.clone(),
        size: a.size,
        sha256: Some(a.sha256.clone()),
        state: a.state,
        media_context: a.media_context.clone(),
        has_thumbnail: preview.is_some(),
        width,
        height,
        public: false,
        link_version: 0,
        created_utc: now,
        modified_utc: now,
        message_id: None,
        room_id: None,
    }
}

/// Where an attachment can be linked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkTable {
    Message,
    Issue,
}

impl LinkTable {
    pub(crate) fn table(self) -> &'static str {
        match self {
            LinkTable::Message => "message_attachments",
            LinkTable::Issue => "issue_attachments",
        }
    }
    pub(crate) fn owner(self) -> &'static str {
        match self {
            LinkTable::Message => "message_id",
            LinkTable::Issue => "issue_id",
        }
    }
    /// The table of the messages or issues that own the links.
    pub(crate) fn owners(self) -> &'static str {
        match self {
            LinkTable::Message => "messages",
            LinkTable::Issue => "issues",
        }
    }
}

/// Whether a download may keep this attachment in the read cache: only ready ones, whose download
/// fields change only by the changes that invalidate them (publishing, revoking, deleting).
pub(crate) fn cacheable(a: &hangar_core::model::Attachment) -> bool {
    a.state == hangar_core::AttachmentState::ReadyForDownloadFromServerToClient
        && a.sha256.is_some()
}

/// The states in which an attachment's declared size counts against its uploader's quota although
/// it has no stored bytes yet: a resumable upload under way.
pub(crate) const UPLOADING_STATES: &str =
    "'UploadFromClientToServerInProgress', 'ChecksumVerificationOnServerSideInProgress'";

/// The refusal of an upload that would take its uploader past `quota`.
pub(crate) fn owner_quota_refusal(used: i64, adding: i64, quota: i64) -> StoreError {
    StoreError::Refused {
        code: "limits-reached",
        reason: format!(
            "your attachments hold {used} of your {quota} bytes: no room for {adding} more"
        ),
    }
}

/// A blob's row as the collector reads it.
pub(crate) struct BlobRow {
    pub refcount: i64,
    pub released_utc: Option<i64>,
    pub deleting: bool,
}

/// What the collector does with a blob, and whether its row must be marked (or, with no row,
/// created) as being deleted first.
pub(crate) fn collect_decision(
    row: Option<&BlobRow>,
    pinned: bool,
    grace_ms: i64,
    now: i64,
) -> (Collect, bool) {
    match row {
        // A collector that died after deciding: finish its work.
        Some(r) if r.deleting => (Collect::Delete, false),
        _ if pinned => (Collect::Keep, false),
        Some(r) if r.refcount > 0 => (Collect::Keep, false),
        Some(BlobRow {
            released_utc: Some(released),
            ..
        }) if released + grace_ms > now => (Collect::Later(released + grace_ms), false),
        // Unreferenced past its grace period, or never referenced (an upload that pinned and then
        // failed, or bytes the database never knew): marked, so that no upload pins it meanwhile.
        _ => (Collect::Delete, true),
    }
}

/// Whether one more item may be written to a group of `count` items (`exists`: its key is already
/// one of them, so it is a replacement).
pub(crate) fn item_write_allowed(
    count: i64,
    exists: bool,
    new_only: bool,
    limit: Option<i64>,
) -> StoreResult<()> {
    if new_only && exists {
        return Err(StoreError::Conflict("an item with this key"));
    }
    match limit {
        Some(limit) if !exists && count >= limit => Err(refused(
            "limits-reached",
            format!("at most {limit} of these are allowed"),
        )),
        _ => Ok(()),
    }
}

/// The owners an application listing is limited to, as the JSON array of member ids (strings, as
/// the application document keeps them) that both backends' queries expand; None: anyone's.
pub(crate) fn owners_json(filter: &hangar_core::store::AppFilter) -> Option<String> {
    let owners = filter.owners.as_ref()?;
    let ids: Vec<String> = owners.iter().map(i64::to_string).collect();
    Some(serde_json::Value::from(ids).to_string())
}

/// A LIKE pattern (escape character `\`) matching names that contain `name`.
pub(crate) fn contains_pattern(name: &str) -> String {
    format!(
        "%{}%",
        name.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// What refers to a blob, in words, for `hangar admin check`: its attachments (id and name), its
/// workspace files (space and path) and the sources it is a preview of (hash and size).
pub(crate) fn blob_users(
    attachments: Vec<(i64, String)>,
    files: Vec<(String, String)>,
    previews: Vec<(String, i64)>,
) -> Vec<String> {
    let mut users: Vec<String> = attachments
        .into_iter()
        .map(|(id, name)| format!("attachment {id} {name:?}"))
        .collect();
    users.extend(
        files
            .into_iter()
            .map(|(space, path)| format!("space {space} file {path:?}")),
    );
    users.extend(
        previews
            .into_iter()
            .map(|(source, size)| format!("preview {size} of blob {source}")),
    );
    users
}

/// A preview source's row as the store reads it.
pub(crate) fn preview_source(
    state: &str,
    width: Option<i64>,
    height: Option<i64>,
) -> hangar_core::preview::PreviewSource {
    match (state, width, height) {
        ("ready", Some(width), Some(height)) => {
            hangar_core::preview::PreviewSource::Ready { width, height }
        }
        _ => hangar_core::preview::PreviewSource::Unavailable,
    }
}

/// A preview's row `(size, sha256, bytes, content_type, width, height)`.
pub(crate) fn preview_record(
    row: (i64, String, i64, String, i64, i64),
) -> hangar_core::preview::PreviewRecord {
    let (size, sha256, bytes, content_type, width, height) = row;
    hangar_core::preview::PreviewRecord {
        size,
        sha256,
        bytes,
        content_type,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_keeps_what_is_held_and_waits_for_the_grace_period() {
        let row = |refcount, released_utc, deleting| BlobRow {
            refcount,
            released_utc,
            deleting,
        };
        let decide = |r: Option<&BlobRow>, pinned| collect_decision(r, pinned, 100, 1000);
        assert_eq!(
            decide(Some(&row(0, Some(0), true)), true),
            (Collect::Delete, false)
        );
        assert_eq!(
            decide(Some(&row(0, Some(0), false)), true),
            (Collect::Keep, false)
        );
        assert_eq!(
            decide(Some(&row(1, None, false)), false),
            (Collect::Keep, false)
        );
        assert_eq!(
            decide(Some(&row(0, Some(950), false)), false),
            (Collect::Later(1050), false)
        );
        assert_eq!(
            decide(Some(&row(0, Some(900), false)), false),
            (Collect::Delete, true)
        );
        assert_eq!(decide(None, false), (Collect::Delete, true));
    }

    #[test]
    fn item_limits_count_only_new_keys() {
        assert!(item_write_allowed(5, true, false, Some(5)).is_ok());
        assert!(matches!(
            item_write_allowed(5, false, false, Some(5)),
            Err(StoreError::Refused {
                code: "limits-reached",
                ..
            })
        ));
        assert!(matches!(
            item_write_allowed(1, true, true, None),
            Err(StoreError::Conflict(_))
        ));
        assert!(item_write_allowed(100, false, false, None).is_ok());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern(r"a_b%c\"), r"%a\_b\%c\\%");
    }
}

/// A file about to hold a blob, as its quarantine event names it (SPEC §9.6).
#[derive(Debug, Clone, Copy)]
pub(crate) enum FileRef<'a> {
    Attachment {
        id: i64,
        file_name: &'a str,
        size: i64,
    },
    StorageFile {
        space_id: &'a str,
        path: &'a str,
    },
}

/// The quarantine event of a file whose bytes are infected: its type, space and payload.
pub(crate) fn quarantined_event(
    file: FileRef<'_>,
    sha256: &str,
    signature: Option<&str>,
) -> (&'static str, Option<String>, serde_json::Value) {
    match file {
        FileRef::Attachment {
            id,
            file_name,
            size,
        } => (
            "Attachment.Quarantined",
            None,
            serde_json::json!({
                "attachmentId": id, "fileName": file_name, "fileSize": size,
                "fileChecksum": sha256, "scanState": "infected", "signature": signature,
            }),
        ),
        FileRef::StorageFile { space_id, path } => {
            let id = StoragePath::parse(path).map(|p| p.id()).ok();
            (
                "StorageFile.Quarantined",
                Some(space_id.to_string()),
                serde_json::json!({
                    "spaceId": space_id, "path": path, "id": id, "checksum": sha256,
                    "scanState": "infected", "signature": signature,
                }),
            )
        }
    }
}

/// A blob's scan state as the database holds it (NULL, or one of `ScanState`'s names).
pub(crate) fn scan_state(text: Option<&str>) -> Option<hangar_core::scan::ScanState> {
    text.and_then(hangar_core::scan::ScanState::parse)
}

/// What a new reference to bytes also writes when scanning is on (`file` names the referring
/// file), given the blob's scan state and detail after the reference.
pub(crate) enum AfterRef {
    /// The bytes' scan is pending: queue it.
    Scan(hangar_core::jobs::NewJob),
    /// The bytes are known to be infected: the file is quarantined from its first moment.
    Quarantine {
        kind: &'static str,
        space: Option<String>,
        payload: serde_json::Value,
    },
}

/// The discard of an upload's placed copy (`BlobHold::Placed`) that the blob's row does not record
/// after the reference (`recorded`, the row's key): the content was stored already, under another
/// key or its hash.
pub(crate) fn discard_duplicate(
    hold: Option<&hangar_core::model::BlobHold>,
    recorded: Option<&str>,
) -> Option<hangar_core::jobs::NewJob> {
    use hangar_core::jobs::{DiscardObject, NewJob};
    let placed = hold?.placed()?;
    let discard = DiscardObject {
        object_key: placed.to_string(),
    };
    (recorded != Some(placed)).then(|| NewJob::of(&discard, hangar_core::now_ms()))
}

pub(crate) fn after_ref(
    file: Option<FileRef<'_>>,
    sha256: &str,
    state: Option<&str>,
    detail: Option<&str>,
) -> Option<AfterRef> {
    use hangar_core::jobs::{NewJob, ScanBlob};
    use hangar_core::scan::ScanState;
    let file = file?;
    match scan_state(state)? {
        ScanState::Pending => {
            let scan = ScanBlob {
                sha256: sha256.to_string(),
            };
            Some(AfterRef::Scan(
                NewJob::of(&scan, hangar_core::now_ms()).unique(ScanBlob::unique_key(sha256)),
            ))
        }
        ScanState::Infected => {
            let (kind, space, payload) = quarantined_event(file, sha256, detail);
            Some(AfterRef::Quarantine {
                kind,
                space,
                payload,
            })
        }
        _ => None,
    }
}
