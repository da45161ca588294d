//! Reading and managing a space's files: download, metadata, listing, delete, move, and the limits a
//! client sees before it uploads.

use super::access::{entry_json, member_space, parse_path_id};
use super::two_stage::finish_direct_at;
use crate::auth::Caller;
use crate::download::{serve, Download};
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use hangar_core::model::{EntryKind, StorageEntry};
use hangar_core::storage_path::StoragePath;
use serde::Deserialize;
use serde_json::{json, Value};

/// The file at a path, or 404; a directory where a file is needed is 409.
pub(crate) async fn file_entry(
    state: &AppState,
    space_id: &str,
    path: &StoragePath,
) -> ApiResult<StorageEntry> {
    let entry = state
        .storage
        .entry(space_id, path)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    if entry.kind == EntryKind::Dir {
        return Err(ApiError::conflict(
            "is-a-directory",
            format!("{} is a directory", path.as_str()),
        ));
    }
    Ok(entry)
}

pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((space_id, path_id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    member_space(&state, &caller, &space_id, false).await?;
    let path = parse_path_id(&path_id)?;
    finish_direct_at(&state, &space_id, &path).await;
    let entry = file_entry(&state, &space_id, &path).await?;
    let sha = entry
        .sha256
        .as_deref()
        .ok_or_else(|| ApiError::internal("a file without checksum"))?;
    serve(
        &state,
        &method,
        &headers,
        Download {
            sha256: sha,
            size: entry.size as u64,
            content_type: entry
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream"),
            file_name: path.name(),
            private: true,
            as_attachment: false,
            made_from: None,
        },
    )
    .await
}

pub async fn meta(
    State(state): State<AppState>,
    caller: Caller,
    Path((space_id, path_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    member_space(&state, &caller, &space_id, false).await?;
    let path = parse_path_id(&path_id)?;
    finish_direct_at(&state, &space_id, &path).await;
    let entry = state
        .storage
        .entry(&space_id, &path)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let mut body = entry_json(&entry);
    if entry.kind == EntryKind::File {
        crate::scan::annotate(&state, &mut body, entry.sha256.as_deref()).await?;
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
pub struct ListQuery {
    dir: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/space/{spaceId}/storage?dir=…&limit=…&cursor=…`: one directory, in byte order of name.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(space_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    member_space(&state, &caller, &space_id, false).await?;
    let dir = match query.dir.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(id) => {
            let path = parse_path_id(id)?;
            match state.storage.entry(&space_id, &path).await? {
                None => return Err(ApiError::not_found("directory")),
                Some(e) if e.kind == EntryKind::File => {
                    return Err(ApiError::conflict(
                        "not-a-directory",
                        format!("{} is a file", path.as_str()),
                    ))
                }
                Some(_) => Some(path),
            }
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad-limit",
            "limit is between 1 and 1000",
        ));
    }
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad-cursor",
                        "cursor is a value of `next` from an earlier page",
                    )
                })?,
        ),
    };
    let mut entries = state
        .storage
        .list_dir(&space_id, dir.as_ref(), after.as_deref(), limit + 1)
        .await?;
    let next = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries
            .last()
            .map(|e| URL_SAFE_NO_PAD.encode(e.path.name()))
    } else {
        None
    };
    Ok(Json(json!({
        "data": entries.iter().map(entry_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    recursive: Option<String>,
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((space_id, path_id)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<Json<Value>> {
    member_space(&state, &caller, &space_id, true).await?;
    let path = parse_path_id(&path_id)?;
    let recursive = match query.recursive.as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad-query",
                "recursive is true or false",
            ))
        }
    };
    state
        .storage
        .delete_entry(&space_id, &path, recursive, caller.id())
        .await?;
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    to: String,
    #[serde(default)]
    overwrite: bool,
}

/// `POST …/{pathId}/move {"to": "new/path", "overwrite": false}`.
pub async fn move_entry(
    State(state): State<AppState>,
    caller: Caller,
    Path((space_id, path_id)): Path<(String, String)>,
    Json(request): Json<MoveRequest>,
) -> ApiResult<Json<Value>> {
    member_space(&state, &caller, &space_id, true).await?;
    let from = parse_path_id(&path_id)?;
    let to = StoragePath::parse(&request.to)
        .map_err(|e| ApiError::bad_request("bad-path", format!("invalid destination: {e}")))?;
    let moved = state
        .storage
        .move_entry(&space_id, &from, &to, request.overwrite, caller.id())
        .await?;
    Ok(Json(entry_json(&moved)))
}

/// `GET /api/v1/limits`: what the caller may upload: the per-file limit, the caller's own attachment
/// quota and usage, and each visible space's.
pub async fn limits(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let filter = if caller.is_admin() {
        None
    } else {
        Some(caller.id())
    };
    let mut spaces = Vec::new();
    for space in state.spaces.list_spaces(filter).await? {
        let Some(usage) = state.storage.usage(&space.id).await? else {
            continue;
        };
        let available = usage
            .quota_bytes
            .map(|q| (q - usage.used_bytes - usage.reserved_bytes).max(0));
        spaces.push(json!({
            "id": space.id,
            "name": space.name,
            "quotaBytes": usage.quota_bytes,
            "usedBytes": usage.used_bytes,
            "reservedBytes": usage.reserved_bytes,
            "availableBytes": available,
        }));
    }
    let user = json!({
        "quotaBytes": state.settings.user_quota,
        "usedBytes": state.attachments.member_usage(caller.id()).await?,
    });
    Ok(Json(json!({
        "maxFileSize": state.settings.max_file_size,
        "user": user,
        "spaces": spaces,
    })))
}
