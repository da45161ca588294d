//! UI extensions an application contributes per context, and who has them enabled.

use super::{calling_app, parse_context, target, ContextQuery, Need};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::Router;
use hangar_core::app_model::ItemKind;
use hangar_core::store::AppItem;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/ui-extensions",
            patch(set_ui_extensions),
        )
        .route(
            "/api/http/applications/{app}/ui-extensions",
            get(ui_extensions),
        )
        .route(
            "/api/http/applications/{app}/ui-extensions/disable-for-everybody",
            patch(disable_for_everybody),
        )
        .route(
            "/api/http/applications/{app}/ui-extensions/disable-for-me",
            patch(disable_for_me),
        )
        .route(
            "/api/http/applications/{app}/ui-extensions/enable-for-everybody",
            patch(enable_for_everybody),
        )
        .route(
            "/api/http/applications/{app}/ui-extensions/enable-for-me",
            patch(enable_for_me),
        )
}

const UI_EXTENSION_LIMIT: usize = 50;

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
        .delete_items(app.id, ItemKind::UiExtension, Some(&ctx.text))
        .await?;
    for (i, e) in req.extensions.into_iter().enumerate() {
        let item = AppItem::new(
            app.id,
            ItemKind::UiExtension,
            &ctx.text,
            format!("{i:03}"),
            &e,
        );
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
            ItemKind::UiExtension,
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
                .item(app.id, ItemKind::UiPreference, &i.scope, "*")
                .await?;
            let mine = state
                .apps
                .item(
                    app.id,
                    ItemKind::UiPreference,
                    &i.scope,
                    &caller.id().to_string(),
                )
                .await?;
            let everybody = match everybody {
                Some(p) => p.get::<bool>()?,
                None => true,
            };
            let mine = match mine {
                Some(p) => p.get::<bool>()?,
                None => everybody,
            };
            out.push(json!({
                "contextIdentifier": i.scope,
                "extensions": [],
                "enabledForEverybody": everybody,
                "enabledForMe": mine,
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
    let who = if everybody {
        "*".to_string()
    } else {
        caller.id().to_string()
    };
    let item = AppItem::new(app.id, ItemKind::UiPreference, ctx.text, who, &enabled);
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
