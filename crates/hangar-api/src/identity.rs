//! Members (created by an administrator) and personal tokens.

use crate::auth::{
    hash_password, login_keys, member_json, secret_json, session_cookie, validate_password,
    verify_password, AuthMethod, Caller,
};
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::throttle::Peer;
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use hangar_core::access::Scope;
use hangar_core::ids::{new_token, random_id, token_hash, valid_username};
use hangar_core::model::{PersonalToken, Role};
use hangar_core::now_ms;
use hangar_core::store::MemberUpdate;
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
) -> ApiResult<Response> {
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
    let requested = req
        .expires
        .or_else(|| state.settings.token_lifetime_ms.map(|ttl| now + ttl));
    let expires = match caller.token.as_ref().and_then(|t| t.expires_utc) {
        Some(limit) => Some(requested.map_or(limit, |e| e.min(limit))),
        None => requested,
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
        // Revoking the token this one is made with revokes this one too.
        made_with: caller.token.as_ref().map(|t| t.id),
    };
    state
        .identity
        .create_token(&record, &token_hash(&token))
        .await?;
    let mut body = token_json(&record);
    body["token"] = json!(token);
    Ok(secret_json(StatusCode::CREATED, body))
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberChange {
    display_name: Option<String>,
    role: Option<String>,
    /// `true` disables the member, `false` enables it again.
    disabled: Option<bool>,
    password: Option<String>,
}

fn check_display_name(display: &str) -> ApiResult<()> {
    if display.trim().is_empty()
        || display.chars().count() > 200
        || display.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "bad-display-name",
            "a display name has 1 to 200 printable characters",
        ));
    }
    Ok(())
}

async fn member_named(state: &AppState, username: &str) -> ApiResult<hangar_core::model::Member> {
    state
        .identity
        .member_by_username(username)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))
}

/// `PATCH /api/v1/members/{username}`: an administrator in person changes a member's display name
/// or role, disables or enables it again, or sets its password. Disabling and a new password end
/// every session of the member and revoke every token it holds or approved, in the same
/// transaction (SPEC §3); disabling or demoting the last active administrator is refused (409
/// `last-admin`).
pub async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Json(req): Json<MemberChange>,
) -> ApiResult<Json<Value>> {
    caller.require_admin_in_person()?;
    let member = member_named(&state, &username).await?;
    if req.disabled == Some(true) && member.id == caller.id() {
        return Err(ApiError::bad_request(
            "cannot-disable-self",
            "an administrator cannot disable their own account",
        ));
    }
    let role =
        match req.role.as_deref() {
            None => None,
            Some(r) => Some(Role::parse(r).ok_or_else(|| {
                ApiError::bad_request("bad-role", "role is \"admin\" or \"member\"")
            })?),
        };
    if let Some(display) = &req.display_name {
        check_display_name(display)?;
    }
    let password_hash = match req.password {
        Some(password) => {
            validate_password(&password)?;
            Some(hash_password(password).await?)
        }
        None => None,
    };
    let change = MemberUpdate {
        display_name: req.display_name,
        role,
        disabled: req.disabled,
        password_hash,
    };
    state.members.change_member(member.id, &change).await?;
    let changed = member_named(&state, &username).await?;
    Ok(Json(member_json(&changed)))
}

/// `DELETE /api/v1/members/{username}`: an administrator in person deletes a member. Its sessions
/// and tokens end at once; its files stay, owned by the installation (SPEC §3); its username is
/// free again. The last active administrator cannot be deleted (409 `last-admin`).
pub async fn delete_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin_in_person()?;
    let member = member_named(&state, &username).await?;
    if member.id == caller.id() {
        return Err(ApiError::bad_request(
            "cannot-delete-self",
            "an administrator cannot delete their own account",
        ));
    }
    state.members.delete_member(member.id).await?;
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    /// The new password (SPEC §3 names it `password`; `newPassword` is accepted too).
    #[serde(alias = "newPassword")]
    password: String,
}

/// `POST /api/v1/me/password`: a member changes its own password. A wrong current password is 403
/// `wrong-password` (and counts as a failed login for the throttle); every other session and every
/// token of the member ends, the calling session stays.
pub async fn change_own_password(
    State(state): State<AppState>,
    caller: Caller,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<PasswordChange>,
) -> ApiResult<Json<Value>> {
    if caller.app.is_some() {
        return Err(ApiError::forbidden(
            "a password is changed by the member in person, not through an application's token",
        ));
    }
    let username = caller.member.username.clone();
    let keys = login_keys(&state, &username, &peer);
    if let Err(throttled) = state.throttle.check(&keys, now_ms()).await? {
        return Err(throttled.into());
    }
    let (_, hash) = state
        .identity
        .member_credentials(&username)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account is disabled"))?;
    if !verify_password(req.current_password, hash).await? {
        tracing::warn!(
            username = %username.escape_debug(),
            client = %peer.text(),
            "wrong current password in a password change"
        );
        state.throttle.failed(&keys, now_ms()).await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong-password",
            "the current password is wrong",
        ));
    }
    validate_password(&req.password)?;
    let new_hash = hash_password(req.password).await?;
    let keep = match caller.method {
        AuthMethod::Session => session_cookie(&headers).map(token_hash),
        AuthMethod::Token => None,
    };
    state
        .members
        .change_own_password(caller.id(), &new_hash, keep.as_deref())
        .await?;
    Ok(ok_body())
}
