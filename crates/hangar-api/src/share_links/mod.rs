//! Share links (SPEC §9.4): a member makes a link to an attachment or a storage file it may read,
//! with an optional expiry, password and download cap; anyone with the link downloads the file at
//! `/s/{token}` (`open`). Only the token's SHA-256 is stored; the URL is shown once, at creation.

mod open;
mod page;
mod request;

use crate::attachments::{readable, refuse_unready};
use crate::auth::{hash_password, secret_json, Caller};
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::storage::{file_entry, finish_direct_at, member_space};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use hangar_core::ids::{new_share_token, random_id, token_hash};
use hangar_core::model::{ShareLink, ShareTarget};
use hangar_core::now_ms;
use serde_json::{json, Value};

/// The share-link routes: management under `/api/v1/share-links`, downloads under `/s/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/share-links", post(create).get(list))
        .route("/api/v1/share-links/{id}", delete(revoke))
        .route(
            "/s/{token}",
            get(open::download).post(open::download_with_form),
        )
}

/// A link on the wire. `url` only at creation: the token is not kept.
fn link_json(state: &AppState, link: &ShareLink, token: Option<&str>) -> Value {
    let now = now_ms();
    let mut out = json!({
        "id": link.id,
        "expiresAt": link.expires_utc,
        "maxDownloads": link.max_downloads,
        "downloads": link.downloads,
        "hasPassword": link.password_hash.is_some(),
        "createdUtc": link.created_utc,
        "creatorId": link.creator_id,
        "active": !link.expired(now) && !link.used_up(),
    });
    match &link.target {
        ShareTarget::Attachment(id) => out["attachmentId"] = json!(id),
        ShareTarget::StorageFile { space_id, path } => {
            out["spaceId"] = json!(space_id);
            out["pathId"] = json!(path.id());
            out["path"] = json!(path.as_str());
        }
    }
    if let Some(token) = token {
        out["url"] = json!(format!("{}/s/{token}", state.settings.content_url()));
    }
    out
}

/// 404 (or 403 for an application without the right) unless the caller may read the target now.
async fn require_readable(
    state: &AppState,
    caller: &Caller,
    target: &ShareTarget,
) -> ApiResult<()> {
    match target {
        ShareTarget::Attachment(id) => refuse_unready(&readable(state, caller, *id).await?),
        ShareTarget::StorageFile { space_id, path } => {
            member_space(state, caller, space_id, false).await?;
            finish_direct_at(state, space_id, path).await;
            file_entry(state, space_id, path).await.map(drop)
        }
    }
}

/// `POST /api/v1/share-links`: `{attachmentId}` or `{spaceId, pathId}`, with optional `expiresAt`,
/// `password` and `maxDownloads`; 201 with the link and its URL.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let now = now_ms();
    let request = request::parse(&body, now)?;
    require_readable(&state, &caller, &request.target).await?;
    let password_hash = match request.password {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    let link = ShareLink {
        id: random_id(),
        creator_id: caller.id(),
        creator_is_admin: caller.is_admin(),
        creator_is_app: caller.acting_app().is_some(),
        target: request.target,
        password_hash,
        expires_utc: request.expires_at,
        max_downloads: request.max_downloads,
        downloads: 0,
        created_utc: now,
    };
    let token = new_share_token();
    state
        .share_links
        .create_share_link(&link, &token_hash(&token))
        .await?;
    Ok(secret_json(
        StatusCode::CREATED,
        link_json(&state, &link, Some(&token)),
    ))
}

/// `GET /api/v1/share-links`: the caller's links (an administrator's: every link), newest first.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let creator = (!caller.is_admin()).then(|| caller.id());
    let links = state.share_links.list_share_links(creator).await?;
    Ok(Json(json!({
        "data": links.iter().map(|l| link_json(&state, l, None)).collect::<Vec<_>>(),
    })))
}

/// `DELETE /api/v1/share-links/{id}`: its creator or an administrator revokes it at once. For
/// anyone else the link does not exist (404).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::not_found("share link");
    let link = state
        .share_links
        .share_link(id)
        .await?
        .filter(|l| l.creator_id == caller.id() || caller.is_admin())
        .ok_or_else(not_found)?;
    if !state.share_links.delete_share_link(link.id).await? {
        return Err(not_found());
    }
    Ok(ok_body())
}
