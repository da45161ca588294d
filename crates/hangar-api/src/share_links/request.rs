//! The body of `POST /api/v1/share-links`, checked field by field so that every mistake gets a 400
//! that names it.

use crate::error::{ApiError, ApiResult};
use crate::storage::parse_path_id;
use hangar_core::ids::valid_space_id;
use hangar_core::model::ShareTarget;
use serde_json::{Map, Value};

/// Longest password a link may have (as for members' passwords).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Ids, counts and times stay below 2^53, safe as JSON numbers everywhere.
const JSON_SAFE: i64 = (1 << 53) - 1;
const FIELDS: [&str; 6] = [
    "attachmentId",
    "spaceId",
    "pathId",
    "expiresAt",
    "password",
    "maxDownloads",
];

#[derive(Debug)]
pub struct NewLink {
    pub target: ShareTarget,
    pub expires_at: Option<i64>,
    pub password: Option<String>,
    pub max_downloads: Option<i64>,
}

fn bad(code: &'static str, text: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, text)
}

/// A field, with `null` read as absent.
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

/// A positive integer given as a JSON number.
fn positive(body: &Map<String, Value>, name: &str, code: &'static str) -> ApiResult<Option<i64>> {
    let Some(value) = field(body, name) else {
        return Ok(None);
    };
    match value.as_i64() {
        Some(n) if (1..=JSON_SAFE).contains(&n) => Ok(Some(n)),
        _ => Err(bad(
            code,
            format!("{name} is a whole JSON number from 1 to 2^53-1, not {value}"),
        )),
    }
}

fn text<'a>(body: &'a Map<String, Value>, name: &str) -> ApiResult<Option<&'a str>> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(
            "bad-target",
            format!("{name} is a string, not {other}"),
        )),
    }
}

fn target(body: &Map<String, Value>) -> ApiResult<ShareTarget> {
    let attachment = positive(body, "attachmentId", "bad-target")?;
    let space = text(body, "spaceId")?;
    let path = text(body, "pathId")?;
    match (attachment, space, path) {
        (Some(id), None, None) => Ok(ShareTarget::Attachment(id)),
        (None, Some(space_id), Some(path_id)) => {
            if !valid_space_id(space_id) {
                return Err(bad("bad-target", "spaceId is not a valid space id"));
            }
            Ok(ShareTarget::StorageFile {
                space_id: space_id.to_string(),
                path: parse_path_id(path_id)?,
            })
        }
        (None, None, None) => Err(bad(
            "bad-target",
            "say what to share: attachmentId, or spaceId and pathId",
        )),
        (Some(_), _, _) => Err(bad(
            "bad-target",
            "give either attachmentId or spaceId and pathId, not both",
        )),
        _ => Err(bad(
            "bad-target",
            "a storage file is named by both spaceId and pathId",
        )),
    }
}

/// Reads a request made at `now` (epoch ms).
pub fn parse(body: &Value, now: i64) -> ApiResult<NewLink> {
    let Value::Object(body) = body else {
        return Err(bad("bad-json", "the body is a JSON object"));
    };
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(
            "bad-field",
            format!(
                "unknown field {unknown:?}: the fields are {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let target = target(body)?;
    let expires_at = positive(body, "expiresAt", "bad-expiry")?;
    if expires_at.is_some_and(|at| at <= now) {
        return Err(bad(
            "bad-expiry",
            "expiresAt (epoch milliseconds) is already past",
        ));
    }
    let max_downloads = positive(body, "maxDownloads", "bad-max-downloads")?;
    let password = match field(body, "password") {
        None => None,
        Some(Value::String(p)) if !p.is_empty() && p.len() <= MAX_PASSWORD_BYTES => Some(p.clone()),
        Some(_) => {
            return Err(bad(
                "bad-password",
                format!("password is a non-empty string of at most {MAX_PASSWORD_BYTES} bytes"),
            ))
        }
    };
    Ok(NewLink {
        target,
        expires_at,
        password,
        max_downloads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn code(body: Value) -> &'static str {
        parse(&body, NOW).unwrap_err().code
    }

    #[test]
    fn a_link_names_one_target() {
        let a = parse(&json!({"attachmentId": 12}), NOW).unwrap();
        assert_eq!(a.target, ShareTarget::Attachment(12));
        let f = parse(&json!({"spaceId": "docs", "pathId": "YS9iLnR4dA"}), NOW).unwrap();
        match f.target {
            ShareTarget::StorageFile { space_id, path } => {
                assert_eq!((space_id.as_str(), path.as_str()), ("docs", "a/b.txt"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(code(json!({})), "bad-target");
        assert_eq!(code(json!({"attachmentId": "12"})), "bad-target");
        assert_eq!(code(json!({"attachmentId": 1.5})), "bad-target");
        assert_eq!(code(json!({"attachmentId": -3})), "bad-target");
        assert_eq!(
            code(json!({"attachmentId": 1, "spaceId": "docs", "pathId": "YQ"})),
            "bad-target"
        );
        assert_eq!(code(json!({"spaceId": "docs"})), "bad-target");
        assert_eq!(
            code(json!({"spaceId": "a/b", "pathId": "YQ"})),
            "bad-target"
        );
        assert_eq!(
            code(json!({"spaceId": "docs", "pathId": "Li4"})),
            "bad-path"
        );
        assert_eq!(code(json!([1])), "bad-json");
        assert_eq!(
            code(json!({"attachmentId": 1, "maxDownload": 2})),
            "bad-field"
        );
    }

    #[test]
    fn limits_are_checked() {
        let ok = parse(
            &json!({"attachmentId": 1, "expiresAt": NOW + 1, "maxDownloads": 2, "password": "pw"}),
            NOW,
        )
        .unwrap();
        assert_eq!(ok.expires_at, Some(NOW + 1));
        assert_eq!(ok.max_downloads, Some(2));
        assert_eq!(ok.password.as_deref(), Some("pw"));
        let none = parse(
            &json!({"attachmentId": 1, "expiresAt": null, "password": null}),
            NOW,
        )
        .unwrap();
        assert!(none.expires_at.is_none() && none.password.is_none());
        assert_eq!(
            code(json!({"attachmentId": 1, "expiresAt": NOW})),
            "bad-expiry"
        );
        assert_eq!(
            code(json!({"attachmentId": 1, "expiresAt": "soon"})),
            "bad-expiry"
        );
        assert_eq!(
            code(json!({"attachmentId": 1, "maxDownloads": 0})),
            "bad-max-downloads"
        );
        assert_eq!(
            code(json!({"attachmentId": 1, "password": ""})),
            "bad-password"
        );
        assert_eq!(
            code(json!({"attachmentId": 1, "password": 1234})),
            "bad-password"
        );
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            code(json!({"attachmentId": 1, "password": long})),
            "bad-password"
        );
    }
}
