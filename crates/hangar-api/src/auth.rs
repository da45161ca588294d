//! Who is calling: session cookies and bearer tokens, CSRF protection for cookie-authenticated
//! changes, password hashing, and the login/logout/me endpoints.

use crate::error::{ApiError, ApiResult, Json};
use crate::throttle::{Key, Peer};
use crate::AppState;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use hangar_core::access::Scope;
use hangar_core::ids::{new_token, token_hash, TOKEN_PREFIX};
use hangar_core::model::{Member, PersonalToken, Role};
use hangar_core::now_ms;
use serde::Deserialize;
use serde_json::json;

/// `Cache-Control: no-store` on an answer that carries a secret (a token, a session cookie, a
/// client secret, a signing key), so that no cache along the way keeps it.
pub fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// For a router whose answers carry secrets: `.layer(axum::middleware::map_response(no_store_layer))`.
pub async fn no_store_layer(mut response: Response) -> Response {
    no_store(&mut response);
    response
}

/// A JSON answer that carries a secret, with `Cache-Control: no-store`.
pub fn secret_json(status: axum::http::StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    no_store(&mut response);
    response
}

pub const SESSION_COOKIE: &str = "hangar_session";
const SESSION_LIFETIME_MS: i64 = 14 * 24 * 3600 * 1000;
/// `lastUsedUtc` of a token is exact to this much, so that using a token rarely costs a write.
const TOKEN_USE_RESOLUTION_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Session,
    Token,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub member: Member,
    pub method: AuthMethod,
    /// The personal token used, when the caller authenticated with one.
    pub token: Option<PersonalToken>,
    /// Set when the caller is an application, or a member through a token issued to an application.
    pub app: Option<AppCaller>,
}

/// An application behind a request.
#[derive(Debug, Clone)]
pub struct AppCaller {
    pub app_id: i64,
    /// The application token used.
    pub token_id: i64,
    /// `access` (OAuth) or `permanent`.
    pub token_kind: String,
    /// When the application token used expires (a token made with it expires no later).
    pub token_expires_utc: Option<i64>,
    /// `**`, `read`, or the right codes the token is limited to.
    pub scope: Scope,
    /// True for a member's token issued to the application (the code flow): the caller then acts as
    /// that member; false when the application acts as itself, with its granted rights.
    pub user_token: bool,
    /// The application's granted rights, loaded once per request when first needed (`access`).
    pub grants: std::sync::Arc<tokio::sync::OnceCell<hangar_core::access::Grants>>,
}

impl Caller {
    pub fn id(&self) -> i64 {
        self.member.id
    }
    /// Who the access log names: the application's id when an application acts as itself, else the
    /// member's id.
    pub fn log_id(&self) -> i64 {
        self.acting_app().map_or(self.member.id, |a| a.app_id)
    }
    pub fn is_admin(&self) -> bool {
        self.member.role == Role::Admin
    }
    /// The application acting as itself (not on behalf of a member), if that is who calls.
    pub fn acting_app(&self) -> Option<&AppCaller> {
        self.app.as_ref().filter(|a| !a.user_token)
    }
    /// For the few GET routes that change something (the reference's public-url call): refuse what
    /// a state change would refuse, a read-only token or a cross-site browser request.
    pub fn require_change(&self, state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
        if self.token.as_ref().is_some_and(|t| t.scope.is_read_only())
            || self.app.as_ref().is_some_and(|a| a.scope.is_read_only())
        {
            return Err(ApiError::forbidden("this token may only read"));
        }
        if self.method == AuthMethod::Session {
            check_same_origin(state, &Method::POST, headers)?;
        }
        Ok(())
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an administrator may do this"))
        }
    }

    /// An administrator acting in person: not through a token issued to an application, which must
    /// never mint members or change roles, whoever approved it.
    pub fn require_admin_in_person(&self) -> ApiResult<()> {
        self.require_admin()?;
        if self.app.is_some() {
            return Err(ApiError::forbidden(
                "members are managed by an administrator in person, not through an application's token",
            ));
        }
        Ok(())
    }
}

/// The session token the request carries in its cookie, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ApiError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"));
    Some(parsed)
}

/// Cookie-authenticated state changes must come from our own origin (SPEC §11). Browsers send
/// `Origin` on cross-origin and on same-origin POSTs, and `Sec-Fetch-Site` on every request; a request
/// carrying neither comes from a non-browser client, which a forged cross-site form cannot be.
pub(crate) fn check_same_origin(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(csrf_error());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() != state.settings.public_origin.as_bytes() {
            return Err(csrf_error());
        }
    }
    Ok(())
}

fn csrf_error() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "csrf-rejected",
        "cross-site request refused: the Origin does not match this server",
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match <Caller as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
            .await?
        {
            Some(caller) => Ok(caller),
            None => Err(ApiError::unauthorized(
                "authentication required: log in or send a bearer token",
            )),
        }
    }
}

impl OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if let Some(cached) = parts.extensions.get::<Caller>() {
            return Ok(Some(cached.clone()));
        }
        let now = now_ms();
        let caller = if let Some(token) = bearer(&parts.headers) {
            let token = token?;
            if !token.starts_with(TOKEN_PREFIX) {
                return Err(ApiError::unauthorized("unknown or expired token"));
            }
            let hash = token_hash(token);
            let Some((member, personal)) = state.identity.token_member(&hash, now).await? else {
                let caller = app_caller(state, &hash, now, &parts.method).await?;
                remember(parts, &caller);
                return Ok(Some(caller));
            };
            if personal
                .last_used_utc
                .is_none_or(|t| now - t > TOKEN_USE_RESOLUTION_MS)
            {
                // Off the request path: a lost update only makes lastUsedUtc a minute staler.
                let identity = state.identity.clone();
                let token_id = personal.id;
                tokio::spawn(async move {
                    if let Err(e) = identity.touch_token(token_id, now).await {
                        tracing::warn!("cannot record token use: {e}");
                    }
                });
            }
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if personal.scope.is_read_only() && !safe {
                return Err(ApiError::forbidden("this token may only read"));
            }
            Caller {
                member,
                method: AuthMethod::Token,
                token: Some(personal),
                app: None,
            }
        } else if let Some(session) = session_cookie(&parts.headers) {
            let idle_since = now - state.settings.session_idle_ms;
            let Some(member) = state
                .identity
                .session_member(&token_hash(session), now, idle_since)
                .await?
            else {
                return Err(ApiError::unauthorized(
                    "the session has expired: log in again",
                ));
            };
            check_same_origin(state, &parts.method, &parts.headers)?;
            Caller {
                member,
                method: AuthMethod::Session,
                token: None,
                app: None,
            }
        } else {
            return Ok(None);
        };
        remember(parts, &caller);
        Ok(Some(caller))
    }
}

/// Keeps the caller for later extractors of the same request, and names it in the access log.
fn remember(parts: &mut Parts, caller: &Caller) {
    if let Some(slot) = parts.extensions.get::<crate::observe::CallerSlot>() {
        slot.set(caller.log_id());
    }
    parts.extensions.insert(caller.clone());
}

/// The caller behind an application token (OAuth access or permanent), or 401.
async fn app_caller(state: &AppState, hash: &str, now: i64, method: &Method) -> ApiResult<Caller> {
    let (token, app, member) = state
        .apps
        .app_token(hash, now)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or expired token"))?;
    if token
        .last_used_utc
        .is_none_or(|t| now - t > TOKEN_USE_RESOLUTION_MS)
    {
        let apps = state.apps.clone();
        tokio::spawn(async move {
            if let Err(e) = apps.touch_app_token(token.id, now).await {
                tracing::warn!("cannot record token use: {e}");
            }
        });
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let scope = Scope::parse(&token.scope);
    if scope.is_read_only() && !safe {
        return Err(ApiError::forbidden("this token may only read"));
    }
    Ok(Caller {
        member,
        method: AuthMethod::Token,
        token: None,
        app: Some(AppCaller {
            app_id: app.id,
            token_id: token.id,
            token_expires_utc: token.expires_utc,
            token_kind: token.kind,
            scope,
            user_token: token.member_id.is_some(),
            grants: Default::default(),
        }),
    })
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes), off the async threads.
pub async fn hash_password(password: String) -> ApiResult<String> {
    let _permit = argon2_permit().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

pub(crate) async fn verify_password(password: String, hash: String) -> ApiResult<bool> {
    let _permit = argon2_permit().await?;
    Ok(tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false))
}

/// Argon2 uses 19 MiB and a core's worth of work per hash: at most one hash per core runs at once,
/// so a flood of logins cannot exhaust memory or starve the blocking threads uploads write with.
async fn argon2_permit() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let permits = PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    match tokio::time::timeout(std::time::Duration::from_secs(10), permits.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many logins at once: try again shortly",
        )),
    }
}

pub fn validate_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(ApiError::bad_request(
            "bad-password",
            "a password has 8 to 1024 characters",
        ));
    }
    Ok(())
}

pub fn member_json(m: &Member) -> serde_json::Value {
    json!({
        "id": m.id,
        "username": m.username,
        "displayName": m.display_name,
        "role": m.role,
        "createdUtc": m.created_utc,
    })
}

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// The throttle's keys for a login as `username` from `peer` (SPEC §3).
pub(crate) fn login_keys(state: &AppState, username: &str, peer: &Peer) -> Vec<Key> {
    let limits = state.throttle.limits;
    vec![
        Key::new("login-user", username, limits.per_name),
        Key::new("login-addr", &peer.text(), limits.per_address),
    ]
}

pub async fn login(
    State(state): State<AppState>,
    method: Method,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    // A forged cross-site login would sign the victim into the attacker's account.
    check_same_origin(&state, &method, &headers)?;
    let now = now_ms();
    let keys = login_keys(&state, &req.username, &peer);
    if let Err(throttled) = state.throttle.check(&keys, now).await? {
        tracing::warn!(
            username = %crate::throttle::bounded(&req.username).escape_debug(),
            client = %peer.text(),
            "login refused: too many failed attempts"
        );
        return Err(throttled.into());
    }
    let found = state.identity.member_credentials(&req.username).await?;
    // Verify against a real hash even for unknown names, so timing does not reveal which names exist.
    let (member, hash) = match found {
        Some((m, h)) => (Some(m), h),
        None => (None, state.settings.dummy_password_hash.clone()),
    };
    let valid = verify_password(req.password, hash).await?;
    let Some(member) = member.filter(|_| valid) else {
        // Never the password: only who tried, and from where.
        tracing::warn!(
            username = %crate::throttle::bounded(&req.username).escape_debug(),
            client = %peer.text(),
            "failed login"
        );
        state.throttle.failed(&keys, now_ms()).await?;
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "bad-credentials",
            "wrong username or password",
        ));
    };
    let token = new_token();
    state
        .identity
        .create_session(
            &token_hash(&token),
            member.id,
            now_ms() + SESSION_LIFETIME_MS,
        )
        .await?;
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_LIFETIME_MS / 1000
    );
    let mut response = Json(member_json(&member)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    no_store(&mut response);
    Ok(response)
}

pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if caller.method == AuthMethod::Session {
        if let Some(session) = session_cookie(&headers) {
            state.identity.delete_session(&token_hash(session)).await?;
        }
    }
    let mut response = crate::error::ok_body().into_response();
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

pub async fn me(caller: Caller) -> Json<serde_json::Value> {
    let mut body = member_json(&caller.member);
    body["authenticatedBy"] = json!(match caller.method {
        AuthMethod::Session => "session",
        AuthMethod::Token => "token",
    });
    Json(body)
}
