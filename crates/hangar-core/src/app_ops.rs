//! Operations on applications that both the HTTP API and background work need: granted rights,
//! versioned changes of an application or of one of its items, and archiving. They work on the store
//! traits only, so the webhook jobs use them without the HTTP state.

use crate::app_model::{encode, AppStatus, GrantStatus, ItemKind, RightGrant};
use crate::apps::{Context, RightCode};
use crate::store::{
    AppItem, AppItemStore, AppRecord, AppStore, Applications, StoreError, StoreResult,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How long a rotated-out signing key keeps signing beside the new one.
pub const KEY_GRACE_MS: i64 = 24 * 3600 * 1000;
/// Attempts of a versioned change before it gives up as busy.
const MODIFY_ATTEMPTS: usize = 8;

/// Whether the application holds `right` (granted) in `context` or globally.
pub async fn app_granted(
    apps: &dyn AppItemStore,
    app_id: i64,
    right: RightCode,
    context: &Context,
) -> StoreResult<bool> {
    for scope in [context.text.as_str(), "global"] {
        if let Some(item) = apps
            .item(app_id, ItemKind::Right, scope, right.as_str())
            .await?
        {
            if item.get::<RightGrant>()?.status == GrantStatus::Granted {
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
/// won: correct with any number of processes. `change` sees the item's value (None when there is
/// none) and answers its new value, or None to leave it as it is. An absent item is created (if
/// someone else created it first, the change is applied again, to theirs). Answers the item as
/// stored, if any.
pub async fn modify_item<T, E>(
    apps: &dyn AppItemStore,
    app_id: i64,
    kind: ItemKind,
    scope: &str,
    key: &str,
    change: impl Fn(Option<T>) -> Result<Option<T>, E>,
) -> Result<Option<AppItem>, E>
where
    T: Serialize + DeserializeOwned,
    E: From<StoreError>,
{
    for _ in 0..MODIFY_ATTEMPTS {
        let current = apps.item(app_id, kind, scope, key).await?;
        let seen = match &current {
            Some(item) => Some(item.get::<T>()?),
            None => None,
        };
        let Some(value) = change(seen)? else {
            return Ok(current);
        };
        let value = encode(&value);
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
                    kind,
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
        a.doc.state = AppStatus::Archived;
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
