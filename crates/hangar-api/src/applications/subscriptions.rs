//! Subscriptions of a webhook: which events, in which context, it is sent. A subscription is an app
//! item of kind `subscription` scoped by the webhook's id.

use super::rights::request_rights_in;
use super::{bad, webhook_item};
use super::{change_item, limit_error, target, Need};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{patch, post};
use axum::Router;
use hangar_core::apps::{self as rules, Context};
use hangar_core::ids::random_id;
use hangar_core::now_ms;
use hangar_core::store::{AppItem, AppRecord};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}/subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}/subscriptions/{sub}",
            patch(update_subscription).delete(delete_subscription),
        )
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}/subscriptions/{sub}/request-missing-rights",
            post(request_missing_rights),
        )
}

const SUBSCRIPTION_LIMIT: i64 = 100;

pub(super) async fn subscriptions_of(
    state: &AppState,
    app_id: i64,
    webhook: &str,
) -> ApiResult<Vec<AppItem>> {
    Ok(state
        .apps
        .items(Some(app_id), "subscription", Some(webhook), None, 1000)
        .await?)
}

pub(super) fn subscription_json(i: &AppItem) -> Value {
    let mut v = i.value.clone();
    v["id"] = json!(i.key);
    v
}

/// SubscriptionDefinition / SubscriptionDTO: `{name, enabled, eventTypes, contextIdentifier?}`.
pub(super) fn subscription(value: &Value, existing: Option<&Value>) -> ApiResult<Value> {
    let obj = value
        .as_object()
        .ok_or_else(|| bad("a subscription is a JSON object"))?;
    let mut out = existing
        .cloned()
        .unwrap_or_else(|| json!({"enabled": true, "contextIdentifier": null}));
    for (k, v) in obj {
        match k.as_str() {
            "name" => match v.as_str() {
                Some(n) if !n.trim().is_empty() && n.chars().count() <= 100 => {
                    out["name"] = json!(n)
                }
                _ => return Err(bad("a subscription's name has 1 to 100 characters")),
            },
            "enabled" => {
                out["enabled"] = json!(v
                    .as_bool()
                    .ok_or_else(|| bad("enabled must be true or false"))?)
            }
            "eventTypes" => {
                let types: Option<Vec<&str>> = v
                    .as_array()
                    .and_then(|a| a.iter().map(Value::as_str).collect());
                match types {
                    Some(t)
                        if !t.is_empty() && t.iter().all(|e| rules::EVENT_TYPES.contains(e)) =>
                    {
                        out["eventTypes"] = json!(t)
                    }
                    _ => {
                        return Err(bad(format!(
                            "eventTypes lists at least one of {}",
                            rules::EVENT_TYPES.join(", ")
                        )))
                    }
                }
            }
            "contextIdentifier" => {
                match v {
                    Value::Null => out["contextIdentifier"] = Value::Null,
                    Value::String(s) if Context::parse(s).is_some() => {
                        out["contextIdentifier"] = json!(s)
                    }
                    _ => return Err(bad(
                        "contextIdentifier is global, project:key:X, channel:id:N or space:id:S",
                    )),
                }
            }
            "id" => {}
            _ => return Err(bad(format!("{k} is not a subscription field"))),
        }
    }
    if !out.get("name").is_some_and(Value::is_string) {
        return Err(bad("a subscription needs a name"));
    }
    if !out.get("eventTypes").is_some_and(Value::is_array) {
        return Err(bad("a subscription needs eventTypes"));
    }
    Ok(out)
}

pub(super) async fn add_subscription(
    state: &AppState,
    app: &AppRecord,
    webhook: &str,
    def: &Value,
) -> ApiResult<AppItem> {
    let item = AppItem {
        app_id: app.id,
        kind: "subscription".into(),
        scope: webhook.to_string(),
        key: random_id().to_string(),
        value: subscription(def, None)?,
        created_utc: now_ms(),
        version: 0,
    };
    state
        .apps
        .put_item(&item, Some(SUBSCRIPTION_LIMIT))
        .await
        .map_err(limit_error)?;
    Ok(item)
}

pub async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    webhook_item(&state, &app, &id).await?;
    let item = add_subscription(&state, &app, &id, &body).await?;
    Ok((StatusCode::CREATED, Json(subscription_json(&item))))
}

pub async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    webhook_item(&state, &app, &id).await?;
    let subs = subscriptions_of(&state, app.id, &id).await?;
    Ok(Json(json!(subs
        .iter()
        .map(subscription_json)
        .collect::<Vec<_>>())))
}

async fn subscription_item(
    state: &AppState,
    app: &AppRecord,
    webhook: &str,
    id: &str,
) -> ApiResult<AppItem> {
    webhook_item(state, app, webhook).await?;
    state
        .apps
        .item(app.id, "subscription", webhook, id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))
}

pub async fn update_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id, sub)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    webhook_item(&state, &app, &id).await?;
    let missing = || ApiError::not_found("subscription");
    let update = |current: &mut Value| {
        *current = subscription(&body, Some(current))?;
        Ok(())
    };
    let item = change_item(&state, app.id, "subscription", &id, &sub, missing, update).await?;
    Ok(Json(subscription_json(&item)))
}

pub async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id, sub)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    subscription_item(&state, &app, &id, &sub).await?;
    state
        .apps
        .delete_item(app.id, "subscription", &id, &sub)
        .await?;
    Ok(ok_body())
}

pub async fn request_missing_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id, sub)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let item = subscription_item(&state, &app, &id, &sub).await?;
    let ctx = item.value["contextIdentifier"]
        .as_str()
        .and_then(Context::parse)
        .unwrap_or_else(Context::global);
    let mut codes: Vec<String> = item.value["eventTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().and_then(rules::event_right))
        .filter(|r| rules::right(r).is_some_and(|r| ctx.admits(r)))
        .map(str::to_string)
        .collect();
    codes.sort();
    codes.dedup();
    request_rights_in(&state, app.id, &ctx, &codes).await?;
    Ok(ok_body())
}
