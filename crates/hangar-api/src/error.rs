//! The HTTP edge's error: every failure becomes `{errorText, httpStatusCode, error}` with the same
//! status on the response. Causes of server-side failures are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hangar_blob::{BlobError, IngestError};
use hangar_core::StoreError;
use hangar_jobs::fetch::FetchError;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub text: String,
    /// Extra fields merged into the body (such as `attachmentId` on a checksum mismatch).
    pub extra: Map<String, Value>,
    /// Seconds sent in `Retry-After` (a throttled request).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }
    pub fn bad_request(code: &'static str, text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, text)
    }
    pub fn unauthorized(text: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", text)
    }
    pub fn forbidden(text: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", text)
    }
    /// Not found, or not visible to the caller: the two are indistinguishable on purpose.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &'static str, text: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, text)
    }
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limits-reached",
            format!("the file exceeds the limit of {limit} bytes"),
        )
        .with("limitBytes", limit)
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let id: u32 = rand::random();
        tracing::error!(error_id = %format!("{id:08x}"), "internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the server failed to handle the request (error id {id:08x})"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("errorText".into(), json!(self.text));
        body.insert("httpStatusCode".into(), json!(self.status.as_u16()));
        body.insert("error".into(), json!(self.code));
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => {
                ApiError::conflict("already-exists", format!("{what} already exists"))
            }
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Refused { code, reason } => match code {
                "limits-reached" => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, reason),
                "path-too-long" => ApiError::bad_request(code, reason),
                "too-many-uploads" => ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, reason),
                _ => ApiError::conflict(code, reason),
            },
            StoreError::Full => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage-full",
                "the server has no room left for this change",
            ),
            StoreError::Unavailable(_) => {
                tracing::error!("database unavailable: {e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database-unavailable",
                    "the database cannot be reached right now; try again later",
                )
            }
            StoreError::Backend(_) => ApiError::internal(e),
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        if e.is_unavailable() {
            tracing::error!("storage unavailable: {e}");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-unavailable",
                "the storage cannot be reached right now; try again later",
            );
        }
        match e {
            BlobError::TooLarge { limit } => ApiError::too_large(limit),
            BlobError::Interrupted(cause) => ApiError::bad_request(
                "upload-interrupted",
                format!("the upload did not arrive completely: {cause}"),
            ),
            BlobError::NoSpace => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage-full",
                "the server has no room left for this file",
            ),
            BlobError::NotFound => {
                ApiError::internal("a referenced blob is missing from the store")
            }
            BlobError::Io(_) => ApiError::internal(e),
        }
    }
}

/// A username that names no member who can be added. The answer never repeats or describes the
/// name, so that it tells nothing about other people's accounts beyond the refusal itself.
pub fn unknown_member() -> ApiError {
    ApiError::bad_request(
        "unknown-member",
        "a listed username cannot be added (no such member)",
    )
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::BadUrl(_) => ApiError::bad_request("bad-url", e.to_string()),
            FetchError::Forbidden(_) => ApiError::bad_request("fetch-forbidden", e.to_string()),
            FetchError::Failed(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "fetch-failed", e.to_string())
            }
            FetchError::Timeout => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "fetch-timeout", e.to_string())
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Blob(e) => e.into(),
            IngestError::Store(e) => e.into(),
            IngestError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the same content is being deleted right now; upload it again",
            ),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::PAYLOAD_TOO_LARGE => "limits-reached",
            _ => "bad-json",
        };
        // JSON of the wrong shape is bad input like any other (422 is kept for checksum mismatches).
        let status = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE => status,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request("bad-path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("bad-query", r.body_text())
    }
}

/// `Json` whose rejections are our JSON errors.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Path` whose rejections are our JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `Query` whose rejections are our JSON errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The `{"httpStatusCode": 200}` answer of the reference's state-changing calls.
pub fn ok_body() -> Json<Value> {
    Json(json!({ "httpStatusCode": 200 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_storage_is_unavailable_and_a_failing_one_internal() {
        let io = |kind| BlobError::Io(std::io::Error::new(kind, "cause"));
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::TimedOut,
        ] {
            let e = ApiError::from(io(kind));
            assert_eq!(
                (e.status, e.code),
                (StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable")
            );
        }
        let e = ApiError::from(io(std::io::ErrorKind::PermissionDenied));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
    }

    #[test]
    fn an_unreachable_database_is_unavailable_and_a_failing_one_internal() {
        let e = ApiError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::SERVICE_UNAVAILABLE, "database-unavailable")
        );
        assert!(!e.text.contains("refused"), "no detail leaks: {}", e.text);
        let e = ApiError::from(StoreError::Backend("syntax error".into()));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
    }
}
