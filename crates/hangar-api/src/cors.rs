//! Cross-origin requests for `--cors-origins` (SPEC §9.9): web applications on other origins may call
//! the API with bearer tokens, never with the session cookie.
//!
//! The headers themselves come from tower-http's `CorsLayer`. Two things are ours: tus's own
//! `OPTIONS /api/v1/tus` (a capability query, answered by the tus handler) must not be taken for a
//! preflight, so only an `OPTIONS` carrying `Access-Control-Request-Method` goes to the layer as one;
//! and a request from another origin loses its `Cookie` header before anything reads it, so a page
//! elsewhere can never act with a member's session, whatever the browser sends.

use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a cross-origin client may send: authentication, ranges and validators, checksums,
/// the share-link password, and the tus protocol's.
const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "range",
    "if-none-match",
    "if-range",
    "x-request-id",
    "content-digest",
    "repr-digest",
    "x-checksum-sha256",
    "x-share-password",
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-checksum",
    "upload-defer-length",
    "upload-concat",
    "x-http-method-override",
];

/// Response headers a cross-origin client may read (SPEC §9.9), with the tus protocol's.
const EXPOSED_HEADERS: &[&str] = &[
    "etag",
    "content-disposition",
    "content-range",
    "content-length",
    "accept-ranges",
    "location",
    "retry-after",
    "x-request-id",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "upload-metadata",
    "hangar-attachment-id",
];

/// The cross-origin rules for these origins (`*`: any origin). Credentials are never allowed.
pub fn layer(origins: &[HeaderValue]) -> CorsLayer {
    let headers = |names: &'static [&'static str]| -> Vec<HeaderName> {
        names.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().cloned())
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(headers(ALLOWED_HEADERS))
        .expose_headers(headers(EXPOSED_HEADERS))
        .max_age(Duration::from_secs(600))
}

/// The middleware: with `--cors-origins` set, cross-origin requests get their CORS headers (or a
/// preflight answer) and lose their cookies; without it, requests pass untouched.
pub async fn cors(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(cors) = state.settings.cors.clone() else {
        return next.run(request).await;
    };
    let foreign = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() != state.settings.public_origin.as_bytes());
    if foreign {
        request.headers_mut().remove(header::COOKIE);
    }
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if request.method() == Method::OPTIONS && !preflight {
        return next.run(request).await;
    }
    match cors.layer(next).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
