//! An application's GPG and SSH public keys.

use super::{change_item, limit_error, target, Need};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, patch, post};
use axum::Router;
use hangar_core::app_model::{GpgKey, ItemKind, SshKeyRecord};
use hangar_core::apps as rules;
use hangar_core::now_ms;
use hangar_core::store::{AppItem, AppRecord, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/{app}/gpg-keys",
            post(add_gpg_key).get(gpg_keys),
        )
        .route(
            "/api/http/applications/{app}/gpg-keys/{fingerprint}",
            patch(revoke_gpg_key).delete(delete_gpg_key),
        )
        .route(
            "/api/http/applications/{app}/ssh-keys",
            post(add_ssh_key).get(ssh_keys),
        )
        .route(
            "/api/http/applications/{app}/ssh-keys/{fingerprint}",
            delete(delete_ssh_key),
        )
}

const KEY_LIMIT: i64 = 50;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewKey {
    public_key: String,
    comment: Option<String>,
}

fn check_comment(c: &Option<String>) -> ApiResult<String> {
    let c = c.clone().unwrap_or_default();
    if c.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "bad-comment",
            "a comment has at most 200 characters",
        ));
    }
    Ok(c)
}

async fn add_key<T: serde::Serialize>(
    state: &AppState,
    app: &AppRecord,
    kind: ItemKind,
    key: String,
    value: &T,
) -> ApiResult<()> {
    let item = AppItem::new(app.id, kind, "", key, value);
    match state.apps.insert_item(&item, Some(KEY_LIMIT)).await {
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
            "key-exists",
            "this key is already added",
        )),
        other => other.map_err(limit_error),
    }?;
    Ok(())
}

pub async fn add_gpg_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let comment = check_comment(&req.comment)?;
    if req.public_key.len() > 64 * 1024 {
        return Err(ApiError::bad_request(
            "bad-key",
            "a key block has at most 64 KiB",
        ));
    }
    let fingerprint = rules::gpg_fingerprint(&req.public_key)
        .map_err(|e| ApiError::bad_request("bad-key", e.to_string()))?;
    let key = GpgKey {
        fingerprint: fingerprint.clone(),
        comment,
        public_key: req.public_key,
        created_utc: now_ms(),
        revoked: false,
        revoke_comment: None,
    };
    add_key(&state, &app, ItemKind::GpgKey, fingerprint, &key).await?;
    Ok((StatusCode::CREATED, Json(json!(key))))
}

pub async fn gpg_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), ItemKind::GpgKey, None, None, 1000)
        .await?;
    let keys = items
        .iter()
        .map(AppItem::get::<GpgKey>)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!(keys)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    comment: Option<String>,
}

pub async fn revoke_gpg_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, fingerprint)): Path<(String, String)>,
    Json(req): Json<RevokeKey>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let comment = check_comment(&req.comment)?;
    let fingerprint = fingerprint.to_ascii_uppercase();
    let missing = || ApiError::not_found("GPG key");
    let revoke = |key: &mut GpgKey| {
        key.revoked = true;
        key.revoke_comment = Some(comment.clone());
        Ok(())
    };
    let kind = ItemKind::GpgKey;
    change_item(&state, app.id, kind, "", &fingerprint, missing, revoke).await?;
    Ok(ok_body())
}

pub async fn delete_gpg_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, fingerprint)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    if !state
        .apps
        .delete_item(
            app.id,
            ItemKind::GpgKey,
            "",
            &fingerprint.to_ascii_uppercase(),
        )
        .await?
    {
        return Err(ApiError::not_found("GPG key"));
    }
    Ok(ok_body())
}

pub async fn add_ssh_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let comment = check_comment(&req.comment)?;
    if req.public_key.len() > 16 * 1024 {
        return Err(ApiError::bad_request(
            "bad-key",
            "an SSH key has at most 16 KiB",
        ));
    }
    let key = rules::parse_ssh_key(&req.public_key)
        .map_err(|e| ApiError::bad_request("bad-key", e.to_string()))?;
    let record = SshKeyRecord {
        fingerprint: key.fingerprint.clone(),
        key_type: key.key_type,
        comment: if comment.is_empty() {
            key.comment
        } else {
            comment
        },
        public_key: req.public_key.trim().to_string(),
        created_utc: now_ms(),
    };
    add_key(&state, &app, ItemKind::SshKey, key.fingerprint, &record).await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}

pub async fn ssh_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), ItemKind::SshKey, None, None, 1000)
        .await?;
    let keys = items
        .iter()
        .map(AppItem::get::<SshKeyRecord>)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!(keys)))
}

pub async fn delete_ssh_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, fingerprint)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    // Accept the fingerprint with or without its `SHA256:` prefix.
    let key = if fingerprint.starts_with("SHA256:") {
        fingerprint
    } else {
        format!("SHA256:{fingerprint}")
    };
    if !state
        .apps
        .delete_item(app.id, ItemKind::SshKey, "", &key)
        .await?
    {
        return Err(ApiError::not_found("SSH key"));
    }
    Ok(ok_body())
}
