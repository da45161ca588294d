//! Channels ("rooms") and their messages, including the Space-style send-message call.

use crate::access::{require_app_right, visible_channel};
use crate::auth::Caller;
use crate::error::{unknown_member, ApiError, ApiResult, Json, Path, Query};
use crate::links::{linked_json, parse_links};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hangar_core::app_model::ItemKind;
use hangar_core::apps::{Context, RightCode};
use hangar_core::model::{Channel, Message};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const MAX_TEXT_CHARS: usize = 64 * 1024;
const MAX_CHANNEL_MEMBERS: usize = 1000;

fn channel_json(c: &Channel) -> Value {
    json!({ "id": c.id, "name": c.name, "members": c.members, "createdUtc": c.created_utc })
}

pub fn message_json(m: &Message) -> Value {
    json!({
        "id": m.id.to_string(),
        "messageId": m.id,
        "channelId": m.channel_id,
        "author": m.author,
        "text": m.text,
        "createdUtc": m.created_utc,
        "attachments": m.attachments.iter().map(linked_json).collect::<Vec<_>>(),
    })
}

/// Parses a channel identifier: `channel:id:N`, `id:N` or `N`.
pub fn parse_channel_ref(s: &str) -> ApiResult<i64> {
    let digits = s
        .strip_prefix("channel:id:")
        .or_else(|| s.strip_prefix("id:"))
        .unwrap_or(s);
    digits.parse::<i64>().map_err(|_| {
        ApiError::bad_request(
            "bad-channel",
            format!("{s:?} is not a channel identifier (channel:id:N)"),
        )
    })
}

/// The message of `channel` named `id:N` or `N` (404 when it is in another channel or gone).
pub async fn channel_message(
    state: &AppState,
    channel: &Channel,
    ident: &str,
) -> ApiResult<Message> {
    let id = ident
        .strip_prefix("id:")
        .unwrap_or(ident)
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request("bad-message", "a message is id:N or N"))?;
    state
        .chat
        .message(id)
        .await?
        .filter(|m| m.channel_id == channel.id)
        .ok_or_else(|| ApiError::not_found("message"))
}

fn validate_text(text: &str) -> ApiResult<()> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(
            "text-too-long",
            format!("a message has at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    name: String,
    #[serde(default)]
    members: Vec<String>,
}

pub async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewChannel>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad-name",
            "a channel name has 1 to 200 printable characters",
        ));
    }
    if req.members.len() > MAX_CHANNEL_MEMBERS {
        return Err(ApiError::bad_request(
            "too-many-members",
            format!("at most {MAX_CHANNEL_MEMBERS} members"),
        ));
    }
    let mut ids = vec![caller.id()];
    for username in &req.members {
        let member = state
            .identity
            .member_by_username(username)
            .await?
            .ok_or_else(unknown_member)?;
        ids.push(member.id);
    }
    let channel = state.chat.create_channel(name, &ids).await?;
    Ok((StatusCode::CREATED, Json(channel_json(&channel))))
}

pub async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let filter = if caller.is_admin() {
        None
    } else {
        Some(caller.id())
    };
    let channels = state.chat.list_channels(filter).await?;
    Ok(Json(
        json!({ "data": channels.iter().map(channel_json).collect::<Vec<_>>() }),
    ))
}

pub async fn get_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let channel = visible_channel(&state, &caller, parse_channel_ref(&id)?).await?;
    Ok(Json(channel_json(&channel)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRef {
    username: String,
}

/// Any member of a channel may add another member.
pub async fn add_channel_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<MemberRef>,
) -> ApiResult<Json<Value>> {
    let channel = visible_channel(&state, &caller, parse_channel_ref(&id)?).await?;
    if caller.acting_app().is_some() {
        return Err(ApiError::forbidden(
            "an application cannot change who is in a channel",
        ));
    }
    let member = state
        .identity
        .member_by_username(&req.username)
        .await?
        .ok_or_else(unknown_member)?;
    state.chat.add_channel_member(channel.id, member.id).await?;
    let channel = visible_channel(&state, &caller, channel.id).await?;
    Ok(Json(channel_json(&channel)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    text: String,
    attachments: Option<Value>,
}

pub async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<NewMessage>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let channel = visible_channel(&state, &caller, parse_channel_ref(&id)?).await?;
    let right = RightCode::PostMessages;
    require_app_right(&state, &caller, right, &Context::channel(channel.id)).await?;
    validate_text(&req.text)?;
    let links = parse_links(&state, &caller, req.attachments.as_ref()).await?;
    let message = state
        .chat
        .create_message(channel.id, caller.id(), &req.text, &links)
        .await?;
    Ok((StatusCode::CREATED, Json(message_json(&message))))
}

/// `DELETE /api/v1/channels/{channel}/messages/{message}`: the message goes; its attachments stay
/// with their uploaders, released (SPEC §9.5). Its author or an admin only.
pub async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    Path((channel, message)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let channel = visible_channel(&state, &caller, parse_channel_ref(&channel)?).await?;
    let right = RightCode::PostMessages;
    require_app_right(&state, &caller, right, &Context::channel(channel.id)).await?;
    let message = channel_message(&state, &channel, &message).await?;
    if message.author_id != caller.id() && !caller.is_admin() {
        return Err(ApiError::forbidden(
            "only the message's author or an admin may delete it",
        ));
    }
    state.chat.delete_message(message.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
    cursor: Option<String>,
}

pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Json<Value>> {
    let channel = visible_channel(&state, &caller, parse_channel_ref(&id)?).await?;
    let right = RightCode::ViewMessages;
    require_app_right(&state, &caller, right, &Context::channel(channel.id)).await?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad-limit",
            "limit is between 1 and 500",
        ));
    }
    let after = match page.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request(
                "bad-cursor",
                "cursor is a value of `next` from an earlier page",
            )
        })?,
    };
    let mut messages = state
        .chat
        .list_messages(channel.id, after, limit + 1)
        .await?;
    let next = if messages.len() as i64 > limit {
        messages.truncate(limit as usize);
        messages.last().map(|m| m.seq.to_string())
    } else {
        None
    };
    let mut data = Vec::with_capacity(messages.len());
    for m in &messages {
        let mut json = message_json(m);
        // Link previews applications posted for this message (applications.rs, unfurls).
        let unfurls = state
            .apps
            .items(
                None,
                ItemKind::UnfurlContent,
                Some(&m.id.to_string()),
                None,
                100,
            )
            .await?;
        json["unfurls"] = Value::Array(unfurls.into_iter().map(|u| u.value).collect());
        data.push(json);
    }
    Ok(Json(json!({
        "data": data,
        "next": next,
    })))
}

/// `POST /api/http/chats/messages/send-message`:
/// `{channel, content:{className:"ChatMessage.Text", text}, attachments:[…]}`.
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let channel_ref = req.get("channel").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("bad-channel", "channel is required, as channel:id:N")
    })?;
    if let Some((kind, _)) = channel_ref.split_once(":id:") {
        if kind != "channel" {
            return Err(ApiError::bad_request(
                "unsupported-channel",
                format!("{kind} channels are not supported by this server; use channel:id:N"),
            ));
        }
    }
    let channel = visible_channel(&state, &caller, parse_channel_ref(channel_ref)?).await?;
    let right = RightCode::PostMessages;
    require_app_right(&state, &caller, right, &Context::channel(channel.id)).await?;
    let content = req
        .get("content")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("bad-content", "content is required"))?;
    match content.get("className").and_then(Value::as_str) {
        Some("ChatMessage.Text") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad-content",
                format!("content className {other:?} is not supported; use ChatMessage.Text"),
            ))
        }
    }
    let text = content
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("bad-content", "content.text is required"))?;
    validate_text(text)?;
    let links = parse_links(&state, &caller, req.get("attachments")).await?;
    let message = state
        .chat
        .create_message(channel.id, caller.id(), text, &links)
        .await?;
    Ok(Json(message_json(&message)))
}
