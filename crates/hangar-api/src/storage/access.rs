//! What every storage route shares: the wire shape of an entry, path ids, the caller's access to a
//! space, and the early refusal of uploads that could not be recorded.

use crate::access::{require_app_right, visible_space};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use hangar_core::apps::{Context, RightCode};
use hangar_core::model::{EntryKind, StorageEntry};
use hangar_core::storage_path::StoragePath;
use serde_json::{json, Value};

/// Largest JSON body of an upload call (a data URL travels inside it).
pub(crate) const JSON_UPLOAD_LIMIT: usize = 32 << 20;
/// What the large JSON upload bodies of one node may hold in memory at once: the body, then its
/// parsed string and the decoded bytes of its data URL (about 1.75× the body at the worst moment).
const LARGE_JSON_MEMORY: usize = 256 << 20;
/// How many large JSON upload bodies one node reads and decodes at once (others wait their turn):
/// 4 with the 32 MiB body limit.
pub(crate) const LARGE_JSON_AT_ONCE: usize = LARGE_JSON_MEMORY / (2 * JSON_UPLOAD_LIMIT);
// No turn at all would make every large data URL wait for ever.
const _: () = assert!(LARGE_JSON_AT_ONCE >= 1);
/// A JSON upload body past this size needs one of the `LARGE_JSON_AT_ONCE` turns to grow further;
/// smaller ones (remote URLs, two-stage declarations, small data URLs) never wait.
pub(super) const SMALL_JSON_BODY: usize = 1 << 20;
/// Largest `meta` object, serialized.
pub(super) const MAX_META_BYTES: usize = 16 * 1024;
/// How long a two-stage upload URL stays valid.
pub(super) const TWO_STAGE_LIFETIME_MS: i64 = 15 * 60 * 1000;

pub fn entry_json(e: &StorageEntry) -> Value {
    let mut out = json!({
        "id": e.path.id(),
        "path": e.path.as_str(),
        "name": e.path.name(),
        "kind": e.kind.as_str(),
        "size": e.size,
        "type": e.content_type,
        "checksum": e.sha256,
        "createdUtc": e.created_utc,
        "lastModifiedUtc": e.modified_utc,
    });
    if let Some(meta) = &e.meta {
        out["meta"] = meta.clone();
    } else if e.kind == EntryKind::File {
        out["meta"] = json!({});
    }
    out
}

pub(crate) fn parse_path_id(id: &str) -> ApiResult<StoragePath> {
    StoragePath::from_id(id)
        .map_err(|e| ApiError::bad_request("bad-path", format!("invalid pathId: {e}")))
}

/// The space, if the caller may use it (members and administrators); otherwise it does not exist.
/// An application acting as itself needs Space.Files.Write (or Read) there instead of membership.
pub(crate) async fn member_space(
    state: &AppState,
    caller: &Caller,
    space_id: &str,
    write: bool,
) -> ApiResult<()> {
    visible_space(state, caller, space_id).await?;
    let right = if write {
        RightCode::WriteFiles
    } else {
        RightCode::ReadFiles
    };
    require_app_right(state, caller, right, &Context::space(space_id)).await
}

/// Refuses early what the final transaction would refuse anyway, before any byte is read. Answers the
/// size of the file the upload would replace (it counts as room in the quota).
pub(crate) async fn precheck(
    state: &AppState,
    space_id: &str,
    path: &StoragePath,
) -> ApiResult<u64> {
    let mut replaced = 0;
    if let Some(e) = state.storage.entry(space_id, path).await? {
        if e.kind == EntryKind::Dir {
            return Err(ApiError::conflict(
                "is-a-directory",
                format!("{} is a directory", path.as_str()),
            ));
        }
        replaced = e.size.max(0) as u64;
    }
    for dir in path.ancestors() {
        if let Some(e) = state.storage.entry(space_id, &dir).await? {
            if e.kind == EntryKind::File {
                return Err(ApiError::conflict(
                    "under-a-file",
                    format!(
                        "{} is a file, so nothing can be stored under it",
                        dir.as_str()
                    ),
                ));
            }
        }
    }
    Ok(replaced)
}
