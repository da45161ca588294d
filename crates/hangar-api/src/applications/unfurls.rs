//! Unfurls: the domains and link patterns an application declares and an administrator approves,
//! the queue of links to preview, the previews posted back, and requests for external auth.

use super::{calling_app, change_item, limit_error, modify_item, target, Need};
use crate::access::require_app_right;
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::Router;
use hangar_core::app_model::{
    Declaration, ExternalAuthRequest, ItemKind, UnfurlContent as Preview, UnfurlQueueItem, Verdict,
};
use hangar_core::app_ops::queue_key;
use hangar_core::apps::{self as rules, Context, RightCode};
use hangar_core::now_ms;
use hangar_core::store::{AppItem, AppRecord};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/unfurls/domains",
            patch(update_unfurl_domains),
        )
        .route(
            "/api/http/applications/unfurls/patterns",
            patch(update_unfurl_patterns),
        )
        .route("/api/http/applications/unfurls/queue", get(unfurl_queue))
        .route(
            "/api/http/applications/unfurls/queue/content",
            post(post_unfurl_content),
        )
        .route(
            "/api/http/applications/unfurls/queue/request-external-auth",
            post(request_external_auth),
        )
        .route(
            "/api/http/applications/unfurls/queue/reset-external-auth-requests",
            post(reset_external_auth),
        )
        .route(
            "/api/http/applications/{app}/unfurl-domains/authorize",
            post(authorize_unfurl_domains),
        )
        .route(
            "/api/http/applications/{app}/unfurl-domains",
            get(unfurl_domains),
        )
        .route(
            "/api/http/applications/{app}/unfurl-patterns/authorize",
            post(authorize_unfurl_patterns),
        )
        .route(
            "/api/http/applications/{app}/unfurl-patterns",
            get(unfurl_patterns),
        )
}

const DOMAIN_LIMIT: usize = 100;

/// 403 unless the caller, when it is an application acting as itself, may provide link previews.
async fn require_unfurls(state: &AppState, caller: &Caller) -> ApiResult<()> {
    let provides = RightCode::ProvideUnfurls;
    require_app_right(state, caller, provides, &Context::global()).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domains {
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patterns {
    patterns: Vec<String>,
}

fn valid_pattern(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b))
}

/// Replaces the application's declared domains or patterns, keeping an administrator's verdict on
/// the ones it declared before.
async fn declare(
    state: &AppState,
    app: &AppRecord,
    kind: ItemKind,
    values: Vec<String>,
) -> ApiResult<()> {
    if values.len() > DOMAIN_LIMIT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limits-reached",
            format!("at most {DOMAIN_LIMIT} entries"),
        ));
    }
    let existing = state
        .apps
        .items(Some(app.id), kind, None, None, 1000)
        .await?;
    for old in &existing {
        if !values.contains(&old.key) {
            state.apps.delete_item(app.id, kind, "", &old.key).await?;
        }
    }
    // Each new one is created only if it is still absent, so a verdict given on one declared by a
    // concurrent call meanwhile stays. (Two declarations by the same application at once apply key
    // by key: the set as a whole is not replaced atomically.)
    for v in values {
        if existing.iter().any(|e| e.key == v) {
            continue;
        }
        modify_item(
            state,
            app.id,
            kind,
            "",
            &v,
            |current: Option<Declaration>| {
                Ok(current.is_none().then_some(Declaration {
                    status: Verdict::Pending,
                }))
            },
        )
        .await?;
    }
    Ok(())
}

pub async fn update_unfurl_domains(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<Domains>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    let domains: Vec<String> = req
        .domains
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if let Some(bad) = domains.iter().find(|d| !rules::valid_domain(d)) {
        return Err(ApiError::bad_request(
            "bad-domain",
            format!("{bad:?} is not a domain name"),
        ));
    }
    declare(&state, &app, ItemKind::UnfurlDomain, domains).await?;
    Ok(ok_body())
}

pub async fn update_unfurl_patterns(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<Patterns>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    if let Some(bad) = req.patterns.iter().find(|p| !valid_pattern(p)) {
        return Err(ApiError::bad_request(
            "bad-pattern",
            format!("{bad:?} is not an external id prefix (letters, digits, `-_:`, at most 64)"),
        ));
    }
    declare(&state, &app, ItemKind::UnfurlPattern, req.patterns).await?;
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorize {
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    approve: bool,
}

async fn authorize(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    kind: ItemKind,
    values: &[String],
) -> ApiResult<AppRecord> {
    let app = target(state, caller, ident, Need::Update).await?;
    if !caller.is_admin() || caller.app.is_some() {
        return Err(ApiError::forbidden(
            "only an administrator may authorize unfurls",
        ));
    }
    for v in values {
        if state.apps.item(app.id, kind, "", v).await?.is_none() {
            return Err(not_declared(v));
        }
    }
    Ok(app)
}

fn not_declared(value: &str) -> ApiError {
    ApiError::bad_request(
        "not-declared",
        format!("the application has not declared {value:?}"),
    )
}

pub async fn authorize_unfurl_domains(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<Authorize>,
) -> ApiResult<Json<Value>> {
    let domains: Vec<String> = req
        .domains
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    let app = authorize(&state, &caller, &ident, ItemKind::UnfurlDomain, &domains).await?;
    for d in domains {
        set_verdict(&state, app.id, ItemKind::UnfurlDomain, &d, req.approve).await?;
    }
    Ok(ok_body())
}

pub async fn authorize_unfurl_patterns(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<Authorize>,
) -> ApiResult<Json<Value>> {
    let app = authorize(
        &state,
        &caller,
        &ident,
        ItemKind::UnfurlPattern,
        &req.patterns,
    )
    .await?;
    for p in &req.patterns {
        set_verdict(&state, app.id, ItemKind::UnfurlPattern, p, req.approve).await?;
    }
    Ok(ok_body())
}

async fn set_verdict(
    state: &AppState,
    app_id: i64,
    kind: ItemKind,
    key: &str,
    approve: bool,
) -> ApiResult<()> {
    // Compare-and-set on the declaration: a verdict never brings back one withdrawn meanwhile.
    let missing = || not_declared(key);
    change_item(
        state,
        app_id,
        kind,
        "",
        key,
        missing,
        |d: &mut Declaration| {
            d.status = if approve {
                Verdict::Approved
            } else {
                Verdict::Rejected
            };
            Ok(())
        },
    )
    .await?;
    Ok(())
}

async fn declared(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    kind: ItemKind,
    field: &str,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), kind, None, None, 1000)
        .await?;
    let mut out = Vec::new();
    for i in &items {
        let d: Declaration = i.get()?;
        out.push(json!({field: i.key, "status": d.status}));
    }
    Ok(Json(json!(out)))
}

pub async fn unfurl_domains(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    declared(&state, &caller, &ident, ItemKind::UnfurlDomain, "domain").await
}

pub async fn unfurl_patterns(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    declared(&state, &caller, &ident, ItemKind::UnfurlPattern, "pattern").await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueQuery {
    from_etag: Option<i64>,
    batch_size: Option<i64>,
}

pub async fn unfurl_queue(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    require_unfurls(&state, &caller).await?;
    let batch = q
        .batch_size
        .filter(|b| (1..=100).contains(b))
        .ok_or_else(|| ApiError::bad_request("bad-batch-size", "batchSize is 1 to 100"))?;
    let after = q.from_etag.map(queue_key);
    let items = state
        .apps
        .items(
            Some(app.id),
            ItemKind::UnfurlQueue,
            Some(""),
            after.as_deref(),
            batch,
        )
        .await?;
    let queued = items
        .iter()
        .map(AppItem::get::<UnfurlQueueItem>)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!(queued)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnfurlContent {
    etag: i64,
    content: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnfurlContents {
    unfurls: Vec<UnfurlContent>,
}

pub async fn post_unfurl_content(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<UnfurlContents>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    require_unfurls(&state, &caller).await?;
    if req.unfurls.len() > 100 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limits-reached",
            "at most 100 unfurls per call",
        ));
    }
    let mut results = Vec::new();
    for u in req.unfurls {
        let queued = state
            .apps
            .item(app.id, ItemKind::UnfurlQueue, "", &queue_key(u.etag))
            .await?;
        let size = u.content.to_string().len();
        let outcome = match queued {
            None => Err("no such queue item"),
            Some(_) if !u.content.is_object() => Err("content must be a JSON object"),
            Some(_) if size > 16 * 1024 => Err("content is larger than 16 KiB"),
            Some(q) => Ok(q.get::<UnfurlQueueItem>()?),
        };
        match outcome {
            Ok(q) => {
                let message = q.message_id.unwrap_or(0);
                let preview = Preview {
                    target: q.target.clone(),
                    app_id: app.id.to_string(),
                    content: u.content,
                };
                let kind = ItemKind::UnfurlContent;
                let item = AppItem::new(app.id, kind, message.to_string(), q.target, &preview);
                state.apps.put_item(&item, None).await?;
                results.push(json!({"etag": u.etag, "success": true}));
            }
            Err(why) => results.push(json!({"etag": u.etag, "success": false, "error": why})),
        }
    }
    Ok(Json(json!(results)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalAuth {
    user_id: String,
    message: Option<String>,
}

pub async fn request_external_auth(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<ExternalAuth>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    require_unfurls(&state, &caller).await?;
    if req
        .message
        .as_ref()
        .is_some_and(|m| m.chars().count() > 1000)
        || req.user_id.len() > 64
    {
        return Err(ApiError::bad_request(
            "bad-request",
            "userId has at most 64 characters and message at most 1000",
        ));
    }
    let request = ExternalAuthRequest {
        user_id: req.user_id.clone(),
        message: req.message,
    };
    let key = format!("{:020}", now_ms());
    let item = AppItem::new(app.id, ItemKind::ExternalAuth, req.user_id, key, &request);
    state
        .apps
        .put_item(&item, Some(100))
        .await
        .map_err(limit_error)?;
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetExternalAuth {
    user_id: String,
}

pub async fn reset_external_auth(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<ResetExternalAuth>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    require_unfurls(&state, &caller).await?;
    state
        .apps
        .delete_items(app.id, ItemKind::ExternalAuth, Some(&req.user_id))
        .await?;
    Ok(ok_body())
}
