//! Projects and their issues (the issue-tracker part of the Space-style API).

use crate::access::{require_app_right, sees_project};
use crate::auth::Caller;
use crate::error::{unknown_member, ApiError, ApiResult, Json, Path, Query};
use crate::links::{linked_json, parse_links};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hangar_core::apps::{Context, RightCode};
use hangar_core::ids::valid_project_key;
use hangar_core::model::{Issue, Project};
use serde::Deserialize;
use serde_json::{json, Map, Value};

fn project_json(p: &Project) -> Value {
    json!({ "id": p.id, "key": p.key, "name": p.name, "members": p.members, "createdUtc": p.created_utc })
}

fn issue_json(i: &Issue) -> Value {
    json!({
        "id": i.id,
        "key": i.key(),
        "number": i.number,
        "title": i.title,
        "status": i.status,
        "projectKey": i.project_key,
        "createdUtc": i.created_utc,
        "updatedUtc": i.updated_utc,
        "attachments": i.attachments.iter().map(linked_json).collect::<Vec<_>>(),
    })
}

/// The project named by `key:KEY` or `id:N`, if the caller is a member (administrators see all).
/// An application acting as itself needs `right` there instead of membership.
async fn visible_project(
    state: &AppState,
    caller: &Caller,
    ident: &str,
    right: RightCode,
) -> ApiResult<Project> {
    let project = if let Some(key) = ident.strip_prefix("key:") {
        state.projects.project_by_key(key).await?
    } else if let Some(id) = ident.strip_prefix("id:") {
        let id = id
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request("bad-project", "a project is key:KEY or id:N"))?;
        state.projects.project_by_id(id).await?
    } else {
        return Err(ApiError::bad_request(
            "bad-project",
            "a project is key:KEY or id:N",
        ));
    }
    .ok_or_else(|| ApiError::not_found("project"))?;
    if !sees_project(state, caller, project.id, &project.key).await? {
        return Err(ApiError::not_found("project"));
    }
    require_app_right(state, caller, right, &Context::project(&project.key)).await?;
    Ok(project)
}

/// The issue named by `key:P-T-N` or `id:N` within the project.
async fn project_issue(state: &AppState, project: &Project, ident: &str) -> ApiResult<Issue> {
    let issue = if let Some(key) = ident.strip_prefix("key:") {
        let number = key
            .strip_prefix(&format!("{}-T-", project.key))
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| ApiError::not_found("issue"))?;
        state.projects.issue_by_number(project.id, number).await?
    } else if let Some(id) = ident.strip_prefix("id:") {
        let id = id
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request("bad-issue", "an issue is key:P-T-N or id:N"))?;
        state
            .projects
            .issue_by_id(id)
            .await?
            .filter(|i| i.project_id == project.id)
    } else {
        return Err(ApiError::bad_request(
            "bad-issue",
            "an issue is key:P-T-N or id:N",
        ));
    };
    issue.ok_or_else(|| ApiError::not_found("issue"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    key: String,
    name: String,
    #[serde(default)]
    members: Vec<String>,
}

pub async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewProject>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !valid_project_key(&req.key) {
        return Err(ApiError::bad_request(
            "bad-project-key",
            "a project key has up to 64 uppercase letters, digits and '-', starting with a letter",
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad-name",
            "a project name has 1 to 200 printable characters",
        ));
    }
    if req.members.len() > 1000 {
        return Err(ApiError::bad_request(
            "too-many-members",
            "at most 1000 members",
        ));
    }
    let mut ids = vec![caller.id()];
    for username in &req.members {
        let m = state
            .identity
            .member_by_username(username)
            .await?
            .ok_or_else(unknown_member)?;
        ids.push(m.id);
    }
    let project = state
        .projects
        .create_project(&req.key, name, &ids)
        .await
        .map_err(|e| match e {
            hangar_core::StoreError::Conflict(_) => ApiError::conflict(
                "already-exists",
                "this project key is taken: choose another",
            ),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(project_json(&project))))
}

fn validate_issue_fields(title: &str, status: &str) -> ApiResult<()> {
    if title.trim().is_empty() || title.chars().count() > 1000 {
        return Err(ApiError::bad_request(
            "bad-title",
            "an issue title has 1 to 1000 characters",
        ));
    }
    if status.trim().is_empty() || status.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "bad-status",
            "an issue status has 1 to 100 characters",
        ));
    }
    Ok(())
}

/// `{title, status, attachments?}`.
pub async fn create_issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    Json(req): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project = visible_project(&state, &caller, &project, RightCode::CreateIssues).await?;
    let title = req
        .get("title")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("bad-title", "title is required"))?;
    let status = match req.get("status") {
        None | Some(Value::Null) => "Open",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad_request("bad-status", "status is a string")),
    };
    validate_issue_fields(title, status)?;
    let links = parse_links(&state, &caller, req.get("attachments")).await?;
    let issue = state
        .projects
        .create_issue(project.id, caller.id(), title.trim(), status.trim(), &links)
        .await?;
    Ok((StatusCode::CREATED, Json(issue_json(&issue))))
}

/// `GET /api/http/projects`: the projects the caller can see (SPEC §3): its own, every project for an
/// administrator, and for an application acting as itself those where it may view or create issues.
pub async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let candidates = if caller.is_admin() || caller.acting_app().is_some() {
        None
    } else {
        Some(caller.id())
    };
    let mut visible = Vec::new();
    for project in state.projects.list_projects(candidates).await? {
        if sees_project(&state, &caller, project.id, &project.key).await? {
            visible.push(project_json(&project));
        }
    }
    Ok(Json(json!({ "data": visible })))
}

#[derive(Deserialize)]
pub struct IssuePage {
    #[serde(rename = "$skip")]
    skip: Option<i64>,
    #[serde(rename = "$top")]
    top: Option<i64>,
}

pub async fn list_issues(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    Query(page): Query<IssuePage>,
) -> ApiResult<Json<Value>> {
    let project = visible_project(&state, &caller, &project, RightCode::ViewIssues).await?;
    let skip = page.skip.unwrap_or(0);
    let top = page.top.unwrap_or(100);
    if skip < 0 || !(1..=1000).contains(&top) {
        return Err(ApiError::bad_request(
            "bad-page",
            "$skip is at least 0 and $top between 1 and 1000",
        ));
    }
    let (issues, total) = state.projects.list_issues(project.id, skip, top).await?;
    let next =
        (skip + (issues.len() as i64) < total).then(|| (skip + issues.len() as i64).to_string());
    Ok(Json(json!({
        "data": issues.iter().map(issue_json).collect::<Vec<_>>(),
        "next": next,
        "totalCount": total,
    })))
}

pub async fn get_issue(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, issue)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let project = visible_project(&state, &caller, &project, RightCode::ViewIssues).await?;
    Ok(Json(issue_json(
        &project_issue(&state, &project, &issue).await?,
    )))
}

/// `{attachments:[…]}` added to an existing issue.
pub async fn add_attachments(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, issue)): Path<(String, String)>,
    Json(req): Json<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let project = visible_project(&state, &caller, &project, RightCode::CreateIssues).await?;
    let issue = project_issue(&state, &project, &issue).await?;
    let links = parse_links(&state, &caller, req.get("attachments")).await?;
    if links.is_empty() {
        return Err(ApiError::bad_request(
            "bad-attachments",
            "attachments lists at least one attachment",
        ));
    }
    let issue = state
        .projects
        .add_issue_attachments(issue.id, &links)
        .await?;
    Ok(Json(issue_json(&issue)))
}

/// `DELETE …/planning/issues/{issue}`: the issue goes; its attachments stay with their uploaders,
/// released (SPEC §9.5). Its author or an admin only.
pub async fn delete_issue(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, issue)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project = visible_project(&state, &caller, &project, RightCode::CreateIssues).await?;
    let issue = project_issue(&state, &project, &issue).await?;
    if issue.author_id != Some(caller.id()) && !caller.is_admin() {
        return Err(ApiError::forbidden(
            "only the issue's author or an admin may delete it",
        ));
    }
    state.projects.delete_issue(issue.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
