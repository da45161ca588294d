//! Receiving attachment bytes: `POST /uploads` (raw body, Space-style) and
//! `POST /api/v1/messages/{id}/attachments` (multipart `files` parts). Bytes are staged while they
//! stream (hashed, counted, capped), verified against a declared checksum, then committed.

use crate::access::visible_channel;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::observe::UploadMode;
use crate::quota;
use crate::shapes::attachment_json;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use hangar_blob::{ByteStream, StagedBlob};
use hangar_core::checksum::declared_sha256;
use hangar_core::disposition::normalize_content_type;
use hangar_core::filename::sanitize;
use hangar_core::ids::random_id;
use hangar_core::model::{Attachment, NewAttachment};
use hangar_core::AttachmentState;
use serde::Deserialize;
use serde_json::json;

/// The `spaceMediaType` contexts of the reference.
const MEDIA_CONTEXTS: [&str; 3] = [
    "issue-image-attachment",
    "chat-image-attachment",
    "chat-video-attachment",
];
/// Most files accepted in one multipart request.
const MAX_FILES_PER_REQUEST: usize = 100;
/// Largest non-file part of a multipart request.
const MAX_OTHER_PART: u64 = 64 * 1024;
/// Longest pause allowed between two pieces of a request body.
const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the client told us about a file it sends.
pub(crate) struct IncomingFile {
    pub name: String,
    /// As declared (normalized); the stored type is decided when the bytes arrived.
    pub content_type: String,
    pub declared_sha256: Option<String>,
    pub media_context: Option<String>,
}

pub(crate) fn declared_in(headers: &HeaderMap) -> ApiResult<Option<String>> {
    declared_sha256(
        headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    )
    .map_err(|e| ApiError::bad_request("bad-checksum", e.to_string()))
}

/// Refuses early a body whose declared length is already over `limit`.
pub(crate) fn check_declared_length(limit: u64, headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(n) if n > limit => Err(ApiError::too_large(limit)),
        _ => Ok(length),
    }
}

/// The request body as a stream of bytes that fails when the client sends nothing for
/// `BODY_IDLE_TIMEOUT`, so a stalled upload cannot hold its connection and temporary file forever.
pub(crate) fn body_stream(body: Body) -> ByteStream {
    hangar_blob::idle_limited(
        body.into_data_stream()
            .map_err(std::io::Error::other)
            .boxed(),
        BODY_IDLE_TIMEOUT,
    )
}

/// Records staged files as the caller's attachments (linked to `message_id` when given). A file whose
/// declared checksum does not match is recorded in the mismatch state without its bytes.
pub(crate) async fn record(
    state: &AppState,
    caller: &Caller,
    files: Vec<(IncomingFile, StagedBlob)>,
    message_id: Option<i64>,
    mode: UploadMode,
) -> ApiResult<Vec<Attachment>> {
    let mut new = Vec::with_capacity(files.len());
    let mut committed = Vec::new();
    for (file, staged) in files {
        let verified = file
            .declared_sha256
            .as_ref()
            .is_none_or(|d| *d == staged.sha256);
        let (sha256, size) = (staged.sha256.clone(), staged.size);
        let content_type = staged.content_type(Some(&file.content_type), Some(&file.name));
        // Unverified bytes are not kept: the attachment records the mismatch without them.
        let hold = if verified {
            match state.ingest.commit(staged).await {
                Ok(c) => {
                    committed.push(c.clone());
                    Some(c.hold)
                }
                Err(e) => {
                    state.ingest.release(&committed).await;
                    return Err(e.into());
                }
            }
        } else {
            None
        };
        new.push(NewAttachment {
            id: random_id(),
            uploader_id: caller.id(),
            file_name: file.name,
            content_type,
            size: size as i64,
            sha256,
            state: if verified {
                AttachmentState::ReadyForDownloadFromServerToClient
            } else {
                AttachmentState::ChecksumVerificationOnServerSideMismatch
            },
            media_context: file.media_context,
            stores_blob: verified,
            hold,
        });
    }
    let quota = state.settings.user_quota;
    let recorded = state
        .ingest
        .record(&committed, || {
            state
                .attachments
                .create_attachments(&new, message_id, quota)
        })
        .await;
    match recorded {
        Ok(attachments) => {
            for _ in &attachments {
                mode.count();
            }
            Ok(attachments)
        }
        Err(e) => {
            // Committed bytes that nothing will refer to: let the collector decide about them.
            state.ingest.release_after(&committed, &e).await;
            Err(e.into())
        }
    }
}

/// 422 naming the first attachment whose bytes did not match their declared checksum.
fn mismatch_error(attachments: &[Attachment]) -> Option<ApiError> {
    let bad = attachments
        .iter()
        .find(|a| a.state == AttachmentState::ChecksumVerificationOnServerSideMismatch)?;
    Some(
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "checksum-mismatch",
            format!(
                "the bytes of {:?} do not match the checksum declared for them",
                bad.file_name
            ),
        )
        .with("attachmentId", bad.id)
        .with("fileChecksum", bad.sha256.clone()),
    )
}

/// With an image context (`*-image-attachment`), the preview is made before the upload answers
/// (SPEC §9.3), so that the client's next request can show it. A failure is only logged: the
/// upload succeeded, and the background job tries again.
async fn prepare_preview(state: &AppState, a: &Attachment) {
    let image_context = a
        .media_context
        .as_deref()
        .is_some_and(|c| c.ends_with("-image-attachment"));
    if !image_context || !hangar_core::preview::wants_preview(&a.content_type) {
        return;
    }
    let Some(sha) = a.sha256.as_deref() else {
        return;
    };
    if let Err(e) = state.previews.ensure(sha, &a.content_type).await {
        tracing::warn!(
            attachment = a.id,
            "cannot make the preview of a new image: {e}"
        );
    }
}

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
    #[serde(rename = "spaceMediaType")]
    space_media_type: Option<String>,
}

/// `POST /uploads?name=FILE&spaceMediaType=CTX`: the body is the file; answers the attachment id.
pub async fn upload_raw(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let name = query.name.filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::bad_request("missing-name", "the name query parameter is required")
    })?;
    if let Some(ctx) = &query.space_media_type {
        if !MEDIA_CONTEXTS.contains(&ctx.as_str()) {
            return Err(ApiError::bad_request(
                "bad-media-type",
                format!("spaceMediaType is one of {}", MEDIA_CONTEXTS.join(", ")),
            ));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing-content-type",
                "the Content-Type header is required",
            )
        })?;
    let file = IncomingFile {
        name: sanitize(&name),
        content_type: normalize_content_type(Some(content_type)),
        declared_sha256: declared_in(&headers)?,
        media_context: query.space_media_type,
    };
    let room = quota::attachment_room(&state, &caller).await?;
    let length = check_declared_length(room, &headers)?;
    let staged = state
        .ingest
        .receive_sized(body_stream(body), length, room)
        .await?;
    let attachments = record(&state, &caller, vec![(file, staged)], None, UploadMode::Raw).await?;
    if let Some(err) = mismatch_error(&attachments) {
        return Err(err);
    }
    let attachment = attachments
        .first()
        .ok_or_else(|| ApiError::internal("no attachment recorded"))?;
    prepare_preview(&state, attachment).await;
    let id = attachment.id;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        id.to_string(),
    )
        .into_response())
}

/// `POST /api/v1/messages/{id}/attachments`: multipart, one or more `files` parts.
pub async fn upload_to_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(message_id): Path<i64>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let message = state
        .chat
        .message(message_id)
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    visible_channel(&state, &caller, message.channel_id)
        .await
        .map_err(|_| ApiError::not_found("message"))?;
    if message.author_id != caller.id() && !caller.is_admin() {
        return Err(ApiError::forbidden(
            "only the message's author may attach files to it",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad-multipart",
            "the body must be multipart/form-data with a boundary",
        )
    })?;
    let max = quota::attachment_room(&state, &caller).await?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .for_field("files", u64::MAX) // staging enforces the file limit, with the right error
            .per_field(MAX_OTHER_PART),
    );
    let mut multipart =
        multer::Multipart::with_constraints(body_stream(body), boundary, constraints);
    let mut files = Vec::new();
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            ApiError::bad_request("bad-multipart", format!("malformed multipart body: {e}"))
        })?;
        let Some(field) = field else { break };
        if field.name() != Some("files") {
            continue; // other form fields are ignored (read and dropped by the parser)
        }
        if files.len() == MAX_FILES_PER_REQUEST {
            return Err(ApiError::bad_request(
                "too-many-files",
                format!("at most {MAX_FILES_PER_REQUEST} files per request"),
            ));
        }
        let file = IncomingFile {
            name: sanitize(field.file_name().unwrap_or("file")),
            content_type: normalize_content_type(field.content_type().map(|m| m.as_ref())),
            declared_sha256: declared_in(field.headers())?,
            media_context: None,
        };
        let stream = field.map_err(std::io::Error::other).boxed();
        let staged = state
            .ingest
            .receive(stream, max)
            .await
            .map_err(|e| match e {
                hangar_blob::BlobError::Interrupted(cause) => ApiError::bad_request(
                    "bad-multipart",
                    format!("the multipart body broke off: {cause}"),
                ),
                other => other.into(),
            })?;
        files.push((file, staged));
    }
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "no-files",
            "the form has no part named `files`",
        ));
    }
    let attachments = record(
        &state,
        &caller,
        files,
        Some(message_id),
        UploadMode::Multipart,
    )
    .await?;
    let listed: Vec<_> = attachments.iter().map(attachment_json).collect();
    if let Some(err) = mismatch_error(&attachments) {
        return Err(err.with("attachments", listed));
    }
    Ok(Json(json!({ "httpStatusCode": 200, "attachments": listed })).into_response())
}
