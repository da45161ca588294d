//! Attachments after upload: metadata, downloads (by id and name, and `/d/{id}` links), deletion, and
//! public links whose tokens are derived from a server key, so they cannot be guessed or enumerated.

use crate::access::{may_read_attachment, visible_channel};
use crate::auth::Caller;
use crate::chat::parse_channel_ref;
use crate::download::{serve, Download};
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::shapes::attachment_json;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use hangar_core::model::Attachment;
use hangar_core::AttachmentState;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The attachment if the caller may read it; otherwise it does not exist for them.
pub(crate) async fn readable(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Attachment> {
    let a = state.attachments.attachment(id).await?;
    visible(state, caller, a).await
}

/// `readable` for a download, which may be answered from the read cache
/// (`AttachmentStore::attachment_for_download`).
async fn readable_for_download(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<Attachment> {
    let a = state.attachments.attachment_for_download(id).await?;
    visible(state, caller, a).await
}

async fn visible(
    state: &AppState,
    caller: &Caller,
    a: Option<Attachment>,
) -> ApiResult<Attachment> {
    let a = a.ok_or_else(|| ApiError::not_found("attachment"))?;
    if may_read_attachment(state, caller, &a).await? {
        Ok(a)
    } else {
        Err(ApiError::not_found("attachment"))
    }
}

/// The attachment if the caller may change it (its uploader or an administrator).
async fn owned(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Attachment> {
    let a = readable(state, caller, id).await?;
    if a.uploader_id == caller.id() || caller.is_admin() {
        Ok(a)
    } else {
        Err(ApiError::forbidden(
            "only the uploader or an administrator may do this",
        ))
    }
}

pub(crate) fn refuse_unready(a: &Attachment) -> ApiResult<()> {
    match a.state {
        AttachmentState::ReadyForDownloadFromServerToClient => Ok(()),
        AttachmentState::ChecksumVerificationOnServerSideMismatch => Err(ApiError::conflict(
            "checksum-mismatch",
            "this attachment's bytes did not match their declared checksum; it cannot be downloaded",
        )),
        other => Err(ApiError::conflict("not-ready", format!("this attachment is {}", other.as_str()))),
    }
}

async fn serve_attachment(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    a: &Attachment,
    private: bool,
    as_attachment: bool,
) -> ApiResult<Response> {
    refuse_unready(a)?;
    let sha = a
        .sha256
        .as_deref()
        .ok_or_else(|| ApiError::internal("ready attachment without checksum"))?;
    serve(
        state,
        method,
        headers,
        Download {
            sha256: sha,
            size: a.size as u64,
            content_type: &a.content_type,
            file_name: &a.file_name,
            private,
            as_attachment,
            made_from: None,
        },
    )
    .await
}

pub async fn metadata(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let a = readable(&state, &caller, id).await?;
    let mut body = attachment_json(&a);
    crate::scan::annotate(&state, &mut body, a.sha256.as_deref()).await?;
    Ok(Json(body))
}

/// `GET /api/v1/attachments/{id}/{fileName}`: the name must be the attachment's. The downloads take
/// the `Request` last rather than `Method` and `HeaderMap`, which would copy every header.
pub async fn download_named(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(i64, String)>,
    request: Request,
) -> ApiResult<Response> {
    let a = readable_for_download(&state, &caller, id).await?;
    if a.file_name != name {
        return Err(ApiError::not_found("attachment"));
    }
    serve_attachment(&state, request.method(), request.headers(), &a, true, true).await
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    owned(&state, &caller, id).await?;
    // The blob's bytes go later, when the collector finds nothing else needs them.
    state.attachments.delete_attachment(id).await?;
    Ok(ok_body())
}

/// The public-link token of an attachment: 128 bits of HMAC-SHA256 over its id and link version.
fn link_token(state: &AppState, id: i64, version: i64) -> String {
    // new_from_slice accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.settings.link_key)
        .expect("HMAC takes any key length");
    mac.update(format!("hangar-public-link:{id}:{version}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// `GET /api/http/uploads/chat/public-url/{channel}/{message}/{id}`: makes the attachment public and
/// answers its absolute public URL as a JSON string.
pub async fn public_url(
    State(state): State<AppState>,
    caller: Caller,
    Path((channel, message, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let channel = visible_channel(&state, &caller, parse_channel_ref(&channel)?).await?;
    let message = crate::chat::channel_message(&state, &channel, &message).await?;
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request("bad-attachment", "an attachment id is a number"))?;
    if !state
        .attachments
        .is_linked_to_message(id, message.id)
        .await?
    {
        return Err(ApiError::not_found("attachment"));
    }
    let a = readable(&state, &caller, id).await?;
    refuse_unready(&a)?;
    caller.require_change(&state, &headers)?;
    let version = state.attachments.publish(a.id).await?;
    let token = link_token(&state, a.id, version);
    Ok(Json(json!(format!(
        "{}/d/{}?k={token}",
        state.settings.content_url(),
        a.id
    ))))
}

/// `DELETE /api/v1/attachments/{id}/public-link`: the link's token stops working at once.
pub async fn revoke_public_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let a = owned(&state, &caller, id).await?;
    state.attachments.revoke_public_link(a.id).await?;
    Ok(ok_body())
}

#[derive(Deserialize)]
pub struct LinkQuery {
    k: Option<String>,
}

/// The attachment a request names, as `/d/{id}` decides: with a public-link token (`k`), anyone
/// holding the attachment's valid token; otherwise a caller who may read it (no credentials at all
/// is a 401). Answers whether it is served privately (not through the public link).
pub(crate) async fn by_link_or_caller(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    id: &str,
    k: Option<&str>,
) -> ApiResult<(Attachment, bool)> {
    let id = id
        .parse::<i64>()
        .map_err(|_| ApiError::not_found("attachment"))?;
    if let Some(k) = k {
        let a = state
            .attachments
            .attachment_for_download(id)
            .await?
            .ok_or_else(|| ApiError::not_found("attachment"))?;
        let expected = link_token(state, a.id, a.link_version);
        let valid: bool = expected.as_bytes().ct_eq(k.as_bytes()).into();
        if !(a.public && valid) {
            return Err(ApiError::not_found("attachment"));
        }
        return Ok((a, false));
    }
    // Without a token the caller's own rights decide (and no credentials at all is a 401).
    let caller = caller.map_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED && e.code == "unauthenticated" {
            ApiError::unauthorized(
                "authentication required: log in, send a bearer token, or use a public link",
            )
        } else {
            e
        }
    })?;
    Ok((readable_for_download(state, &caller, id).await?, true))
}

/// `GET /d/{id}[?k=TOKEN]`: with a valid public-link token, anyone; otherwise a caller who may read it.
pub async fn download_link(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
    Query(query): Query<LinkQuery>,
    request: Request,
) -> ApiResult<Response> {
    let (a, private) = by_link_or_caller(&state, caller, &id, query.k.as_deref()).await?;
    serve_attachment(
        &state,
        request.method(),
        request.headers(),
        &a,
        private,
        false,
    )
    .await
}
