//! Serving stored bytes the same way on every download route: ETag (the SHA-256) and
//! `If-None-Match`, single `Range` requests with `If-Range`, `HEAD`, and the safe-serving headers of
//! SPEC §11 (nosniff, a sandboxing CSP, inline only for an allow-list of passive types).

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hangar_core::disposition::{content_disposition, is_inline_safe};
use hangar_core::filename::sanitized;
use hangar_core::range::{self, RangeChoice};

/// What is about to be served.
pub struct Download<'a> {
    pub sha256: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub file_name: &'a str,
    /// Served to an authorized caller (not through a public link): never stored by shared caches.
    pub private: bool,
    /// Always offer as a download, whatever the type.
    pub as_attachment: bool,
    /// The stored file these bytes were made from, when they are not its own (a preview): its
    /// malware scan decides whether they are served (SPEC §9.6).
    pub made_from: Option<&'a str>,
}

const CSP: &str = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox";

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

fn choose_range(headers: &HeaderMap, etag: &str, size: u64) -> RangeChoice {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeChoice::Whole;
    };
    // If-Range with another validator (or a date, which we cannot match exactly) means: send it all.
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        if if_range.as_bytes() != etag.as_bytes() {
            return RangeChoice::Whole;
        }
    }
    range::choose(range, size)
}

fn header_value(s: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(s).map_err(ApiError::internal)
}

/// A header value made of a string built for it, without copying it again.
fn owned_header_value(s: String) -> ApiResult<HeaderValue> {
    HeaderValue::from_maybe_shared(axum::body::Bytes::from(s)).map_err(ApiError::internal)
}

/// The strong ETag of bytes with this SHA-256.
fn etag_of(sha256: &str) -> String {
    let mut etag = String::with_capacity(sha256.len() + 2);
    etag.push('"');
    etag.push_str(sha256);
    etag.push('"');
    etag
}

/// Whether `serve` would send the file's bytes from the first one on: a `GET` (or a form's `POST`)
/// that is not answered 304 and asks for the whole file or a range starting at byte 0. Share links
/// count such a request as one download.
pub fn starts_at_first_byte(method: &Method, headers: &HeaderMap, sha256: &str, size: u64) -> bool {
    if *method == Method::HEAD {
        return false;
    }
    let etag = etag_of(sha256);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| etag_matches(inm, &etag));
    if not_modified {
        return false;
    }
    match choose_range(headers, &etag, size) {
        RangeChoice::Whole => true,
        RangeChoice::Part { first, .. } => first == 0,
        RangeChoice::Unsatisfiable => false,
    }
}

pub async fn serve(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    d: Download<'_>,
) -> ApiResult<Response> {
    // Before anything else, validators included: unscanned or infected bytes are not served at all.
    crate::scan::require_clean(state, d.made_from.unwrap_or(d.sha256)).await?;
    let etag = etag_of(d.sha256);
    // Built in place, with static values where they are constant: a download's response has about
    // ten headers, and `Response::builder().header(name, "…")` would copy each string anew.
    let mut response = Response::new(Body::empty());
    let h = response.headers_mut();
    h.reserve(12);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if d.private {
            "private, no-cache"
        } else {
            "public, no-cache"
        }),
    );
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if etag_matches(inm, &etag) {
            h.insert(header::ETAG, owned_header_value(etag)?);
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(response);
        }
    }
    let inline = !d.as_attachment && is_inline_safe(d.content_type);
    h.insert(header::CONTENT_TYPE, header_value(d.content_type)?);
    h.insert(
        header::CONTENT_DISPOSITION,
        // Every name goes through the attachment names' sanitizing, whatever its source (a
        // storage path may hold bidi overrides a stored attachment name cannot).
        owned_header_value(content_disposition(inline, &sanitized(d.file_name)))?,
    );
    let range = choose_range(headers, &etag, d.size);
    h.insert(header::ETAG, owned_header_value(etag)?);
    let (status, start, len) = match range {
        RangeChoice::Whole => (StatusCode::OK, 0, d.size),
        RangeChoice::Part { first, last } => {
            h.insert(
                header::CONTENT_RANGE,
                owned_header_value(format!("bytes {first}-{last}/{}", d.size))?,
            );
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        RangeChoice::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                format!(
                    "the requested range is outside the {} bytes of the file",
                    d.size
                ),
            )
            .with("fileSize", d.size)
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{}", d.size))?,
            );
            return Ok(response);
        }
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    *response.status_mut() = status;
    // Deleted between the lookup and now: it is gone for this caller too.
    let gone = |e| match e {
        hangar_blob::BlobError::NotFound => ApiError::not_found("file"),
        other => other.into(),
    };
    let body = if *method == Method::HEAD || len == 0 {
        Body::empty()
    } else if d.size <= hangar_blob::small::SMALL_BLOB {
        // The caller's right to these bytes was decided before `serve` was called.
        let bytes = state
            .small_blobs
            .read(&*state.blobs, d.sha256, d.size, start, len)
            .await
            .map_err(gone)?;
        Body::from(bytes)
    } else {
        Body::from_stream(state.blobs.read(d.sha256, start, len).await.map_err(gone)?)
    };
    *response.body_mut() = body;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(r: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(r).unwrap());
        h
    }

    #[test]
    fn ranges_are_chosen_as_rfc_9110_says() {
        let e = "\"abc\"";
        assert!(matches!(
            choose_range(&with_range("bytes=0-4"), e, 10),
            RangeChoice::Part { first: 0, last: 4 }
        ));
        assert!(matches!(
            choose_range(&with_range("bytes=-3"), e, 10),
            RangeChoice::Part { first: 7, last: 9 }
        ));
        assert!(matches!(
            choose_range(&with_range("bytes=5-"), e, 10),
            RangeChoice::Part { first: 5, last: 9 }
        ));
        assert!(matches!(
            choose_range(&with_range("bytes=20-30"), e, 10),
            RangeChoice::Unsatisfiable
        ));
        assert!(matches!(
            choose_range(&with_range("items=0-1"), e, 10),
            RangeChoice::Whole
        ));
        assert!(matches!(
            choose_range(&with_range("bytes=0-1,4-5"), e, 10),
            RangeChoice::Whole
        ));
        let mut h = with_range("bytes=0-1");
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"other\""));
        assert!(matches!(choose_range(&h, e, 10), RangeChoice::Whole));
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"abc\""));
        assert!(matches!(
            choose_range(&h, e, 10),
            RangeChoice::Part { first: 0, last: 1 }
        ));
    }

    #[test]
    fn a_download_starts_at_the_first_byte_only_when_bytes_from_0_are_sent() {
        let (get, head, sha) = (Method::GET, Method::HEAD, "abc");
        assert!(starts_at_first_byte(&get, &HeaderMap::new(), sha, 10));
        assert!(starts_at_first_byte(
            &Method::POST,
            &HeaderMap::new(),
            sha,
            10
        ));
        assert!(!starts_at_first_byte(&head, &HeaderMap::new(), sha, 10));
        assert!(starts_at_first_byte(
            &get,
            &with_range("bytes=0-4"),
            sha,
            10
        ));
        assert!(!starts_at_first_byte(
            &get,
            &with_range("bytes=5-"),
            sha,
            10
        ));
        assert!(!starts_at_first_byte(
            &get,
            &with_range("bytes=-3"),
            sha,
            10
        ));
        assert!(!starts_at_first_byte(
            &get,
            &with_range("bytes=20-"),
            sha,
            10
        ));
        let mut cached = HeaderMap::new();
        cached.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(!starts_at_first_byte(&get, &cached, sha, 10));
        // A stale If-Range turns a range into the whole file: that is a download.
        let mut stale = with_range("bytes=5-");
        stale.insert(header::IF_RANGE, HeaderValue::from_static("\"old\""));
        assert!(starts_at_first_byte(&get, &stale, sha, 10));
    }

    #[test]
    fn etag_lists_match() {
        assert!(etag_matches("\"a\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
