//! Operations on applications that both the HTTP API and background work need: secrets sealed in an
//! application's or a webhook's document, granted rights, versioned changes and archiving. They work
//! on the store traits only, so the webhook jobs use them without the HTTP state.

use crate::secrets::{SealError, Secrets};
use crate::store::{
    AppItem, AppItemStore, AppRecord, AppStore, Applications, StoreError, StoreResult,
};
use serde_json::{json, Value};

/// The right that lets an application receive unfurl queue items.
pub const UNFURLS: &str = "Unfurls.Provide";
/// How long a rotated-out signing key keeps signing beside the new one.
pub const KEY_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Attempts of a versioned change before it gives up as busy.
const MODIFY_ATTEMPTS: usize = 8;

/// The secret `name` sealed under `holder["secrets"]` (an application's doc, a webhook), opened.
pub fn open_secret(
    secrets: &Secrets,
    holder: &Value,
    name: &str,
) -> Result<Option<String>, SealError> {
    match holder
        .get("secrets")
        .and_then(|s| s.get(name))
        .and_then(Value::as_str)
    {
        Some(sealed) => Ok(Some(secrets.open(sealed)?)),
        None => Ok(None),
    }
}

/// Seals `value` as the secret `name` of `holder` (None removes it).
pub fn set_secret(secrets: &Secrets, holder: &mut Value, name: &str, value: Option<&str>) {
    if !holder.get("secrets").is_some_and(Value::is_object) {
        holder["secrets"] = json!({});
    }
    match value {
        Some(v) => holder["secrets"][name] = json!(secrets.seal(v)),
        None => {
            if let Some(m) = holder["secrets"].as_object_mut() {
                m.remove(name);
            }
        }
    }
}

/// A webhook's custom headers, opened.
pub fn custom_headers(
    secrets: &Secrets,
    webhook: &Value,
) -> Result<Vec<(String, String)>, SealError> {
    let mut out = Vec::new();
    for h in webhook["headers"].as_array().into_iter().flatten() {
        let name = h["name"].as_str().unwrap_or("").to_string();
        let value = secrets.open(h["value"].as_str().unwrap_or(""))?;
        out.push((name, value));
    }
    Ok(out)
}

/// Whether the application holds `right` (granted) in `context` or globally.
pub async fn app_granted(
    apps: &dyn AppItemStore,
    app_id: i64,
    right: &str,
    context: &str,
) -> StoreResult<bool> {
    for scope in [context, "global"] {
        if let Some(item) = apps.item(app_id, "right", scope, right).await? {
            if item.value.get("status").and_then(Value::as_str) == Some("GRANTED") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Applies `change` to the freshest version of the application and stores it if nobody changed it
/// meanwhile (compare-and-set on its version), retrying when a concurrent change won: correct with
/// any number of processes.
pub async fn modify_app<E: From<StoreError>>(
    apps: &dyn AppStore,
    id: i64,
    change: impl Fn(&mut AppRecord) -> Result<(), E>,
) -> Result<AppRecord, E> {
    for _ in 0..MODIFY_ATTEMPTS {
        let mut app = apps
            .app(id)
            .await?
            .ok_or(StoreError::NotFound("application"))?;
        change(&mut app)?;
        match apps
            .update_app(app.id, app.version, &app.name, app.archived, &app.doc)
            .await
        {
            Err(StoreError::Conflict(_)) => continue,
            other => return Ok(other?),
        }
    }
    Err(StoreError::Refused {
        code: "busy",
        reason: "the application is being changed by others: try again".into(),
    }
    .into())
}

/// Applies `change` to the freshest version of one item of an application and stores the result if
/// nobody wrote the item meanwhile (compare-and-set on its version), retrying when a concurrent change
/// won: correct with any number of processes. `change` sees the item (None when there is none) and
/// answers its new value, or None to leave it as it is. An absent item is created (if someone else
/// created it first, the change is applied again, to theirs). Answers the item as stored, if any.
pub async fn modify_item<E: From<StoreError>>(
    apps: &dyn AppItemStore,
    app_id: i64,
    kind: &str,
    scope: &str,
    key: &str,
    change: impl Fn(Option<&AppItem>) -> Result<Option<Value>, E>,
) -> Result<Option<AppItem>, E> {
    for _ in 0..MODIFY_ATTEMPTS {
        let current = apps.item(app_id, kind, scope, key).await?;
        let Some(value) = change(current.as_ref())? else {
            return Ok(current);
        };
        match current {
            Some(mut item) => {
                item.value = value;
                if apps.replace_item(&item).await? {
                    item.version += 1;
                    return Ok(Some(item));
                }
            }
            None => {
                let item = AppItem {
                    app_id,
                    kind: kind.to_string(),
                    scope: scope.to_string(),
                    key: key.to_string(),
                    value,
                    created_utc: crate::now_ms(),
                    version: 1,
                };
                match apps.insert_item(&item, None).await {
                    Err(StoreError::Conflict(_)) => {}
                    other => return other.map(|()| Some(item)).map_err(E::from),
                }
            }
        }
    }
    Err(StoreError::Refused {
        code: "busy",
        reason: "the item is being changed by others: try again".into(),
    }
    .into())
}

/// Archives the application and ends its access.
pub async fn archive_app(apps: &dyn Applications, id: i64) -> StoreResult<AppRecord> {
    let app = modify_app(apps, id, |a| {
        a.archived = true;
        a.doc["state"] = json!("archived");
        Ok::<(), StoreError>(())
    })
    .await?;
    apps.delete_app_tokens(id).await?;
    Ok(app)
}

/// The unfurl queue key of an etag: zero-padded so that text order is number order.
pub fn queue_key(etag: i64) -> String {
    format!("{etag:020}")
}
