//! What an operator sees of the traffic (SPEC §9.9): the request id, one access-log line per request,
//! the Prometheus metrics of this process (and the scrape that adds the shared gauges), `/readyz`.

use crate::client::{client_addr, ClientAddr};
use crate::error::ApiError;
use crate::AppState;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hangar_core::jobs::JobStore;
use hangar_core::store::BlobLifecycleStore;
use http_body::{Frame, SizeHint};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

/// A `HeaderName` made once: inserting by a `&str` name copies the name into a new allocation on
/// every request.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The `route` of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "-";
/// The `status` of a request whose client went away before an answer was ready (as nginx says).
pub const CLIENT_CLOSED: u16 = 499;

const REQUESTS: &str = "hangar_http_requests_total";
const DURATION: &str = "hangar_http_request_duration_seconds";
const BYTES_IN: &str = "hangar_http_received_bytes_total";
const BYTES_OUT: &str = "hangar_http_sent_bytes_total";
const UPLOADS: &str = "hangar_uploads_total";
const JOBS_QUEUED: &str = "hangar_jobs_queued";
const JOBS_RUNNING: &str = "hangar_jobs_running";
const JOBS_FAILED: &str = "hangar_jobs_failed";
const STORED_BYTES: &str = "hangar_stored_bytes";
const STORED_FILES: &str = "hangar_stored_files";
/// Counted by `hangar_jobs::webhooks` when a delivery attempt ends.
const DELIVERIES: &str = "hangar_webhook_deliveries_total";

/// A request id the client may choose: 1–128 characters of `[A-Za-z0-9._-]`.
pub fn valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a request turns out to be, noted by the parts that learn it and read when its access-log
/// line is written: who it is from, filled in by authentication (`auth::Caller`: the member id, or
/// the application id of an application acting as itself), and its route template, filled in by
/// `NoteRoute` once the router has matched it (the access log's layer runs before routing).
#[derive(Clone, Default)]
pub(crate) struct CallerSlot(Arc<Noted>);

#[derive(Default)]
pub(crate) struct Noted {
    caller: OnceLock<i64>,
    route: OnceLock<MatchedPath>,
}

impl CallerSlot {
    pub(crate) fn set(&self, id: i64) {
        // The first caller resolved wins: a request authenticates once.
        let _ = self.0.caller.set(id);
    }

    fn caller(&self) -> Option<i64> {
        self.0.caller.get().copied()
    }

    fn matched(&self) -> Option<&MatchedPath> {
        self.0.route.get()
    }
}

/// The layer, applied to every route of the router, that notes the matched route template for the
/// access log (`CallerSlot`). Written out rather than with `axum::middleware::map_request`, which
/// boxes a future per request: this one passes the inner service's future through as it is.
#[derive(Clone)]
pub(crate) struct NoteRoute<S>(pub(crate) S);

impl<S, B> tower::Service<axum::http::Request<B>> for NoteRoute<S>
where
    S: tower::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> S::Future {
        let extensions = request.extensions();
        if let (Some(slot), Some(route)) = (
            extensions.get::<CallerSlot>(),
            extensions.get::<MatchedPath>(),
        ) {
            // Routers are not nested here: the first match is the route.
            let _ = slot.0.route.set(route.clone());
        }
        self.0.call(request)
    }
}

/// How a file arrived, for `hangar_uploads_total{mode}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMode {
    Raw,
    Multipart,
    Url,
    DataUrl,
    TwoStage,
}

impl UploadMode {
    pub const ALL: [UploadMode; 5] = [
        UploadMode::Raw,
        UploadMode::Multipart,
        UploadMode::Url,
        UploadMode::DataUrl,
        UploadMode::TwoStage,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UploadMode::Raw => "raw",
            UploadMode::Multipart => "multipart",
            UploadMode::Url => "url",
            UploadMode::DataUrl => "data-url",
            UploadMode::TwoStage => "two-stage",
        }
    }

    /// One more file stored this way.
    pub fn count(self) {
        metrics::counter!(UPLOADS, "mode" => self.label()).increment(1);
    }
}

/// Whether this node has finished starting (and not begun stopping): `/readyz` says so.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// `GET /readyz`: 200 once start-up is done while the database and the blob store answer, else 503.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if !state.readiness.is_ready() {
        return not_ready("the server is starting or stopping");
    }
    let (db, blobs) = tokio::join!(state.attachments.ping(), state.blobs.check());
    match (db, blobs) {
        (Ok(()), Ok(())) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready"})),
        )
            .into_response(),
        (db, blobs) => {
            tracing::warn!(?db, ?blobs, "readiness check failed");
            not_ready("the database or the storage does not answer")
        }
    }
}

fn not_ready(why: &str) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", why).into_response()
}

/// The outermost middleware of the API: settles the request id and the client address, lets
/// authentication name the caller, counts the bytes, and writes the access-log line (and the request
/// metrics) when the response body has been sent, or when the client went away.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = match request.headers().get(REQUEST_ID) {
        Some(given) if valid_request_id(given.as_bytes()) => given.clone(),
        _ => {
            let id = new_request_id();
            request.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = match peer {
        Some(peer) => client_addr(&state.settings.trusted_proxies, peer, request.headers()),
        None => ClientAddr(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
    };
    request.extensions_mut().insert(client);
    let caller = CallerSlot::default();
    request.extensions_mut().insert(caller.clone());
    let metrics = state.settings.metrics;
    if metrics {
        let received = metrics::counter!(BYTES_IN);
        request = request.map(|body| Body::new(Counted::new(body, Some(received))));
    }
    let mut line = AccessLine {
        method: request.method().clone(),
        status: CLIENT_CLOSED,
        bytes: 0,
        caller,
        client,
        request_id: request_id.clone(),
        start,
        metrics,
        written: false,
    };
    let response = next.run(request).await;
    line.status = response.status().as_u16();
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(REQUEST_ID, request_id);
    let sent = metrics.then(|| metrics::counter!(BYTES_OUT));
    let mut body = Counted::new(body, sent);
    body.line = Some(line);
    Response::from_parts(parts, Body::new(body))
}

/// A fresh request id: 32 hex digits, formatted without allocating more than the header value.
fn new_request_id() -> HeaderValue {
    let mut hex = [0u8; 32];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(rand::random::<[u8; 16]>()) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0xf)];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("-"))
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// One request's access-log line, written once: when the response body is done (or dropped, which
/// is how a client that went away shows), or, if no response was made, when the request is dropped.
struct AccessLine {
    method: Method,
    status: u16,
    bytes: u64,
    caller: CallerSlot,
    client: ClientAddr,
    /// Checked (`valid_request_id`) or made here: printable ASCII.
    request_id: HeaderValue,
    start: Instant,
    metrics: bool,
    written: bool,
}

impl AccessLine {
    fn write(&mut self) {
        if std::mem::replace(&mut self.written, true) {
            return;
        }
        let elapsed = self.start.elapsed();
        let route = self
            .caller
            .matched()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
        crate::access_log::write(&crate::access_log::Fields {
            method: self.method.as_str(),
            route,
            status: self.status,
            bytes: self.bytes,
            duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            caller: self.caller.caller(),
            client: self.client.0,
            request_id: self.request_id.to_str().unwrap_or("-"),
        });
        if self.metrics {
            let method = method_label(&self.method);
            let route = route.to_string();
            metrics::counter!(
                REQUESTS,
                "method" => method,
                "route" => route.clone(),
                "status" => self.status.to_string()
            )
            .increment(1);
            metrics::histogram!(DURATION, "method" => method, "route" => route)
                .record(elapsed.as_secs_f64());
        }
    }
}

impl Drop for AccessLine {
    fn drop(&mut self) {
        self.write();
    }
}

/// Methods as metric labels: the standard ones by name, anything else as `OTHER` (a client must not
/// be able to create series at will).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A body that counts its data bytes as they pass (into a metric, and for a response into its
/// access-log line, written when the body ends or is dropped).
struct Counted {
    inner: Body,
    counter: Option<metrics::Counter>,
    line: Option<AccessLine>,
}

impl Counted {
    fn new(inner: Body, counter: Option<metrics::Counter>) -> Counted {
        Counted {
            inner,
            counter,
            line: None,
        }
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if let Some(c) = &this.counter {
                        c.increment(n);
                    }
                    if let Some(line) = &mut this.line {
                        line.bytes += n;
                    }
                }
                if this.inner.is_end_stream() {
                    if let Some(line) = &mut this.line {
                        line.write();
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(line) = &mut this.line {
                    line.write();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the metrics: {0}")]
pub struct MetricsError(String);

/// Installs this process's metrics recorder (what `metrics::counter!` and friends record into) and
/// describes Hangar's metrics. Called once, by `hangar serve` with `--metrics-listen`; without it
/// the macros record nothing and cost next to nothing.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let seconds = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION.to_string()), &seconds)
        .map_err(|e| MetricsError(e.to_string()))?
        .install_recorder()
        .map_err(|e| MetricsError(e.to_string()))?;
    metrics::describe_counter!(
        REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Time from a request's arrival to the end of its response body"
    );
    metrics::describe_counter!(
        BYTES_IN,
        metrics::Unit::Bytes,
        "Request body bytes received"
    );
    metrics::describe_counter!(BYTES_OUT, metrics::Unit::Bytes, "Response body bytes sent");
    metrics::describe_counter!(UPLOADS, "Files stored, by upload mode");
    metrics::describe_counter!(DELIVERIES, "Webhook delivery attempts, by outcome");
    metrics::describe_gauge!(JOBS_QUEUED, "Background jobs waiting in the shared queue");
    metrics::describe_gauge!(JOBS_RUNNING, "Background jobs claimed by a node right now");
    metrics::describe_gauge!(
        JOBS_FAILED,
        "Background jobs given up after their last attempt"
    );
    metrics::describe_gauge!(
        STORED_BYTES,
        metrics::Unit::Bytes,
        "Bytes in the blob store (each distinct content once)"
    );
    metrics::describe_gauge!(STORED_FILES, "Distinct contents (blobs) in the blob store");
    // Every mode and outcome is a series from the start, so that a rate over it is 0, not absent.
    for mode in UploadMode::ALL {
        metrics::counter!(UPLOADS, "mode" => mode.label()).increment(0);
    }
    for outcome in ["delivered", "retrying", "failed"] {
        metrics::counter!(DELIVERIES, "outcome" => outcome).increment(0);
    }
    metrics::counter!(BYTES_IN).increment(0);
    metrics::counter!(BYTES_OUT).increment(0);
    Ok(handle)
}

/// What a scrape of `GET /metrics` reads: this process's recorder, and the shared stores for the
/// gauges that are the same on every node.
#[derive(Clone)]
pub struct Scrape {
    pub handle: PrometheusHandle,
    pub jobs: Arc<dyn JobStore>,
    pub blobs: Arc<dyn BlobLifecycleStore>,
}

/// The metrics listener's whole API: `GET /metrics` in the Prometheus text format.
pub fn metrics_router(scrape: Scrape) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(scrape)
}

async fn metrics(State(scrape): State<Scrape>) -> Response {
    let (queue, stored) = tokio::join!(scrape.jobs.queue_counts(), scrape.blobs.stored_totals());
    match queue {
        Ok(q) => {
            metrics::gauge!(JOBS_QUEUED).set(q.queued as f64);
            metrics::gauge!(JOBS_RUNNING).set(q.running as f64);
            metrics::gauge!(JOBS_FAILED).set(q.failed as f64);
        }
        Err(e) => tracing::warn!("metrics: cannot count the job queue: {e}"),
    }
    match stored {
        Ok(s) => {
            metrics::gauge!(STORED_BYTES).set(s.bytes as f64);
            metrics::gauge!(STORED_FILES).set(s.blobs as f64);
        }
        Err(e) => tracing::warn!("metrics: cannot total the stored blobs: {e}"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_clients_may_choose() {
        assert!(valid_request_id(b"abc-123_X.y"));
        assert!(valid_request_id(&[b'a'; 128]));
        assert!(!valid_request_id(&[b'a'; 129]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"has space"));
        assert!(!valid_request_id(b"semi;colon"));
        assert!(!valid_request_id("é".as_bytes()));
    }
}
