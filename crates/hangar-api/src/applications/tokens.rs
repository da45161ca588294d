//! An application's permanent tokens, and the token scopes and lifetimes the OAuth endpoints share.

use super::{page_bounds, target, Need, PageQuery};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, patch, post};
use axum::Router;
use hangar_core::access::Scope;
use hangar_core::ids::{new_token, random_id, token_hash};
use hangar_core::now_ms;
use hangar_core::store::AppToken;
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/{app}/permanent-tokens",
            post(create_permanent_token).get(list_permanent_tokens),
        )
        .route(
            "/api/http/applications/{app}/permanent-tokens/current",
            delete(delete_current_permanent_token),
        )
        .route(
            "/api/http/applications/{app}/permanent-tokens/{token}",
            patch(update_permanent_token).delete(delete_permanent_token),
        )
}

/// How long an OAuth access token lives.
pub const ACCESS_TOKEN_TTL_MS: i64 = 10 * 60 * 1000;

/// `expires`: an RFC 3339 date-time or epoch milliseconds; null for none. Must be in the future.
fn parse_expiry(v: &Value) -> ApiResult<Option<i64>> {
    let ms = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request(
            "bad-expiry",
            "expires is an RFC 3339 date-time or epoch milliseconds",
        )
    })?;
    if ms <= now_ms() {
        return Err(ApiError::bad_request(
            "bad-expiry",
            "expires must be in the future",
        ));
    }
    Ok(Some(ms))
}

/// `**` (everything), `read`, or right codes separated by spaces, as it is stored.
pub fn parse_scope(s: &str) -> Option<String> {
    Scope::parse_requested(s).map(|scope| scope.to_text())
}

fn token_json(t: &AppToken) -> Value {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "scope": t.scope,
        "created": t.created_utc,
        "expires": t.expires_utc,
        "lastAccess": t.last_used_utc,
    })
}

fn token_name(v: Option<&Value>) -> ApiResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 100 => {
            Ok(Some(s.clone()))
        }
        _ => Err(ApiError::bad_request(
            "bad-name",
            "name has 1 to 100 characters",
        )),
    }
}

fn token_scope(v: Option<&Value>) -> ApiResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_scope(s).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "bad-scope",
                "scope is `**`, `read`, or right codes separated by spaces",
            )
        }),
        _ => Err(ApiError::bad_request("bad-scope", "scope must be a string")),
    }
}

pub async fn create_permanent_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<axum::response::Response> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    if let Some(k) = body
        .keys()
        .find(|k| !["name", "scope", "expires"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(
            "bad-field",
            format!("unknown field {k}"),
        ));
    }
    let name = token_name(body.get("name"))?
        .ok_or_else(|| ApiError::bad_request("bad-name", "name is required"))?;
    let scope = token_scope(body.get("scope"))?
        .ok_or_else(|| ApiError::bad_request("bad-scope", "scope is required"))?;
    let requested = parse_expiry(body.get("expires").unwrap_or(&Value::Null))?;
    // A token made with an application token (an OAuth access token, most of all) never outlives
    // it and is revoked with it (SPEC §3): its expiry is capped, and the store deletes it with its
    // maker.
    let maker = caller.app.as_ref();
    let expires = match maker.and_then(|m| m.token_expires_utc) {
        Some(limit) => Some(requested.map_or(limit, |e| e.min(limit))),
        None => requested,
    };
    let value = new_token();
    let token = AppToken {
        id: random_id(),
        app_id: app.id,
        kind: "permanent".into(),
        name,
        scope,
        member_id: None,
        expires_utc: expires,
        created_utc: now_ms(),
        last_used_utc: None,
        data: json!({}),
        made_with: maker.map(|m| m.token_id),
        // A member who mints a token vouches for it: it is revoked with the member's tokens.
        minted_by: caller.acting_app().is_none().then(|| caller.id()),
    };
    state
        .apps
        .create_app_token(&token, &token_hash(&value))
        .await?;
    let mut out = token_json(&token);
    out["token"] = json!(value);
    Ok(crate::auth::secret_json(StatusCode::CREATED, out))
}

pub async fn list_permanent_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Secrets).await?;
    let (skip, top) = page_bounds(q.skip.as_deref(), q.top)?;
    let all = state.apps.list_app_tokens(app.id, "permanent").await?;
    let data: Vec<Value> = all
        .iter()
        .skip(skip as usize)
        .take(top as usize)
        .map(token_json)
        .collect();
    Ok(Json(json!({
        "next": (skip as usize + data.len()).to_string(),
        "totalCount": all.len(),
        "data": data,
    })))
}

fn parse_token_id(s: &str) -> ApiResult<i64> {
    s.parse()
        .map_err(|_| ApiError::bad_request("bad-token-id", "a token id is a number"))
}

pub async fn update_permanent_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, token_id)): Path<(String, String)>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let token_id = parse_token_id(&token_id)?;
    if let Some(k) = body
        .keys()
        .find(|k| !["name", "scope", "expires"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(
            "bad-field",
            format!("unknown field {k}"),
        ));
    }
    let mut token = state
        .apps
        .list_app_tokens(app.id, "permanent")
        .await?
        .into_iter()
        .find(|t| t.id == token_id)
        .ok_or_else(|| ApiError::not_found("permanent token"))?;
    if let Some(name) = token_name(body.get("name"))? {
        token.name = name;
    }
    if let Some(scope) = token_scope(body.get("scope"))? {
        token.scope = scope;
    }
    if let Some(v) = body.get("expires") {
        token.expires_utc = parse_expiry(v)?;
    }
    if !state.apps.update_app_token(&token).await? {
        return Err(ApiError::not_found("permanent token"));
    }
    Ok(ok_body())
}

pub async fn delete_permanent_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, token_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let token_id = parse_token_id(&token_id)?;
    let is_permanent = state
        .apps
        .list_app_tokens(app.id, "permanent")
        .await?
        .iter()
        .any(|t| t.id == token_id);
    if !is_permanent || !state.apps.delete_app_token(app.id, token_id).await? {
        return Err(ApiError::not_found("permanent token"));
    }
    Ok(ok_body())
}

pub async fn delete_current_permanent_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let current = caller
        .app
        .as_ref()
        .filter(|a| a.app_id == app.id && a.token_kind == "permanent")
        .ok_or_else(|| {
            ApiError::bad_request(
                "not-a-permanent-token",
                "this call must be made with the application's permanent token it deletes",
            )
        })?;
    state
        .apps
        .delete_app_token(app.id, current.token_id)
        .await?;
    Ok(ok_body())
}
