//! The separate content origin (`--content-url`, SPEC §11): user files that a browser may render are
//! served only from a second host name, so they never run script on the API's origin, and that host
//! answers nothing but downloads and accepts no cookie.
//!
//! - On the API's host, a download without an `Authorization` header (a browser following a link) is
//!   redirected (307) to the same path on the content origin. When it carries a valid session cookie,
//!   the redirect adds a short-lived signature (`hangar-sig`) naming the member, because the cookie is
//!   not sent to (nor valid on) the other origin. Bearer-token clients get the bytes directly: a
//!   browser cannot put a token on a navigation, so such an answer is never rendered as a page of the
//!   API's origin.
//! - On the content host, every other route is 404, `Cookie` headers are dropped before anything reads
//!   them, and no answer sets a cookie.

use crate::auth::{AuthMethod, Caller};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a signed redirect to the content origin stays valid.
const SIGNATURE_TTL_MS: i64 = 5 * 60 * 1000;
/// The query parameter carrying the signature.
const SIG_PARAM: &str = "hangar-sig";

/// The content origin as configured: its URL (without trailing `/`) and the authority requests
/// for it carry in `Host`.
#[derive(Debug, Clone)]
pub struct ContentOrigin {
    pub url: String,
    host: String,
    port: u16,
}

impl ContentOrigin {
    /// From an absolute http(s) URL; None when it has no host.
    pub fn parse(url: &str) -> Option<ContentOrigin> {
        let parsed = url::Url::parse(url).ok()?;
        Some(ContentOrigin {
            url: url.trim_end_matches('/').to_string(),
            host: parsed.host_str()?.to_ascii_lowercase(),
            port: parsed.port_or_known_default()?,
        })
    }

    /// Whether a request's `Host` (or HTTP/2 authority) names the content origin.
    fn is_host(&self, authority: &str, default_port: u16) -> bool {
        let authority = authority.to_ascii_lowercase();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h.to_string(), p.parse().ok()),
            _ => (authority.clone(), Some(default_port)),
        };
        host == self.host && port == Some(self.port)
    }
}

/// Whether this request asks for user content a browser may render.
fn is_content(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let read = matches!(*method, Method::GET | Method::HEAD);
    match segments.as_slice() {
        ["", "d", _] => read,
        // The share-link password form posts back to the link.
        ["", "s", _] => read || *method == Method::POST,
        ["", "api", "v1", "attachments", _, name] => read && *name != "public-link",
        ["", "api", "v1", "space", _, "storage", _] => read,
        _ => false,
    }
}

fn signature(state: &AppState, username: &str, expires: i64, path: &str) -> String {
    // new_from_slice accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.settings.link_key)
        .expect("HMAC takes any key length");
    mac.update(format!("hangar-content:{username}:{expires}:{path}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The query without our signature parameter.
fn query_without_sig(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k != SIG_PARAM)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The middleware; a no-op without `--content-url`.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(content) = state.settings.content.clone() else {
        return next.run(request).await;
    };
    let default_port = if state.settings.public_url.starts_with("https://") {
        443
    } else {
        80
    };
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let wanted = is_content(request.method(), request.uri().path());
    if content.is_host(&authority, default_port) {
        if !wanted {
            return ApiError::not_found("route").into_response();
        }
        return serve_content(&state, request, next).await;
    }
    if !wanted || request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    redirect(&state, &content, request).await
}

/// A download on the content host: no cookie in, none out; a valid signature stands for the member.
async fn serve_content(state: &AppState, mut request: Request, next: Next) -> Response {
    request.headers_mut().remove(header::COOKIE);
    let sig = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == SIG_PARAM)
        .map(|(_, v)| v.into_owned());
    if let Some(sig) = sig {
        match signed_caller(state, &sig, request.uri().path()).await {
            Ok(caller) => {
                if let Some(slot) = request.extensions().get::<crate::observe::CallerSlot>() {
                    slot.set(caller.log_id());
                }
                request.extensions_mut().insert(caller);
            }
            Err(e) => return e.into_response(),
        }
    }
    let mut response = next.run(request).await;
    response.headers_mut().remove(header::SET_COOKIE);
    response
}

/// The member a `hangar-sig` value names, if it is genuine, unexpired, for this path, and the member
/// may still log in.
async fn signed_caller(state: &AppState, sig: &str, path: &str) -> Result<Caller, ApiError> {
    let refused = || ApiError::unauthorized("the download link has expired: open it again");
    let mut parts = sig.splitn(3, '.');
    let (Some(expires), Some(user), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(refused());
    };
    let expires: i64 = expires.parse().map_err(|_| refused())?;
    let username = hex::decode(user)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(refused)?;
    let expected = signature(state, &username, expires, path);
    let genuine: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes()).into();
    if !genuine || expires < hangar_core::now_ms() {
        return Err(refused());
    }
    let member = state
        .identity
        .member_by_username(&username)
        .await?
        .ok_or_else(refused)?;
    if state.members.is_disabled(member.id).await? {
        return Err(refused());
    }
    Ok(Caller {
        member,
        method: AuthMethod::Session,
        token: None,
        app: None,
    })
}

/// 307 to the same path and query on the content origin, signed for the member of a valid session.
async fn redirect(state: &AppState, content: &ContentOrigin, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let mut query = query_without_sig(request.uri().query());
    if crate::auth::session_cookie(request.headers()).is_some() {
        let (mut parts, _) = request.into_parts();
        match <Caller as axum::extract::OptionalFromRequestParts<AppState>>::from_request_parts(
            &mut parts, state,
        )
        .await
        {
            Ok(Some(caller)) if caller.method == AuthMethod::Session => {
                let expires = hangar_core::now_ms() + SIGNATURE_TTL_MS;
                let username = &caller.member.username;
                let mac = signature(state, username, expires, &path);
                query.push((
                    SIG_PARAM.to_string(),
                    format!("{expires}.{}.{mac}", hex::encode(username)),
                ));
            }
            Ok(_) => {}
            Err(e) => return e.into_response(),
        }
    }
    let mut location = format!("{}{path}", content.url);
    if !query.is_empty() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(query);
        location = format!("{location}?{}", q.finish());
    }
    match HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::TEMPORARY_REDIRECT,
            [
                (header::LOCATION, value),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => {
            ApiError::bad_request("bad-path", "the path cannot be redirected").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_content_and_the_api_is_not() {
        let get = Method::GET;
        assert!(is_content(&get, "/d/12"));
        assert!(is_content(&Method::HEAD, "/s/tok"));
        assert!(is_content(&Method::POST, "/s/tok"));
        assert!(is_content(&get, "/api/v1/attachments/12/a.png"));
        assert!(is_content(&get, "/api/v1/attachments/12/preview"));
        assert!(is_content(&get, "/api/v1/space/s1/storage/cGF0aA"));
        assert!(!is_content(&get, "/api/v1/space/s1/storage/cGF0aA/meta"));
        assert!(!is_content(&get, "/api/v1/space/s1/storage"));
        assert!(!is_content(&get, "/api/v1/attachments/12"));
        assert!(!is_content(
            &Method::DELETE,
            "/api/v1/attachments/12/public-link"
        ));
        assert!(!is_content(
            &Method::DELETE,
            "/api/v1/space/s1/storage/cGF0aA"
        ));
        assert!(!is_content(&Method::POST, "/d/12"));
        assert!(!is_content(&get, "/api/v1/auth/me"));
        assert!(!is_content(&get, "/"));
    }

    #[test]
    fn the_host_is_compared_with_its_port() {
        let c = ContentOrigin::parse("https://Files.example.com/").unwrap();
        assert!(c.is_host("files.example.com", 443));
        assert!(c.is_host("files.example.com:443", 443));
        assert!(!c.is_host("files.example.com:8443", 443));
        assert!(!c.is_host("api.example.com", 443));
        let c = ContentOrigin::parse("http://127.0.0.1:9000").unwrap();
        assert!(c.is_host("127.0.0.1:9000", 80));
        assert!(!c.is_host("localhost:9000", 80));
        let c = ContentOrigin::parse("http://[::1]:9000").unwrap();
        assert!(c.is_host("[::1]:9000", 80));
    }
}
