//! The Applications API (`/api/http/applications`): applications and their settings, secrets,
//! permanent tokens, parameters, rights, GPG/SSH keys, unfurls and UI extensions. Webhooks are in
//! `webhooks.rs`, the OAuth endpoints in `oauth.rs`, delivery in `delivery.rs`.
//!
//! Who may do what: administrators everything; other members may view applications (never their
//! secrets); an application acting as itself (with a `**` token) may view, change, read the secrets
//! of and remove itself only (other applications do not exist for it); granting and denying rights is
//! for administrators.

use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hangar_core::app_ops;
use hangar_core::apps::{self as rules, Context};
use hangar_core::ids::{new_token, random_id, token_hash};
use hangar_core::now_ms;
use hangar_core::secrets::{new_secret, new_signing_key};
use hangar_core::store::{AppItem, AppRecord, AppToken, Delivery, StoreError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub const PARAMETER_LIMIT: i64 = 100;
/// The right the unfurl queue calls need (granted in the global context).
pub use hangar_core::app_ops::{queue_key, UNFURLS};
const PARAMETER_KEY_MAX: usize = 64;
const PARAMETER_VALUE_MAX: usize = 1000;
const KEY_LIMIT: i64 = 50;
const DOMAIN_LIMIT: usize = 100;
const UI_EXTENSION_LIMIT: usize = 50;
/// How long an OAuth access token lives.
pub const ACCESS_TOKEN_TTL_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    View,
    Update,
    Secrets,
    Delete,
}

/// The application named by `id:N`, `clientId:X` or `me`, if the caller may do `need` with it.
pub async fn target(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    need: Need,
) -> ApiResult<AppRecord> {
    let found = if ident == "me" {
        let app = caller.app.as_ref().ok_or_else(|| {
            ApiError::bad_request(
                "bad-application",
                "`me` names the calling application: call with an application token",
            )
        })?;
        state.apps.app(app.app_id).await?
    } else if let Some(id) = ident.strip_prefix("id:") {
        let id = id.parse::<i64>().map_err(|_| {
            ApiError::bad_request("bad-application", "id:N names an application by its number")
        })?;
        state.apps.app(id).await?
    } else if let Some(client_id) = ident.strip_prefix("clientId:").filter(|c| !c.is_empty()) {
        state.apps.app_by_client_id(client_id).await?
    } else {
        return Err(ApiError::bad_request(
            "bad-application",
            "an application is named id:N, clientId:ID or me",
        ));
    };
    let app = found.ok_or_else(|| ApiError::not_found("application"))?;
    if let Some(me) = caller.acting_app() {
        if me.app_id != app.id {
            return Err(ApiError::not_found("application"));
        }
        // A token limited to some rights must not mint itself a broader one or read secrets.
        if need != Need::View && me.scope != "**" {
            return Err(ApiError::forbidden(
                "this token's scope does not cover managing the application",
            ));
        }
        return Ok(app);
    }
    if need != Need::View && caller.app.as_ref().is_some_and(|a| a.scope != "**") {
        return Err(ApiError::forbidden(
            "this token's scope does not cover managing applications",
        ));
    }
    if caller.is_admin() || need == Need::View {
        return Ok(app);
    }
    Err(ApiError::forbidden(match need {
        Need::Secrets => "only an administrator or the application itself may read its secrets",
        _ => "only an administrator or the application itself may change an application",
    }))
}

/// The application calling as itself, for the endpoints only an application may call.
async fn calling_app(state: &AppState, caller: &Caller) -> ApiResult<AppRecord> {
    let app = caller.acting_app().ok_or_else(|| {
        ApiError::forbidden("only an application token may call this (not a member's token)")
    })?;
    state
        .apps
        .app(app.app_id)
        .await?
        .ok_or_else(|| ApiError::not_found("application"))
}

/// Applies `change` to the freshest version of the application, retrying when a concurrent change won.
pub async fn modify(
    state: &AppState,
    id: i64,
    change: impl Fn(&mut AppRecord) -> ApiResult<()>,
) -> ApiResult<AppRecord> {
    app_ops::modify_app(state.apps.as_ref(), id, change).await
}

fn doc_str<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

fn doc_bool(doc: &Value, key: &str) -> bool {
    doc.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A sealed secret of the application, opened.
pub fn app_secret(state: &AppState, app: &AppRecord, name: &str) -> ApiResult<Option<String>> {
    open_secret(state, &app.doc, name)
}

/// The secret `name` sealed under `holder["secrets"]` (an application's doc, a webhook), opened.
pub fn open_secret(state: &AppState, holder: &Value, name: &str) -> ApiResult<Option<String>> {
    app_ops::open_secret(&state.secrets, holder, name).map_err(ApiError::internal)
}

/// Seals `value` as the secret `name` of `holder` (None removes it).
pub fn set_secret(state: &AppState, holder: &mut Value, name: &str, value: Option<&str>) {
    app_ops::set_secret(&state.secrets, holder, name, value)
}

/// The ES_App shape.
pub fn app_json(app: &AppRecord) -> Value {
    let d = &app.doc;
    let has = |k: &str| d.get("secrets").and_then(|s| s.get(k)).is_some();
    json!({
        "id": app.id.to_string(),
        "clientId": app.client_id,
        "name": app.name,
        "description": d.get("description"),
        "pictureAttachmentId": d.get("pictureAttachmentId"),
        "defaultExternalPicture": d.get("defaultExternalPicture"),
        "email": d.get("email"),
        "ownerId": d.get("ownerId"),
        "createdUtc": app.created_utc,
        "archived": app.archived,
        "state": if app.archived { "archived" } else { doc_str(d, "state").unwrap_or("active") },
        "multiOrg": doc_bool(d, "multiOrg"),
        "clientCredentialsFlowEnabled": d.get("clientCredentialsFlowEnabled").and_then(Value::as_bool).unwrap_or(true),
        "codeFlowEnabled": doc_bool(d, "codeFlowEnabled"),
        "codeFlowRedirectURIs": d.get("codeFlowRedirectURIs"),
        "pkceRequired": doc_bool(d, "pkceRequired"),
        "publicClientsAllowed": doc_bool(d, "publicClientsAllowed"),
        "implicitFlowEnabled": doc_bool(d, "implicitFlowEnabled"),
        "implicitFlowRedirectURIs": d.get("implicitFlowRedirectURIs"),
        "endpointUri": d.get("endpointUri"),
        "endpointSslVerification": d.get("endpointSslVerification").and_then(Value::as_bool).unwrap_or(true),
        "appLevelAuth": doc_str(d, "appLevelAuth").unwrap_or("none"),
        "sslKeystoreAuth": d.get("sslKeystoreAuth"),
        "hasVerificationToken": doc_bool(d, "hasVerificationToken"),
        "hasSigningKey": doc_bool(d, "hasSigningKey"),
        "hasPublicKeySignature": doc_bool(d, "hasPublicKeySignature"),
        "basicAuthUsername": d.get("basicAuthUsername"),
        "hasBasicAuthPassword": has("basicAuthPassword"),
        "hasBearerAuthToken": has("bearerAuthToken"),
        "errorMessage": d.get("errorMessage"),
        "lastHealthyUtc": d.get("lastHealthyUtc"),
    })
}

fn bad(text: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad-application-field", text)
}

fn field_str(v: &Value, key: &str, max: usize, nullable: bool) -> ApiResult<Option<String>> {
    match v {
        Value::Null if nullable => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.clone())),
        Value::String(_) => Err(bad(format!("{key} has at most {max} characters"))),
        _ => Err(bad(format!(
            "{key} must be a string{}",
            if nullable { " or null" } else { "" }
        ))),
    }
}

fn field_url(v: &Value, key: &str) -> ApiResult<Option<String>> {
    let Some(s) = field_str(v, key, 2048, true)? else {
        return Ok(None);
    };
    match url::Url::parse(&s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(s)),
        _ => Err(bad(format!("{key} must be an absolute http(s) URL"))),
    }
}

fn field_uri_list(v: &Value, key: &str) -> ApiResult<Option<String>> {
    let Some(s) = field_str(v, key, 20_000, true)? else {
        return Ok(None);
    };
    let uris: Vec<&str> = s
        .split([' ', '\n', '\r', '\t', ','])
        .filter(|u| !u.is_empty())
        .collect();
    if uris.len() > 20 {
        return Err(bad(format!("{key} lists at most 20 URIs")));
    }
    for u in &uris {
        if url::Url::parse(u).is_err() || u.len() > 2048 || u.contains('#') {
            return Err(bad(format!(
                "{key}: {u:?} is not an absolute URI without a fragment"
            )));
        }
    }
    Ok(Some(uris.join(" ")))
}

const APP_AUTH_KINDS: &[&str] = &["none", "verificationToken", "signingKey", "publicKey"];

/// Validates and applies settings from a create or update body. Unknown fields are refused.
fn apply_settings(
    state: &AppState,
    app: &mut AppRecord,
    body: &Map<String, Value>,
    creating: bool,
) -> ApiResult<()> {
    let doc = &mut app.doc;
    for (key, v) in body {
        match key.as_str() {
            "name" => {
                let name = field_str(v, key, 100, false)?.unwrap_or_default();
                if name.trim().is_empty() {
                    return Err(bad("name must not be empty"));
                }
                app.name = name;
            }
            "description" | "sslKeystoreAuth" | "pictureAttachmentId" => {
                doc[key] = json!(field_str(v, key, 1000, true)?)
            }
            "defaultExternalPicture" | "endpointUri" => doc[key] = json!(field_url(v, key)?),
            "codeFlowRedirectURIs" | "implicitFlowRedirectURIs" => {
                doc[key] = json!(field_uri_list(v, key)?)
            }
            "email" if creating => {
                let email = field_str(v, key, 254, true)?;
                if email.as_deref().is_some_and(|e| !e.contains('@')) {
                    return Err(bad("email must be an e-mail address"));
                }
                doc[key] = json!(email);
            }
            "clientCredentialsFlowEnabled"
            | "codeFlowEnabled"
            | "pkceRequired"
            | "publicClientsAllowed"
            | "implicitFlowEnabled"
            | "endpointSslVerification"
            | "hasVerificationToken"
            | "hasSigningKey"
            | "hasPublicKeySignature" => match v {
                Value::Bool(_) => doc[key] = v.clone(),
                Value::Null if creating => {}
                _ => return Err(bad(format!("{key} must be true or false"))),
            },
            "appLevelAuth" => {
                let kind = match v {
                    Value::Null => "none".to_string(),
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o
                        .get("type")
                        .or_else(|| o.get("className"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    _ => String::new(),
                };
                if !APP_AUTH_KINDS.contains(&kind.as_str()) {
                    return Err(bad(format!(
                        "appLevelAuth is one of {}",
                        APP_AUTH_KINDS.join(", ")
                    )));
                }
                doc[key] = json!(kind);
            }
            "basicAuthUsername" => doc[key] = json!(field_str(v, key, 256, true)?),
            "basicAuthPassword" | "bearerAuthToken" => {
                let value = field_str(v, key, 1024, true)?;
                set_secret(state, doc, key, value.as_deref().filter(|s| !s.is_empty()));
            }
            "clientSecret" => {
                let secret = field_str(v, key, 256, creating)?;
                match secret {
                    Some(s) if s.len() >= 16 => set_secret(state, doc, key, Some(&s)),
                    Some(_) => return Err(bad("clientSecret has at least 16 characters")),
                    None => {}
                }
            }
            "clientId" | "connectToSpace" | "state" if creating => {}
            _ => {
                return Err(bad(format!(
                    "{key} is not a field that can be {}",
                    if creating { "given" } else { "updated" }
                )))
            }
        }
    }
    if doc_bool(doc, "publicClientsAllowed") && !doc_bool(doc, "pkceRequired") {
        return Err(bad("publicClientsAllowed requires pkceRequired"));
    }
    Ok(())
}

fn valid_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !caller.is_admin() || caller.app.is_some() {
        return Err(ApiError::forbidden(
            "only an administrator may create applications",
        ));
    }
    let client_id = match body.get("clientId") {
        None | Some(Value::Null) => uuid_like(),
        Some(Value::String(s)) if valid_client_id(s) => s.clone(),
        Some(_) => {
            return Err(bad(
                "clientId has 1 to 128 letters, digits and `-._~` characters",
            ))
        }
    };
    if !body.contains_key("name") {
        return Err(bad("name is required"));
    }
    let connect = body
        .get("connectToSpace")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let install_state = field_str(
        body.get("state").unwrap_or(&Value::Null),
        "state",
        1000,
        true,
    )?;
    let mut draft = AppRecord {
        id: 0,
        client_id: client_id.clone(),
        name: String::new(),
        bot_member_id: 0,
        archived: false,
        doc: json!({"ownerId": caller.id().to_string(), "multiOrg": connect, "state": "active"}),
        version: 0,
        created_utc: 0,
    };
    apply_settings(&state, &mut draft, &body, true)?;
    if connect && doc_str(&draft.doc, "endpointUri").is_none() {
        return Err(bad(
            "connectToSpace needs an endpointUri to send InitPayload to",
        ));
    }
    let client_secret = match app_secret(&state, &draft, "clientSecret")? {
        Some(s) => s,
        None => {
            let s = new_secret();
            set_secret(&state, &mut draft.doc, "clientSecret", Some(&s));
            s
        }
    };
    set_secret(
        &state,
        &mut draft.doc,
        "signingKey",
        Some(&new_signing_key()),
    );
    set_secret(
        &state,
        &mut draft.doc,
        "verificationToken",
        Some(&new_secret()),
    );
    let init = connect.then(|| {
        let payload = json!({
            "className": "InitPayload",
            "clientId": client_id,
            "clientSecret": client_secret,
            "serverUrl": state.settings.public_url,
            "state": install_state,
            "userId": caller.id().to_string(),
        });
        app_payload(&state, 0, "init", payload)
    });
    let app = state
        .apps
        .create_app(&client_id, &draft.name, &draft.doc, init.as_ref())
        .await?;
    Ok((StatusCode::CREATED, Json(app_json(&app))))
}

/// A client id in the familiar UUID form, from 122 random bits.
fn uuid_like() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Queues a payload that belongs to no webhook (InitPayload, ApplicationUninstalledPayload) for the
/// application's endpoint.
async fn enqueue_app_payload(
    state: &AppState,
    app: &AppRecord,
    kind: &str,
    payload: Value,
) -> ApiResult<()> {
    state
        .apps
        .enqueue_delivery(&app_payload(state, app.id, kind, payload))
        .await?;
    Ok(())
}

/// A payload for the application's endpoint, sealed, due now.
fn app_payload(state: &AppState, app_id: i64, kind: &str, payload: Value) -> Delivery {
    Delivery::pending(
        format!("msg_{}", hex::encode(rand::random::<[u8; 16]>())),
        app_id,
        None,
        kind,
        state.secrets.seal(&payload.to_string()),
    )
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(rename = "$skip")]
    skip: Option<String>,
    #[serde(rename = "$top")]
    top: Option<i64>,
    name: Option<String>,
    #[serde(rename = "withArchived")]
    with_archived: Option<bool>,
    ordering: Option<String>,
}

/// `$skip` (an offset, as the `next` of the previous page) and `$top` (1 to 1000, default 100).
pub fn page_bounds(skip: Option<&str>, top: Option<i64>) -> ApiResult<(i64, i64)> {
    let skip = match skip.filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request("bad-page", "$skip is the `next` of an earlier page")
        })?,
    };
    let top = top.unwrap_or(100);
    if !(1..=1000).contains(&top) {
        return Err(ApiError::bad_request("bad-page", "$top is 1 to 1000"));
    }
    Ok((skip, top))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (skip, top) = page_bounds(q.skip.as_deref(), q.top)?;
    let by_created = match q
        .ordering
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("name") => false,
        Some("created") | Some("createdutc") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad-ordering",
                "ordering is name or created",
            ))
        }
    };
    if let Some(me) = caller.acting_app() {
        // An application sees itself only.
        let app = state.apps.app(me.app_id).await?;
        let data: Vec<Value> = app.iter().skip(skip as usize).map(app_json).collect();
        return Ok(Json(
            json!({"next": data.len().to_string(), "totalCount": data.len(), "data": data}),
        ));
    }
    let page = state
        .apps
        .list_apps(
            q.name.as_deref().filter(|n| !n.is_empty()),
            q.with_archived.unwrap_or(false),
            by_created,
            skip,
            top,
        )
        .await?;
    let next = (skip + page.apps.len() as i64).to_string();
    Ok(Json(json!({
        "next": next,
        "totalCount": page.total,
        "data": page.apps.iter().map(app_json).collect::<Vec<_>>(),
    })))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    Ok(Json(app_json(&app)))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    if doc_bool(&app.doc, "multiOrg") && caller.acting_app().is_none() {
        return Err(ApiError::forbidden(
            "a multi-org application can only be updated by the application itself",
        ));
    }
    let updated = modify(&state, app.id, |a| apply_settings(&state, a, &body, false)).await?;
    Ok(Json(app_json(&updated)))
}

/// Archives the application and ends its access.
pub async fn archive(state: &AppState, id: i64) -> ApiResult<AppRecord> {
    Ok(app_ops::archive_app(state.apps.as_ref(), id).await?)
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Delete).await?;
    if app.archived {
        return Ok(ok_body());
    }
    if doc_bool(&app.doc, "multiOrg") && doc_str(&app.doc, "endpointUri").is_some() {
        // Archived once the application acknowledges ApplicationUninstalledPayload (delivery.rs).
        let app = modify(&state, app.id, |a| {
            a.doc["state"] = json!("uninstalling");
            Ok(())
        })
        .await?;
        let payload = json!({
            "className": "ApplicationUninstalledPayload",
            "clientId": app.client_id,
            "serverUrl": state.settings.public_url,
        });
        enqueue_app_payload(&state, &app, "uninstall", payload).await?;
    } else {
        archive(&state, app.id).await?;
    }
    Ok(ok_body())
}

pub async fn force_remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Delete).await?;
    let failed_once = state
        .apps
        .deliveries(app.id, Some("uninstall"))
        .await?
        .iter()
        .any(|d| d.attempts > 0 && d.status != "delivered");
    if doc_str(&app.doc, "state") != Some("uninstalling") || !failed_once {
        return Err(ApiError::conflict(
            "not-failed-uninstall",
            "force-remove is for an application that failed to answer ApplicationUninstalledPayload",
        ));
    }
    for mut d in state.apps.deliveries(app.id, Some("uninstall")).await? {
        if d.status == "pending" {
            d.status = "failed".into();
            d.last_error = Some("force-removed".into());
            state.apps.finish_delivery(&d).await?;
        }
    }
    archive(&state, app.id).await?;
    Ok(ok_body())
}

pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    modify(&state, app.id, |a| {
        a.archived = false;
        a.doc["state"] = json!("active");
        Ok(())
    })
    .await?;
    Ok(ok_body())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorMessage {
    message: Option<String>,
}

pub async fn error_message(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<ErrorMessage>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    if req
        .message
        .as_ref()
        .is_some_and(|m| m.chars().count() > 1000)
    {
        return Err(bad("message has at most 1000 characters"));
    }
    modify(&state, app.id, |a| {
        a.doc["errorMessage"] = json!(req.message);
        Ok(())
    })
    .await?;
    Ok(ok_body())
}

pub async fn report_healthy(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    modify(&state, app.id, |a| {
        a.doc["lastHealthyUtc"] = json!(now_ms());
        Ok(())
    })
    .await?;
    Ok(ok_body())
}

pub async fn last_client_credentials_access(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    Ok(Json(
        app.doc
            .get("lastClientCredentialsAccess")
            .cloned()
            .unwrap_or(Value::Null),
    ))
}

pub async fn public_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    target(&state, &caller, &ident, Need::View).await?;
    Ok(Json(json!(state.secrets.jwks())))
}

// --- Secrets -------------------------------------------------------------------------------------

async fn read_secret(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    name: &str,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::Secrets).await?;
    Ok(Json(json!(app_secret(state, &app, name)?)))
}

async fn regenerate(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    name: &'static str,
    fresh: fn() -> String,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::Update).await?;
    let value = fresh();
    modify(state, app.id, |a| {
        if name == "signingKey" {
            // The old key keeps signing beside the new one for a grace period (delivery.rs).
            if let Some(old) = a.doc.get("secrets").and_then(|s| s.get(name)).cloned() {
                a.doc["secrets"]["previousSigningKey"] = old;
                a.doc["previousSigningKeyUntil"] = json!(now_ms() + app_ops::KEY_GRACE_MS);
            }
        }
        set_secret(state, &mut a.doc, name, Some(&value));
        Ok(())
    })
    .await?;
    Ok(ok_body())
}

pub async fn client_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    read_secret(&state, &caller, &ident, "clientSecret").await
}

pub async fn regenerate_client_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    regenerate(&state, &caller, &ident, "clientSecret", new_secret).await
}

pub async fn signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    read_secret(&state, &caller, &ident, "signingKey").await
}

pub async fn regenerate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    regenerate(&state, &caller, &ident, "signingKey", new_signing_key).await
}

pub async fn verification_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    read_secret(&state, &caller, &ident, "verificationToken").await
}

pub async fn regenerate_verification_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    regenerate(&state, &caller, &ident, "verificationToken", new_secret).await
}

pub async fn bearer_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    read_secret(&state, &caller, &ident, "bearerAuthToken").await
}

// --- Permanent tokens ----------------------------------------------------------------------------

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

/// `**` (everything), `read`, or right codes separated by spaces.
pub fn parse_scope(s: &str) -> Option<String> {
    let s = s.trim();
    if s == "**" || s == "read" {
        return Some(s.to_string());
    }
    let codes: Vec<&str> = s.split_whitespace().collect();
    (!codes.is_empty() && codes.len() <= 32 && codes.iter().all(|c| rules::right(c).is_some()))
        .then(|| codes.join(" "))
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
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    let expires = parse_expiry(body.get("expires").unwrap_or(&Value::Null))?;
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
    };
    state
        .apps
        .create_app_token(&token, &token_hash(&value))
        .await?;
    let mut out = token_json(&token);
    out["token"] = json!(value);
    Ok((StatusCode::CREATED, Json(out)))
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

// --- Parameters ----------------------------------------------------------------------------------

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

fn parameter_kind(profile: bool) -> &'static str {
    if profile {
        "profile-parameter"
    } else {
        "parameter"
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
    let item = AppItem {
        app_id: app,
        kind: parameter_kind(profile).into(),
        scope,
        key: key.to_string(),
        value: json!(value),
        created_utc: now_ms(),
    };
    state
        .apps
        .put_item(&item, Some(PARAMETER_LIMIT))
        .await
        .map_err(limit_error)?;
    Ok(ok_body())
}

/// A refused limit is the JSON error every limit answers: 413 `limits-reached`.
pub fn limit_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Refused {
            code: "limits-reached",
            reason,
        } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "limits-reached", reason),
        other => other.into(),
    }
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

// --- Rights --------------------------------------------------------------------------------------

fn parse_context(s: &str) -> ApiResult<Context> {
    Context::parse(s).ok_or_else(|| {
        ApiError::bad_request(
            "bad-context",
            format!("{s:?} is not a context (global, project:key:X, channel:id:N, space:id:S)"),
        )
    })
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

/// Whether the application holds `right` (granted) in any of `contexts` or globally.
pub async fn app_granted(
    state: &AppState,
    app_id: i64,
    right: &str,
    context: &str,
) -> ApiResult<bool> {
    Ok(app_ops::app_granted(state.apps.as_ref(), app_id, right, context).await?)
}

/// For a caller that is an application acting as itself: whether its rights and token scope allow
/// `right` in `context`. None for other callers (members decide by membership).
pub async fn app_may(
    state: &AppState,
    caller: &Caller,
    right: &str,
    context: &str,
) -> ApiResult<Option<bool>> {
    match caller.acting_app() {
        None => Ok(None),
        Some(app) => Ok(Some(
            app.scope_allows(right) && app_granted(state, app.app_id, right, context).await?,
        )),
    }
}

/// Whether an application acting as itself may do anything of `rights` in `context`: used to decide
/// whether a channel, project or space exists for it at all.
pub async fn app_sees(
    state: &AppState,
    caller: &Caller,
    rights: &[&str],
    context: &str,
) -> ApiResult<Option<bool>> {
    if caller.acting_app().is_none() {
        return Ok(None);
    }
    for r in rights {
        if app_may(state, caller, r, context).await? == Some(true) {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}

/// 403 unless the caller (an application acting as itself) holds `right` in `context`.
pub async fn require_app_right(
    state: &AppState,
    caller: &Caller,
    right: &str,
    context: &str,
) -> ApiResult<()> {
    if app_may(state, caller, right, context).await? == Some(false) {
        return Err(ApiError::forbidden(format!(
            "the application has not been granted {right} in {context}"
        )));
    }
    Ok(())
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextQuery {
    context_identifier: Option<String>,
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
    let _serialized = state.item_lock.lock().await;
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
    let _serialized = state.item_lock.lock().await;
    for code in codes {
        check_right(code, ctx)?;
    }
    for code in codes {
        let current = state.apps.item(app_id, "right", &ctx.text, code).await?;
        if current.is_none_or(|i| i.value.get("status").and_then(Value::as_str) != Some("GRANTED"))
        {
            set_right(state, app_id, ctx, code, "PENDING").await?;
        }
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

// --- GPG and SSH keys ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewKey {
    public_key: String,
    comment: Option<String>,
}

fn check_comment(c: &Option<String>) -> ApiResult<String> {
    let c = c.clone().unwrap_or_default();
    if c.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "bad-comment",
            "a comment has at most 200 characters",
        ));
    }
    Ok(c)
}

async fn add_key(
    state: &AppState,
    app: &AppRecord,
    kind: &str,
    key: String,
    value: Value,
) -> ApiResult<()> {
    let item = AppItem {
        app_id: app.id,
        kind: kind.into(),
        scope: String::new(),
        key,
        value,
        created_utc: now_ms(),
    };
    match state.apps.insert_item(&item, Some(KEY_LIMIT)).await {
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
            "key-exists",
            "this key is already added",
        )),
        other => other.map_err(limit_error),
    }?;
    Ok(())
}

pub async fn add_gpg_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let comment = check_comment(&req.comment)?;
    if req.public_key.len() > 64 * 1024 {
        return Err(ApiError::bad_request(
            "bad-key",
            "a key block has at most 64 KiB",
        ));
    }
    let fingerprint = rules::gpg_fingerprint(&req.public_key)
        .map_err(|e| ApiError::bad_request("bad-key", e.to_string()))?;
    let value = json!({
        "fingerprint": fingerprint, "comment": comment, "publicKey": req.public_key,
        "createdUtc": now_ms(), "revoked": false, "revokeComment": null,
    });
    add_key(&state, &app, "gpg-key", fingerprint, value.clone()).await?;
    Ok((StatusCode::CREATED, Json(gpg_json(&value))))
}

fn gpg_json(v: &Value) -> Value {
    json!({
        "fingerprint": v["fingerprint"], "comment": v["comment"], "createdUtc": v["createdUtc"],
        "revoked": v["revoked"], "revokeComment": v["revokeComment"], "publicKey": v["publicKey"],
    })
}

pub async fn gpg_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), "gpg-key", None, None, 1000)
        .await?;
    Ok(Json(json!(items
        .iter()
        .map(|i| gpg_json(&i.value))
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeKey {
    comment: Option<String>,
}

pub async fn revoke_gpg_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, fingerprint)): Path<(String, String)>,
    Json(req): Json<RevokeKey>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let _serialized = state.item_lock.lock().await;
    let comment = check_comment(&req.comment)?;
    let fingerprint = fingerprint.to_ascii_uppercase();
    let mut item = state
        .apps
        .item(app.id, "gpg-key", "", &fingerprint)
        .await?
        .ok_or_else(|| ApiError::not_found("GPG key"))?;
    item.value["revoked"] = json!(true);
    item.value["revokeComment"] = json!(comment);
    state.apps.put_item(&item, None).await?;
    Ok(ok_body())
}

pub async fn delete_gpg_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, fingerprint)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    if !state
        .apps
        .delete_item(app.id, "gpg-key", "", &fingerprint.to_ascii_uppercase())
        .await?
    {
        return Err(ApiError::not_found("GPG key"));
    }
    Ok(ok_body())
}

pub async fn add_ssh_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let comment = check_comment(&req.comment)?;
    if req.public_key.len() > 16 * 1024 {
        return Err(ApiError::bad_request(
            "bad-key",
            "an SSH key has at most 16 KiB",
        ));
    }
    let key = rules::parse_ssh_key(&req.public_key)
        .map_err(|e| ApiError::bad_request("bad-key", e.to_string()))?;
    let value = json!({
        "fingerprint": key.fingerprint, "keyType": key.key_type,
        "comment": if comment.is_empty() { key.comment.clone() } else { comment },
        "publicKey": req.public_key.trim(), "createdUtc": now_ms(),
    });
    add_key(&state, &app, "ssh-key", key.fingerprint, value.clone()).await?;
    Ok((StatusCode::CREATED, Json(value)))
}

pub async fn ssh_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let items = state
        .apps
        .items(Some(app.id), "ssh-key", None, None, 1000)
        .await?;
    Ok(Json(json!(items
        .iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>())))
}

pub async fn delete_ssh_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((ident, fingerprint)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    // Accept the fingerprint with or without its `SHA256:` prefix.
    let key = if fingerprint.starts_with("SHA256:") {
        fingerprint
    } else {
        format!("SHA256:{fingerprint}")
    };
    if !state.apps.delete_item(app.id, "ssh-key", "", &key).await? {
        return Err(ApiError::not_found("SSH key"));
    }
    Ok(ok_body())
}

// --- Unfurls -------------------------------------------------------------------------------------

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
    for v in values {
        if existing.iter().any(|e| e.key == v) {
            continue;
        }
        let item = AppItem {
            app_id: app.id,
            kind: kind.into(),
            scope: String::new(),
            key: v.clone(),
            value: json!({"status": "PENDING"}),
            created_utc: now_ms(),
        };
        state.apps.put_item(&item, None).await?;
    }
    Ok(())
}

pub async fn update_unfurl_domains(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<Domains>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    let _serialized = state.item_lock.lock().await;
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
    let _serialized = state.item_lock.lock().await;
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
            return Err(ApiError::bad_request(
                "not-declared",
                format!("the application has not declared {v:?}"),
            ));
        }
    }
    Ok(app)
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
    let _serialized = state.item_lock.lock().await;
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
    let _serialized = state.item_lock.lock().await;
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
    let item = AppItem {
        app_id,
        kind: kind.into(),
        scope: String::new(),
        key: key.to_string(),
        value: json!({"status": if approve { "APPROVED" } else { "REJECTED" }}),
        created_utc: now_ms(),
    };
    state.apps.put_item(&item, None).await?;
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

// --- UI extensions -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UiExtensions {
    context_identifier: String,
    extensions: Vec<Value>,
}

pub async fn set_ui_extensions(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<UiExtensions>,
) -> ApiResult<Json<Value>> {
    let app = calling_app(&state, &caller).await?;
    let ctx = parse_context(&req.context_identifier)?;
    if req.extensions.len() > UI_EXTENSION_LIMIT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limits-reached",
            format!("at most {UI_EXTENSION_LIMIT} extensions per context"),
        ));
    }
    for e in &req.extensions {
        if !e.get("className").is_some_and(Value::is_string) || e.to_string().len() > 4096 {
            return Err(ApiError::bad_request(
                "bad-extension",
                "an extension is a JSON object with a className, at most 4 KiB",
            ));
        }
    }
    state
        .apps
        .delete_items(app.id, "ui-extension", Some(&ctx.text))
        .await?;
    for (i, e) in req.extensions.into_iter().enumerate() {
        let item = AppItem {
            app_id: app.id,
            kind: "ui-extension".into(),
            scope: ctx.text.clone(),
            key: format!("{i:03}"),
            value: e,
            created_utc: now_ms(),
        };
        state.apps.put_item(&item, None).await?;
    }
    Ok(ok_body())
}

pub async fn ui_extensions(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<ContextQuery>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    let ctx = match &q.context_identifier {
        Some(c) => Some(parse_context(c)?),
        None => None,
    };
    let items = state
        .apps
        .items(
            Some(app.id),
            "ui-extension",
            ctx.as_ref().map(|c| c.text.as_str()),
            None,
            10_000,
        )
        .await?;
    let mut out: Vec<Value> = Vec::new();
    for i in &items {
        if out
            .last()
            .is_none_or(|l| l["contextIdentifier"] != json!(i.scope))
        {
            let everybody = state
                .apps
                .item(app.id, "ui-preference", &i.scope, "*")
                .await?;
            let mine = state
                .apps
                .item(app.id, "ui-preference", &i.scope, &caller.id().to_string())
                .await?;
            let everybody = everybody.is_none_or(|p| p.value == json!(true));
            out.push(json!({
                "contextIdentifier": i.scope,
                "extensions": [],
                "enabledForEverybody": everybody,
                "enabledForMe": mine.map_or(everybody, |p| p.value == json!(true)),
            }));
        }
        if let Some(list) = out.last_mut().and_then(|l| l["extensions"].as_array_mut()) {
            list.push(i.value.clone());
        }
    }
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UiContext {
    context_identifier: String,
}

async fn ui_preference(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    context: &str,
    everybody: bool,
    enabled: bool,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::View).await?;
    let ctx = parse_context(context)?;
    if everybody && (!caller.is_admin() || caller.app.is_some()) {
        return Err(ApiError::forbidden(
            "only an administrator may enable or disable an application's UI for everybody",
        ));
    }
    if caller.acting_app().is_some() && !everybody {
        return Err(ApiError::forbidden(
            "a member's preference needs a member's token",
        ));
    }
    let item = AppItem {
        app_id: app.id,
        kind: "ui-preference".into(),
        scope: ctx.text,
        key: if everybody {
            "*".into()
        } else {
            caller.id().to_string()
        },
        value: json!(enabled),
        created_utc: now_ms(),
    };
    state.apps.put_item(&item, None).await?;
    Ok(ok_body())
}

pub async fn disable_for_everybody(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<UiContext>,
) -> ApiResult<Json<Value>> {
    ui_preference(
        &state,
        &caller,
        &ident,
        &req.context_identifier,
        true,
        false,
    )
    .await
}
pub async fn enable_for_everybody(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<UiContext>,
) -> ApiResult<Json<Value>> {
    ui_preference(&state, &caller, &ident, &req.context_identifier, true, true).await
}
pub async fn disable_for_me(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<UiContext>,
) -> ApiResult<Json<Value>> {
    ui_preference(
        &state,
        &caller,
        &ident,
        &req.context_identifier,
        false,
        false,
    )
    .await
}
pub async fn enable_for_me(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(req): Json<UiContext>,
) -> ApiResult<Json<Value>> {
    ui_preference(
        &state,
        &caller,
        &ident,
        &req.context_identifier,
        false,
        true,
    )
    .await
}
