//! Receiving a tus upload's bytes: one chunk at the upload's offset (`PATCH`, or the body of the
//! creating `POST`), checked against `Upload-Checksum`, and the completion once every byte is there.

use super::{
    busy, check_version, http_date, number_header, owned_upload, with_attachment, CHUNK_TYPE,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::quota::Reservation;
use crate::storage::precheck;
use crate::uploads::body_stream;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hangar_blob::{BlobError, ByteStream, ChunkDigest};
use hangar_core::model::NewStorageFile;
use hangar_core::now_ms;
use hangar_core::storage_path::StoragePath;
use hangar_core::store::{TusAttachmentDone, TusEnd};
use hangar_core::tus::{parse_upload_checksum, TusClaim, TusState, TusTarget, TusUpload};
use hangar_core::AttachmentState;

/// How long one request holds an upload while it sends a chunk: renewed every `RENEW_EVERY` while
/// bytes arrive (a body stalls out after a minute without any), so that a request whose process
/// died frees the upload soon.
const CHUNK_LEASE_MS: i64 = 2 * 60 * 1000;
const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// The hold while the whole file is hashed and recorded (large files on object storage are read
/// back and written once more).
const COMPLETION_LEASE_MS: i64 = 60 * 60 * 1000;

/// Passes a chunk's bytes through, renewing the request's hold on the upload as they arrive; fails
/// the body when the hold was lost (so that two requests never write the same upload).
fn renewing(stream: ByteStream, state: &AppState, id: &str) -> ByteStream {
    struct Renewal {
        stream: ByteStream,
        tus: std::sync::Arc<dyn hangar_core::store::TusStore>,
        id: String,
        renewed: std::time::Instant,
    }
    let renewal = Renewal {
        stream,
        tus: state.tus.clone(),
        id: id.to_string(),
        renewed: std::time::Instant::now(),
    };
    futures_util::stream::unfold(Some(renewal), |r| async move {
        let mut r = r?;
        let item = r.stream.next().await?;
        if item.is_ok() && r.renewed.elapsed() >= RENEW_EVERY {
            r.renewed = std::time::Instant::now();
            match r
                .tus
                .renew_tus_lease(&r.id, now_ms() + CHUNK_LEASE_MS)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    let lost = std::io::Error::other("the upload's hold was lost");
                    return Some((Err(lost), None));
                }
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
        Some((item, Some(r)))
    })
    .boxed()
}

/// `PATCH /api/v1/tus/{id}`: the next chunk, at `Upload-Offset`.
pub(super) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_version(&headers)?;
    let upload = owned_upload(&state, &caller, &id).await?;
    let result = async {
        check_chunk_type(&headers)?;
        let offset = number_header(&headers, "upload-offset")?
            .ok_or_else(|| ApiError::bad_request("offset-required", "Upload-Offset is required"))?;
        chunk(&state, &upload, offset, &headers, body).await
    }
    .await;
    let response = match result {
        Ok((offset, expires)) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert("upload-offset", super::header_value(&offset.to_string()));
            r.headers_mut()
                .insert("upload-expires", super::header_value(&http_date(expires)));
            r
        }
        Err(e) => e.into_response(),
    };
    Ok(with_attachment(response, &upload))
}

/// 415 unless the body is `application/offset+octet-stream`.
pub(super) fn check_chunk_type(headers: &HeaderMap) -> ApiResult<()> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if given.as_deref() == Some(CHUNK_TYPE) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        format!("a chunk's Content-Type is {CHUNK_TYPE}"),
    ))
}

fn checksum_mismatch() -> ApiError {
    // 460 is tus's own status for a chunk whose checksum does not match.
    let status = StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(
        status,
        "checksum-mismatch",
        "the chunk does not match its Upload-Checksum; nothing of it was kept",
    )
}

fn complete_already() -> ApiError {
    ApiError::conflict(
        "upload-complete",
        "every byte of this upload has arrived; it takes no more",
    )
}

fn beyond_length() -> ApiError {
    ApiError::bad_request(
        "beyond-length",
        "the chunk goes past the Upload-Length declared at creation",
    )
}

/// The chunk's declared digest: the algorithm and the bytes it must hash to.
fn declared_digest(headers: &HeaderMap) -> ApiResult<Option<(ChunkDigest, Vec<u8>)>> {
    let Some(value) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    let (name, digest) = value
        .to_str()
        .ok()
        .and_then(parse_upload_checksum)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad-checksum",
                "Upload-Checksum is `ALGORITHM BASE64-DIGEST`",
            )
        })?;
    let algorithm = ChunkDigest::parse(&name).ok_or_else(|| {
        ApiError::bad_request(
            "checksum-algorithm-unsupported",
            format!("the checksum algorithm {name:?} is not supported (sha1, sha256)"),
        )
    })?;
    Ok(Some((algorithm, digest)))
}

/// An upload held by this request; given back as it was when dropped, unless kept.
struct Held<'a> {
    state: &'a AppState,
    id: &'a str,
    kept: bool,
}

impl Held<'_> {
    fn keep(mut self) {
        self.kept = true;
    }

    /// Gives the upload back before answering, so that a client retrying at once finds it free.
    async fn release(mut self) {
        self.kept = true;
        if let Err(e) = self.state.tus.release_tus_upload(self.id).await {
            tracing::warn!(upload = %self.id, "cannot give a tus upload back (its hold will lapse): {e}");
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let (tus, id) = (self.state.tus.clone(), self.id.to_string());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = tus.release_tus_upload(&id).await {
                    tracing::warn!(upload = %id, "cannot give a tus upload back (its hold will lapse): {e}");
                }
            });
        }
    }
}

/// Receives one chunk at `offset` (its Content-Type checked by the caller): answers the new offset and `Upload-Expires` (epoch ms).
pub(super) async fn chunk(
    state: &AppState,
    upload: &TusUpload,
    offset: u64,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(i64, i64)> {
    if upload.state == TusState::Done {
        return Err(complete_already());
    }
    let digest = declared_digest(headers)?;
    let length = upload.length as u64;
    let remaining = length.saturating_sub(offset);
    if number_header(headers, "content-length")?.is_some_and(|n| n > remaining) {
        return Err(beyond_length());
    }
    let now = now_ms();
    match state
        .tus
        .claim_tus_upload(&upload.id, offset as i64, now + CHUNK_LEASE_MS, now)
        .await?
    {
        TusClaim::Claimed => {}
        TusClaim::WrongOffset(at) => {
            return Err(ApiError::conflict(
                "offset-mismatch",
                format!("the upload is at offset {at}, not {offset}"),
            )
            .with("offset", at))
        }
        TusClaim::Busy => return Err(busy()),
        TusClaim::NotReceiving => return Err(complete_already()),
    }
    let held = Held {
        state,
        id: &upload.id,
        kept: false,
    };
    let mut stream = renewing(body_stream(body), state, &upload.id);
    // A storage target counts against the space's quota on every byte (the file so far included).
    let mut reservation = None;
    if let TusTarget::Storage { space_id, path } = &upload.target {
        let path = StoragePath::parse(path).map_err(|e| ApiError::internal(e.to_string()))?;
        let replaced = precheck(state, space_id, &path).await?;
        let declared = number_header(headers, "content-length")?.unwrap_or(0);
        let r = Reservation::take(state, space_id, offset + declared, replaced).await?;
        stream = r.meter_from(stream, state.settings.max_file_size, offset);
        reservation = Some(r);
    }
    let written = state
        .blobs
        .partial_write(
            &upload.id,
            offset,
            stream,
            remaining,
            digest.as_ref().map(|d| d.0),
        )
        .await
        .map_err(chunk_error);
    let verified = match written {
        Ok(w) => match &digest {
            Some((_, expected)) if w.digest.as_deref() != Some(expected.as_slice()) => {
                Err(checksum_mismatch())
            }
            _ => Ok(w),
        },
        Err(e) => Err(e),
    };
    let reached = offset + verified.as_ref().map_or(0, |w| w.len);
    // The reservation goes now unless it is about to hold the whole file's record.
    let reservation = match reservation {
        Some(r) if verified.is_err() || reached < length => {
            r.release().await;
            None
        }
        other => other,
    };
    if let Err(e) = verified {
        held.release().await;
        return Err(e);
    }
    let expires = now_ms() + state.settings.tus_expiry.as_millis() as i64;
    if reached < length {
        if !state
            .tus
            .advance_tus_upload(&upload.id, offset as i64, reached as i64, expires)
            .await?
        {
            return Err(ApiError::conflict(
                "offset-mismatch",
                "the upload moved meanwhile",
            ));
        }
        held.keep();
        return Ok((reached as i64, expires));
    }
    // The chunk's reservation covers the whole file now: the completion records it.
    match complete(state, upload, reservation).await {
        Ok(()) => {
            held.keep();
            Ok((upload.length, upload.expires_utc.max(expires)))
        }
        Err(e) => {
            held.release().await;
            Err(e)
        }
    }
}

fn chunk_error(e: BlobError) -> ApiError {
    match e {
        BlobError::TooLarge { .. } => beyond_length(),
        BlobError::Interrupted(io) => match crate::quota::meter_error(&io) {
            Some(err) => err,
            None => BlobError::Interrupted(io).into(),
        },
        other => other.into(),
    }
}

/// Every byte arrived: the whole file is staged from the partial upload (hashed on the way),
/// checked against the declared SHA-256, and recorded like an upload of its kind.
async fn complete(
    state: &AppState,
    upload: &TusUpload,
    reservation: Option<Reservation>,
) -> ApiResult<()> {
    state
        .tus
        .renew_tus_lease(&upload.id, now_ms() + COMPLETION_LEASE_MS)
        .await?;
    state.tus.begin_tus_completion(&upload.id).await?;
    let staged = state
        .blobs
        .partial_finish(&upload.id, upload.length as u64)
        .await?;
    let verified = upload
        .declared_sha256
        .as_ref()
        .is_none_or(|d| *d == staged.sha256);
    match &upload.target {
        TusTarget::Attachment { .. } if verified => {
            state
                .ingest
                .store(staged, |c| async move {
                    let done = TusAttachmentDone {
                        size: c.size as i64,
                        sha256: c.sha256,
                        state: AttachmentState::ReadyForDownloadFromServerToClient,
                        hold: Some(c.hold),
                    };
                    state.tus.complete_tus_attachment(&upload.id, &done).await
                })
                .await?;
        }
        TusTarget::Attachment { .. } => {
            // Unverified bytes are not kept: the attachment records the mismatch without them.
            let done = TusAttachmentDone {
                size: staged.size as i64,
                sha256: staged.sha256.clone(),
                state: AttachmentState::ChecksumVerificationOnServerSideMismatch,
                hold: None,
            };
            drop(staged);
            state.tus.complete_tus_attachment(&upload.id, &done).await?;
        }
        TusTarget::Storage { .. } if !verified => {
            // As every storage upload: nothing is stored, the path keeps what it had. The bytes
            // cannot become right by resending them, so the upload ends.
            let got = staged.sha256.clone();
            drop(staged);
            state.tus.release_tus_upload(&upload.id).await?;
            state
                .tus
                .end_tus_upload(&upload.id, TusEnd::Terminate, now_ms())
                .await?;
            free_bytes(state, &upload.id).await;
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "checksum-mismatch",
                "the file does not match the sha256 declared in its metadata; nothing was stored",
            )
            .with("checksum", got));
        }
        TusTarget::Storage { space_id, path } => {
            let path = StoragePath::parse(path).map_err(|e| ApiError::internal(e.to_string()))?;
            // The path's conflicts and the quota, again: they may have changed since creation.
            let replaced = precheck(state, space_id, &path).await?;
            let reservation = match reservation {
                Some(r) => r,
                None => Reservation::take(state, space_id, upload.length as u64, replaced).await?,
            };
            let reservation_id = reservation.id();
            let path = &path;
            state
                .ingest
                .store(staged, |c| async move {
                    let file = NewStorageFile {
                        size: c.size as i64,
                        content_type: upload.content_type.clone(),
                        sha256: c.sha256,
                        meta: None,
                        hold: Some(c.hold),
                    };
                    state
                        .storage
                        .put_file(
                            space_id,
                            path,
                            &file,
                            reservation_id,
                            Some(&upload.id),
                            upload.owner_id,
                        )
                        .await
                })
                .await?;
            reservation.consumed();
        }
    }
    free_bytes(state, &upload.id).await;
    Ok(())
}

/// The partial upload is no longer needed; the expiry job frees it should this fail.
async fn free_bytes(state: &AppState, id: &str) {
    if let Err(e) = state.blobs.partial_abort(id).await {
        tracing::warn!(upload = %id, "cannot free a finished upload's partial bytes: {e}");
    }
}
