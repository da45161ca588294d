//! `POST …/storage/{pathId}/upload` in its five modes: raw body, multipart `file` part, remote URL,
//! data URL, and the first stage of a two-stage upload.

use super::access::{member_space, parse_path_id, precheck, JSON_UPLOAD_LIMIT, SMALL_JSON_BODY};
use super::store::{essence, store, stored_response, Incoming, Target};
use super::two_stage::begin_two_stage;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Path};
use crate::observe::UploadMode;
use crate::quota::Reservation;
use crate::uploads::{body_stream, declared_in};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{StreamExt, TryStreamExt};
use hangar_core::disposition::normalize_content_type;
use hangar_jobs::fetch::FetchError;
use serde_json::{Map, Value};
use tokio::sync::OwnedSemaphorePermit;

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
            let length =
                crate::uploads::check_declared_length(state.settings.max_file_size, &headers)?;
            let incoming = Incoming {
                stream: body_stream(body),
                length,
                content_type: normalize_content_type(content_type),
                declared_sha256: declared_in(&headers)?,
                meta: None,
                mode: UploadMode::Raw,
            };
            let reservation =
                Reservation::take(&state, &space_id, length.unwrap_or(0), replaced).await?;
            let outcome = store(&state, target, incoming, reservation, None).await?;
            Ok(stored_response(&state, &outcome).await)
        }
    }
}

pub(super) async fn upload_multipart(
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
            mode: UploadMode::Multipart,
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
        return Ok(stored_response(state, &outcome).await);
    }
}

/// Reads a JSON upload body: bounded in size and in idle time, like every body. Past
/// `SMALL_JSON_BODY` bytes the body waits for one of the node's turns for large bodies and keeps it
/// (the answer's permit) until the caller has no copy of it left.
pub(super) async fn read_json_body(
    state: &AppState,
    body: Body,
) -> ApiResult<(Map<String, Value>, Option<OwnedSemaphorePermit>)> {
    let mut stream = body_stream(body);
    let mut bytes = Vec::new();
    let mut permit = None;
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
        if permit.is_none() && bytes.len() + chunk.len() > SMALL_JSON_BODY {
            // The semaphore is never closed, so acquiring only waits.
            permit = state.large_json.clone().acquire_owned().await.ok();
        }
        bytes.extend_from_slice(&chunk);
    }
    let map = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request("bad-json", format!("the body is not a JSON object: {e}"))
    })?;
    Ok((map, permit))
}

pub(super) async fn upload_json(
    state: &AppState,
    target: Target<'_>,
    replaced: u64,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (mut request, permit) = read_json_body(state, body).await?;
    if let Some(unknown) = request.keys().find(|k| *k != "file") {
        return Err(ApiError::bad_request(
            "bad-file",
            format!("unknown field {unknown:?}: the body is {{\"file\": …}}"),
        ));
    }
    let declared_sha256 = declared_in(headers)?;
    let max = state.settings.max_file_size;
    let file = request.remove("file");
    if !matches!(&file, Some(Value::String(s)) if s.starts_with("data:")) {
        // Only a data URL keeps a large copy in memory past this point.
        drop(permit);
    }
    match file.as_ref() {
        Some(Value::String(s)) if s.starts_with("data:") => {
            let (bytes, content_type) = decode_data_url(s)?;
            // The decoded bytes are all that is kept: the text goes before the bytes are stored.
            drop(file);
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
                mode: UploadMode::DataUrl,
            };
            let reservation = Reservation::take(state, target.space_id, length, replaced).await?;
            let outcome = store(state, target, incoming, reservation, None).await?;
            Ok(stored_response(state, &outcome).await)
        }
        Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
            let limits = state.settings.fetch_limits;
            let fetch_and_store = async {
                let fetched = state.fetcher.open(s).await.map_err(ApiError::from)?;
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
                    mode: UploadMode::Url,
                };
                let length = incoming.length.unwrap_or(0);
                let reservation =
                    Reservation::take(state, target.space_id, length, replaced).await?;
                store(state, target, incoming, reservation, None).await
            };
            let outcome = tokio::time::timeout(limits.total, fetch_and_store)
                .await
                .map_err(|_| ApiError::from(FetchError::Timeout))??;
            Ok(stored_response(state, &outcome).await)
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

/// Decodes an RFC 2397 data URL (base64 or percent-encoded) into its bytes and media type.
pub(super) fn decode_data_url(s: &str) -> ApiResult<(Vec<u8>, String)> {
    let decoded = hangar_core::data_url::decode(s)
        .map_err(|e| ApiError::bad_request("bad-data-url", e.to_string()))?;
    Ok((decoded.bytes, decoded.content_type))
}
