//! The Applications API (`/api/http/applications`): one sub-module per family of routes, each
//! with its own `router()` (the application itself in `app`, `secrets` and signing keys, permanent
//! `tokens`, `parameters`, `rights` and authorized contexts, GPG and SSH `keys`, `unfurls`,
//! `ui_extensions`, `webhooks` and their `subscriptions`), and here what they share: resolving the
//! application a call names, versioned changes, the application's JSON shape, sealed secrets, paging
//! and limit errors. The OAuth endpoints are in `oauth.rs`, delivery in `hangar-jobs`.
//!
//! Who may do what: administrators everything; other members may view applications (never their
//! secrets); an application acting as itself (with a `**` token) may view, change, read the secrets
//! of and remove itself only (other applications do not exist for it); granting and denying rights
//! is for administrators.

pub mod app;
pub mod keys;
pub mod parameters;
pub mod rights;
pub mod secrets;
pub mod subscriptions;
pub mod tokens;
pub mod ui_extensions;
pub mod unfurls;
pub mod webhooks;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::http::StatusCode;
use hangar_core::app_ops;
use hangar_core::apps::Context;
use hangar_core::store::{AppItem, AppRecord, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

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
        if need != Need::View && !me.scope.is_everything() {
            return Err(ApiError::forbidden(
                "this token's scope does not cover managing the application",
            ));
        }
        return Ok(app);
    }
    if need != Need::View
        && caller
            .app
            .as_ref()
            .is_some_and(|a| !a.scope.is_everything())
    {
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

/// Changes one item of an application with compare-and-set on its version, retrying when a
/// concurrent change won (`app_ops::modify_item`): correct with any number of processes. `change`
/// answers the item's new value (None: leave it); an absent item is created.
async fn modify_item(
    state: &AppState,
    app_id: i64,
    kind: &str,
    scope: &str,
    key: &str,
    change: impl Fn(Option<&AppItem>) -> ApiResult<Option<Value>>,
) -> ApiResult<Option<AppItem>> {
    app_ops::modify_item(state.apps.as_ref(), app_id, kind, scope, key, change).await
}

/// Changes the value of an existing item like `modify_item`; `missing` is the error when there is
/// no such item (now, or after a concurrent delete).
async fn change_item(
    state: &AppState,
    app_id: i64,
    kind: &str,
    scope: &str,
    key: &str,
    missing: impl Fn() -> ApiError,
    change: impl Fn(&mut Value) -> ApiResult<()>,
) -> ApiResult<AppItem> {
    let changed = modify_item(state, app_id, kind, scope, key, |current| {
        let mut value = current.ok_or_else(&missing)?.value.clone();
        change(&mut value)?;
        Ok(Some(value))
    })
    .await?;
    changed.ok_or_else(missing)
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

fn parse_context(s: &str) -> ApiResult<Context> {
    Context::parse(s).ok_or_else(|| {
        ApiError::bad_request(
            "bad-context",
            format!("{s:?} is not a context (global, project:key:X, channel:id:N, space:id:S)"),
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextQuery {
    context_identifier: Option<String>,
}

/// A bad field of a webhook or subscription.
pub(super) fn bad(text: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad-webhook-field", text)
}

/// One webhook of the application, or 404.
pub(super) async fn webhook_item(
    state: &AppState,
    app: &AppRecord,
    id: &str,
) -> ApiResult<AppItem> {
    state
        .apps
        .item(app.id, "webhook", "", id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}
