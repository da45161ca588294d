//! Attachments as they are referenced in messages and issues: `ImageAttachment`, `FileAttachment` and
//! `VideoAttachment` objects, validated against what the caller may attach.

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::shapes::attachment_json;
use crate::AppState;
use hangar_core::model::{AttachmentLink, LinkedAttachment};
use serde_json::{Map, Value};

const CLASSES: [&str; 3] = ["ImageAttachment", "FileAttachment", "VideoAttachment"];
const MAX_LINKS: usize = 100;

/// Reads the `attachments` array of a request. Every entry needs a known `className` and an `id`
/// naming an attachment the caller uploaded and that finished uploading.
pub async fn parse_links(
    state: &AppState,
    caller: &Caller,
    value: Option<&Value>,
) -> ApiResult<Vec<AttachmentLink>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad-attachments",
                "attachments is an array",
            ))
        }
    };
    if items.len() > MAX_LINKS {
        return Err(ApiError::bad_request(
            "bad-attachments",
            format!("at most {MAX_LINKS} attachments"),
        ));
    }
    let mut links = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(fields) = item else {
            return Err(ApiError::bad_request(
                "bad-attachments",
                "each attachment is an object",
            ));
        };
        let class = fields
            .get("className")
            .and_then(Value::as_str)
            .unwrap_or("FileAttachment");
        if !CLASSES.contains(&class) {
            return Err(ApiError::bad_request(
                "bad-attachments",
                format!("className {class:?} is not one of {}", CLASSES.join(", ")),
            ));
        }
        let id = match fields.get("id") {
            Some(Value::String(s)) => s.parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad-attachments",
                "each attachment needs the id of an upload",
            )
        })?;
        let attachment = state
            .attachments
            .attachment(id)
            .await?
            .filter(|a| a.uploader_id == caller.id() || caller.is_admin())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "unknown-attachment",
                    format!("no attachment {id} of yours exists"),
                )
                .with("attachmentId", id)
            })?;
        if !attachment.state.is_downloadable() {
            return Err(ApiError::conflict(
                "attachment-not-ready",
                format!("attachment {id} is {}", attachment.state.as_str()),
            )
            .with("attachmentId", id));
        }
        let details: Map<String, Value> = fields
            .iter()
            .filter(|(k, v)| !matches!(k.as_str(), "className" | "id") && is_scalar(v))
            .take(16)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        links.push(AttachmentLink {
            attachment_id: id,
            class_name: class.to_string(),
            details,
        });
    }
    Ok(links)
}

fn is_scalar(v: &Value) -> bool {
    match v {
        Value::String(s) => s.len() <= 1024,
        Value::Number(_) | Value::Bool(_) => true,
        _ => false,
    }
}

/// A linked attachment on the wire: the client's class and fields, plus the attachment's facts.
pub fn linked_json(l: &LinkedAttachment) -> Value {
    let mut out = Map::new();
    out.insert("className".into(), l.link.class_name.clone().into());
    out.insert("id".into(), l.attachment.id.to_string().into());
    for (k, v) in &l.link.details {
        out.insert(k.clone(), v.clone());
    }
    if let Value::Object(facts) = attachment_json(&l.attachment) {
        out.extend(facts);
    }
    Value::Object(out)
}
