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
use hangar_core::app_ops::{queue_key, UNFURLS};
use hangar_core::apps as rules;
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
    kind: &str,
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
        modify_item(state, app.id, kind, "", &v, |current| {
            Ok(current.is_none().then(|| json!({"status": "PENDING"})))
        })
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
    declare(&state, &app, "unfurl-domain", domains).await?;
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
    declare(&state, &app, "unfurl-pattern", req.patterns).await?;
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
    kind: &str,
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
    let app = authorize(&state, &caller, &ident, "unfurl-domain", &domains).await?;
    for d in domains {
        set_verdict(&state, app.id, "unfurl-domain", &d, req.approve).await?;
    }
    Ok(ok_body())
}

pub async fn authorize_unfurl_patterns(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<Authorize>,
) -> ApiResult<Json<Value>> {
    let app = authorize(&state, &caller, &ident, "unfurl-pattern", &req.patterns).await?;
    for p in &req.patterns {
        set_verdict(&state, app.id, "unfurl-pattern", p, req.approve).await?;
    }
    Ok(ok_body())
}

async fn set_verdict(
    state: &AppState,
    app_id: i64,
    kind: &str,
    key: &str,
    approve: bool,
) -> ApiResult<()> {
    // Compare-and-set on the declaration: a verdict never brings back one withdrawn meanwhile.
    let missing = || not_declared(key);
    change_item(state, app_id, kind, "", key, missing, |declaration| {
        *declaration = json!({"status": if approve { "APPROVED" } else { "REJECTED" }});
        Ok(())
    })
    .await?;
    Ok(())
}

async fn declared(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    kind: &str,
    field: &str,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), kind, None, None, 1000)
        .await?;
    Ok(Json(json!(items
        .iter()
        .map(|i| json!({field: i.key, "status": i.value["status"]}))
        .collect::<Vec<_>>())))
}

pub async fn unfurl_domains(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    declared(&state, &caller, &ident, "unfurl-domain", "domain").await
}

pub async fn unfurl_patterns(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    declared(&state, &caller, &ident, "unfurl-pattern", "pattern").await
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
    require_app_right(&state, &caller, UNFURLS, "global").await?;
    let batch = q
        .batch_size
        .filter(|b| (1..=100).contains(b))
        .ok_or_else(|| ApiError::bad_request("bad-batch-size", "batchSize is 1 to 100"))?;
    let after = q.from_etag.map(queue_key);
    let items = state
        .apps
        .items(
            Some(app.id),
            "unfurl-queue",
            Some(""),
            after.as_deref(),
            batch,
        )
        .await?;
    Ok(Json(json!(items
        .iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>())))
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
    require_app_right(&state, &caller, UNFURLS, "global").await?;
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
            .item(app.id, "unfurl-queue", "", &queue_key(u.etag))
            .await?;
        let size = u.content.to_string().len();
        let outcome = match queued {
            None => Err("no such queue item"),
            Some(_) if !u.content.is_object() => Err("content must be a JSON object"),
            Some(_) if size > 16 * 1024 => Err("content is larger than 16 KiB"),
            Some(q) => Ok(q),
        };
        match outcome {
            Ok(q) => {
                let message = q.value["messageId"].as_i64().unwrap_or(0);
                let item = AppItem {
                    app_id: app.id,
                    kind: "unfurl-content".into(),
                    scope: message.to_string(),
                    key: q.value["target"].as_str().unwrap_or("").to_string(),
                    value: json!({"target": q.value["target"], "appId": app.id.to_string(), "content": u.content}),
                    created_utc: now_ms(),
                    version: 0,
                };
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
    require_app_right(&state, &caller, UNFURLS, "global").await?;
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
    let item = AppItem {
        app_id: app.id,
        kind: "external-auth".into(),
        scope: req.user_id.clone(),
        key: format!("{:020}", now_ms()),
        value: json!({"userId": req.user_id, "message": req.message}),
        created_utc: now_ms(),
        version: 0,
    };
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
    require_app_right(&state, &caller, UNFURLS, "global").await?;
    state
        .apps
        .delete_items(app.id, "external-auth", Some(&req.user_id))
        .await?;
    Ok(ok_body())
}
