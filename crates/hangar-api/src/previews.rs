//! `GET /api/v1/attachments/{id}/preview?size=N` (SPEC §9.3): a smaller image of an image or video
//! attachment, made by the background job or, when asked first, on the spot. Access is the
//! attachment's own (a public link's `?k=` token works too); the bytes are served as every download.

use crate::attachments::{by_link_or_caller, refuse_unready};
use crate::auth::Caller;
use crate::download::{serve, Download};
use crate::error::{ApiError, ApiResult, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use hangar_blob::{BlobError, IngestError};
use hangar_core::preview::{DEFAULT_SIZE, SIZES};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct PreviewQuery {
    size: Option<String>,
    k: Option<String>,
}

/// The size asked for: one of `SIZES`, `DEFAULT_SIZE` when absent.
fn size_of(asked: Option<&str>) -> ApiResult<i64> {
    let Some(asked) = asked else {
        return Ok(DEFAULT_SIZE);
    };
    asked
        .parse::<i64>()
        .ok()
        .filter(|n| SIZES.contains(n))
        .ok_or_else(|| ApiError::bad_request("bad-size", "size is one of 64, 256 or 1024"))
}

fn no_preview() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no-preview",
        "this file has no preview: it is not an image (or video) that can be decoded within the limits",
    )
}

pub async fn preview(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
    Query(query): Query<PreviewQuery>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let size = size_of(query.size.as_deref())?;
    let (a, private) = by_link_or_caller(&state, caller, &id, query.k.as_deref()).await?;
    refuse_unready(&a)?;
    let sha = a
        .sha256
        .as_deref()
        .ok_or_else(|| ApiError::internal("ready attachment without checksum"))?;
    serve_preview(
        &state,
        &method,
        &headers,
        sha,
        &a.content_type,
        size,
        private,
    )
    .await
}

/// `GET /api/v1/space/{space}/storage/{pathId}/preview?size=N`: the same for a file of a space's
/// storage (the web UI's file browser shows these), readable by whoever may read the file.
pub async fn storage_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path((space_id, path_id)): Path<(String, String)>,
    Query(query): Query<PreviewQuery>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let size = size_of(query.size.as_deref())?;
    crate::storage::member_space(&state, &caller, &space_id, false).await?;
    let path = crate::storage::parse_path_id(&path_id)?;
    let entry = crate::storage::file_entry(&state, &space_id, &path).await?;
    let sha = entry
        .sha256
        .as_deref()
        .ok_or_else(|| ApiError::internal("a file without checksum"))?;
    let content_type = entry
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    serve_preview(&state, &method, &headers, sha, content_type, size, true).await
}

/// Finds or makes the preview of the bytes `sha` and serves it.
async fn serve_preview(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    sha: &str,
    content_type: &str,
    size: i64,
    private: bool,
) -> ApiResult<Response> {
    // With `--clamd`, an image is neither decoded here nor shown in small before it is known clean.
    crate::scan::require_clean(state, sha).await?;
    let record = state
        .previews
        .preview(sha, content_type, size)
        .await
        .map_err(|e| match e {
            // Deleted between the lookup and now: it is gone for this caller too.
            IngestError::Blob(BlobError::NotFound) => ApiError::not_found("file"),
            other => other.into(),
        })?
        .ok_or_else(no_preview)?;
    let extension = if record.content_type == "image/png" {
        "png"
    } else {
        "jpg"
    };
    serve(
        state,
        method,
        headers,
        Download {
            sha256: &record.sha256,
            size: record.bytes as u64,
            content_type: &record.content_type,
            file_name: &format!("preview-{size}.{extension}"),
            private,
            as_attachment: false,
            made_from: Some(sha),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_the_three_of_the_spec() {
        assert_eq!(size_of(None).unwrap(), 256);
        assert_eq!(size_of(Some("64")).unwrap(), 64);
        assert_eq!(size_of(Some("1024")).unwrap(), 1024);
        for bad in ["0", "128", "-64", "abc", "", "256.0"] {
            assert_eq!(size_of(Some(bad)).unwrap_err().code, "bad-size");
        }
    }
}
