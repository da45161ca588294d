//! `GET`/`HEAD /s/{token}` and the password form's `POST /s/{token}`: the link's checks in order
//! (unknown 404, expired or used up 410, a creator who cannot read the file any more 404, password
//! 401/403/429), then the file through the one download path of every route, counting a download
//! that starts at byte 0.

use super::page::{error_page, password_form, prefers_html};
use crate::attachments::refuse_unready;
use crate::auth::{check_same_origin, verify_password};
use crate::download::{serve, starts_at_first_byte, Download};
use crate::error::{ApiError, ApiResult, Path};
use crate::storage::{file_entry, finish_direct_at};
use crate::throttle::{Key, Peer, SHARE_LINK_PASSWORD};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hangar_core::ids::{token_hash, TOKEN_PREFIX};
use hangar_core::model::{ShareLink, ShareTarget};
use hangar_core::now_ms;

/// Header that carries a link's password.
pub const PASSWORD_HEADER: &str = "x-share-password";
/// Largest form body accepted (a password of at most 1024 bytes, percent-encoded, fits).
const FORM_LIMIT: usize = 8 * 1024;

/// `GET /s/{token}` (and `HEAD`): the password, if any, in `X-Share-Password`.
pub async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    peer: Peer,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let password = headers
        .get(PASSWORD_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let answer = open(&state, &token, password, &peer, &method, &headers).await;
    finish(answer, &token, &headers)
}

/// `POST /s/{token}`, from the password form: `password=…` as `application/x-www-form-urlencoded`.
/// It changes nothing but the link's counters and answers the file itself (no cookie, no
/// redirect), so a forged form can only download what its sender could download anyway; it is
/// held to the same-origin rule of every browser POST all the same.
pub async fn download_with_form(
    State(state): State<AppState>,
    Path(token): Path<String>,
    peer: Peer,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = async {
        check_same_origin(&state, &method, &headers)?;
        let password = form_password(&headers, body).await?;
        open(&state, &token, password, &peer, &method, &headers).await
    }
    .await;
    finish(answer, &token, &headers)
}

async fn form_password(headers: &HeaderMap, body: Body) -> ApiResult<Option<String>> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "the form is sent as application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limits-reached",
            format!("the form is larger than {FORM_LIMIT} bytes"),
        )
    })?;
    Ok(url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.into_owned()))
}

/// The answer as the client prefers it: errors as JSON (§4) or, for a browser, as a page; a
/// missing or wrong password as the form. Share-link answers never send a referrer onwards.
fn finish(answer: ApiResult<Response>, token: &str, headers: &HeaderMap) -> Response {
    let mut response = match answer {
        Ok(r) => r,
        Err(e) if prefers_html(headers) => match e.code {
            "password-required" => password_form(e.status, token, None),
            "wrong-password" => password_form(e.status, token, Some("Wrong password. Try again.")),
            _ => error_page(&e),
        },
        Err(e) => e.into_response(),
    };
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn unknown() -> ApiError {
    ApiError::not_found("share link")
}

/// The link's checks, then the file.
async fn open(
    state: &AppState,
    token: &str,
    password: Option<String>,
    peer: &Peer,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    // Tokens have a fixed shape: anything else is unknown without a database round trip.
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 64 {
        return Err(unknown());
    }
    let link = state
        .share_links
        .share_link_by_token(&token_hash(token))
        .await?
        .ok_or_else(unknown)?;
    let now = now_ms();
    if link.expired(now) {
        return Err(expired());
    }
    if link.used_up() {
        return Err(used_up());
    }
    let file = resolve(state, &link).await?;
    check_password(state, &link, password, peer).await?;
    let counts = starts_at_first_byte(method, headers, &file.sha256, file.size);
    if counts
        && !state
            .share_links
            .count_share_download(link.id, now_ms())
            .await?
    {
        // Another request took the last download meanwhile (on any node), or the time ran out.
        return Err(if link.expired(now_ms()) {
            expired()
        } else {
            used_up()
        });
    }
    let served = serve(
        state,
        method,
        headers,
        Download {
            sha256: &file.sha256,
            size: file.size,
            content_type: &file.content_type,
            file_name: &file.name,
            private: true,
            as_attachment: false,
            made_from: None,
        },
    )
    .await;
    if counts && served.is_err() {
        // Nothing was sent (the storage could not be read): the download is not used up by it.
        state.share_links.uncount_share_download(link.id).await?;
    }
    served
}

fn expired() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "link-expired",
        "this share link has expired",
    )
}

fn used_up() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "download-limit-reached",
        "this share link has been downloaded as many times as it allows",
    )
}

/// A link with a password needs it: none is 401, a wrong one 403 and counts against the link (5 in
/// 15 minutes, in the database every node shares), past which every attempt is 429.
async fn check_password(
    state: &AppState,
    link: &ShareLink,
    password: Option<String>,
    peer: &Peer,
) -> ApiResult<()> {
    let Some(hash) = &link.password_hash else {
        return Ok(());
    };
    let Some(password) = password else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "password-required",
            "this share link needs its password (header X-Share-Password)",
        ));
    };
    let keys = [Key::new(
        "share-link",
        &link.id.to_string(),
        SHARE_LINK_PASSWORD,
    )];
    // Counted before the password is checked: a burst of guesses sent at once gets 5 checked, not
    // as many as arrive before the first is counted.
    if let Err(throttled) = state.throttle.begin(&keys, now_ms()).await? {
        tracing::warn!(link = link.id, client = %peer.text(), "share-link password refused: too many wrong ones");
        return Err(throttled.into());
    }
    // A password longer than any link can have is wrong without hashing it.
    let right = if password.len() <= super::request::MAX_PASSWORD_BYTES {
        match verify_password(password, hash.clone()).await {
            Ok(right) => right,
            Err(e) => {
                // Not checked (the server is busy): not a guess either.
                state.throttle.succeeded(&keys, now_ms()).await?;
                return Err(e);
            }
        }
    } else {
        false
    };
    if right {
        state.throttle.succeeded(&keys, now_ms()).await?;
        return Ok(());
    }
    tracing::warn!(link = link.id, client = %peer.text(), "wrong share-link password");
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong-password",
        "wrong password for this share link",
    ))
}

/// What a link serves, as the download path needs it.
struct SharedFile {
    sha256: String,
    size: u64,
    content_type: String,
    name: String,
}

/// The file, while the link's creator may still read it: a link speaks for its creator, so a member
/// removed from the space (or from every channel and project an attachment it did not upload is in)
/// takes its links' access along. Administrators read everything; an application's links last
/// until revoked (its rights belong to its tokens, which a link does not carry).
async fn resolve(state: &AppState, link: &ShareLink) -> ApiResult<SharedFile> {
    let privileged = link.creator_is_admin || link.creator_is_app;
    match &link.target {
        ShareTarget::Attachment(id) => {
            let a = state
                .attachments
                .attachment(*id)
                .await?
                .ok_or_else(unknown)?;
            let reads = privileged
                || a.uploader_id == link.creator_id
                || state
                    .attachments
                    .readable_through_links(a.id, link.creator_id)
                    .await?;
            if !reads {
                return Err(unknown());
            }
            refuse_unready(&a)?;
            Ok(SharedFile {
                sha256: a
                    .sha256
                    .clone()
                    .ok_or_else(|| ApiError::internal("ready attachment without checksum"))?,
                size: a.size.max(0) as u64,
                content_type: a.content_type,
                name: a.file_name,
            })
        }
        ShareTarget::StorageFile { space_id, path } => {
            if !privileged
                && !state
                    .spaces
                    .is_space_member(space_id, link.creator_id)
                    .await?
            {
                return Err(unknown());
            }
            finish_direct_at(state, space_id, path).await;
            let entry = file_entry(state, space_id, path)
                .await
                .map_err(|_| unknown())?;
            Ok(SharedFile {
                sha256: entry
                    .sha256
                    .ok_or_else(|| ApiError::internal("a file without checksum"))?,
                size: entry.size.max(0) as u64,
                content_type: entry
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
                name: path.name().to_string(),
            })
        }
    }
}
