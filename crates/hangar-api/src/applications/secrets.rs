//! An application's secrets (client secret, signing key, verification token, bearer token): reading
//! and regenerating them, and the public keys that verify what Hangar signs.

use super::{modify, open_secret, target, Need};
use crate::auth::Caller;
use crate::error::{ok_body, ApiError, ApiResult, Json, Path};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use hangar_core::app_model::SecretName;
use hangar_core::app_ops;
use hangar_core::now_ms;
use hangar_core::secrets::{new_secret, new_signing_key};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/http/applications/{app}/bearer-token",
            get(bearer_token),
        )
        .route("/api/http/applications/{app}/public-keys", get(public_keys))
        .route(
            "/api/http/applications/{app}/client-secret",
            get(client_secret),
        )
        .route(
            "/api/http/applications/{app}/client-secret/regenerate",
            post(regenerate_client_secret),
        )
        .route("/api/http/applications/{app}/signing-key", get(signing_key))
        .route(
            "/api/http/applications/{app}/signing-key/regenerate",
            post(regenerate_signing_key),
        )
        .route(
            "/api/http/applications/{app}/verification-token",
            get(verification_token),
        )
        .route(
            "/api/http/applications/{app}/verification-token/regenerate",
            post(regenerate_verification_token),
        )
        // Every answer here carries a secret (or a key list beside them): never cached.
        .layer(axum::middleware::map_response(crate::auth::no_store_layer))
}

/// An OAuth access token was obtained with the client secret: it must not read it back or rotate
/// it (which would let a leaked short-lived token take the application over for good).
fn refuse_own_client_secret(caller: &Caller, name: SecretName) -> ApiResult<()> {
    let by_access_token = caller
        .app
        .as_ref()
        .is_some_and(|a| a.token_kind == "access");
    if name == SecretName::ClientSecret && by_access_token {
        return Err(ApiError::forbidden(
            "an OAuth access token cannot read or rotate the client secret",
        ));
    }
    Ok(())
}

pub async fn public_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    target(&state, &caller, &ident, Need::View).await?;
    Ok(Json(json!(state.secrets.jwks())))
}

async fn read_secret(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    name: SecretName,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::Secrets).await?;
    refuse_own_client_secret(caller, name)?;
    Ok(Json(json!(open_secret(state, &app.doc.secrets, name)?)))
}

async fn regenerate(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    name: SecretName,
    fresh: fn() -> String,
) -> ApiResult<Json<Value>> {
    let app = target(state, caller, ident, Need::Update).await?;
    refuse_own_client_secret(caller, name)?;
    let value = fresh();
    modify(state, app.id, |a| {
        let sealed = &mut a.doc.secrets;
        if name == SecretName::SigningKey {
            // The old key keeps signing beside the new one for a grace period (`deliver.rs`).
            let until = now_ms() + app_ops::KEY_GRACE_MS;
            if let Some(until) = sealed.rotate_signing_key(&state.secrets, &value, until) {
                a.doc.previous_signing_key_until = Some(until);
            }
        } else {
            sealed.set(&state.secrets, name, Some(&value));
        }
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
    read_secret(&state, &caller, &ident, SecretName::ClientSecret).await
}

pub async fn regenerate_client_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    regenerate(
        &state,
        &caller,
        &ident,
        SecretName::ClientSecret,
        new_secret,
    )
    .await
}

pub async fn signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    read_secret(&state, &caller, &ident, SecretName::SigningKey).await
}

pub async fn regenerate_signing_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    regenerate(
        &state,
        &caller,
        &ident,
        SecretName::SigningKey,
        new_signing_key,
    )
    .await
}

pub async fn verification_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    read_secret(&state, &caller, &ident, SecretName::VerificationToken).await
}

pub async fn regenerate_verification_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    regenerate(
        &state,
        &caller,
        &ident,
        SecretName::VerificationToken,
        new_secret,
    )
    .await
}

pub async fn bearer_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Json<Value>> {
    read_secret(&state, &caller, &ident, SecretName::BearerAuthToken).await
}
