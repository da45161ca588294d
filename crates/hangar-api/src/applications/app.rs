//! The application itself: create, list, get, update, remove (archive, or uninstall first), force
//! removal, restore, and what the application reports about itself (an error message, health).

use super::{
    app_json, app_json_for, calling_app, modify, open_secret, page_bounds, target, Need, PageQuery,
};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
// `routing::get` by its path: `get` here is the handler that answers an application.
use axum::routing::{self, post};
use axum::Router;
use hangar_core::app_model::{AppDoc, AppLevelAuth, AppStatus, SecretName};
use hangar_core::app_ops;
use hangar_core::now_ms;
use hangar_core::secrets::{new_secret, new_signing_key};
use hangar_core::store::{AppFilter, AppRecord, Delivery};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/http/applications", post(create))
        .route("/api/http/applications/paged", routing::get(list))
        .route("/api/http/applications/error-message", post(error_message))
        .route(
            "/api/http/applications/report-application-as-healthy",
            post(report_healthy),
        )
        .route(
            "/api/http/applications/{app}",
            routing::get(get).patch(update).delete(remove),
        )
        .route(
            "/api/http/applications/{app}/force-remove",
            post(force_remove),
        )
        .route("/api/http/applications/{app}/restore", post(restore))
        .route(
            "/api/http/applications/{app}/last-client-credentials-access",
            routing::get(last_client_credentials_access),
        )
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
        if !allowed_redirect_uri(u) {
            return Err(ApiError::bad_request(
                "bad-redirect-uri",
                format!(
                    "{key}: {u:?} is not an https URL, an http URL on loopback, or a private-use \
                     scheme (with a dot, like com.example.app:/cb), without a fragment"
                ),
            ));
        }
    }
    Ok(Some(uris.join(" ")))
}

/// A redirect URI an authorization may be sent to (SPEC §11, RFC 8252): `https`, `http` on loopback,
/// or a native app's private-use scheme (one with a dot). Never `javascript:`, `data:`, `file:`.
fn allowed_redirect_uri(u: &str) -> bool {
    let Ok(url) = url::Url::parse(u) else {
        return false;
    };
    if u.len() > 2048 || url.fragment().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        scheme => scheme.contains('.'),
    }
}

/// The settings that decide how tokens are obtained: an application must not change them with its
/// own token (it could open a flow to itself, or send codes elsewhere).
const FLOW_FIELDS: &[&str] = &[
    "clientCredentialsFlowEnabled",
    "codeFlowEnabled",
    "codeFlowRedirectURIs",
    "pkceRequired",
    "publicClientsAllowed",
    "implicitFlowEnabled",
    "implicitFlowRedirectURIs",
];

/// A boolean setting: true or false (null only when creating: the default).
fn field_bool(v: &Value, key: &str, creating: bool, field: &mut bool) -> ApiResult<()> {
    match v {
        Value::Bool(b) => *field = *b,
        Value::Null if creating => {}
        _ => return Err(bad(format!("{key} must be true or false"))),
    }
    Ok(())
}

/// Validates and applies settings from a create or update body. Unknown fields are refused.
fn apply_settings(
    state: &AppState,
    app: &mut AppRecord,
    body: &Map<String, Value>,
    creating: bool,
) -> ApiResult<()> {
    let doc = &mut app.doc;
    let s = &mut doc.settings;
    for (key, v) in body {
        match key.as_str() {
            "name" => {
                let name = field_str(v, key, 100, false)?.unwrap_or_default();
                if name.trim().is_empty() {
                    return Err(bad("name must not be empty"));
                }
                app.name = name;
            }
            "description" => s.description = field_str(v, key, 1000, true)?,
            // Hangar has no SSL keystores (client certificates for outgoing calls): naming one
            // is refused rather than stored and ignored; none (null or empty) is what it does.
            "sslKeystoreAuth" => {
                if field_str(v, key, 1000, true)?.is_some_and(|k| !k.is_empty()) {
                    return Err(ApiError::bad_request(
                        "unsupported",
                        "sslKeystoreAuth is not supported: Hangar has no SSL keystores and \
                         calls application endpoints without a client certificate; send null",
                    ));
                }
                s.ssl_keystore_auth = None;
            }
            "pictureAttachmentId" => s.picture_attachment_id = field_str(v, key, 1000, true)?,
            "defaultExternalPicture" => s.default_external_picture = field_url(v, key)?,
            "endpointUri" => s.endpoint_uri = field_url(v, key)?,
            "codeFlowRedirectURIs" => s.code_flow_redirect_uris = field_uri_list(v, key)?,
            "implicitFlowRedirectURIs" => s.implicit_flow_redirect_uris = field_uri_list(v, key)?,
            "email" if creating => {
                let email = field_str(v, key, 254, true)?;
                if email.as_deref().is_some_and(|e| !e.contains('@')) {
                    return Err(bad("email must be an e-mail address"));
                }
                s.email = email;
            }
            "clientCredentialsFlowEnabled" => {
                field_bool(v, key, creating, &mut s.client_credentials_flow_enabled)?
            }
            "codeFlowEnabled" => field_bool(v, key, creating, &mut s.code_flow_enabled)?,
            "pkceRequired" => field_bool(v, key, creating, &mut s.pkce_required)?,
            "publicClientsAllowed" => field_bool(v, key, creating, &mut s.public_clients_allowed)?,
            "implicitFlowEnabled" => field_bool(v, key, creating, &mut s.implicit_flow_enabled)?,
            "endpointSslVerification" => {
                field_bool(v, key, creating, &mut s.endpoint_ssl_verification)?
            }
            "hasVerificationToken" => field_bool(v, key, creating, &mut s.has_verification_token)?,
            "hasSigningKey" => field_bool(v, key, creating, &mut s.has_signing_key)?,
            "hasPublicKeySignature" => {
                field_bool(v, key, creating, &mut s.has_public_key_signature)?
            }
            "appLevelAuth" => {
                let kind = match v {
                    Value::Null => "none",
                    Value::String(s) => s.as_str(),
                    Value::Object(o) => o
                        .get("type")
                        .or_else(|| o.get("className"))
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    _ => "",
                };
                s.app_level_auth = AppLevelAuth::parse(kind).ok_or_else(|| {
                    let kinds: Vec<&str> = AppLevelAuth::ALL.iter().map(|a| a.as_str()).collect();
                    bad(format!("appLevelAuth is one of {}", kinds.join(", ")))
                })?;
            }
            "basicAuthUsername" => s.basic_auth_username = field_str(v, key, 256, true)?,
            "basicAuthPassword" | "bearerAuthToken" => {
                let name = if key == "basicAuthPassword" {
                    SecretName::BasicAuthPassword
                } else {
                    SecretName::BearerAuthToken
                };
                let value = field_str(v, key, 1024, true)?;
                let value = value.as_deref().filter(|s| !s.is_empty());
                doc.secrets.set(&state.secrets, name, value);
            }
            "clientSecret" => match field_str(v, key, 256, creating)? {
                Some(secret) if secret.len() >= 16 => {
                    doc.secrets
                        .set(&state.secrets, SecretName::ClientSecret, Some(&secret))
                }
                Some(_) => return Err(bad("clientSecret has at least 16 characters")),
                None => {}
            },
            "clientId" | "connectToSpace" | "state" if creating => {}
            _ => {
                return Err(bad(format!(
                    "{key} is not a field that can be {}",
                    if creating { "given" } else { "updated" }
                )))
            }
        }
    }
    if s.public_clients_allowed && !s.pkce_required {
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
        doc: AppDoc::new(caller.id(), connect),
        version: 0,
        created_utc: 0,
    };
    apply_settings(&state, &mut draft, &body, true)?;
    if connect && draft.doc.settings.endpoint_uri.is_none() {
        return Err(bad(
            "connectToSpace needs an endpointUri to send InitPayload to",
        ));
    }
    let sealed = &mut draft.doc.secrets;
    let client_secret = match open_secret(&state, sealed, SecretName::ClientSecret)? {
        Some(s) => s,
        None => {
            let s = new_secret();
            sealed.set(&state.secrets, SecretName::ClientSecret, Some(&s));
            s
        }
    };
    let signing_key = new_signing_key();
    sealed.set(&state.secrets, SecretName::SigningKey, Some(&signing_key));
    let verification_token = new_secret();
    sealed.set(
        &state.secrets,
        SecretName::VerificationToken,
        Some(&verification_token),
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

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
    RawQuery(raw): RawQuery,
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
    let filter = AppFilter {
        name: q.name.clone().filter(|n| !n.is_empty()),
        with_archived: q.with_archived.unwrap_or(false),
        with_managed: q.with_managed.unwrap_or(true),
        owners: owners(&state, &caller, raw.as_deref().unwrap_or("")).await?,
    };
    if let Some(me) = caller.acting_app() {
        // An application sees itself only.
        let app = state.apps.app(me.app_id).await?;
        let data: Vec<Value> = app
            .iter()
            .filter(|a| filter.with_managed || !a.doc.multi_org)
            .filter(|a| filter.with_archived || !a.archived)
            .filter(|a| {
                filter.owners.as_ref().is_none_or(|o| {
                    o.iter()
                        .any(|id| a.doc.owner_id.as_deref() == Some(id.to_string().as_str()))
                })
            })
            .skip(skip as usize)
            .map(|a| app_json_for(&caller, a))
            .collect();
        return Ok(Json(
            json!({"next": data.len().to_string(), "totalCount": data.len(), "data": data}),
        ));
    }
    let page = state.apps.list_apps(&filter, by_created, skip, top).await?;
    let next = (skip + page.apps.len() as i64).to_string();
    Ok(Json(json!({
        "next": next,
        "totalCount": page.total,
        "data": page.apps.iter().map(|a| app_json_for(&caller, a)).collect::<Vec<_>>(),
    })))
}

/// The `owner` filter: profile identifiers (`me`, `id:N`, `username:NAME`), the parameter repeated
/// or its values comma-separated, as member ids. A username nobody has matches nothing, so the
/// answer does not tell whether it exists.
async fn owners(state: &AppState, caller: &Caller, raw: &str) -> ApiResult<Option<Vec<i64>>> {
    let bad = |v: &str| {
        ApiError::bad_request(
            "bad-owner",
            format!("owner {v:?} is not a profile: me, id:N or username:NAME"),
        )
    };
    let mut ids = Vec::new();
    let mut given = false;
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if key != "owner" {
            continue;
        }
        given = true;
        for v in value.split(',').map(str::trim) {
            if v == "me" {
                ids.push(caller.id());
            } else if let Some(n) = v.strip_prefix("id:") {
                ids.push(n.parse::<i64>().map_err(|_| bad(v))?);
            } else if let Some(name) = v.strip_prefix("username:").filter(|n| !n.is_empty()) {
                if let Some(m) = state.identity.member_by_username(name).await? {
                    ids.push(m.id);
                }
            } else {
                return Err(bad(v));
            }
        }
    }
    Ok(given.then_some(ids))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::View).await?;
    Ok(Json(app_json_for(&caller, &app)))
}

pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let app = target(&state, &caller, &ident, Need::Update).await?;
    let flows_only = body.keys().all(|k| FLOW_FIELDS.contains(&k.as_str()));
    if caller.acting_app().is_some() {
        if let Some(k) = body.keys().find(|k| FLOW_FIELDS.contains(&k.as_str())) {
            return Err(ApiError::forbidden(format!(
                "{k} is changed by an administrator: an application cannot change its own flows or redirect URIs"
            )));
        }
    } else if app.doc.multi_org && !flows_only {
        // The administrator keeps the flows and redirect URIs; the rest is the application's.
        return Err(ApiError::forbidden(
            "a multi-org application can only be updated by the application itself (an administrator may change its flows and redirect URIs)",
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
    if app.doc.multi_org && app.doc.settings.endpoint_uri.is_some() {
        // Archived once the application acknowledges ApplicationUninstalledPayload (`deliver.rs`).
        let app = modify(&state, app.id, |a| {
            a.doc.state = AppStatus::Uninstalling;
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
    if app.doc.state != AppStatus::Uninstalling || !failed_once {
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
        a.doc.state = AppStatus::Active;
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
        a.doc.error_message = req.message.clone();
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
        a.doc.last_healthy_utc = Some(now_ms());
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
    Ok(Json(json!(app.doc.last_client_credentials_access)))
}
