//! Two-stage uploads: the signed, single-use URL of the first stage, and the PUT of the second.

use super::access::{MAX_META_BYTES, TWO_STAGE_LIFETIME_MS};
use super::store::{record, store, stored_response, Incoming, Kept, SecondStage, Target};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::observe::UploadMode;
use crate::quota::Reservation;
use crate::uploads::{body_stream, declared_in};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hangar_blob::TakenUpload;
use hangar_core::disposition::normalize_content_type;
use hangar_core::jobs::{FinishDirectUpload, JobKind, NewJob};
use hangar_core::model::{PendingUpload, UploadState};
use hangar_core::now_ms;
use hangar_core::storage_path::StoragePath;
use hangar_jobs::{DirectUpload, DirectUploads, JobError};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The signature binding a two-stage upload URL to its space, path, size, type and expiry.
pub(super) fn upload_signature(state: &AppState, u: &PendingUpload) -> String {
    // new_from_slice accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.settings.link_key)
        .expect("HMAC takes any key length");
    let message = format!(
        "hangar-two-stage-upload\n{}\n{}\n{}\n{}\n{}\n{}",
        u.id,
        u.space_id,
        u.path.as_str(),
        u.size,
        u.content_type,
        u.expires_utc
    );
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(super) async fn begin_two_stage(
    state: &AppState,
    target: Target<'_>,
    replaced: u64,
    declared: &Map<String, Value>,
) -> ApiResult<Response> {
    if let Some(unknown) = declared
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "size" | "meta"))
    {
        return Err(ApiError::bad_request(
            "bad-file",
            format!("unknown field {unknown:?} in file: it is {{type, size, meta}}"),
        ));
    }
    let content_type = declared
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("bad-file", "file.type (a media type) is required"))?;
    if normalize_content_type(Some(content_type)) != content_type {
        return Err(ApiError::bad_request(
            "bad-file",
            "file.type is not a valid media type",
        ));
    }
    let size = declared
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            ApiError::bad_request("bad-file", "file.size (a number of bytes) is required")
        })?;
    if size > state.settings.max_file_size {
        return Err(ApiError::too_large(state.settings.max_file_size));
    }
    let meta = match declared.get("meta") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(m)) if Value::Object(m.clone()).to_string().len() <= MAX_META_BYTES => {
            Value::Object(m.clone())
        }
        Some(Value::Object(_)) => {
            return Err(ApiError::bad_request(
                "bad-file",
                format!("file.meta has at most {MAX_META_BYTES} bytes"),
            ))
        }
        Some(_) => return Err(ApiError::bad_request("bad-file", "file.meta is an object")),
    };
    let id: [u8; 16] = rand::random();
    let id = hex::encode(id);
    let expires_utc = now_ms() + TWO_STAGE_LIFETIME_MS;
    // The file it replaces counts as room (the commit re-checks should that file change meanwhile).
    // The size is capped by max_file_size, itself at most i64::MAX.
    let reservation_id = state
        .storage
        .reserve(
            target.space_id,
            size.saturating_sub(replaced) as i64,
            Some(&id),
            expires_utc,
        )
        .await?
        .ok_or_else(crate::quota::quota_error)?;
    let upload = PendingUpload {
        id,
        space_id: target.space_id.to_string(),
        path: target.path.clone(),
        size: size as i64,
        content_type: content_type.to_string(),
        meta,
        uploader_id: target.actor_id,
        reservation_id,
        state: UploadState::Pending,
        expires_utc,
    };
    if let Err(e) = state.storage.create_upload(&upload).await {
        // Refused (too many open uploads) or failed: the reservation is not left to its expiry.
        if let Err(release) = state.storage.release_reservation(reservation_id).await {
            tracing::warn!("cannot release quota reservation {reservation_id}: {release}");
        }
        return Err(e.into());
    }
    let mut headers = Map::new();
    headers.insert("Content-Type".into(), json!(content_type));
    headers.insert("Content-Length".into(), json!(size.to_string()));
    // On an object store the client PUTs straight to it (SPEC §13): a job records the file once the
    // object is there. Elsewhere the bytes come through Hangar's own signed URL.
    let lifetime = std::time::Duration::from_millis(TWO_STAGE_LIFETIME_MS as u64);
    let direct = state
        .blobs
        .presign_upload(&direct_key(&upload.id), size, content_type, lifetime)
        .await?;
    let url = match direct {
        Some(presigned) => {
            state
                .jobs
                .enqueue(&NewJob {
                    kind: FinishDirectUpload::KIND.into(),
                    payload: json!({ "upload_id": upload.id }),
                    unique_key: Some(FinishDirectUpload::unique_key(&upload.id)),
                    run_after: now_ms() + hangar_jobs::LOOK_EVERY_MS,
                    keep_existing: true,
                })
                .await?;
            // The headers it was signed with, once each (the client sends every one listed).
            for (name, value) in presigned.headers {
                if !headers.keys().any(|k| k.eq_ignore_ascii_case(&name)) {
                    headers.insert(name, Value::String(value));
                }
            }
            presigned.url
        }
        None => format!(
            "{}/api/v1/storage-uploads/{}?expires={}&signature={}",
            state.settings.public_url,
            upload.id,
            expires_utc,
            upload_signature(state, &upload)
        ),
    };
    Ok(Json(json!({
        "id": target.path.id(),
        "path": target.path.as_str(),
        "uploadRequest": {
            "method": "PUT",
            "url": url,
            "headers": headers,
            "expiresUtc": expires_utc,
        },
    }))
    .into_response())
}

/// How long a node's claim on a direct upload it is recording lasts unless renewed.
const DIRECT_CLAIM_MS: i64 = 60_000;

/// Ends a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where the client of a direct two-stage upload PUTs its bytes, in the object store.
fn direct_key(upload_id: &str) -> String {
    format!("uploads/{upload_id}")
}

/// Records the files of two-stage uploads that clients PUT straight to the object store, for the
/// `finish-direct-upload` job (and for reads of a path that such an upload is writing).
pub struct DirectFinisher {
    state: AppState,
}

impl DirectFinisher {
    pub fn new(state: AppState) -> DirectFinisher {
        DirectFinisher { state }
    }
}

#[async_trait::async_trait]
impl DirectUploads for DirectFinisher {
    async fn finish(&self, upload_id: &str) -> Result<DirectUpload, JobError> {
        finish_direct(&self.state, upload_id)
            .await
            .map_err(|e| JobError::Failed(format!("{}: {}", e.code, e.text)))
    }
}

/// Before a path is read: the direct uploads to it whose object has arrived are recorded at once,
/// without waiting for their job (SPEC §13). Nothing to do where bytes come through Hangar.
pub(crate) async fn finish_direct_at(state: &AppState, space_id: &str, path: &StoragePath) {
    if !state.blobs.takes_direct_uploads() {
        return;
    }
    let ids = match state.storage.uploads_at(space_id, path).await {
        Ok(ids) => ids,
        Err(e) => return tracing::warn!("cannot look for uploads to {}: {e}", path.as_str()),
    };
    for id in ids {
        // Another node (or this node's job) may be recording this very upload right now: the read
        // waits for it rather than answer as if the bytes had not come.
        let deadline = std::time::Instant::now() + RECORDING_WAIT;
        loop {
            match finish_direct(state, &id).await {
                Ok(DirectUpload::Waiting { .. }) if std::time::Instant::now() < deadline => {
                    let recording = matches!(
                        state.storage.pending_upload(&id).await,
                        Ok(Some(u)) if u.state == UploadState::Receiving
                    );
                    if !recording {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(upload = %id, "cannot finish a direct upload: {}: {}", e.code, e.text);
                    break;
                }
            }
        }
    }
}

/// How long a read waits for a direct upload to its path that is being recorded elsewhere.
const RECORDING_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Looks once for a direct upload's object: records it as the file when it is there with the
/// declared size (hashed on the way, under the upload's reservation, with the conflict and quota
/// checks of every upload); refuses it (freeing the reservation, deleting the object, leaving the
/// path as it was) when its size is wrong or the file cannot be recorded; gives up at the expiry.
async fn finish_direct(state: &AppState, id: &str) -> ApiResult<DirectUpload> {
    let Some(upload) = state.storage.pending_upload(id).await? else {
        return Ok(DirectUpload::Over);
    };
    let key = direct_key(id);
    if upload.state == UploadState::Done {
        return Ok(DirectUpload::Over);
    }
    if now_ms() >= upload.expires_utc {
        // No object in time: the expiry chore removes the upload and its reservation.
        state.blobs.delete_upload(&key).await?;
        return Ok(DirectUpload::Over);
    }
    let waiting = DirectUpload::Waiting {
        until: upload.expires_utc,
    };
    if upload.state == UploadState::Receiving
        || !state.storage.claim_upload_for(id, DIRECT_CLAIM_MS).await?
    {
        return Ok(waiting);
    }
    let claim = Claim {
        state,
        id,
        kept: false,
    };
    // A short claim, renewed while this node works: should it die, another takes over within a
    // minute.
    let renewing = {
        let (storage, id) = (state.storage.clone(), id.to_string());
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(DIRECT_CLAIM_MS as u64 / 3))
                    .await;
                if let Err(e) = storage.renew_upload_claim(&id, DIRECT_CLAIM_MS).await {
                    tracing::warn!(upload = %id, "cannot renew a direct upload's claim: {e}");
                }
            }
        }))
    };
    let size = upload.size as u64;
    let staged = match state.blobs.take_upload(&key, size).await {
        Err(e) => {
            claim.reopen().await;
            return Err(e.into());
        }
        Ok(TakenUpload::Missing) => {
            claim.reopen().await;
            return Ok(waiting);
        }
        Ok(TakenUpload::WrongSize(found)) => {
            tracing::warn!(
                upload = id,
                found,
                declared = size,
                "refused a direct upload: its object has another size than declared"
            );
            give_up(state, &upload, &key).await;
            claim.keep();
            return Ok(DirectUpload::Over);
        }
        Ok(TakenUpload::Staged(staged)) => staged,
    };
    if !state
        .spaces
        .may_still_write(&upload.space_id, upload.uploader_id)
        .await?
    {
        tracing::warn!(
            upload = id,
            member = upload.uploader_id,
            "refused a direct upload: its member may no longer write to the space"
        );
        drop(staged);
        give_up(state, &upload, &key).await;
        claim.keep();
        return Ok(DirectUpload::Over);
    }
    let target = Target {
        space_id: &upload.space_id,
        path: &upload.path,
        actor_id: upload.uploader_id,
    };
    let kept = Kept {
        content_type: upload.content_type.clone(),
        meta: Some(upload.meta.clone()),
        mode: UploadMode::TwoStage,
    };
    let reservation = Reservation::existing(state, upload.reservation_id, size);
    let recorded = record(state, target, staged, kept, reservation, Some(id)).await;
    drop(renewing);
    match recorded {
        Ok(_) => {
            claim.keep();
            Ok(DirectUpload::Over)
        }
        // The database or the store failed: try again at the next look.
        Err(e) if e.status.is_server_error() => {
            claim.reopen().await;
            Err(e)
        }
        Err(e) => {
            tracing::warn!(
                upload = id,
                "refused a direct upload: {}: {}",
                e.code,
                e.text
            );
            give_up(state, &upload, &key).await;
            claim.keep();
            Ok(DirectUpload::Over)
        }
    }
}

/// A refused direct upload: its reservation is freed and its object deleted; the path stays as it
/// was, and the upload (claimed for good) goes at its expiry.
async fn give_up(state: &AppState, upload: &PendingUpload, key: &str) {
    if let Err(e) = state
        .storage
        .release_reservation(upload.reservation_id)
        .await
    {
        tracing::warn!(upload = %upload.id, "cannot release a refused upload's reservation: {e}");
    }
    if let Err(e) = state.blobs.delete_upload(key).await {
        tracing::warn!(upload = %upload.id, "cannot delete a refused upload's object: {e}");
    }
}

#[derive(Deserialize)]
pub struct SignedQuery {
    expires: Option<i64>,
    signature: Option<String>,
}

/// `PUT /api/v1/storage-uploads/{id}?expires=…&signature=…`: the second stage. The signed URL is the
/// credential; it works once.
pub async fn receive_two_stage(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SignedQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let upload = state
        .storage
        .pending_upload(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("upload"))?;
    let signature = query.signature.unwrap_or_default();
    let expected = upload_signature(&state, &upload);
    let valid: bool = expected.as_bytes().ct_eq(signature.as_bytes()).into();
    if !valid || query.expires != Some(upload.expires_utc) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "bad-signature",
            "the upload URL's signature is not valid",
        ));
    }
    if now_ms() >= upload.expires_utc {
        return Err(ApiError::new(
            StatusCode::GONE,
            "upload-expired",
            "this upload URL has expired",
        ));
    }
    match upload.state {
        UploadState::Done => {
            return Err(ApiError::conflict(
                "upload-used",
                "this upload URL was already used",
            ))
        }
        UploadState::Receiving => {
            return Err(ApiError::conflict(
                "upload-in-progress",
                "bytes are already arriving for this upload",
            ))
        }
        UploadState::Pending => {}
    }
    let given_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !given_type.trim().eq_ignore_ascii_case(&upload.content_type) {
        return Err(ApiError::bad_request(
            "type-mismatch",
            format!(
                "Content-Type must be {:?}, as declared",
                upload.content_type
            ),
        ));
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n != upload.size as u64) {
        return Err(ApiError::bad_request(
            "size-mismatch",
            format!("Content-Length must be {}, as declared", upload.size),
        ));
    }
    let declared_sha256 = declared_in(&headers)?;
    // The URL was signed for a member who may have lost the space since (removed, disabled).
    if !state
        .spaces
        .may_still_write(&upload.space_id, upload.uploader_id)
        .await?
    {
        return Err(ApiError::forbidden(
            "the member who asked for this upload may no longer write to this space",
        ));
    }
    if !state.storage.claim_upload(&upload.id).await? {
        return Err(ApiError::conflict(
            "upload-in-progress",
            "bytes are already arriving for this upload",
        ));
    }
    // Whatever ends this request early (an error, the client going away), the URL stays usable.
    let claim = Claim {
        state: &state,
        id: &upload.id,
        kept: false,
    };
    let incoming = Incoming {
        stream: body_stream(body),
        length: Some(upload.size as u64),
        content_type: upload.content_type.clone(),
        declared_sha256,
        meta: Some(upload.meta.clone()),
        mode: UploadMode::TwoStage,
    };
    let reservation = Reservation::existing(&state, upload.reservation_id, upload.size as u64);
    let target = Target {
        space_id: &upload.space_id,
        path: &upload.path,
        actor_id: upload.uploader_id,
    };
    let second_stage = SecondStage {
        id: &upload.id,
        size: upload.size as u64,
    };
    let result = store(&state, target, incoming, reservation, Some(second_stage)).await;
    match result {
        Ok(outcome) => {
            claim.keep();
            Ok(stored_response(&state, &outcome).await)
        }
        Err(e) => {
            // Reopen before answering, so that a client retrying at once finds the URL usable.
            claim.reopen().await;
            Err(e)
        }
    }
}

/// A two-stage upload receiving its bytes; unless kept (the file was recorded), it goes back to
/// pending when dropped, so the URL can be used again until it expires.
pub(super) struct Claim<'a> {
    state: &'a AppState,
    id: &'a str,
    kept: bool,
}

impl Claim<'_> {
    fn keep(mut self) {
        self.kept = true;
    }

    async fn reopen(mut self) {
        self.kept = true;
        if let Err(e) = self.state.storage.unclaim_upload(self.id).await {
            tracing::warn!("cannot reopen two-stage upload {}: {e}", self.id);
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let (storage, id) = (self.state.storage.clone(), self.id.to_string());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = storage.unclaim_upload(&id).await {
                    tracing::warn!("cannot reopen two-stage upload {id}: {e}");
                }
            });
        }
    }
}
