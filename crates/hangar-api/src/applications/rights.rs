//! Rights: those an application requires, those granted to it per context (and the contexts and
//! applications that follow from them), requests for more, and the checks other API families make.

use super::{app_json, modify_item, parse_context, target, ContextQuery, Need};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, patch};
use axum::Router;
use hangar_core::apps::{self as rules, Context};
use hangar_core::now_ms;
use hangar_core::store::AppItem;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/authorizations/authorized-applications",
            get(authorized_applications),
        )
        .route(
            "/api/http/applications/{app}/authorizations/authorized-contexts",
            get(authorized_contexts),
        )
        .route(
            "/api/http/applications/{app}/authorizations/authorized-rights",
            get(authorized_rights)
                .patch(update_authorized_rights)
                .delete(delete_authorized_rights),
        )
        .route(
            "/api/http/applications/{app}/authorizations/authorized-rights/request-rights",
            patch(request_rights),
        )
        .route(
            "/api/http/applications/{app}/authorizations/required-rights",
            get(required_rights).patch(update_required_rights),
        )
}

fn check_right(code: &str, ctx: &Context) -> ApiResult<&'static rules::Right> {
    let right = rules::right(code)
        .ok_or_else(|| ApiError::bad_request("bad-right", format!("unknown right {code:?}")))?;
    if !ctx.admits(right) {
        return Err(ApiError::bad_request(
            "bad-right",
            format!("{code} does not apply in a {} context", ctx.kind_name()),
        ));
    }
    Ok(right)
}

fn right_json(code: &str, status: Option<&str>) -> Value {
    let name = rules::right(code).map_or(code, |r| r.name);
    match status {
        Some(s) => json!({"rightCode": code, "name": name, "status": s}),
        None => json!({"rightCode": code, "name": name}),
    }
}

pub async fn required_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), "required-right", None, None, 1000)
        .await?;
    Ok(Json(json!(items
        .iter()
        .map(|i| right_json(&i.key, None))
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequiredRightsChange {
    #[serde(default)]
    right_codes_to_add: Vec<String>,
    #[serde(default)]
    right_codes_to_remove: Vec<String>,
}

pub async fn update_required_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<RequiredRightsChange>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    for code in req
        .right_codes_to_add
        .iter()
        .chain(&req.right_codes_to_remove)
    {
        check_right(code, &Context::global())?;
    }
    for code in &req.right_codes_to_add {
        let item = AppItem {
            app_id: app.id,
            kind: "required-right".into(),
            scope: String::new(),
            key: code.clone(),
            value: json!(true),
            created_utc: now_ms(),
            version: 0,
        };
        state.apps.put_item(&item, None).await?;
    }
    for code in &req.right_codes_to_remove {
        state
            .apps
            .delete_item(app.id, "required-right", "", code)
            .await?;
    }
    Ok(ok_body())
}

fn required_context(q: &ContextQuery) -> ApiResult<Context> {
    parse_context(
        q.context_identifier
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("bad-context", "contextIdentifier is required"))?,
    )
}

async fn rights_in(state: &AppState, app_id: i64, ctx: &str) -> ApiResult<Vec<AppItem>> {
    Ok(state
        .apps
        .items(Some(app_id), "right", Some(ctx), None, 1000)
        .await?)
}

pub async fn authorized_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<ContextQuery>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let ctx = required_context(&q)?;
    let items = rights_in(&state, app.id, &ctx.text).await?;
    Ok(Json(json!(items
        .iter()
        .map(|i| right_json(&i.key, i.value.get("status").and_then(Value::as_str)))
        .collect::<Vec<_>>())))
}

async fn set_right(
    state: &AppState,
    app_id: i64,
    ctx: &Context,
    code: &str,
    status: &str,
) -> ApiResult<()> {
    let item = AppItem {
        app_id,
        kind: "right".into(),
        scope: ctx.text.clone(),
        key: code.to_string(),
        value: json!({"status": status}),
        created_utc: now_ms(),
        version: 0,
    };
    state.apps.put_item(&item, None).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RightStatus {
    right_code: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RightsChange {
    context_identifier: String,
    rights: Vec<RightStatus>,
}

pub async fn update_authorized_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<RightsChange>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let ctx = parse_context(&req.context_identifier)?;
    for r in &req.rights {
        check_right(&r.right_code, &ctx)?;
        if !["GRANTED", "DENIED", "PENDING"].contains(&r.status.as_str()) {
            return Err(ApiError::bad_request(
                "bad-status",
                "status is GRANTED, DENIED or PENDING",
            ));
        }
        // Never through a token issued to an application: an app must not grant itself rights.
        if r.status != "PENDING" && (!caller.is_admin() || caller.app.is_some()) {
            return Err(ApiError::forbidden(
                "only an administrator may grant or deny rights",
            ));
        }
    }
    // Each right is set whole without being read first (an upsert, which bumps its version): no lock
    // and no compare-and-set needed, the last change wins, and a concurrent `request_rights_in`
    // retries on the new version instead of overwriting it.
    for r in &req.rights {
        set_right(&state, app.id, &ctx, &r.right_code, &r.status).await?;
    }
    Ok(ok_body())
}

pub async fn delete_authorized_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<ContextQuery>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let ctx = required_context(&q)?;
    state
        .apps
        .delete_items(app.id, "right", Some(&ctx.text))
        .await?;
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RightsRequest {
    context_identifier: String,
    right_codes: Vec<String>,
}

pub async fn request_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<RightsRequest>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let ctx = parse_context(&req.context_identifier)?;
    request_rights_in(&state, app.id, &ctx, &req.right_codes).await?;
    Ok(ok_body())
}

/// Marks each right not yet granted as requested (PENDING) in the context.
pub async fn request_rights_in(
    state: &AppState,
    app_id: i64,
    ctx: &Context,
    codes: &[String],
) -> ApiResult<()> {
    for code in codes {
        check_right(code, ctx)?;
    }
    for code in codes {
        // Compare-and-set: a right granted meanwhile, by another request or process, stays granted.
        modify_item(state, app_id, "right", &ctx.text, code, |current| {
            let granted = current
                .is_some_and(|i| i.value.get("status").and_then(Value::as_str) == Some("GRANTED"));
            Ok((!granted).then(|| json!({"status": "PENDING"})))
        })
        .await?;
    }
    Ok(())
}

pub async fn authorized_contexts(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), "right", None, None, 10_000)
        .await?;
    let mut contexts: Vec<Value> = Vec::new();
    let mut last = None;
    for i in items
        .iter()
        .filter(|i| i.value.get("status").and_then(Value::as_str) == Some("GRANTED"))
    {
        if last.as_deref() != Some(i.scope.as_str()) {
            let kind = Context::parse(&i.scope).map_or("global", |c| c.kind_name());
            contexts.push(json!({"contextIdentifier": i.scope, "type": kind}));
            last = Some(i.scope.clone());
        }
    }
    Ok(Json(json!(contexts)))
}

pub async fn authorized_applications(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ContextQuery>,
) -> ApiResult<Json<Value>> {
    let ctx = required_context(&q)?;
    let items = state
        .apps
        .items(None, "right", Some(&ctx.text), None, 10_000)
        .await?;
    let mut ids: Vec<i64> = items
        .iter()
        .filter(|i| i.value.get("status").and_then(Value::as_str) == Some("GRANTED"))
        .map(|i| i.app_id)
        .collect();
    ids.dedup();
    if let Some(me) = caller.acting_app() {
        ids.retain(|id| *id == me.app_id);
    }
    let mut apps = Vec::new();
    for id in ids {
        if let Some(app) = state.apps.app(id).await?.filter(|a| !a.archived) {
            apps.push(app_json(&app));
        }
    }
    Ok(Json(json!(apps)))
}
