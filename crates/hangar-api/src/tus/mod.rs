//! Resumable uploads over tus 1.0 (SPEC §9.1): `OPTIONS`/`POST /api/v1/tus` and `HEAD`/`PATCH`/
//! `DELETE /api/v1/tus/{uploadId}`, with the creation, creation-with-upload, expiration, checksum and
//! termination extensions. The offset lives in the database (`TusStore`), the bytes in the blob
//! store's partial upload of the same id, so any node can take the next chunk, and a completed
//! upload goes through the same ingest pipeline as `POST /uploads` or a storage upload.

mod receive;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::quota::Reservation;
use crate::storage::{member_space, parse_path_id, precheck};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{head, post};
use axum::Router;
use hangar_core::disposition::normalize_content_type;
use hangar_core::filename::sanitize;
use hangar_core::ids::random_id;
use hangar_core::model::NewAttachment;
use hangar_core::now_ms;
use hangar_core::store::{TusEnd, TusEnded};
use hangar_core::tus::{parse_metadata, parse_target, TusState, TusTarget, TusUpload};
use hangar_core::AttachmentState;

pub(crate) const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,expiration,checksum,termination";
const CHECKSUM_ALGORITHMS: &str = "sha1,sha256";
pub(crate) const CHUNK_TYPE: &str = "application/offset+octet-stream";
/// The attachment an upload fills, on every answer about it.
pub(crate) const ATTACHMENT_HEADER: &str = "hangar-attachment-id";

/// The tus routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tus", post(create).options(options))
        .route(
            "/api/v1/tus/{id}",
            head(status)
                .patch(receive::patch)
                .delete(terminate)
                .options(options),
        )
        .layer(axum::middleware::map_response(tus_resumable))
}

/// Every answer of the tus routes, errors included, says which protocol version it speaks.
async fn tus_resumable(mut response: Response) -> Response {
    response.headers_mut().insert(
        HeaderName::from_static("tus-resumable"),
        HeaderValue::from_static(TUS_VERSION),
    );
    response
}

/// `Upload-Expires` and the like: an HTTP date (RFC 9110 IMF-fixdate).
pub(crate) fn http_date(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(&format).unwrap_or_default()
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The request's `Tus-Resumable` must name the version this server speaks (412 otherwise).
pub(crate) fn check_version(headers: &HeaderMap) -> ApiResult<()> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "tus-version-unsupported",
            format!("send Tus-Resumable: {TUS_VERSION}; this server speaks tus {TUS_VERSION}"),
        )),
    }
}

/// A number header, if present and well formed.
pub(crate) fn number_header(headers: &HeaderMap, name: &str) -> ApiResult<Option<u64>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request("bad-header", format!("{name} is a number of bytes"))
            }),
    }
}

/// Adds the upload's attachment id to an answer, whatever its status.
pub(crate) fn with_attachment(mut response: Response, upload: &TusUpload) -> Response {
    if let TusTarget::Attachment { attachment_id } = upload.target {
        response
            .headers_mut()
            .insert(ATTACHMENT_HEADER, header_value(&attachment_id.to_string()));
    }
    response
}

/// The caller's own upload, still answering (not past its expiry); anyone else's is not found.
pub(crate) async fn owned_upload(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<TusUpload> {
    let upload = state
        .tus
        .tus_upload(id)
        .await?
        .filter(|u| u.owner_id == caller.id() && u.expires_utc > now_ms())
        .ok_or_else(|| ApiError::not_found("upload"))?;
    Ok(upload)
}

/// `OPTIONS /api/v1/tus[/{id}]`: what this server supports. Anonymous (browsers send preflights
/// without credentials); `Tus-Max-Size` is the per-file limit.
async fn options(State(state): State<AppState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert(
        "tus-max-size",
        header_value(&state.settings.max_file_size.to_string()),
    );
    h.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(CHECKSUM_ALGORITHMS),
    );
    response
}

/// What `Upload-Metadata` asks for, checked.
struct Requested {
    metadata: String,
    file_name: String,
    content_type: String,
    declared_sha256: Option<String>,
    /// `space:{spaceId}:{pathId}`: the space and the path.
    storage: Option<(String, hangar_core::storage_path::StoragePath)>,
}

fn requested(headers: &HeaderMap) -> ApiResult<Requested> {
    let raw = headers
        .get("upload-metadata")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request("bad-metadata", "Upload-Metadata is not ASCII text")
            })
        })
        .transpose()?
        .unwrap_or("");
    let pairs =
        parse_metadata(raw).map_err(|e| ApiError::bad_request("bad-metadata", e.to_string()))?;
    let file_name = pairs
        .get("filename")
        .filter(|n| !n.is_empty())
        .map(|n| sanitize(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing-filename",
                "Upload-Metadata must carry the file's name under the key `filename`",
            )
        })?;
    let declared_sha256 = match pairs.get("sha256") {
        None => None,
        Some(d) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(d.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad-checksum",
                "the metadata `sha256` is the file's SHA-256 in 64 hex digits",
            ))
        }
    };
    let storage = match pairs.get("target").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => {
            let (space, path_id) = parse_target(t).ok_or_else(|| {
                ApiError::bad_request(
                    "bad-target",
                    "the metadata `target` is absent (an attachment) or space:{spaceId}:{pathId}",
                )
            })?;
            Some((space, parse_path_id(&path_id)?))
        }
    };
    Ok(Requested {
        metadata: raw.to_string(),
        file_name,
        content_type: normalize_content_type(pairs.get("filetype").map(String::as_str)),
        declared_sha256,
        storage,
    })
}

/// `POST /api/v1/tus`: creates an upload (`Upload-Length` and `Upload-Metadata`), with its first
/// bytes when the body carries some.
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_version(&headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::bad_request(
            "length-required",
            "this server needs Upload-Length at creation (no creation-defer-length)",
        ));
    }
    let length = number_header(&headers, "upload-length")?
        .ok_or_else(|| ApiError::bad_request("length-required", "Upload-Length is required"))?;
    let max = state.settings.max_file_size;
    if length > max {
        return Err(ApiError::too_large(max));
    }
    let wanted = requested(&headers)?;
    let carries_bytes = headers.contains_key(header::CONTENT_TYPE)
        && number_header(&headers, "content-length")?.is_none_or(|n| n > 0);
    if carries_bytes {
        receive::check_chunk_type(&headers)?;
        if number_header(&headers, "content-length")?.is_some_and(|n| n > length) {
            return Err(ApiError::bad_request(
                "beyond-length",
                "the body goes past the Upload-Length it declares",
            ));
        }
    }
    let now = now_ms();
    let id = hex::encode(rand::random::<[u8; 16]>());
    let (target, attachment) = match &wanted.storage {
        Some((space_id, path)) => {
            member_space(&state, &caller, space_id, true).await?;
            let replaced = precheck(&state, space_id, path).await?;
            // The quota is checked now for the whole file, and again on every byte.
            Reservation::take(&state, space_id, length, replaced)
                .await?
                .release()
                .await;
            let target = TusTarget::Storage {
                space_id: space_id.clone(),
                path: path.as_str().to_string(),
            };
            (target, None)
        }
        None => {
            let attachment = NewAttachment {
                id: random_id(),
                uploader_id: caller.id(),
                file_name: wanted.file_name.clone(),
                content_type: wanted.content_type.clone(),
                size: length as i64,
                sha256: String::new(),
                state: AttachmentState::UploadFromClientToServerInProgress,
                media_context: None,
                stores_blob: false,
                hold: None,
            };
            let target = TusTarget::Attachment {
                attachment_id: attachment.id,
            };
            (target, Some(attachment))
        }
    };
    let upload = TusUpload {
        id,
        owner_id: caller.id(),
        length: length as i64,
        offset: 0,
        metadata: wanted.metadata,
        file_name: wanted.file_name,
        content_type: wanted.content_type,
        target,
        declared_sha256: wanted.declared_sha256,
        state: TusState::Receiving,
        lease_until: None,
        expires_utc: now + state.settings.tus_expiry.as_millis() as i64,
        created_utc: now,
    };
    state
        .tus
        .create_tus_upload(&upload, attachment.as_ref(), state.settings.user_quota)
        .await?;
    let location = format!("{}/api/v1/tus/{}", state.settings.public_url, upload.id);
    let mut response = if carries_bytes || length == 0 {
        // creation-with-upload: the first chunk, at offset 0 (an empty file completes at once).
        let result = receive::chunk(&state, &upload, 0, &headers, body).await;
        match result {
            Ok((offset, expires)) => {
                let mut r = StatusCode::CREATED.into_response();
                r.headers_mut()
                    .insert("upload-offset", header_value(&offset.to_string()));
                r.headers_mut()
                    .insert("upload-expires", header_value(&http_date(expires)));
                r
            }
            // The upload exists: say where, with the error, so that the client can resume.
            Err(e) => e.into_response(),
        }
    } else {
        let mut r = StatusCode::CREATED.into_response();
        r.headers_mut().insert(
            "upload-expires",
            header_value(&http_date(upload.expires_utc)),
        );
        r
    };
    response
        .headers_mut()
        .insert(header::LOCATION, header_value(&location));
    Ok(with_attachment(response, &upload))
}

/// `HEAD /api/v1/tus/{id}`: where the upload stands.
async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_version(&headers)?;
    let upload = owned_upload(&state, &caller, &id).await?;
    // While the last chunk is being verified and recorded, its bytes do not count yet.
    let offset = if upload.state == TusState::Done {
        upload.length
    } else {
        upload.offset
    };
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert("upload-offset", header_value(&offset.to_string()));
    h.insert("upload-length", header_value(&upload.length.to_string()));
    if !upload.metadata.is_empty() {
        h.insert("upload-metadata", header_value(&upload.metadata));
    }
    h.insert(
        "upload-expires",
        header_value(&http_date(upload.expires_utc)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(with_attachment(response, &upload))
}

/// `DELETE /api/v1/tus/{id}`: ends the upload; an unfinished one takes its bytes and attachment
/// with it.
async fn terminate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_version(&headers)?;
    let upload = owned_upload(&state, &caller, &id).await?;
    match state
        .tus
        .end_tus_upload(&upload.id, TusEnd::Terminate, now_ms())
        .await?
    {
        TusEnded::Ended(ended) => {
            if let Err(e) = state.blobs.partial_abort(&ended.id).await {
                tracing::warn!(upload = %ended.id, "cannot free a terminated upload's bytes: {e}");
            }
            Ok(with_attachment(
                StatusCode::NO_CONTENT.into_response(),
                &ended,
            ))
        }
        TusEnded::Busy(_) => Err(busy()),
        TusEnded::Missing | TusEnded::NotYet(_) => Err(ApiError::not_found("upload")),
    }
}

pub(crate) fn busy() -> ApiError {
    ApiError::new(
        StatusCode::LOCKED,
        "upload-busy",
        "another request is sending bytes to this upload; try again when it ends",
    )
}
