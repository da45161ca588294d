//! Spaces: created and managed by administrators, read by their members.

use crate::access::visible_space;
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hangar_core::ids::{random_space_id, valid_space_id};
use hangar_core::model::Space;
use serde::Deserialize;
use serde_json::{json, Map, Value};

fn space_json(s: &Space) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "quotaBytes": s.quota_bytes,
        "usedBytes": s.used_bytes,
        "createdUtc": s.created_utc,
        "members": s.members,
    })
}

fn validate_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad-name",
            "a name has 1 to 200 printable characters",
        ));
    }
    Ok(())
}

fn validate_quota(q: Option<i64>) -> ApiResult<()> {
    match q {
        Some(q) if q < 0 => Err(ApiError::bad_request(
            "bad-quota",
            "quotaBytes is a non-negative number of bytes",
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSpace {
    id: Option<String>,
    name: String,
    quota_bytes: Option<i64>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewSpace>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin()?;
    validate_name(&req.name)?;
    validate_quota(req.quota_bytes)?;
    let id = match req.id {
        Some(id) if valid_space_id(&id) => id,
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad-space-id",
                "a space id has 1 to 64 letters, digits, '_' or '-'",
            ))
        }
        None => random_space_id(),
    };
    let quota = req.quota_bytes.or(state.settings.default_space_quota);
    let space = state
        .spaces
        .create_space(&id, req.name.trim(), quota)
        .await
        .map_err(|e| match e {
            hangar_core::StoreError::Conflict(_) => {
                ApiError::conflict("already-exists", format!("space {id} already exists"))
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(space_json(&space))))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let filter = if caller.is_admin() {
        None
    } else {
        Some(caller.id())
    };
    let spaces = state.spaces.list_spaces(filter).await?;
    Ok(Json(
        json!({ "data": spaces.iter().map(space_json).collect::<Vec<_>>() }),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(space_json(
        &visible_space(&state, &caller, &id).await?,
    )))
}

/// `{name?, quotaBytes?}`; `quotaBytes: null` removes the quota.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    if let Some(unknown) = req.keys().find(|k| *k != "name" && *k != "quotaBytes") {
        return Err(ApiError::bad_request(
            "bad-field",
            format!("unknown field {unknown:?}"),
        ));
    }
    let name = match req.get("name") {
        None => None,
        Some(Value::String(n)) => {
            validate_name(n)?;
            Some(n.trim().to_string())
        }
        Some(_) => return Err(ApiError::bad_request("bad-name", "name is a string")),
    };
    let quota = match req.get("quotaBytes") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => {
            let q = v.as_i64().ok_or_else(|| {
                ApiError::bad_request("bad-quota", "quotaBytes is a number of bytes or null")
            })?;
            validate_quota(Some(q))?;
            Some(Some(q))
        }
    };
    let space = state
        .spaces
        .update_space(&id, name.as_deref(), quota)
        .await?
        .ok_or_else(|| ApiError::not_found("space"))?;
    Ok(Json(space_json(&space)))
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    if !state.spaces.delete_space(&id).await? {
        return Err(ApiError::not_found("space"));
    }
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    username: String,
}

pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<MemberRef>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    state
        .spaces
        .space(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("space"))?;
    let member = state
        .identity
        .member_by_username(&req.username)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown-member",
                format!("no member is named {:?}", req.username),
            )
        })?;
    state.spaces.add_space_member(&id, member.id).await?;
    let space = state
        .spaces
        .space(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("space"))?;
    Ok(Json(space_json(&space)))
}

pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let member = state
        .identity
        .member_by_username(&username)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    if state.spaces.remove_space_member(&id, member.id).await? {
        Ok(ok_body())
    } else {
        Err(ApiError::not_found("space member"))
    }
}
