//! What a browser sees of a share link: a small password form, and errors as short pages. Inline
//! CSS only, no script, and a policy that allows nothing else.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";
const STYLE: &str = "body{font-family:system-ui,sans-serif;color:#1d1d1f;background:#f5f5f7;\
margin:0;padding:4rem 1rem}main{max-width:22rem;margin:auto;background:#fff;padding:1.5rem 2rem;\
border-radius:.75rem;box-shadow:0 1px 4px #0002}h1{font-size:1.25rem}label{display:block;\
font-weight:600;margin:1rem 0 .25rem}input{width:100%;box-sizing:border-box;padding:.5rem;\
font-size:1rem;border:1px solid #888;border-radius:.375rem}button{margin-top:1rem;padding:.5rem 1.25rem;\
font-size:1rem;border:0;border-radius:.375rem;background:#0b57d0;color:#fff;cursor:pointer}\
button:focus,input:focus{outline:3px solid #0b57d080}.error{color:#b3261e}";

/// Whether the client prefers an HTML answer: `text/html` is acceptable and ranks at least as high
/// as `application/json` (ties go to the one listed first). Wildcards decide nothing, so `curl`'s
/// `*/*` gets JSON and a browser's navigation gets HTML.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html: Option<(f32, usize)> = None;
    let mut json: Option<(f32, usize)> = None;
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for (position, range) in accept.enumerate() {
        let mut parts = range.split(';');
        let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match kind.as_str() {
            "text/html" => &mut html,
            "application/json" => &mut json,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some((q, position));
        }
    }
    match (html, json) {
        (Some((hq, _)), _) if hq <= 0.0 => false,
        (Some(_), None) => true,
        (Some((hq, hp)), Some((jq, jp))) => hq > jq || (hq == jq && hp < jp),
        (None, _) => false,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The password form of the link `token`, posting back to the same `/s/{token}` (relative, so it
/// also works under a path prefix).
pub fn password_form(status: StatusCode, token: &str, message: Option<&str>) -> Response {
    page(status, "Password required", &form_body(token, message))
}

fn form_body(token: &str, message: Option<&str>) -> String {
    let message = message
        .map(|m| format!("<p class=error role=alert>{}</p>", escape(m)))
        .unwrap_or_default();
    format!(
        "<p>This file is protected by a password.</p>{message}\
         <form method=post action=\"./{token}\">\
         <label for=password>Password</label>\
         <input id=password name=password type=password autocomplete=off required autofocus>\
         <button type=submit>Download</button></form>",
        token = escape(token)
    )
}

/// An error as a page with the same status (and `Retry-After`, when throttled).
pub fn error_page(e: &ApiError) -> Response {
    let title = e.status.canonical_reason().unwrap_or("Error");
    let mut r = page(e.status, title, &format!("<p>{}</p>", escape(&e.text)));
    if let Some(secs) = e.retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn browsers_get_html_and_programs_json() {
        assert!(prefers_html(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(prefers_html(&accept("text/html")));
        assert!(!prefers_html(&accept("*/*")));
        assert!(!prefers_html(&HeaderMap::new()));
        assert!(!prefers_html(&accept("application/json")));
        assert!(!prefers_html(&accept("application/json, text/html")));
        assert!(prefers_html(&accept("text/html, application/json")));
        assert!(!prefers_html(&accept("text/html;q=0.5, application/json")));
        assert!(!prefers_html(&accept("text/html;q=0")));
    }

    #[test]
    fn the_form_escapes_and_posts_back() {
        let body = form_body("hgr_a\"<", Some("<b>"));
        assert!(body.contains("action=\"./hgr_a&quot;&lt;\""), "{body}");
        assert!(
            body.contains("&lt;b&gt;") && !body.contains("<b>"),
            "{body}"
        );
        assert!(body.contains("<label for=password>") && body.contains("id=password"));
        let r = password_form(StatusCode::UNAUTHORIZED, "hgr_a", None);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
    }
}
