//! The web UI (SPEC §9.7): a few static files compiled into the binary and served at `/`, `/login`
//! and `/ui/…`. The pages are plain HTML, CSS and ES modules that call the public HTTP API with the
//! session cookie like any other client; nothing here reads the database.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One embedded file: its name under `/ui/`, its type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the UI. Pages are served at their own paths, the rest under `/ui/`.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("login.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("api.js", JS),
    asset!("app.js", JS),
    asset!("dom.js", JS),
    asset!("files.js", JS),
    asset!("chat.js", JS),
    asset!("issues.js", JS),
    asset!("tokens.js", JS),
    asset!("admin.js", JS),
    asset!("login.js", JS),
    asset!("next.js", JS),
    asset!("tus.js", JS),
];

/// The UI's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login))
        .route("/ui/{file}", get(file))
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "index.html", &headers)
}

async fn login(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "login.html", &headers)
}

async fn file(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The pages have their own paths; under /ui/ only the files they load.
    if name.ends_with(".html") {
        return crate::ApiError::not_found("file").into_response();
    }
    serve(&state, &name, &headers)
}

/// The strong validator of each asset: its SHA-256, computed once.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..32]))
            .collect()
    })[index]
}

/// The pages' Content-Security-Policy: scripts, styles and calls only from this origin (no inline
/// script or style at all), images also from blob: (local previews of files about to be uploaded) and
/// from the content origin (previews redirected there), never framed.
pub fn policy(state: &AppState) -> String {
    let content = state
        .settings
        .content
        .as_ref()
        .map(|c| format!(" {}", c.url))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:{content}; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Answers one asset with its type, validator and cache rules: browsers revalidate every time
/// (`no-cache`), so a new binary's UI is used at once, and a `304` costs no body.
fn serve(state: &AppState, name: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return crate::ApiError::not_found("file").into_response();
    };
    let asset = &ASSETS[index];
    let tag = etag(index);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if asset.content_type.starts_with("text/html") {
        if let Ok(csp) = HeaderValue::from_str(&policy(state)) {
            h.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    response
}

/// Where the login page sends a member back to: `next` when it is a path on this server, else `/`.
/// The page checks the same rule in `next.js`; the server uses it for the links it makes.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 4096
        && !next.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_listed_once_and_non_empty() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.bytes.is_empty(), "{}", a.name);
            assert!(
                ASSETS[..i].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
    }

    #[test]
    fn pages_load_no_inline_script() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".html")) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for tag in text.split("<script").skip(1) {
                let open = &tag[..tag.find('>').unwrap()];
                assert!(open.contains("src="), "{}: inline script", a.name);
            }
            assert!(!text.contains("style="), "{}: inline style", a.name);
            assert!(!text.contains("<style"), "{}: inline style", a.name);
        }
    }

    #[test]
    fn next_is_a_path_on_this_server() {
        for good in ["/", "/oauth/auth?client_id=a&x=%2F%2F", "/#/files/s"] {
            assert_eq!(safe_next(good), Some(good));
        }
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil",
            "/a\nb",
            "/a\\b",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }
}
