//! Members (created by an administrator) and personal tokens.

use crate::auth::{hash_password, member_json, validate_password, Caller};
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hangar_core::access::Scope;
use hangar_core::ids::{new_token, random_id, token_hash, valid_username};
use hangar_core::model::{PersonalToken, Role};
use hangar_core::now_ms;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMember {
    username: String,
    password: String,
    display_name: Option<String>,
    role: Option<String>,
}

pub async fn create_member(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewMember>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require_admin_in_person()?;
    if !valid_username(&req.username) {
        return Err(ApiError::bad_request(
            "bad-username",
            "a username has 1 to 64 letters, digits, '.', '_' or '-'",
        ));
    }
    validate_password(&req.password)?;
    let role = match req.role.as_deref() {
        None => Role::Member,
        Some(r) => Role::parse(r)
            .ok_or_else(|| ApiError::bad_request("bad-role", "role is \"admin\" or \"member\""))?,
    };
    let display = req.display_name.unwrap_or_else(|| req.username.clone());
    if display.chars().count() > 200 || display.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad-display-name",
            "a display name has at most 200 printable characters",
        ));
    }
    let hash = hash_password(req.password).await?;
    let member = state
        .identity
        .create_member(&req.username, &hash, &display, role)
        .await
        .map_err(|e| match e {
            hangar_core::StoreError::Conflict(_) => ApiError::conflict(
                "already-exists",
                format!("the username {:?} is taken", req.username),
            ),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(member_json(&member))))
}

pub async fn list_members(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin_in_person()?;
    let members = state.identity.list_members().await?;
    Ok(Json(
        json!({ "data": members.iter().map(member_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scope: Option<String>,
    /// Expiry in epoch milliseconds.
    expires: Option<i64>,
}

fn token_json(t: &PersonalToken) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "scope": t.scope.to_text(),
        "expires": t.expires_utc,
        "createdUtc": t.created_utc,
        "lastUsedUtc": t.last_used_utc,
    })
}

pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // A token issued to an application must not turn itself into one that escapes its rights,
    // scope, expiry and revocation.
    if caller.app.is_some() {
        return Err(ApiError::forbidden(
            "personal tokens are made by members themselves, not through an application's token",
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "bad-name",
            "a token name has 1 to 100 characters",
        ));
    }
    let scope = match req.scope.as_deref() {
        None => Scope::All,
        Some(s) => Scope::parse_personal(s).ok_or_else(|| {
            ApiError::bad_request("bad-scope", "scope is \"**\" (everything) or \"read\"")
        })?,
    };
    let now = now_ms();
    if let Some(exp) = req.expires {
        if exp <= now {
            return Err(ApiError::bad_request(
                "bad-expiry",
                "expires must be in the future (epoch milliseconds)",
            ));
        }
    }
    // A token made with a token never outlives it (a leaked short-lived token must not mint a
    // permanent one).
    let expires = match caller.token.as_ref().and_then(|t| t.expires_utc) {
        Some(limit) => Some(req.expires.map_or(limit, |e| e.min(limit))),
        None => req.expires,
    };
    let token = new_token();
    let record = PersonalToken {
        id: random_id(),
        member_id: caller.id(),
        name: name.to_string(),
        scope,
        expires_utc: expires,
        created_utc: now,
        last_used_utc: None,
    };
    state
        .identity
        .create_token(&record, &token_hash(&token))
        .await?;
    let mut body = token_json(&record);
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn list_tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let tokens = state.identity.list_tokens(caller.id()).await?;
    Ok(Json(
        json!({ "data": tokens.iter().map(token_json).collect::<Vec<_>>() }),
    ))
}

pub async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    if state.identity.delete_token(caller.id(), id).await? {
        Ok(ok_body())
    } else {
        Err(ApiError::not_found("token"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    /// `true` disables the member (re-enabling is not offered yet: a disabled account stays so).
    disabled: Option<bool>,
    password: Option<String>,
}

/// `PATCH /api/v1/members/{username}`: an administrator in person disables a member or sets their
/// password; either ends every session of the member and revokes every token it holds or approved,
/// in the same transaction (SPEC §3).
pub async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Json(req): Json<MemberChange>,
) -> ApiResult<Json<Value>> {
    caller.require_admin_in_person()?;
    let member = state
        .identity
        .member_by_username(&username)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    if req.disabled == Some(false) {
        return Err(ApiError::bad_request(
            "not-supported",
            "re-enabling a disabled member is not supported yet",
        ));
    }
    if req.disabled == Some(true) && member.id == caller.id() {
        return Err(ApiError::bad_request(
            "cannot-disable-self",
            "an administrator cannot disable their own account",
        ));
    }
    if let Some(password) = req.password {
        validate_password(&password)?;
        let hash = hash_password(password).await?;
        state.members.reset_password(member.id, &hash).await?;
    }
    if req.disabled == Some(true) {
        state.members.disable_member(member.id).await?;
    }
    Ok(ok_body())
}
