//! Two-stage uploads: the signed, single-use URL of the first stage, and the PUT of the second.

use super::access::{MAX_META_BYTES, TWO_STAGE_LIFETIME_MS};
use super::store::{store, stored_response, Incoming, SecondStage, Target};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::quota::Reservation;
use crate::uploads::{body_stream, declared_in};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hangar_core::disposition::normalize_content_type;
use hangar_core::model::{PendingUpload, UploadState};
use hangar_core::now_ms;
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
    let url = format!(
        "{}/api/v1/storage-uploads/{}?expires={}&signature={}",
        state.settings.public_url,
        upload.id,
        expires_utc,
        upload_signature(state, &upload)
    );
    Ok(Json(json!({
        "id": target.path.id(),
        "path": target.path.as_str(),
        "uploadRequest": {
            "method": "PUT",
            "url": url,
            "headers": { "Content-Type": content_type, "Content-Length": size.to_string() },
            "expiresUtc": expires_utc,
        },
    }))
    .into_response())
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
            Ok(stored_response(&outcome))
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
