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
use hangar_core::app_model::{ItemKind, SealedSecrets, SecretName, Webhook};
use hangar_core::app_ops;
use hangar_core::apps::Context;
use hangar_core::store::{AppItem, AppRecord, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
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
async fn modify_item<T: Serialize + DeserializeOwned>(
    state: &AppState,
    app_id: i64,
    kind: ItemKind,
    scope: &str,
    key: &str,
    change: impl Fn(Option<T>) -> ApiResult<Option<T>>,
) -> ApiResult<Option<AppItem>> {
    app_ops::modify_item(state.apps.as_ref(), app_id, kind, scope, key, change).await
}

/// Changes the value of an existing item like `modify_item`; `missing` is the error when there is
/// no such item (now, or after a concurrent delete).
async fn change_item<T: Serialize + DeserializeOwned>(
    state: &AppState,
    app_id: i64,
    kind: ItemKind,
    scope: &str,
    key: &str,
    missing: impl Fn() -> ApiError,
    change: impl Fn(&mut T) -> ApiResult<()>,
) -> ApiResult<AppItem> {
    let changed = modify_item(state, app_id, kind, scope, key, |current: Option<T>| {
        let mut value = current.ok_or_else(&missing)?;
        change(&mut value)?;
        Ok(Some(value))
    })
    .await?;
    changed.ok_or_else(missing)
}

/// The secret `name` of `sealed` (an application's or a webhook's), opened.
pub fn open_secret(
    state: &AppState,
    sealed: &SealedSecrets,
    name: SecretName,
) -> ApiResult<Option<String>> {
    sealed
        .open(&state.secrets, name)
        .map_err(ApiError::internal)
}

/// Whether the caller may manage (change) the application: an administrator, or the application
/// itself, with a token whose scope covers it. Only they see where and how it is called.
pub fn may_manage(caller: &Caller, app: &AppRecord) -> bool {
    match caller.acting_app() {
        Some(me) => me.app_id == app.id && me.scope.is_everything(),
        None => caller.is_admin() && caller.app.as_ref().is_none_or(|a| a.scope.is_everything()),
    }
}

/// The ES_App shape as `caller` may see it: its endpoint and endpoint credentials only for those
/// who may manage it (absent for the others).
pub fn app_json_for(caller: &Caller, app: &AppRecord) -> Value {
    let mut v = app_json(app);
    if !may_manage(caller, app) {
        if let Some(o) = v.as_object_mut() {
            for k in [
                "endpointUri",
                "basicAuthUsername",
                "hasBasicAuthPassword",
                "hasBearerAuthToken",
            ] {
                o.remove(k);
            }
        }
    }
    v
}

/// The ES_App shape, whole.
pub fn app_json(app: &AppRecord) -> Value {
    let d = &app.doc;
    let s = &d.settings;
    json!({
        "id": app.id.to_string(),
        "clientId": app.client_id,
        "name": app.name,
        "description": s.description,
        "pictureAttachmentId": s.picture_attachment_id,
        "defaultExternalPicture": s.default_external_picture,
        "email": s.email,
        "ownerId": d.owner_id,
        "createdUtc": app.created_utc,
        "archived": app.archived,
        "state": if app.archived { "archived" } else { d.state.as_str() },
        "multiOrg": d.multi_org,
        "clientCredentialsFlowEnabled": s.client_credentials_flow_enabled,
        "codeFlowEnabled": s.code_flow_enabled,
        "codeFlowRedirectURIs": s.code_flow_redirect_uris,
        "pkceRequired": s.pkce_required,
        "publicClientsAllowed": s.public_clients_allowed,
        "implicitFlowEnabled": s.implicit_flow_enabled,
        "implicitFlowRedirectURIs": s.implicit_flow_redirect_uris,
        "endpointUri": s.endpoint_uri,
        "endpointSslVerification": s.endpoint_ssl_verification,
        "appLevelAuth": s.app_level_auth.as_str(),
        "sslKeystoreAuth": s.ssl_keystore_auth,
        "hasVerificationToken": s.has_verification_token,
        "hasSigningKey": s.has_signing_key,
        "hasPublicKeySignature": s.has_public_key_signature,
        "basicAuthUsername": s.basic_auth_username,
        "hasBasicAuthPassword": d.secrets.has(SecretName::BasicAuthPassword),
        "hasBearerAuthToken": d.secrets.has(SecretName::BearerAuthToken),
        "errorMessage": d.error_message,
        "lastHealthyUtc": d.last_healthy_utc,
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
    /// Whether applications that manage themselves (connected, multi-org) are listed (default true).
    #[serde(rename = "withManaged")]
    with_managed: Option<bool>,
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

/// One webhook of the application (its item, and its value), or 404.
pub(super) async fn webhook_item(
    state: &AppState,
    app: &AppRecord,
    id: &str,
) -> ApiResult<(AppItem, Webhook)> {
    let item = state
        .apps
        .item(app.id, ItemKind::Webhook, "", id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let webhook = item.get()?;
    Ok((item, webhook))
}
