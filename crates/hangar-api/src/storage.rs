//! Workspace storage (SPEC §6): path-addressed files in each space, uploaded five ways (raw body,
//! multipart `file` part, remote URL, data URL, two-stage signed PUT), read, listed, moved and deleted,
//! within the space's quota.

use crate::auth::Caller;
use crate::download::{serve, Download};
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::quota::Reservation;
use crate::spaces::visible_space;
use crate::uploads::{body_stream, declared_in};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::{StreamExt, TryStreamExt};
use hangar_blob::{BlobError, ByteStream};
use hangar_core::disposition::normalize_content_type;
use hangar_core::model::{
    EntryKind, NewStorageFile, PendingUpload, PutOutcome, StorageEntry, UploadState,
};
use hangar_core::now_ms;
use hangar_core::storage_path::StoragePath;
use hangar_jobs::fetch::FetchError;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Largest JSON body of an upload call (a data URL travels inside it).
const JSON_UPLOAD_LIMIT: usize = 32 << 20;
/// Largest `meta` object, serialized.
const MAX_META_BYTES: usize = 16 * 1024;
/// How long a two-stage upload URL stays valid.
const TWO_STAGE_LIFETIME_MS: i64 = 15 * 60 * 1000;

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

fn parse_path_id(id: &str) -> ApiResult<StoragePath> {
    StoragePath::from_id(id)
        .map_err(|e| ApiError::bad_request("bad-path", format!("invalid pathId: {e}")))
}

/// The space, if the caller may use it (members and administrators); otherwise it does not exist.
/// An application acting as itself needs Space.Files.Write (or Read) there instead of membership.
async fn member_space(
    state: &AppState,
    caller: &Caller,
    space_id: &str,
    write: bool,
) -> ApiResult<()> {
    visible_space(state, caller, space_id).await?;
    let right = if write {
        "Space.Files.Write"
    } else {
        "Space.Files.Read"
    };
    crate::applications::rights::require_app_right(
        state,
        caller,
        right,
        &format!("space:id:{space_id}"),
    )
    .await
}

/// Refuses early what the final transaction would refuse anyway, before any byte is read. Answers the
/// size of the file the upload would replace (it counts as room in the quota).
async fn precheck(state: &AppState, space_id: &str, path: &StoragePath) -> ApiResult<u64> {
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

/// Bytes on their way into a space's file.
struct Incoming {
    stream: ByteStream,
    /// The exact size, when known before the bytes arrive.
    length: Option<u64>,
    content_type: String,
    declared_sha256: Option<String>,
    meta: Option<Value>,
}

/// Maps a staging failure; the quota meter's and the fetcher's refusals travel inside the stream's
/// error.
fn stage_error(e: BlobError, exact: Option<u64>) -> ApiError {
    match e {
        BlobError::Interrupted(io) => {
            if let Some(err) = crate::quota::meter_error(&io) {
                return err;
            }
            if let Some(fetch) = io.get_ref().and_then(|i| i.downcast_ref::<FetchError>()) {
                return fetch_error(match fetch {
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
struct Target<'a> {
    space_id: &'a str,
    path: &'a StoragePath,
    actor_id: i64,
}

/// The second stage of a two-stage upload: exactly `size` bytes, for the upload `id`.
struct SecondStage<'a> {
    id: &'a str,
    size: u64,
}

/// Streams, verifies and records a file.
async fn store(
    state: &AppState,
    target: Target<'_>,
    incoming: Incoming,
    reservation: Reservation,
    second_stage: Option<SecondStage<'_>>,
) -> ApiResult<PutOutcome> {
    let exact = second_stage.as_ref().map(|s| s.size);
    let upload_id = second_stage.as_ref().map(|s| s.id);
    let Target {
        space_id,
        path,
        actor_id,
    } = target;
    let max = exact.unwrap_or(state.settings.max_file_size);
    let stream = reservation.meter(incoming.stream, max);
    let staged = state
        .ingest
        .receive(stream, max)
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
    let reservation_id = reservation.id();
    let outcome = state
        .ingest
        .store(staged, |committed| async move {
            let file = NewStorageFile {
                size: committed.size as i64,
                content_type: incoming.content_type,
                sha256: committed.sha256,
                meta: incoming.meta,
                pin: Some(committed.pin),
            };
            state
                .storage
                .put_file(space_id, path, &file, reservation_id, upload_id, actor_id)
                .await
        })
        .await?;
    reservation.consumed();
    Ok(outcome)
}

fn stored_response(outcome: &PutOutcome) -> Response {
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(entry_json(&outcome.entry))).into_response()
}

fn essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `POST /api/v1/space/{spaceId}/storage/{pathId}/upload`, in any of the five modes.
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path((space_id, path_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    member_space(&state, &caller, &space_id, true).await?;
    let path = parse_path_id(&path_id)?;
    let replaced = precheck(&state, &space_id, &path).await?;
    let target = Target {
        space_id: &space_id,
        path: &path,
        actor_id: caller.id(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match essence(content_type).as_str() {
        "multipart/form-data" => upload_multipart(&state, target, replaced, &headers, body).await,
        "application/json" => upload_json(&state, target, replaced, &headers, body).await,
        _ => {
            crate::uploads::check_declared_length(&state, &headers)?;
            let length = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let incoming = Incoming {
                stream: body_stream(body),
                length,
                content_type: normalize_content_type(content_type),
                declared_sha256: declared_in(&headers)?,
                meta: None,
            };
            let reservation =
                Reservation::take(&state, &space_id, length.unwrap_or(0), replaced).await?;
            let outcome = store(&state, target, incoming, reservation, None).await?;
            Ok(stored_response(&outcome))
        }
    }
}

async fn upload_multipart(
    state: &AppState,
    target: Target<'_>,
    replaced: u64,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::bad_request("bad-multipart", "the multipart body has no boundary")
    })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .for_field("file", u64::MAX) // staging enforces the file limit, with the right error
            .per_field(64 * 1024),
    );
    let mut multipart =
        multer::Multipart::with_constraints(body_stream(body), boundary, constraints);
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| {
                ApiError::bad_request("bad-multipart", format!("malformed multipart body: {e}"))
            })?
            .ok_or_else(|| ApiError::bad_request("no-file", "the form has no part named `file`"))?;
        if field.name() != Some("file") {
            continue;
        }
        let incoming = Incoming {
            content_type: normalize_content_type(field.content_type().map(|m| m.as_ref())),
            declared_sha256: declared_in(field.headers())?.or(declared_in(headers)?),
            length: None,
            meta: None,
            stream: field.map_err(std::io::Error::other).boxed(),
        };
        let reservation = Reservation::take(state, target.space_id, 0, replaced).await?;
        let outcome = store(state, target, incoming, reservation, None)
            .await
            .map_err(|e| match (e.status, e.code) {
                (StatusCode::BAD_REQUEST, "upload-interrupted") => ApiError::bad_request(
                    "bad-multipart",
                    format!("the file part broke off: {}", e.text),
                ),
                _ => e,
            })?;
        return Ok(stored_response(&outcome));
    }
}

/// Reads a JSON upload body: bounded in size and in idle time, like every body.
async fn read_json_body(body: Body) -> ApiResult<Map<String, Value>> {
    let mut stream = body_stream(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "upload-interrupted",
                format!("the body did not arrive completely: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > JSON_UPLOAD_LIMIT {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "limits-reached",
                format!("a JSON upload body has at most {JSON_UPLOAD_LIMIT} bytes; send large files as raw bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("bad-json", format!("the body is not a JSON object: {e}"))
    })
}

async fn upload_json(
    state: &AppState,
    target: Target<'_>,
    replaced: u64,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let request = read_json_body(body).await?;
    if let Some(unknown) = request.keys().find(|k| *k != "file") {
        return Err(ApiError::bad_request(
            "bad-file",
            format!("unknown field {unknown:?}: the body is {{\"file\": …}}"),
        ));
    }
    let declared_sha256 = declared_in(headers)?;
    let max = state.settings.max_file_size;
    match request.get("file") {
        Some(Value::String(s)) if s.starts_with("data:") => {
            let (bytes, content_type) = decode_data_url(s)?;
            if bytes.len() as u64 > max {
                return Err(ApiError::too_large(max));
            }
            let length = bytes.len() as u64;
            let incoming = Incoming {
                stream: futures_util::stream::once(async move { Ok(bytes::Bytes::from(bytes)) })
                    .boxed(),
                length: Some(length),
                content_type,
                declared_sha256,
                meta: None,
            };
            let reservation = Reservation::take(state, target.space_id, length, replaced).await?;
            let outcome = store(state, target, incoming, reservation, None).await?;
            Ok(stored_response(&outcome))
        }
        Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
            let limits = state.settings.fetch_limits;
            let fetch_and_store = async {
                let fetched = state.fetcher.open(s).await.map_err(fetch_error)?;
                if fetched.content_length.is_some_and(|n| n > max) {
                    return Err(ApiError::too_large(max));
                }
                let incoming = Incoming {
                    // The fetcher's errors ride inside the stream so that staging can report them.
                    stream: fetched
                        .body
                        .map_err(|e| {
                            let cause = if e.kind() == std::io::ErrorKind::TimedOut {
                                FetchError::Timeout
                            } else {
                                FetchError::Failed(e.to_string())
                            };
                            std::io::Error::other(cause)
                        })
                        .boxed(),
                    length: fetched.content_length,
                    content_type: normalize_content_type(fetched.content_type.as_deref()),
                    declared_sha256,
                    meta: None,
                };
                let length = incoming.length.unwrap_or(0);
                let reservation =
                    Reservation::take(state, target.space_id, length, replaced).await?;
                store(state, target, incoming, reservation, None).await
            };
            let outcome = tokio::time::timeout(limits.total, fetch_and_store)
                .await
                .map_err(|_| fetch_error(FetchError::Timeout))??;
            Ok(stored_response(&outcome))
        }
        Some(Value::String(_)) => Err(ApiError::bad_request(
            "bad-file",
            "file is an http(s) URL, a data: URL, or an object {type, size, meta}",
        )),
        Some(Value::Object(declared)) => begin_two_stage(state, target, replaced, declared).await,
        _ => Err(ApiError::bad_request(
            "bad-file",
            "file is an http(s) URL, a data: URL, or an object {type, size, meta}",
        )),
    }
}

fn fetch_error(e: FetchError) -> ApiError {
    match e {
        FetchError::BadUrl(_) => ApiError::bad_request("bad-url", e.to_string()),
        FetchError::Forbidden(_) => ApiError::bad_request("fetch-forbidden", e.to_string()),
        FetchError::Failed(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "fetch-failed", e.to_string())
        }
        FetchError::Timeout => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "fetch-timeout", e.to_string())
        }
    }
}

/// Decodes an RFC 2397 data URL (base64 or percent-encoded) into its bytes and media type.
fn decode_data_url(s: &str) -> ApiResult<(Vec<u8>, String)> {
    let decoded = hangar_core::data_url::decode(s)
        .map_err(|e| ApiError::bad_request("bad-data-url", e.to_string()))?;
    Ok((decoded.bytes, decoded.content_type))
}

/// The signature binding a two-stage upload URL to its space, path, size, type and expiry.
fn upload_signature(state: &AppState, u: &PendingUpload) -> String {
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

async fn begin_two_stage(
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
    state.storage.create_upload(&upload).await?;
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
struct Claim<'a> {
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

/// The file at a path, or 404; a directory where a file is needed is 409.
async fn file_entry(
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
    let entry = state
        .storage
        .entry(&space_id, &path)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok(Json(entry_json(&entry)))
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

/// `GET /api/v1/limits`: what the caller may upload, per visible space.
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
    Ok(Json(json!({
        "maxFileSize": state.settings.max_file_size,
        "spaces": spaces,
    })))
}
