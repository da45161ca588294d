//! Rights: those an application requires, those granted to it per context (and the contexts and
//! applications that follow from them), requests for more, and the checks other API families make.

use super::{app_json_for, may_manage, modify_item, parse_context, target, ContextQuery, Need};
use crate::access::sees_context;
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, patch};
use axum::Router;
use hangar_core::app_model::{GrantStatus, ItemKind, RightGrant};
use hangar_core::apps::{self as rules, Context, RightCode};
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

/// The right named `code`, if it applies in `ctx`.
fn check_right(code: &str, ctx: &Context) -> ApiResult<RightCode> {
    let right = rules::right(code)
        .ok_or_else(|| ApiError::bad_request("bad-right", format!("unknown right {code:?}")))?;
    if !ctx.admits(right) {
        return Err(ApiError::bad_request(
            "bad-right",
            format!("{code} does not apply in a {} context", ctx.kind_name()),
        ));
    }
    Ok(right.id)
}

fn right_json(code: &str, status: Option<GrantStatus>) -> Value {
    let name = rules::right(code).map_or(code, |r| r.name);
    match status {
        Some(s) => json!({"rightCode": code, "name": name, "status": s.as_str()}),
        None => json!({"rightCode": code, "name": name}),
    }
}

/// The granted rights among `items` (rights of one or more contexts).
fn granted(items: &[AppItem]) -> ApiResult<Vec<&AppItem>> {
    let mut out = Vec::new();
    for i in items {
        if i.get::<RightGrant>()?.status == GrantStatus::Granted {
            out.push(i);
        }
    }
    Ok(out)
}

pub async fn required_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), ItemKind::RequiredRight, None, None, 1000)
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
        let item = AppItem::new(app.id, ItemKind::RequiredRight, "", code, &true);
        state.apps.put_item(&item, None).await?;
    }
    for code in &req.right_codes_to_remove {
        state
            .apps
            .delete_item(app.id, ItemKind::RequiredRight, "", code)
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
        .items(Some(app_id), ItemKind::Right, Some(ctx), None, 1000)
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
    let mut out = Vec::new();
    for i in &items {
        out.push(right_json(&i.key, Some(i.get::<RightGrant>()?.status)));
    }
    Ok(Json(json!(out)))
}

async fn set_right(
    state: &AppState,
    app_id: i64,
    ctx: &Context,
    right: RightCode,
    status: GrantStatus,
) -> ApiResult<()> {
    let grant = RightGrant { status };
    let item = AppItem::new(app_id, ItemKind::Right, &ctx.text, right.as_str(), &grant);
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
    let mut changes = Vec::new();
    for r in &req.rights {
        let right = check_right(&r.right_code, &ctx)?;
        let status = GrantStatus::parse(&r.status).ok_or_else(|| {
            ApiError::bad_request("bad-status", "status is GRANTED, DENIED or PENDING")
        })?;
        // Never through a token issued to an application: an app must not grant itself rights.
        if status != GrantStatus::Pending && (!caller.is_admin() || caller.app.is_some()) {
            return Err(ApiError::forbidden(
                "only an administrator may grant or deny rights",
            ));
        }
        changes.push((right, status));
    }
    // Each right is set whole without being read first (an upsert, which bumps its version): no lock
    // and no compare-and-set needed, the last change wins, and a concurrent `request_rights_in`
    // retries on the new version instead of overwriting it.
    for (right, status) in changes {
        set_right(&state, app.id, &ctx, right, status).await?;
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
        .delete_items(app.id, ItemKind::Right, Some(&ctx.text))
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
    let rights = req
        .right_codes
        .iter()
        .map(|c| check_right(c, &ctx))
        .collect::<ApiResult<Vec<_>>>()?;
    request_rights_in(&state, app.id, &ctx, &rights).await?;
    Ok(ok_body())
}

/// Marks each right not yet granted as requested (PENDING) in the context.
pub async fn request_rights_in(
    state: &AppState,
    app_id: i64,
    ctx: &Context,
    rights: &[RightCode],
) -> ApiResult<()> {
    for right in rights {
        // Compare-and-set: a right granted meanwhile, by another request or process, stays granted.
        let code = right.as_str();
        modify_item(state, app_id, ItemKind::Right, &ctx.text, code, |current| {
            let granted = current.is_some_and(|g: RightGrant| g.status == GrantStatus::Granted);
            Ok((!granted).then_some(RightGrant {
                status: GrantStatus::Pending,
            }))
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
        .items(Some(app.id), ItemKind::Right, None, None, 10_000)
        .await?;
    let manage = may_manage(&caller, &app);
    let mut contexts: Vec<Value> = Vec::new();
    let mut last = None;
    for i in granted(&items)? {
        if last.as_deref() == Some(i.scope.as_str()) {
            continue;
        }
        last = Some(i.scope.clone());
        let ctx = Context::parse(&i.scope).unwrap_or_else(Context::global);
        // Those who do not manage the application see only the places they can see themselves.
        if !manage && !sees_context(&state, &caller, &ctx).await? {
            continue;
        }
        contexts.push(json!({"contextIdentifier": i.scope, "type": ctx.kind_name()}));
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
        .items(None, ItemKind::Right, Some(&ctx.text), None, 10_000)
        .await?;
    let mut ids: Vec<i64> = granted(&items)?.iter().map(|i| i.app_id).collect();
    ids.dedup();
    if let Some(me) = caller.acting_app() {
        ids.retain(|id| *id == me.app_id);
    }
    let mut apps = Vec::new();
    for id in ids {
        if let Some(app) = state.apps.app(id).await?.filter(|a| !a.archived) {
            apps.push(app_json_for(&caller, &app));
        }
    }
    Ok(Json(json!(apps)))
}
