//! Authorization in one place: who may see a space, a channel or a project, and what an application
//! acting as itself may do there. Members decide by membership (administrators see everything); an
//! application decides by the rights granted to it in the place (or globally) *and* by its token's
//! scope (`hangar_core::access::Scope`). A place an application holds no right in does not exist for
//! it (404); a right it lacks there is 403. Its grants are loaded once per request.

use crate::auth::{AppCaller, Caller};
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use hangar_core::access::Grants;
use hangar_core::app_model::{GrantStatus, ItemKind, RightGrant};
use hangar_core::apps::{Context, ContextKind, RightCode};
use hangar_core::model::{Attachment, Channel, Space};

/// The grants of the application behind the request, read from the store at the first need and
/// kept for the rest of the request.
async fn grants<'a>(state: &AppState, app: &'a AppCaller) -> ApiResult<&'a Grants> {
    app.grants
        .get_or_try_init(|| async {
            let items = state
                .apps
                .items(Some(app.app_id), ItemKind::Right, None, None, 100_000)
                .await?;
            let mut grants = Grants::default();
            for i in items {
                let Some(right) = RightCode::parse(&i.key) else {
                    continue;
                };
                if i.get::<RightGrant>()?.status == GrantStatus::Granted {
                    grants.grant(i.scope, right);
                }
            }
            Ok::<_, ApiError>(grants)
        })
        .await
}

/// For a caller that is an application acting as itself: whether its token's scope and its grants
/// allow `right` in `place` (or globally). None for other callers (members decide by membership).
pub async fn app_may(
    state: &AppState,
    caller: &Caller,
    right: RightCode,
    place: &Context,
) -> ApiResult<Option<bool>> {
    let Some(app) = caller.acting_app() else {
        return Ok(None);
    };
    if !app.scope.allows(right, place) {
        return Ok(Some(false));
    }
    Ok(Some(grants(state, app).await?.allow(right, place)))
}

/// Whether an application acting as itself may do anything of `rights` in `place`: whether the
/// place exists for it at all. None for other callers.
pub async fn app_sees(
    state: &AppState,
    caller: &Caller,
    rights: &[RightCode],
    place: &Context,
) -> ApiResult<Option<bool>> {
    if caller.acting_app().is_none() {
        return Ok(None);
    }
    for right in rights {
        if app_may(state, caller, *right, place).await? == Some(true) {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}

/// 403 unless the caller, when it is an application acting as itself, holds `right` in `place`.
pub async fn require_app_right(
    state: &AppState,
    caller: &Caller,
    right: RightCode,
    place: &Context,
) -> ApiResult<()> {
    if app_may(state, caller, right, place).await? == Some(false) {
        return Err(ApiError::forbidden(format!(
            "the application has not been granted {right} in {}",
            place.text
        )));
    }
    Ok(())
}

/// Whether the caller sees a place: an application by its rights there, a member by `member`
/// (asked only when needed), an administrator always.
async fn sees(
    state: &AppState,
    caller: &Caller,
    rights: &[RightCode],
    place: &Context,
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
        &[RightCode::ReadFiles, RightCode::WriteFiles],
        &Context::space(id),
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
    let rights = [RightCode::ViewMessages, RightCode::PostMessages];
    if sees(state, caller, &rights, &Context::channel(id), member).await? {
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
        &[RightCode::ViewIssues, RightCode::CreateIssues],
        &Context::project(key),
        member,
    )
    .await
}

/// Whether the caller sees a permission context: `global` always, a space, channel or project as
/// the visibility rules above say (an unknown one is not seen).
pub async fn sees_context(state: &AppState, caller: &Caller, ctx: &Context) -> ApiResult<bool> {
    let tail = |prefix: &str| ctx.text.strip_prefix(prefix).unwrap_or("").to_string();
    let seen = match ctx.kind {
        ContextKind::Global => Ok(()),
        ContextKind::Space => visible_space(state, caller, &tail("space:id:"))
            .await
            .map(drop),
        ContextKind::Channel => match tail("channel:id:").parse::<i64>() {
            Ok(id) => visible_channel(state, caller, id).await.map(drop),
            Err(_) => return Ok(false),
        },
        ContextKind::Project => {
            let key = tail("project:key:");
            return match state.projects.project_by_key(&key).await? {
                Some(p) => sees_project(state, caller, p.id, &p.key).await,
                None => Ok(false),
            };
        }
    };
    match seen {
        Ok(()) => Ok(true),
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => Ok(false),
        Err(e) => Err(e),
    }
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
