//! OAuth 2.0 for applications: `POST /oauth/token` (client credentials, authorization code with
//! PKCE, refresh token; RFC 6749 §4.1, §4.4, §5, §6 and RFC 7636) and the consent page `/oauth/auth`.
//! Errors here follow RFC 6749 §5.2, not Hangar's JSON error body.

use crate::applications::tokens::{parse_scope, ACCESS_TOKEN_TTL_MS};
use crate::applications::{modify, open_secret};
use crate::auth::Caller;
use crate::throttle::{Key, Peer};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use hangar_core::app_model::{ClientCredentialsAccess, SecretName};
use hangar_core::ids::{new_token, random_id, token_hash};
use hangar_core::now_ms;
use hangar_core::secrets::same;
use hangar_core::store::{AppRecord, AppToken};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const CODE_TTL_MS: i64 = 10 * 60 * 1000;
const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
    /// Seconds for `Retry-After` (a throttled client authentication).
    retry_after: Option<u64>,
}

fn oauth_error(error: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        status: StatusCode::BAD_REQUEST,
        error,
        description: description.into(),
        basic_challenge: false,
        retry_after: None,
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        no_store(r.headers_mut());
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        if self.basic_challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hangar\", charset=\"UTF-8\""),
            );
        }
        r
    }
}

impl From<crate::throttle::Throttled> for OAuthError {
    fn from(t: crate::throttle::Throttled) -> Self {
        OAuthError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: "too-many-requests",
            description: format!(
                "too many failed client authentications: try again in {} seconds",
                t.retry_after_secs
            ),
            basic_challenge: false,
            retry_after: Some(t.retry_after_secs),
        }
    }
}

impl From<crate::ApiError> for OAuthError {
    fn from(e: crate::ApiError) -> Self {
        tracing::warn!("token endpoint failure: {e:?}");
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "the server could not complete the request".into(),
            basic_challenge: false,
            retry_after: None,
        }
    }
}

impl From<hangar_core::StoreError> for OAuthError {
    fn from(e: hangar_core::StoreError) -> Self {
        crate::ApiError::from(e).into()
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Form parameters; a repeated parameter is an `invalid_request` (RFC 6749 §3.1).
fn form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if v.is_empty() {
            continue;
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(oauth_error(
                "invalid_request",
                format!("{k} is given more than once"),
            ));
        }
    }
    Ok(out)
}

struct Client {
    app: AppRecord,
    /// The client proved a secret (false for a public client of the code flow).
    confidential: bool,
}

/// Authenticates the client by HTTP Basic (form-encoded id and secret, RFC 6749 §2.3.1) or by
/// `client_id`/`client_secret` form fields, never both.
async fn client(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Client, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let invalid = |basic: bool| OAuthError {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: "client authentication failed".into(),
        basic_challenge: basic,
        retry_after: None,
    };
    let (id, secret, used_basic) = match basic {
        Some(b) => {
            if params.contains_key("client_secret") {
                return Err(oauth_error(
                    "invalid_request",
                    "use one way of authenticating the client",
                ));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| invalid(true))?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| invalid(true))?;
            let decode = |s: &str| percent_decode(s).ok_or_else(|| invalid(true));
            let id = decode(id)?;
            if params.get("client_id").is_some_and(|c| *c != id) {
                return Err(oauth_error(
                    "invalid_request",
                    "client_id differs from the authenticated client",
                ));
            }
            (id, Some(decode(secret)?), true)
        }
        None => {
            let id = params
                .get("client_id")
                .cloned()
                .ok_or_else(|| invalid(false))?;
            (id, params.get("client_secret").cloned(), false)
        }
    };
    // Client secrets are throttled like passwords (SPEC §3): per client id and per address.
    let limits = state.throttle.limits;
    let keys = [
        Key::new("client-id", &id, limits.per_name),
        Key::new("client-addr", &peer.text(), limits.per_address),
    ];
    let now = now_ms();
    if let Err(throttled) = state.throttle.check(&keys, now).await? {
        tracing::warn!(client_id = %crate::throttle::bounded(&id).escape_debug(), client = %peer.text(),
            "client authentication refused: too many failed attempts");
        return Err(throttled.into());
    }
    let failed = |why: &str| {
        tracing::warn!(client_id = %crate::throttle::bounded(&id).escape_debug(), client = %peer.text(),
            "failed client authentication: {why}");
        state.throttle.failed(&keys, now)
    };
    let app = state
        .apps
        .app_by_client_id(&id)
        .await?
        .filter(|a| !a.archived);
    let Some(app) = app else {
        if secret.is_some() {
            failed("unknown client").await?;
        }
        return Err(invalid(used_basic));
    };
    match secret {
        Some(given) => {
            let stored =
                open_secret(state, &app.doc.secrets, SecretName::ClientSecret)?.unwrap_or_default();
            if stored.is_empty() || !same(&given, &stored) {
                failed("wrong secret").await?;
                return Err(invalid(used_basic));
            }
            Ok(Client {
                app,
                confidential: true,
            })
        }
        None => Ok(Client {
            app,
            confidential: false,
        }),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.to_string())
}

async fn issue(
    state: &AppState,
    app: &AppRecord,
    member_id: Option<i64>,
    scope: &str,
    with_refresh: bool,
    max_expiry: Option<i64>,
    grant: Option<i64>,
) -> Result<Response, OAuthError> {
    let now = now_ms();
    // Tokens made from a member's token never outlive it.
    let cap = |t: i64| max_expiry.map_or(t, |m| t.min(m));
    if max_expiry.is_some_and(|m| m <= now) {
        return Err(oauth_error(
            "invalid_grant",
            "the approving token has expired",
        ));
    }
    let access = new_token();
    let token = AppToken {
        id: random_id(),
        app_id: app.id,
        kind: "access".into(),
        name: "OAuth access token".into(),
        scope: scope.to_string(),
        member_id,
        expires_utc: Some(cap(now + ACCESS_TOKEN_TTL_MS)),
        created_utc: now,
        last_used_utc: None,
        data: json!({"maxExpiry": max_expiry, "grant": grant}),
        made_with: None,
        minted_by: None,
    };
    state
        .apps
        .create_app_token(&token, &token_hash(&access))
        .await?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": (cap(now + ACCESS_TOKEN_TTL_MS) - now) / 1000,
        "scope": scope,
    });
    if with_refresh {
        let refresh = new_token();
        let r = AppToken {
            id: random_id(),
            kind: "refresh".into(),
            name: "OAuth refresh token".into(),
            expires_utc: Some(cap(now + REFRESH_TTL_MS)),
            ..token
        };
        state
            .apps
            .create_app_token(&r, &token_hash(&refresh))
            .await?;
        body["refresh_token"] = json!(refresh);
    }
    let mut r = axum::Json(body).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// The code and refresh grants: the application has the code flow enabled, and its client either
/// authenticated or is a public client it allows.
fn code_flow_client(client: &Client) -> Result<(), OAuthError> {
    if !client.app.doc.settings.code_flow_enabled {
        return Err(oauth_error(
            "unauthorized_client",
            "the authorization code flow is disabled for this application",
        ));
    }
    if !client.confidential && !client.app.doc.settings.public_clients_allowed {
        return Err(OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "this application's clients must authenticate".into(),
            basic_challenge: false,
            retry_after: None,
        });
    }
    Ok(())
}

fn requested_scope(params: &HashMap<String, String>) -> Result<String, OAuthError> {
    match params.get("scope") {
        None => Ok("**".into()),
        Some(s) => parse_scope(s).ok_or_else(|| {
            oauth_error(
                "invalid_scope",
                "scope is `**`, `read`, or right codes separated by spaces",
            )
        }),
    }
}

pub async fn token(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match token_inner(&state, &peer, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    state: &AppState,
    peer: &Peer,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(oauth_error(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = form(body)?;
    let grant = params
        .get("grant_type")
        .ok_or_else(|| oauth_error("invalid_request", "grant_type is required"))?
        .clone();
    if !["client_credentials", "authorization_code", "refresh_token"].contains(&grant.as_str()) {
        return Err(oauth_error(
            "unsupported_grant_type",
            format!("{grant} is not supported"),
        ));
    }
    let client = client(state, peer, headers, &params).await?;
    let app = &client.app;
    match grant.as_str() {
        "client_credentials" => {
            if !app.doc.settings.client_credentials_flow_enabled {
                return Err(oauth_error(
                    "unauthorized_client",
                    "the client credentials flow is disabled for this application",
                ));
            }
            if !client.confidential {
                return Err(OAuthError {
                    status: StatusCode::UNAUTHORIZED,
                    error: "invalid_client",
                    description: "the client credentials grant needs the client secret".into(),
                    basic_challenge: false,
                    retry_after: None,
                });
            }
            let scope = requested_scope(&params)?;
            let user_agent = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(200).collect::<String>());
            // Best effort and off the answer's path: a busy application must not fail token requests.
            let (s, id, now) = (state.clone(), app.id, now_ms());
            tokio::spawn(async move {
                let recorded = modify(&s, id, |a| {
                    let last = &mut a.doc.last_client_credentials_access;
                    if last.as_ref().is_some_and(|l| l.time >= now) {
                        return Ok(());
                    }
                    *last = Some(ClientCredentialsAccess {
                        time: now,
                        user_agent: user_agent.clone(),
                    });
                    Ok(())
                })
                .await;
                if let Err(e) = recorded {
                    tracing::debug!("cannot record client credentials access: {e:?}");
                }
            });
            issue(state, app, None, &scope, false, None, None).await
        }
        "authorization_code" => {
            code_flow_client(&client)?;
            let code = params
                .get("code")
                .ok_or_else(|| oauth_error("invalid_request", "code is required"))?;
            let (grant, first_use) = state
                .apps
                .use_code(&token_hash(code), now_ms())
                .await?
                .filter(|(g, _)| g.app_id == app.id)
                .ok_or_else(|| oauth_error("invalid_grant", "the code is unknown or expired"))?;
            if !first_use {
                // A replayed code: someone else may hold it, so what it yielded ends now.
                let revoked = state.apps.revoke_grant(app.id, grant.id).await?;
                tracing::warn!(app = app.id, revoked, "authorization code replayed");
                return Err(oauth_error(
                    "invalid_grant",
                    "the code was already used; the tokens issued from it are revoked",
                ));
            }
            if grant.data["redirectUri"].as_str() != params.get("redirect_uri").map(String::as_str)
            {
                return Err(oauth_error(
                    "invalid_grant",
                    "redirect_uri differs from the authorization request",
                ));
            }
            if let Some(challenge) = grant.data["codeChallenge"].as_str() {
                let verifier = params
                    .get("code_verifier")
                    .ok_or_else(|| oauth_error("invalid_grant", "code_verifier is required"))?;
                let computed = match grant.data["codeChallengeMethod"].as_str() {
                    Some("plain") => verifier.clone(),
                    _ => base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes())),
                };
                if !same(&computed, challenge) {
                    return Err(oauth_error(
                        "invalid_grant",
                        "code_verifier does not match the challenge",
                    ));
                }
            } else if params.contains_key("code_verifier") {
                // A verifier without a challenge means the challenge was stripped (a downgrade).
                return Err(oauth_error(
                    "invalid_grant",
                    "no code_challenge was sent for this code",
                ));
            } else if !client.confidential {
                return Err(oauth_error(
                    "invalid_grant",
                    "a public client must use PKCE",
                ));
            }
            issue(
                state,
                app,
                grant.member_id,
                &grant.scope,
                true,
                grant.data["maxExpiry"].as_i64(),
                Some(grant.id),
            )
            .await
        }
        _ => {
            code_flow_client(&client)?;
            let refresh = params
                .get("refresh_token")
                .ok_or_else(|| oauth_error("invalid_request", "refresh_token is required"))?;
            let (old, first_use) = state
                .apps
                .use_refresh(&token_hash(refresh), now_ms())
                .await?
                .filter(|(g, _)| g.app_id == app.id)
                .ok_or_else(|| {
                    oauth_error("invalid_grant", "the refresh token is unknown or expired")
                })?;
            if !first_use {
                // A rotated refresh token presented again: it leaked, or the client was cloned.
                // Everything issued from its grant ends (OAuth 2.0 Security BCP §4.14).
                let revoked = match old.data["grant"].as_i64() {
                    Some(grant) => state.apps.revoke_grant(app.id, grant).await?,
                    None => 0,
                };
                tracing::warn!(app = app.id, revoked, client = %peer.text(),
                    "refresh token replayed");
                return Err(oauth_error(
                    "invalid_grant",
                    "the refresh token was already used; the tokens issued from its grant are revoked",
                ));
            }
            issue(
                state,
                app,
                old.member_id,
                &old.scope,
                true,
                old.data["maxExpiry"].as_i64(),
                old.data["grant"].as_i64(),
            )
            .await
        }
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
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <link rel=stylesheet href=\"/ui/app.css\"></head>\
         <body class=centered><main class=card><div class=\"brand big\"><img src=\"/ui/icon.svg\" alt=\"\" width=40 height=40>\
         <span>Hangar</span></div>\
         <h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        // No form-action: browsers apply it to the redirect that follows the form, which goes to the
        // application's origin.
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'",
        ),
    );
    no_store(h);
    r
}

/// Sends a browser without a session to the web UI's login page, with this very request as the
/// place to come back to (a path on this server, so the login page accepts it).
fn login_first(query: Option<&str>) -> Response {
    let back = match query {
        Some(q) if !q.is_empty() => format!("/oauth/auth?{q}"),
        _ => "/oauth/auth".to_string(),
    };
    let back = crate::web::safe_next(&back).unwrap_or("/oauth/auth");
    let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    let mut r = Redirect::to(&format!("/login?next={next}")).into_response();
    no_store(r.headers_mut());
    r
}

struct AuthRequest {
    app: AppRecord,
    redirect: String,
    params: HashMap<String, String>,
}

/// Checks an authorization request. Problems with the client or redirect URI are shown to the member
/// (never redirected, RFC 6749 §4.1.2.1); others are sent back to the application.
async fn check_auth_request(
    state: &AppState,
    params: HashMap<String, String>,
) -> Result<AuthRequest, Response> {
    let app = match params.get("client_id") {
        Some(id) => state
            .apps
            .app_by_client_id(id)
            .await
            .ok()
            .flatten()
            .filter(|a| !a.archived),
        None => None,
    };
    let Some(app) = app else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Unknown application",
            "<p>The client_id names no application.</p>",
        ));
    };
    let allowed: Vec<&str> = app.doc.settings.redirect_uris().collect();
    let redirect = match params.get("redirect_uri") {
        Some(r) if allowed.contains(&r.as_str()) => r.clone(),
        _ => {
            return Err(page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect URI",
                "<p>The redirect_uri is not one the application registered.</p>",
            ))
        }
    };
    let back = |error: &str, text: &str| -> Response {
        let mut url =
            url::Url::parse(&redirect).expect("registered redirect URIs are absolute URLs");
        url.query_pairs_mut()
            .append_pair("error", error)
            .append_pair("error_description", text);
        if let Some(s) = params.get("state") {
            url.query_pairs_mut().append_pair("state", s);
        }
        Redirect::to(url.as_str()).into_response()
    };
    if !app.doc.settings.code_flow_enabled {
        return Err(back(
            "unauthorized_client",
            "the authorization code flow is disabled",
        ));
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let strict = app.doc.settings.pkce_required || app.doc.settings.public_clients_allowed;
    match params.get("code_challenge_method").map(String::as_str) {
        Some("S256") => {}
        // Without a method RFC 7636 means `plain`: refused where PKCE is required.
        None if strict => {
            return Err(back(
                "invalid_request",
                "this application requires code_challenge_method=S256",
            ))
        }
        None => {}
        // `plain` shows the verifier in the URL: only for applications that do not require PKCE.
        Some("plain") if !strict => {}
        Some(_) => {
            return Err(back(
                "invalid_request",
                if strict {
                    "this application requires code_challenge_method=S256"
                } else {
                    "code_challenge_method is S256 or plain"
                },
            ))
        }
    }
    let pkce = params.get("code_challenge").is_some_and(|c| {
        (43..=128).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    });
    if params.contains_key("code_challenge") && !pkce {
        return Err(back(
            "invalid_request",
            "code_challenge has 43 to 128 characters",
        ));
    }
    if !pkce && (app.doc.settings.pkce_required || app.doc.settings.public_clients_allowed) {
        return Err(back(
            "invalid_request",
            "this application requires PKCE (code_challenge)",
        ));
    }
    // A member's token is either whole or read-only: right codes describe what an application may
    // do as itself, not which of a member's actions it may take.
    if params
        .get("scope")
        .is_some_and(|s| s.trim() != "**" && s.trim() != "read")
    {
        return Err(back(
            "invalid_scope",
            "the scope of a member's token is ** or read",
        ));
    }
    Ok(AuthRequest {
        app,
        redirect,
        params,
    })
}

pub async fn authorize_page(
    State(state): State<AppState>,
    caller: Result<Option<Caller>, crate::ApiError>,
    Query(params): Query<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Response {
    let request = match check_auth_request(&state, params).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let caller = match caller {
        Ok(Some(c)) if c.app.is_none() => c,
        Ok(Some(_)) => {
            return page(
                StatusCode::UNAUTHORIZED,
                "Log in first",
                "<p>Only a member logged in to Hangar in this browser can authorize an application.</p>",
            )
        }
        // No session, or an expired one: the login page, which comes back here afterwards.
        Ok(None) | Err(_) => return login_first(query.as_deref()),
    };
    let mut hidden = String::new();
    for (k, v) in &request.params {
        hidden.push_str(&format!(
            "<input type=hidden name=\"{}\" value=\"{}\">",
            escape(k),
            escape(v)
        ));
    }
    let scope = request.params.get("scope").map_or("**", String::as_str);
    page(
        StatusCode::OK,
        "Authorize application",
        &format!(
            "<p><b>{app}</b> asks to act as <b>{who}</b> with scope <code>{scope}</code>.</p>\
             <form method=post action=\"/oauth/auth\">{hidden}\
             <div class=actions><button class=primary name=decision value=approve>Approve</button> \
             <button name=decision value=deny>Deny</button></div></form>",
            app = escape(&request.app.name),
            who = escape(&caller.member.username),
            scope = escape(scope),
        ),
    )
}

/// The consent form's answer. The session cookie authenticates it, and the Caller extractor's
/// same-origin check refuses a forged cross-site submission.
pub async fn authorize_decision(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Response {
    if caller.app.is_some() {
        return page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "<p>Only a member can authorize an application.</p>",
        );
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let decision = params.get("decision").cloned();
    let request = match check_auth_request(&state, params).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut url =
        url::Url::parse(&request.redirect).expect("registered redirect URIs are absolute URLs");
    if decision.as_deref() != Some("approve") {
        url.query_pairs_mut().append_pair("error", "access_denied");
    } else {
        let code = new_token();
        let now = now_ms();
        let grant = AppToken {
            id: random_id(),
            app_id: request.app.id,
            kind: "code".into(),
            name: "authorization code".into(),
            scope: request
                .params
                .get("scope")
                .and_then(|s| parse_scope(s))
                .unwrap_or_else(|| "**".into()),
            member_id: Some(caller.id()),
            expires_utc: Some(now + CODE_TTL_MS),
            created_utc: now,
            last_used_utc: None,
            data: json!({
                "maxExpiry": caller.token.as_ref().and_then(|t| t.expires_utc),
                "redirectUri": request.redirect,
                "codeChallenge": request.params.get("code_challenge"),
                "codeChallengeMethod": request.params.get("code_challenge_method").map_or("plain", String::as_str),
            }),
            made_with: None,
            minted_by: None,
        };
        if let Err(e) = state
            .apps
            .create_app_token(&grant, &token_hash(&code))
            .await
        {
            return crate::ApiError::from(e).into_response();
        }
        url.query_pairs_mut().append_pair("code", &code);
    }
    if let Some(s) = request.params.get("state") {
        url.query_pairs_mut().append_pair("state", s);
    }
    Redirect::to(url.as_str()).into_response()
}
