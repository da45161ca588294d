//! Hangar's HTTP API: the shared state, the router, and one module per API family.

mod access;
pub mod access_log;
mod applications;
pub mod attachments;
pub mod auth;
mod chat;
pub mod client;
pub mod content_origin;
pub mod cors;
mod download;
pub mod error;
mod identity;
mod links;
mod oauth;
pub mod observe;
mod openapi;
mod previews;
mod projects;
mod quota;
mod scan;
mod shapes;
mod share_links;
mod spaces;
mod storage;
pub use storage::DirectFinisher;
pub mod throttle;
mod tus;
mod uploads;
mod web;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::Router;
use hangar_blob::{BlobStore, Ingest};
use hangar_core::jobs::JobStore;
use hangar_core::secrets::Secrets;
use hangar_core::store::*;
use hangar_jobs::fetch;
use std::sync::Arc;

pub use error::ApiError;

/// Settings the API needs, resolved by the binary from its configuration.
pub struct Settings {
    /// The server's URL as clients see it, without a trailing slash (links, CSRF origin check).
    pub public_url: String,
    /// `scheme://host[:port]` of `public_url`, compared with the `Origin` header.
    pub public_origin: String,
    pub secure_cookies: bool,
    pub max_file_size: u64,
    pub default_space_quota: Option<i64>,
    /// The most bytes of attachments one member may own (`--user-quota`); None: no limit.
    pub user_quota: Option<i64>,
    /// Key deriving public-link tokens (HMAC-SHA256); from the data dir or configuration.
    pub link_key: [u8; 32],
    /// A valid Argon2 hash of nothing anyone knows, verified when a login names no member.
    pub dummy_password_hash: String,
    /// Hosts that URL fetching may reach despite the address rules.
    pub fetch_allow: hangar_core::net::AllowList,
    pub fetch_limits: fetch::FetchLimits,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers name the client (`--trusted-proxies`).
    pub trusted_proxies: client::TrustedProxies,
    /// Cross-origin rules for `--cors-origins`; None: no CORS headers at all.
    pub cors: Option<tower_http::cors::CorsLayer>,
    /// Whether this process records metrics (`--metrics-listen`): request bodies are then counted
    /// as they arrive.
    pub metrics: bool,
    /// Failed logins and client authentications allowed per name and per address (SPEC §3).
    pub login_limits: throttle::Limits,
    /// A session unused for this long ends (`--session-idle-timeout`).
    pub session_idle_ms: i64,
    /// The lifetime of a personal token created without `expires` (`--token-lifetime`); None: no
    /// expiry.
    pub token_lifetime_ms: Option<i64>,
    /// How long a resumable upload waits for its next byte (`Upload-Expires`), SPEC §9.1.
    pub tus_expiry: std::time::Duration,
    /// Whether new files are scanned for malware (`--clamd`, SPEC §9.6): metadata then carries
    /// `scanState`, and only clean bytes are served.
    pub scanning: bool,
    /// The separate origin user content is served from (`--content-url`, SPEC §11); None: the API's.
    pub content: Option<content_origin::ContentOrigin>,
}

impl Settings {
    pub fn new(
        public_url: &str,
        max_file_size: u64,
        default_space_quota: Option<i64>,
        link_key: [u8; 32],
    ) -> Self {
        let public_url = public_url.trim_end_matches('/').to_string();
        let public_origin = match public_url.find("://") {
            Some(i) => match public_url[i + 3..].find('/') {
                Some(j) => public_url[..i + 3 + j].to_string(),
                None => public_url.clone(),
            },
            None => public_url.clone(),
        };
        Self {
            secure_cookies: public_url.starts_with("https://"),
            public_url,
            public_origin,
            max_file_size,
            default_space_quota,
            user_quota: None,
            link_key,
            dummy_password_hash: dummy_hash(),
            fetch_allow: hangar_core::net::AllowList::default(),
            fetch_limits: fetch::FetchLimits {
                first_byte: std::time::Duration::from_secs(30),
                idle: std::time::Duration::from_secs(60),
                total: std::time::Duration::from_secs(3600),
            },
            trusted_proxies: client::TrustedProxies::default(),
            cors: None,
            metrics: false,
            login_limits: throttle::Limits::default(),
            session_idle_ms: DEFAULT_SESSION_IDLE_MS,
            token_lifetime_ms: None,
            tus_expiry: std::time::Duration::from_secs(24 * 3600),
            scanning: false,
            content: None,
        }
    }

    /// Where links to user content point (public links, share links): the content origin when there
    /// is one, else the server's URL.
    pub fn content_url(&self) -> &str {
        self.content
            .as_ref()
            .map_or(self.public_url.as_str(), |c| c.url.as_str())
    }
}

/// `--session-idle-timeout` when not given: a day.
pub const DEFAULT_SESSION_IDLE_MS: i64 = 24 * 3600 * 1000;

fn dummy_hash() -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    let secret: [u8; 32] = rand::random();
    argon2::Argon2::default()
        .hash_password(&secret, &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Memory for small blobs kept between downloads (each at most `hangar_blob::small::SMALL_BLOB`).
pub const SMALL_BLOB_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Everything a handler may need, behind one `Arc`: every middleware layer and extractor of every
/// request clones the state, and one reference count is much cheaper to bump than the two dozen of
/// its parts (the 4 KiB download path clones it several times per request).
#[derive(Clone)]
pub struct AppState(Arc<AppServices>);

impl std::ops::Deref for AppState {
    type Target = AppServices;

    fn deref(&self) -> &AppServices {
        &self.0
    }
}

/// What `AppState` holds.
pub struct AppServices {
    pub identity: Arc<dyn IdentityStore>,
    /// Disabling members and resetting passwords, with their sessions and tokens ended at once.
    pub members: Arc<dyn MemberControlStore>,
    pub spaces: Arc<dyn SpaceStore>,
    pub chat: Arc<dyn ChatStore>,
    pub projects: Arc<dyn ProjectStore>,
    pub attachments: Arc<dyn AttachmentStore>,
    pub storage: Arc<dyn StorageStore>,
    /// Resumable uploads' offsets, owners and expiry.
    pub tus: Arc<dyn TusStore>,
    /// Share links: their tokens' hashes, limits and download counts.
    pub share_links: Arc<dyn ShareLinkStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// Every upload route's way in: receive, commit under a pin, record, release.
    pub ingest: Ingest,
    pub settings: Arc<Settings>,
    pub fetcher: Arc<fetch::Fetcher>,
    pub apps: Arc<dyn Applications>,
    pub secrets: Arc<Secrets>,
    /// Scan states of stored bytes (SPEC §9.6).
    pub scans: Arc<dyn hangar_core::scan::ScanStore>,
    /// Background work the API queues for later (finishing direct uploads).
    pub jobs: Arc<dyn JobStore>,
    /// Set once start-up is done, cleared when stopping (`/readyz`).
    pub readiness: observe::Readiness,
    /// Failed-attempt counters in the database, shared by every node.
    pub throttle: throttle::Throttle,
    /// Makes and finds previews (SPEC §9.3); the node's job runner shares it.
    pub previews: Arc<hangar_jobs::Previewer>,
    /// Turns for reading and decoding large JSON upload bodies (data URLs), so that their memory
    /// is bounded per node whatever the number of clients.
    pub large_json: Arc<tokio::sync::Semaphore>,
    /// Small blobs kept in memory (`hangar_blob::small`), served only after the access check.
    pub small_blobs: Arc<hangar_blob::small::SmallBlobCache>,
}

impl AppState {
    /// Builds the state from one store implementing every concern.
    pub fn new<S>(store: S, blobs: Arc<dyn BlobStore>, settings: Settings) -> Self
    where
        S: IdentityStore
            + MemberControlStore
            + SpaceStore
            + ChatStore
            + ProjectStore
            + AttachmentStore
            + StorageStore
            + TusStore
            + ShareLinkStore
            + Applications
            + BlobLifecycleStore
            + JobStore
            + AttemptStore
            + PreviewStore
            + hangar_core::scan::ScanStore
            + Clone
            + 'static,
    {
        Self(Arc::new(AppServices {
            jobs: Arc::new(store.clone()),
            scans: Arc::new(store.clone()),
            ingest: Ingest::new(blobs.clone(), Arc::new(store.clone())),
            previews: Arc::new(hangar_jobs::Previewer::new(
                blobs.clone(),
                Ingest::new(blobs.clone(), Arc::new(store.clone())),
                Arc::new(store.clone()),
            )),
            identity: Arc::new(store.clone()),
            members: Arc::new(store.clone()),
            spaces: Arc::new(store.clone()),
            chat: Arc::new(store.clone()),
            projects: Arc::new(store.clone()),
            attachments: Arc::new(store.clone()),
            apps: Arc::new(store.clone()),
            throttle: throttle::Throttle::new(Arc::new(store.clone()), settings.login_limits),
            tus: Arc::new(store.clone()),
            share_links: Arc::new(store.clone()),
            storage: Arc::new(store),
            secrets: Arc::new(Secrets::new(&settings.link_key)),
            readiness: observe::Readiness::default(),
            blobs,
            fetcher: Arc::new(fetch::Fetcher::new(
                settings.fetch_allow.clone(),
                settings.fetch_limits,
            )),
            settings: Arc::new(settings),
            large_json: Arc::new(tokio::sync::Semaphore::new(storage::LARGE_JSON_AT_ONCE)),
            small_blobs: Arc::new(hangar_blob::small::SmallBlobCache::new(
                SMALL_BLOB_CACHE_BYTES,
            )),
        }))
    }
}

async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    let db = state.attachments.ping().await;
    let blobs = state.blobs.check().await;
    match (db, blobs) {
        (Ok(()), Ok(())) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response(),
        (db, blobs) => {
            tracing::warn!(?db, ?blobs, "health check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unhealthy",
                "the database or the storage is unreachable",
            )
            .into_response()
        }
    }
}

/// An error answered before a request body was read leaves unread bytes on an HTTP/1 connection, which
/// hyper then closes; saying `Connection: close` lets clients know instead of failing their next request.
async fn close_after_refused_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let http1 = request.version() <= axum::http::Version::HTTP_11;
    let has_body = request
        .headers()
        .contains_key(axum::http::header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut response = next.run(request).await;
    if http1 && has_body && !response.status().is_success() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this method is not allowed here",
    )
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(observe::readyz))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route(
            "/api/v1/members",
            post(identity::create_member).get(identity::list_members),
        )
        .route(
            "/api/v1/members/{username}",
            axum::routing::patch(identity::update_member).delete(identity::delete_member),
        )
        .route("/api/v1/me/password", post(identity::change_own_password))
        .route(
            "/api/v1/me/tokens",
            post(identity::create_token).get(identity::list_tokens),
        )
        .route("/api/v1/me/tokens/{id}", delete(identity::delete_token))
        .route("/api/v1/spaces", post(spaces::create).get(spaces::list))
        .route(
            "/api/v1/spaces/{space}",
            get(spaces::get)
                .patch(spaces::update)
                .delete(spaces::remove),
        )
        .route("/api/v1/spaces/{space}/members", post(spaces::add_member))
        .route(
            "/api/v1/spaces/{space}/members/{username}",
            delete(spaces::remove_member),
        )
        .route(
            "/api/v1/channels",
            post(chat::create_channel).get(chat::list_channels),
        )
        .route("/api/v1/channels/{channel}", get(chat::get_channel))
        .route(
            "/api/v1/channels/{channel}/members",
            post(chat::add_channel_member),
        )
        .route(
            "/api/v1/channels/{channel}/messages",
            post(chat::post_message).get(chat::list_messages),
        )
        .route(
            "/api/v1/channels/{channel}/messages/{message}",
            delete(chat::delete_message),
        )
        .route(
            "/api/http/chats/messages/send-message",
            post(chat::send_message),
        )
        .route(
            "/api/http/projects",
            post(projects::create_project).get(projects::list_projects),
        )
        .route(
            "/api/http/projects/{project}/planning/issues",
            post(projects::create_issue).get(projects::list_issues),
        )
        .route(
            "/api/http/projects/{project}/planning/issues/{issue}",
            get(projects::get_issue).delete(projects::delete_issue),
        )
        .route(
            "/api/http/projects/{project}/planning/issues/{issue}/attachments",
            post(projects::add_attachments),
        )
        .route("/uploads", post(uploads::upload_raw))
        .route(
            "/api/v1/messages/{message}/attachments",
            post(uploads::upload_to_message),
        )
        .route(
            "/api/v1/attachments/{id}",
            get(attachments::metadata).delete(attachments::remove),
        )
        .route("/api/v1/attachments/{id}/preview", get(previews::preview))
        .route(
            "/api/v1/space/{space}/storage/{path}/preview",
            get(previews::storage_preview),
        )
        .route(
            "/api/v1/attachments/{id}/public-link",
            delete(attachments::revoke_public_link),
        )
        .route(
            "/api/v1/attachments/{id}/{name}",
            get(attachments::download_named),
        )
        .route(
            "/api/http/uploads/chat/public-url/{channel}/{message}/{id}",
            get(attachments::public_url),
        )
        .route("/d/{id}", get(attachments::download_link))
        .route("/oauth/token", post(oauth::token))
        .route(
            "/oauth/auth",
            get(oauth::authorize_page).post(oauth::authorize_decision),
        )
        .merge(applications::app::router())
        .merge(applications::secrets::router())
        .merge(applications::tokens::router())
        .merge(applications::parameters::router())
        .merge(applications::rights::router())
        .merge(applications::keys::router())
        .merge(applications::unfurls::router())
        .merge(applications::ui_extensions::router())
        .merge(applications::webhooks::router())
        .merge(applications::subscriptions::router())
        .merge(storage::router())
        .merge(tus::router())
        .merge(share_links::router())
        .merge(web::router())
        .merge(openapi::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower::layer::layer_fn(observe::NoteRoute))
        .with_state(state.clone());
    // The middleware wraps the router as a whole, outermost first, rather than each of its routes
    // (`Router::layer`): a stack per route is cloned for every request, and each `from_fn` layer
    // clones its own inner stack once more, one allocation per boxed level.
    let stack = tower::ServiceBuilder::new()
        // Outermost, so that its line and metrics cover every answer (panics and fallbacks too).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(
            // Spans name the path only: query strings carry public-link tokens and upload signatures (and
            // share-link paths are replaced by their template).
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get(observe::REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // A share link's path is its token.
                let path = request.uri().path();
                let path = if path.starts_with("/s/") { "/s/{token}" } else { path };
                tracing::debug_span!("request", method = %request.method(), path = %path, request_id = %id)
            }),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        // The CORS and content-origin layers only where their settings are given: each layer is a
        // boxed call and a clone of the stack below it on every request.
        .option_layer(state.settings.cors.is_some().then(|| {
            axum::middleware::from_fn_with_state(state.clone(), cors::cors)
        }))
        .layer(axum::middleware::from_fn(close_after_refused_body))
        .option_layer(state.settings.content.is_some().then(|| {
            axum::middleware::from_fn_with_state(state.clone(), content_origin::guard)
        }))
        .service(routes);
    Router::new().fallback_service(stack)
}
