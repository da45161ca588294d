//! Webhooks of an application (`/api/http/applications/{app}/webhooks`): settings, archiving,
//! secrets and custom headers. A webhook is an app item of kind `webhook` (its secrets sealed
//! inside); its subscriptions are in `subscriptions.rs`, delivery in `hangar-jobs`.

use super::subscriptions::{add_subscription, subscription, subscription_json, subscriptions_of};
use super::{bad, webhook_item};
use super::{change_item, limit_error, may_manage, open_secret, page_bounds, target, Need};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use hangar_core::app_model::{
    Endpoint, EndpointAuth, ItemKind, SealedHeader, SecretName, Subscription, Webhook,
};
use hangar_core::apps as rules;
use hangar_core::ids::random_id;
use hangar_core::now_ms;
use hangar_core::secrets::{new_signing_key, Secrets};
use hangar_core::store::{AppItem, AppRecord};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/{app}/webhooks",
            post(create).get(list),
        )
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}",
            post(restore).patch(update).delete(archive),
        )
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}/bearer-token",
            get(bearer_token),
        )
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}/custom-headers",
            post(set_custom_headers).get(get_custom_headers),
        )
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}/signing-key",
            get(signing_key),
        )
        .route(
            "/api/http/applications/{app}/webhooks/{webhook}/signing-key/regenerate",
            post(regenerate_signing_key),
        )
        // Webhooks carry their signing keys, bearer tokens, endpoint credentials and custom header
        // values: never cached.
        .layer(axum::middleware::map_response(crate::auth::no_store_layer))
}

const WEBHOOK_LIMIT: i64 = 100;

const HEADER_LIMIT: usize = 20;

const TEMPLATE_MAX: usize = 16 * 1024;

/// Headers a custom header may not set: the protocol's and the signatures'.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "authorization",
    "user-agent",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
    "expect",
    "cookie",
];

const RESERVED_PREFIXES: &[&str] = &["x-space-", "webhook-", "proxy-", "sec-"];

/// Changes a webhook's settings with compare-and-set (see `change_item`): 404 when there is none.
async fn change_webhook(
    state: &AppState,
    app: &AppRecord,
    id: &str,
    change: impl Fn(&mut Webhook) -> ApiResult<()>,
) -> ApiResult<AppItem> {
    let missing = || ApiError::not_found("webhook");
    change_item(state, app.id, ItemKind::Webhook, "", id, missing, change).await
}

/// The FullWebhookDTO shape (secrets never included; the endpoint and its credentials only for
/// those who may manage the application: `manage`).
fn webhook_json(item: &AppItem, subs: &[(String, Subscription)], manage: bool) -> ApiResult<Value> {
    let w: Webhook = item.get()?;
    let mut v = json!({
        "id": item.key,
        "name": w.name,
        "description": w.description,
        "enabled": w.enabled,
        "archived": w.archived,
        "endpoint": w.endpoint,
        "endpointAuth": {
            "type": w.auth_type,
            "username": w.auth_username,
        },
        "acceptedHttpResponseCodes": w.accepted_http_response_codes,
        "doRetries": w.do_retries,
        "payloadFields": w.payload_fields,
        "payloadTemplate": w.payload_template,
        "createdUtc": item.created_utc,
        "subscriptions": subs.iter().map(|(id, s)| subscription_json(id, s)).collect::<Vec<_>>(),
    });
    if !manage {
        if let Some(o) = v.as_object_mut() {
            o.remove("endpoint");
            o.remove("endpointAuth");
        }
    }
    Ok(v)
}

/// Whether a webhook has somewhere to send: its own endpoint or the application's.
fn check_endpoint(webhook: &Webhook, app: &AppRecord) -> ApiResult<()> {
    if webhook.endpoint.is_none() && app.doc.settings.endpoint_uri.is_none() {
        return Err(bad(
            "the webhook needs an endpoint: the application has no endpointUri",
        ));
    }
    Ok(())
}

/// Validates and applies webhook fields.
fn apply(
    secrets: &Secrets,
    w: &mut Webhook,
    body: &Map<String, Value>,
    creating: bool,
) -> ApiResult<()> {
    for (key, value) in body {
        match key.as_str() {
            "name" => match value.as_str() {
                Some(n) if !n.trim().is_empty() && n.chars().count() <= 100 => w.name = n.into(),
                _ => return Err(bad("name has 1 to 100 characters")),
            },
            "description" => match value {
                Value::Null => w.description = None,
                Value::String(s) if s.chars().count() <= 1000 => w.description = Some(s.clone()),
                _ => return Err(bad("description has at most 1000 characters")),
            },
            "enabled" | "doRetries" => match value {
                Value::Bool(b) if key == "enabled" => w.enabled = *b,
                Value::Bool(b) => w.do_retries = *b,
                _ => return Err(bad(format!("{key} must be true or false"))),
            },
            "endpoint" => w.endpoint = endpoint(value)?,
            "endpointAuth" => endpoint_auth(secrets, w, value)?,
            "acceptedHttpResponseCodes" => {
                let codes: Option<Vec<u16>> = value.as_array().and_then(|a| {
                    a.iter()
                        .map(|c| {
                            c.as_u64()
                                .filter(|c| (100..=599).contains(c))
                                .map(|c| c as u16)
                        })
                        .collect()
                });
                match codes {
                    Some(c) if c.len() <= 50 => w.accepted_http_response_codes = c,
                    _ => {
                        return Err(bad(
                            "acceptedHttpResponseCodes is a list of HTTP status codes",
                        ))
                    }
                }
            }
            "payloadFields" => {
                match value {
                    Value::Null => w.payload_fields = None,
                    Value::String(s)
                        if s.len() <= 2000
                            && s.split(',').map(str::trim).all(|f| {
                                !f.is_empty()
                                    && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                            }) =>
                    {
                        w.payload_fields = Some(s.clone())
                    }
                    _ => return Err(bad(
                        "payloadFields is a comma-separated list of top-level payload field names",
                    )),
                }
            }
            "payloadTemplate" => match value {
                Value::Null => w.payload_template = None,
                Value::String(s) if s.len() <= TEMPLATE_MAX => {
                    rules::check_template(s)
                        .map_err(|e| ApiError::bad_request("bad-template", e.to_string()))?;
                    w.payload_template = Some(s.clone());
                }
                _ => {
                    return Err(bad(format!(
                        "payloadTemplate has at most {TEMPLATE_MAX} bytes"
                    )))
                }
            },
            "subscriptions" if creating => {}
            _ => return Err(bad(format!("{key} is not a webhook field"))),
        }
    }
    Ok(())
}

/// EndpointCreateDTO: `{url, sslVerification?}`, or null for the application's endpoint.
fn endpoint(value: &Value) -> ApiResult<Option<Endpoint>> {
    if value.is_null() {
        return Ok(None);
    }
    let url = value.get("url").and_then(Value::as_str).unwrap_or("");
    match url::Url::parse(url) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && url.len() <= 2048 => {}
        _ => return Err(bad("endpoint.url must be an absolute http(s) URL")),
    }
    let ssl = match value.get("sslVerification") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        _ => return Err(bad("endpoint.sslVerification must be true or false")),
    };
    if let Some(k) = value
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "url" && *k != "sslVerification"))
    {
        return Err(bad(format!("endpoint.{k} is not a field")));
    }
    Ok(Some(Endpoint {
        url: url.to_string(),
        ssl_verification: ssl,
    }))
}

/// EndpointAuthCreateDTO: `{type: "none"}`, `{type: "basic", username, password}` or
/// `{type: "bearer", token}`. The password and token are sealed.
fn endpoint_auth(secrets: &Secrets, w: &mut Webhook, value: &Value) -> ApiResult<()> {
    let kind = if value.is_null() {
        "none"
    } else {
        value.get("type").and_then(Value::as_str).unwrap_or("")
    };
    let text = |k: &str, max: usize| -> ApiResult<String> {
        match value.get(k).and_then(Value::as_str) {
            Some(s) if !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control) => {
                Ok(s.to_string())
            }
            _ => Err(bad(format!(
                "endpointAuth.{k} is required (at most {max} characters)"
            ))),
        }
    };
    let (auth, user, password, token) = match kind {
        "none" => (EndpointAuth::None, None, None, None),
        "basic" => {
            let user = text("username", 256)?;
            if user.contains(':') {
                return Err(bad("endpointAuth.username cannot contain `:`"));
            }
            (
                EndpointAuth::Basic,
                Some(user),
                Some(text("password", 256)?),
                None,
            )
        }
        "bearer" => (EndpointAuth::Bearer, None, None, Some(text("token", 2048)?)),
        _ => return Err(bad("endpointAuth.type is none, basic or bearer")),
    };
    w.auth_type = auth;
    w.auth_username = user;
    w.secrets
        .set(secrets, SecretName::Password, password.as_deref());
    w.secrets
        .set(secrets, SecretName::BearerToken, token.as_deref());
    Ok(())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    if !body.contains_key("name") {
        return Err(bad("name is required"));
    }
    let mut webhook = Webhook::default();
    apply(&state.secrets, &mut webhook, &body, true)?;
    check_endpoint(&webhook, &app)?;
    let signing_key = new_signing_key();
    webhook
        .secrets
        .set(&state.secrets, SecretName::SigningKey, Some(&signing_key));
    let defs: Vec<Value> = match body.get("subscriptions") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(bad("subscriptions is a list")),
    };
    // Validate every subscription before anything is stored.
    for d in &defs {
        subscription(d, None)?;
    }
    let id = random_id().to_string();
    let item = AppItem::new(app.id, ItemKind::Webhook, "", id, &webhook);
    state
        .apps
        .put_item(&item, Some(WEBHOOK_LIMIT))
        .await
        .map_err(limit_error)?;
    let mut subs = Vec::new();
    for d in &defs {
        subs.push(add_subscription(&state, &app, &item.key, d).await?);
    }
    Ok((StatusCode::CREATED, Json(webhook_json(&item, &subs, true)?)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(rename = "withArchived")]
    with_archived: Option<bool>,
    query: Option<String>,
    #[serde(rename = "$skip")]
    skip: Option<String>,
    #[serde(rename = "$top")]
    top: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let manage = may_manage(&caller, &app);
    let (skip, top) = page_bounds(q.skip.as_deref(), q.top)?;
    let needle = q.query.unwrap_or_default().to_lowercase();
    let mut all: Vec<AppItem> = Vec::new();
    for item in state
        .apps
        .items(Some(app.id), ItemKind::Webhook, None, None, 10_000)
        .await?
    {
        let w: Webhook = item.get()?;
        let shown = q.with_archived.unwrap_or(false) || !w.archived;
        if shown && (needle.is_empty() || w.name.to_lowercase().contains(&needle)) {
            all.push(item);
        }
    }
    all.sort_by_key(|w| (w.created_utc, w.key.clone()));
    let total = all.len();
    let mut data = Vec::new();
    for w in all.iter().skip(skip as usize).take(top as usize) {
        let subs = subscriptions_of(&state, app.id, &w.key).await?;
        data.push(webhook_json(w, &subs, manage)?);
    }
    Ok(Json(json!({
        "next": (skip as usize + data.len()).to_string(),
        "totalCount": total,
        "data": data,
    })))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let item = change_webhook(&state, &app, &id, |webhook| {
        apply(&state.secrets, webhook, &body, false)?;
        check_endpoint(webhook, &app)
    })
    .await?;
    let subs = subscriptions_of(&state, app.id, &id).await?;
    Ok(Json(webhook_json(&item, &subs, true)?))
}

async fn set_archived(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    id: &str,
    archived: bool,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::Update).await?;
    change_webhook(state, &app, id, |webhook| {
        webhook.archived = archived;
        Ok(())
    })
    .await?;
    Ok(ok_body())
}

pub async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    set_archived(&state, &caller, &ident, &id, true).await
}

pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    set_archived(&state, &caller, &ident, &id, false).await
}

pub async fn bearer_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Secrets).await?;
    let (_, webhook) = webhook_item(&state, &app, &id).await?;
    let token = open_secret(&state, &webhook.secrets, SecretName::BearerToken)?;
    Ok(Json(json!(token)))
}

pub async fn signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Secrets).await?;
    let (_, webhook) = webhook_item(&state, &app, &id).await?;
    let key = open_secret(&state, &webhook.secrets, SecretName::SigningKey)?;
    Ok(Json(json!(key)))
}

pub async fn regenerate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let key = new_signing_key();
    change_webhook(&state, &app, &id, |webhook| {
        // The old key keeps signing beside the new one for a grace period.
        let until = now_ms() + hangar_core::app_ops::KEY_GRACE_MS;
        if let Some(until) = webhook
            .secrets
            .rotate_signing_key(&state.secrets, &key, until)
        {
            webhook.previous_signing_key_until = Some(until);
        }
        Ok(())
    })
    .await?;
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    headers: Vec<Header>,
}

pub async fn set_custom_headers(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
    Json(req): Json<Headers>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    // Checked inside the change, once the webhook is found: an unknown webhook is a 404 whatever
    // the headers.
    change_webhook(&state, &app, &id, |webhook| {
        webhook.headers = sealed_headers(&state.secrets, &req.headers)?;
        Ok(())
    })
    .await?;
    Ok(ok_body())
}

/// Custom headers checked, their values sealed.
fn sealed_headers(secrets: &Secrets, headers: &[Header]) -> ApiResult<Vec<SealedHeader>> {
    if headers.len() > HEADER_LIMIT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limits-reached",
            format!("at most {HEADER_LIMIT} custom headers"),
        ));
    }
    let mut sealed_headers = Vec::new();
    for h in headers {
        let lower = h.name.to_ascii_lowercase();
        if axum::http::HeaderName::from_bytes(h.name.as_bytes()).is_err() || h.name.len() > 100 {
            return Err(ApiError::bad_request(
                "bad-header",
                format!("{:?} is not a header name", h.name),
            ));
        }
        if RESERVED_HEADERS.contains(&lower.as_str())
            || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
        {
            return Err(ApiError::bad_request(
                "reserved-header",
                format!("{} is set by Hangar and cannot be overridden", h.name),
            ));
        }
        if axum::http::HeaderValue::from_str(&h.value).is_err() || h.value.len() > 1000 {
            return Err(ApiError::bad_request(
                "bad-header",
                format!(
                    "the value of {} is not a valid header value (at most 1000 characters)",
                    h.name
                ),
            ));
        }
        sealed_headers.push(SealedHeader {
            name: h.name.clone(),
            value: secrets.seal(&h.value),
        });
    }
    Ok(sealed_headers)
}

pub async fn get_custom_headers(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Secrets).await?;
    let (_, webhook) = webhook_item(&state, &app, &id).await?;
    let headers = webhook
        .open_headers(&state.secrets)
        .map_err(ApiError::internal)?;
    Ok(Json(json!(headers
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect::<Vec<_>>())))
}
