//! Authorization in one place: who may see a space, a channel or a project, and what an application
//! acting as itself may do there. Members decide by membership (administrators see everything); an
//! application decides by the rights granted to it in the place (or globally) *and* by its token's
//! scope (`hangar_core::access::Scope`). A place an application holds no right in does not exist for
//! it (404); a right it lacks there is 403. Its grants are loaded once per request.

use crate::auth::{AppCaller, Caller};
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use hangar_core::access::Grants;
use hangar_core::model::{Attachment, Channel, Space};
use serde_json::Value;

pub const VIEW_MESSAGES: &str = "Channel.ViewMessages";
pub const POST_MESSAGES: &str = "Channel.PostMessages";
pub const VIEW_ISSUES: &str = "Project.Issues.View";
pub const CREATE_ISSUES: &str = "Project.Issues.Create";
pub const READ_FILES: &str = "Space.Files.Read";
pub const WRITE_FILES: &str = "Space.Files.Write";

/// The permission context of a space, a channel, a project.
pub fn space_place(id: &str) -> String {
    format!("space:id:{id}")
}
pub fn channel_place(id: i64) -> String {
    format!("channel:id:{id}")
}
pub fn project_place(key: &str) -> String {
    format!("project:key:{key}")
}

/// The grants of the application behind the request, read from the store at the first need and
/// kept for the rest of the request.
async fn grants<'a>(state: &AppState, app: &'a AppCaller) -> ApiResult<&'a Grants> {
    app.grants
        .get_or_try_init(|| async {
            let items = state
                .apps
                .items(Some(app.app_id), "right", None, None, 100_000)
                .await?;
            Ok::<_, ApiError>(
                items
                    .into_iter()
                    .filter(|i| i.value.get("status").and_then(Value::as_str) == Some("GRANTED"))
                    .map(|i| (i.scope, i.key))
                    .collect(),
            )
        })
        .await
}

/// For a caller that is an application acting as itself: whether its token's scope and its grants
/// allow `right` in `place` (or globally). None for other callers (members decide by membership).
pub async fn app_may(
    state: &AppState,
    caller: &Caller,
    right: &str,
    place: &str,
) -> ApiResult<Option<bool>> {
    let Some(app) = caller.acting_app() else {
        return Ok(None);
    };
    if !app.scope.allows(right) {
        return Ok(Some(false));
    }
    let grants = grants(state, app).await?;
    Ok(Some([place, "global"].iter().any(|scope| {
        grants.contains(&(scope.to_string(), right.to_string()))
    })))
}

/// Whether an application acting as itself may do anything of `rights` in `place`: whether the
/// place exists for it at all. None for other callers.
pub async fn app_sees(
    state: &AppState,
    caller: &Caller,
    rights: &[&str],
    place: &str,
) -> ApiResult<Option<bool>> {
    if caller.acting_app().is_none() {
        return Ok(None);
    }
    for right in rights {
        if app_may(state, caller, right, place).await? == Some(true) {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}

/// 403 unless the caller, when it is an application acting as itself, holds `right` in `place`.
pub async fn require_app_right(
    state: &AppState,
    caller: &Caller,
    right: &str,
    place: &str,
) -> ApiResult<()> {
    if app_may(state, caller, right, place).await? == Some(false) {
        return Err(ApiError::forbidden(format!(
            "the application has not been granted {right} in {place}"
        )));
    }
    Ok(())
}

/// Whether the caller sees a place: an application by its rights there, a member by `member`
/// (asked only when needed), an administrator always.
async fn sees(
    state: &AppState,
    caller: &Caller,
    rights: &[&str],
    place: &str,
    member: impl std::future::Future<Output = ApiResult<bool>>,
) -> ApiResult<bool> {
    if let Some(sees) = app_sees(state, caller, rights, place).await? {
        return Ok(sees);
    }
    Ok(caller.is_admin() || member.await?)
}

/// The space, if the caller may see it; otherwise it does not exist for them.
pub async fn visible_space(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Space> {
    let space = state
        .spaces
        .space(id)
        .await?
        .ok_or_else(|| ApiError::not_found("space"))?;
    let member = async { Ok(state.spaces.is_space_member(id, caller.id()).await?) };
    if sees(
        state,
        caller,
        &[READ_FILES, WRITE_FILES],
        &space_place(id),
        member,
    )
    .await?
    {
        Ok(space)
    } else {
        Err(ApiError::not_found("space"))
    }
}

/// The channel, if the caller may see it; otherwise it does not exist for them.
pub async fn visible_channel(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Channel> {
    let channel = state
        .chat
        .channel(id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    let member = async { Ok(state.chat.is_channel_member(id, caller.id()).await?) };
    let rights = [VIEW_MESSAGES, POST_MESSAGES];
    if sees(state, caller, &rights, &channel_place(id), member).await? {
        Ok(channel)
    } else {
        Err(ApiError::not_found("channel"))
    }
}

/// Whether the caller sees the project (`project_id`, `key`).
pub async fn sees_project(
    state: &AppState,
    caller: &Caller,
    project_id: i64,
    key: &str,
) -> ApiResult<bool> {
    let member = async {
        Ok(state
            .projects
            .is_project_member(project_id, caller.id())
            .await?)
    };
    sees(
        state,
        caller,
        &[VIEW_ISSUES, CREATE_ISSUES],
        &project_place(key),
        member,
    )
    .await
}

/// An attachment is private: readable by its uploader, administrators, and whoever can read a
/// message or issue it is attached to.
pub async fn may_read_attachment(
    state: &AppState,
    caller: &Caller,
    a: &Attachment,
) -> ApiResult<bool> {
    Ok(a.uploader_id == caller.id()
        || caller.is_admin()
        || state
            .attachments
            .readable_through_links(a.id, caller.id())
            .await?)
}
