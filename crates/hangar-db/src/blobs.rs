//! Blob reference counting and the event outbox, used inside other concerns' transactions.

use crate::backend;
use hangar_core::now_ms;
use hangar_core::store::StoreResult;
use sqlx::{Sqlite, Transaction};

pub(crate) type Tx = Transaction<'static, Sqlite>;

/// One more reference to a blob (creating its row at the first).
pub(crate) async fn add_ref(tx: &mut Tx, sha256: &str, size: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO blobs (sha256, size, refcount) VALUES (?, ?, 1) \
         ON CONFLICT (sha256) DO UPDATE SET refcount = blobs.refcount + 1",
    )
    .bind(sha256)
    .bind(size)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// One reference less; true when it was the last (the row is then gone and the bytes may go).
pub(crate) async fn drop_ref(tx: &mut Tx, sha256: &str) -> StoreResult<bool> {
    let left: Option<i64> = sqlx::query_scalar(
        "UPDATE blobs SET refcount = refcount - 1 WHERE sha256 = ? RETURNING refcount",
    )
    .bind(sha256)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    if left == Some(0) {
        sqlx::query("DELETE FROM blobs WHERE sha256 = ? AND refcount = 0")
            .bind(sha256)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        return Ok(true);
    }
    Ok(false)
}

/// Records a domain event in the outbox, in the transaction of the change it describes.
pub(crate) async fn record_event(
    tx: &mut Tx,
    event_type: &str,
    space_id: Option<&str>,
    actor_id: Option<i64>,
    payload: serde_json::Value,
) -> StoreResult<()> {
    let id: [u8; 16] = rand::random();
    sqlx::query(
        "INSERT INTO events (id, event_type, space_id, actor_id, payload, created_utc) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(hex::encode(id))
    .bind(event_type)
    .bind(space_id)
    .bind(actor_id)
    .bind(payload.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}
