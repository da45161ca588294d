//! Parameters: keyed strings an application keeps for itself, or per member (profile parameters).

use super::limit_error;
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use hangar_core::app_model::ItemKind;
use hangar_core::store::AppItem;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/http/applications/parameters", get(parameters))
        .route(
            "/api/http/applications/parameters/profile",
            get(profile_parameters),
        )
        .route(
            "/api/http/applications/parameters/profile/{key}",
            get(profile_parameter)
                .patch(put_profile_parameter)
                .delete(delete_profile_parameter),
        )
        .route(
            "/api/http/applications/parameters/{key}",
            get(parameter).patch(put_parameter).delete(delete_parameter),
        )
}

pub const PARAMETER_LIMIT: i64 = 100;

const PARAMETER_KEY_MAX: usize = 64;

const PARAMETER_VALUE_MAX: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterValue {
    value: String,
}

/// The (application, scope) parameters live in: the app's own (app tokens only) or a profile's
/// (member tokens issued to the app only).
fn parameter_scope(caller: &Caller, profile: bool) -> ApiResult<(i64, String)> {
    let app = caller
        .app
        .as_ref()
        .filter(|a| a.user_token == profile)
        .ok_or_else(|| {
            ApiError::forbidden(if profile {
                "profile parameters need a member's token issued to an application"
            } else {
                "application parameters need an application token, not a member's"
            })
        })?;
    Ok((
        app.app_id,
        if profile {
            caller.id().to_string()
        } else {
            String::new()
        },
    ))
}

fn parameter_kind(profile: bool) -> ItemKind {
    if profile {
        ItemKind::ProfileParameter
    } else {
        ItemKind::Parameter
    }
}

fn check_key(key: &str) -> ApiResult<()> {
    if key.is_empty() || key.chars().count() > PARAMETER_KEY_MAX {
        return Err(ApiError::bad_request(
            "bad-key",
            format!("a parameter key has 1 to {PARAMETER_KEY_MAX} characters"),
        ));
    }
    Ok(())
}

async fn list_parameters(
    state: &AppState,
    caller: &Caller,
    profile: bool,
) -> ApiResult<Json<Value>> {
    let (app, scope) = parameter_scope(caller, profile)?;
    let items = state
        .apps
        .items(
            Some(app),
            parameter_kind(profile),
            Some(&scope),
            None,
            PARAMETER_LIMIT + 1,
        )
        .await?;
    Ok(Json(json!(items
        .iter()
        .map(|i| json!({"key": i.key, "value": i.value}))
        .collect::<Vec<_>>())))
}

async fn get_parameter(
    state: &AppState,
    caller: &Caller,
    key: &str,
    profile: bool,
) -> ApiResult<Json<Value>> {
    let (app, scope) = parameter_scope(caller, profile)?;
    let item = state
        .apps
        .item(app, parameter_kind(profile), &scope, key)
        .await?
        .ok_or_else(|| ApiError::not_found("parameter"))?;
    Ok(Json(item.value))
}

async fn set_parameter(
    state: &AppState,
    caller: &Caller,
    key: &str,
    value: String,
    profile: bool,
) -> ApiResult<Json<Value>> {
    let (app, scope) = parameter_scope(caller, profile)?;
    check_key(key)?;
    if value.chars().count() > PARAMETER_VALUE_MAX {
        return Err(ApiError::bad_request(
            "bad-value",
            format!("a parameter value has at most {PARAMETER_VALUE_MAX} characters"),
        ));
    }
    let item = AppItem::new(app, parameter_kind(profile), scope, key, &value);
    state
        .apps
        .put_item(&item, Some(PARAMETER_LIMIT))
        .await
        .map_err(limit_error)?;
    Ok(ok_body())
}

async fn remove_parameter(
    state: &AppState,
    caller: &Caller,
    key: &str,
    profile: bool,
) -> ApiResult<Json<Value>> {
    let (app, scope) = parameter_scope(caller, profile)?;
    if !state
        .apps
        .delete_item(app, parameter_kind(profile), &scope, key)
        .await?
    {
        return Err(ApiError::not_found("parameter"));
    }
    Ok(ok_body())
}

pub async fn parameters(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    list_parameters(&state, &caller, false).await
}

pub async fn parameter(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    get_parameter(&state, &caller, &key, false).await
}

pub async fn put_parameter(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Json(req): Json<ParameterValue>,
) -> ApiResult<Json<Value>> {
    set_parameter(&state, &caller, &key, req.value, false).await
}

pub async fn delete_parameter(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    remove_parameter(&state, &caller, &key, false).await
}

pub async fn profile_parameters(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    list_parameters(&state, &caller, true).await
}

pub async fn profile_parameter(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    get_parameter(&state, &caller, &key, true).await
}

pub async fn put_profile_parameter(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    Json(req): Json<ParameterValue>,
) -> ApiResult<Json<Value>> {
    set_parameter(&state, &caller, &key, req.value, true).await
}

pub async fn delete_profile_parameter(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    remove_parameter(&state, &caller, &key, true).await
}
