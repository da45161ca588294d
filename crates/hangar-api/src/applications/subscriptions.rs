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
use hangar_core::app_model::{ItemKind, Subscription};
use hangar_core::apps::{self as rules, Context, RightCode};
use hangar_core::ids::random_id;
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

/// The webhook's subscriptions, by id.
pub(super) async fn subscriptions_of(
    state: &AppState,
    app_id: i64,
    webhook: &str,
) -> ApiResult<Vec<(String, Subscription)>> {
    let items = state
        .apps
        .items(
            Some(app_id),
            ItemKind::Subscription,
            Some(webhook),
            None,
            1000,
        )
        .await?;
    items
        .into_iter()
        .map(|i| Ok((i.key.clone(), i.get()?)))
        .collect()
}

/// The SubscriptionDTO shape.
pub(super) fn subscription_json(id: &str, s: &Subscription) -> Value {
    json!({
        "id": id,
        "name": s.name,
        "enabled": s.enabled,
        "eventTypes": s.event_types,
        "contextIdentifier": s.context_identifier,
    })
}

fn item_json(item: &AppItem) -> ApiResult<Value> {
    Ok(subscription_json(&item.key, &item.get()?))
}

/// SubscriptionDefinition / SubscriptionDTO: `{name, enabled, eventTypes, contextIdentifier?}`,
/// applied to `existing` (a new subscription: enabled, in every context).
pub(super) fn subscription(
    value: &Value,
    existing: Option<Subscription>,
) -> ApiResult<Subscription> {
    let obj = value
        .as_object()
        .ok_or_else(|| bad("a subscription is a JSON object"))?;
    let (mut name, mut enabled, mut event_types, mut context) = match existing {
        Some(s) => (
            Some(s.name),
            s.enabled,
            Some(s.event_types),
            s.context_identifier,
        ),
        None => (None, true, None, None),
    };
    for (k, v) in obj {
        match k.as_str() {
            "name" => match v.as_str() {
                Some(n) if !n.trim().is_empty() && n.chars().count() <= 100 => {
                    name = Some(n.to_string())
                }
                _ => return Err(bad("a subscription's name has 1 to 100 characters")),
            },
            "enabled" => {
                enabled = v
                    .as_bool()
                    .ok_or_else(|| bad("enabled must be true or false"))?
            }
            "eventTypes" => {
                let types: Option<Vec<&str>> = v
                    .as_array()
                    .and_then(|a| a.iter().map(Value::as_str).collect());
                match types {
                    Some(t)
                        if !t.is_empty() && t.iter().all(|e| rules::EVENT_TYPES.contains(e)) =>
                    {
                        event_types = Some(t.into_iter().map(str::to_string).collect())
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
                    Value::Null => context = None,
                    Value::String(s) if Context::parse(s).is_some() => context = Some(s.clone()),
                    _ => return Err(bad(
                        "contextIdentifier is global, project:key:X, channel:id:N or space:id:S",
                    )),
                }
            }
            "id" => {}
            _ => return Err(bad(format!("{k} is not a subscription field"))),
        }
    }
    Ok(Subscription {
        name: name.ok_or_else(|| bad("a subscription needs a name"))?,
        enabled,
        event_types: event_types.ok_or_else(|| bad("a subscription needs eventTypes"))?,
        context_identifier: context,
    })
}

pub(super) async fn add_subscription(
    state: &AppState,
    app: &AppRecord,
    webhook: &str,
    def: &Value,
) -> ApiResult<(String, Subscription)> {
    let sub = subscription(def, None)?;
    let id = random_id().to_string();
    let item = AppItem::new(app.id, ItemKind::Subscription, webhook, id.clone(), &sub);
    state
        .apps
        .put_item(&item, Some(SUBSCRIPTION_LIMIT))
        .await
        .map_err(limit_error)?;
    Ok((id, sub))
}

pub async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    webhook_item(&state, &app, &id).await?;
    let (sub_id, sub) = add_subscription(&state, &app, &id, &body).await?;
    Ok((StatusCode::CREATED, Json(subscription_json(&sub_id, &sub))))
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
        .map(|(id, s)| subscription_json(id, s))
        .collect::<Vec<_>>())))
}

async fn subscription_item(
    state: &AppState,
    app: &AppRecord,
    webhook: &str,
    id: &str,
) -> ApiResult<Subscription> {
    webhook_item(state, app, webhook).await?;
    let item = state
        .apps
        .item(app.id, ItemKind::Subscription, webhook, id)
        .await?
        .ok_or_else(|| ApiError::not_found("subscription"))?;
    Ok(item.get()?)
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
    let update = |current: &mut Subscription| {
        *current = subscription(&body, Some(current.clone()))?;
        Ok(())
    };
    let kind = ItemKind::Subscription;
    let item = change_item(&state, app.id, kind, &id, &sub, missing, update).await?;
    Ok(Json(item_json(&item)?))
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
        .delete_item(app.id, ItemKind::Subscription, &id, &sub)
        .await?;
    Ok(ok_body())
}

pub async fn request_missing_rights(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id, sub)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let sub = subscription_item(&state, &app, &id, &sub).await?;
    let ctx = sub
        .context_identifier
        .as_deref()
        .and_then(Context::parse)
        .unwrap_or_else(Context::global);
    let mut rights: Vec<RightCode> = sub
        .event_types
        .iter()
        .filter_map(|e| rules::event_right(e))
        .filter(|r| ctx.admits(r.right()))
        .collect();
    rights.sort();
    rights.dedup();
    request_rights_in(&state, app.id, &ctx, &rights).await?;
    Ok(ok_body())
}
