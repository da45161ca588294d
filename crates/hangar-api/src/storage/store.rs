//! Storing a file's bytes at a path, for every upload mode: streamed through the quota meter into
//! the ingest pipeline, verified, and recorded with the space's usage in one transaction.

use super::access::entry_json;
use crate::error::{ApiError, ApiResult, Json};
use crate::observe::UploadMode;
use crate::quota::Reservation;
use crate::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use hangar_blob::{BlobError, ByteStream, StagedBlob};
use hangar_core::model::{NewStorageFile, PutOutcome};
use hangar_core::storage_path::StoragePath;
use hangar_jobs::fetch::FetchError;
use serde_json::Value;

/// Bytes on their way into a space's file.
pub(super) struct Incoming {
    pub(super) stream: ByteStream,
    /// The exact size, when known before the bytes arrive.
    pub(super) length: Option<u64>,
    /// As declared; the stored type is decided when the bytes arrived.
    pub(super) content_type: String,
    pub(super) declared_sha256: Option<String>,
    pub(super) meta: Option<Value>,
    pub(super) mode: UploadMode,
}

/// Maps a staging failure; the quota meter's and the fetcher's refusals travel inside the stream's
/// error.
pub(super) fn stage_error(e: BlobError, exact: Option<u64>) -> ApiError {
    match e {
        BlobError::Interrupted(io) => {
            if let Some(err) = crate::quota::meter_error(&io) {
                return err;
            }
            if let Some(fetch) = io.get_ref().and_then(|i| i.downcast_ref::<FetchError>()) {
                return ApiError::from(match fetch {
                    FetchError::Timeout => FetchError::Timeout,
                    other => FetchError::Failed(format!("the remote body broke off: {other}")),
                });
            }
            BlobError::Interrupted(io).into()
        }
        BlobError::TooLarge { .. } if exact.is_some() => {
            ApiError::bad_request("size-mismatch", "more bytes arrived than were declared")
        }
        other => other.into(),
    }
}

/// Where a file goes, and on whose behalf.
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) space_id: &'a str,
    pub(super) path: &'a StoragePath,
    pub(super) actor_id: i64,
}

/// The second stage of a two-stage upload: exactly `size` bytes, for the upload `id`.
pub(super) struct SecondStage<'a> {
    pub(super) id: &'a str,
    pub(super) size: u64,
}

/// Streams, verifies and records a file.
pub(super) async fn store(
    state: &AppState,
    target: Target<'_>,
    incoming: Incoming,
    reservation: Reservation,
    second_stage: Option<SecondStage<'_>>,
) -> ApiResult<PutOutcome> {
    let exact = second_stage.as_ref().map(|s| s.size);
    let upload_id = second_stage.as_ref().map(|s| s.id);
    let max = exact.unwrap_or(state.settings.max_file_size);
    let stream = reservation.meter(incoming.stream, max);
    // A request body's length is held to its Content-Length by the HTTP server; a fetched body's
    // may not be (a decoded one differs), and a second stage's mismatch has its own answer.
    let length = match (&incoming.mode, exact) {
        (UploadMode::Raw, None) => incoming.length,
        _ => None,
    };
    let staged = state
        .ingest
        .receive_sized(stream, length, max)
        .await
        .map_err(|e| stage_error(e, exact))?;
    if let Some(size) = exact {
        if staged.size != size {
            return Err(ApiError::bad_request(
                "size-mismatch",
                format!("{} bytes arrived where {size} were declared", staged.size),
            ));
        }
    }
    if let Some(declared) = &incoming.declared_sha256 {
        if *declared != staged.sha256 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "checksum-mismatch",
                "the bytes do not match the checksum declared for them; nothing was stored",
            )
            .with("checksum", staged.sha256.clone()));
        }
    }
    let kept = Kept {
        content_type: incoming.content_type,
        meta: incoming.meta,
        mode: incoming.mode,
    };
    record(state, target, staged, kept, reservation, upload_id).await
}

/// What a file keeps of how it arrived.
pub(super) struct Kept {
    /// As declared; the stored type is decided from it, the bytes and the name.
    pub(super) content_type: String,
    pub(super) meta: Option<Value>,
    pub(super) mode: UploadMode,
}

/// Commits staged bytes and records them as the file at the target, consuming the reservation (and
/// completing the two-stage upload `upload_id`), in one transaction.
pub(super) async fn record(
    state: &AppState,
    target: Target<'_>,
    staged: StagedBlob,
    kept: Kept,
    reservation: Reservation,
    upload_id: Option<&str>,
) -> ApiResult<PutOutcome> {
    let Target {
        space_id,
        path,
        actor_id,
    } = target;
    let reservation_id = reservation.id();
    let content_type = staged.content_type(Some(&kept.content_type), Some(path.name()));
    let meta = kept.meta;
    let outcome = state
        .ingest
        .store(staged, |committed| {
            let file = NewStorageFile {
                size: committed.size as i64,
                content_type: content_type.clone(),
                sha256: committed.sha256,
                meta: meta.clone(),
                hold: Some(committed.hold),
            };
            async move {
                state
                    .storage
                    .put_file(space_id, path, &file, reservation_id, upload_id, actor_id)
                    .await
            }
        })
        .await?;
    reservation.consumed();
    kept.mode.count();
    Ok(outcome)
}

/// The answer of an upload: the stored file, with its scan state when scanning is on.
pub(super) async fn stored_response(state: &AppState, outcome: &PutOutcome) -> Response {
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut body = entry_json(&outcome.entry);
    // The file is stored: a database hiccup reading its scan state does not turn that into an error.
    if let Err(e) = crate::scan::annotate(state, &mut body, outcome.entry.sha256.as_deref()).await {
        tracing::warn!("cannot read the scan state of a stored file: {}", e.text);
    }
    (status, Json(body)).into_response()
}

pub(super) fn essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}
