//! Blob reference counting, pins and deferred deletion (SPEC §10), and the event outbox, used inside
//! other concerns' transactions.

use super::jobs::enqueue_in;
use super::previews::release_previews;
use super::{backend, driver_error, Conn, SqliteStore, Tx};
use crate::rules::{collect_decision, BlobRow};
use crate::rules::{AfterRef, FileRef};
use async_trait::async_trait;
use hangar_core::app_model::ItemKind;
use hangar_core::jobs::{CollectBlob, DispatchEvent, NewJob};
use hangar_core::model::BlobHold;
use hangar_core::now_ms;
use hangar_core::store::{
    BlobLifecycleStore, BlobRecord, Collect, PinnedObject, StoreError, StoreResult, StoredTotals,
};
use rusqlite::OptionalExtension;

/// A new blob's number (`blobs.seq`, migration `0018`): one more than the highest row id, so above
/// every blob's before it. Every statement that makes a blob's row gives it one.
macro_rules! next_seq {
    () => {
        "(SELECT COALESCE(MAX(rowid), 0) + 1 FROM blobs)"
    };
}

/// `add_ref`'s statement: binds the blob's hash, size, `'pending'` or NULL (its scan state when
/// new), the object key of placed bytes (or NULL) and whether scanning is on. It changes no row
/// while the blob is being deleted. `ADDED_REF` reads what it made: a `RETURNING` clause here
/// cost more than that second statement, for SQLite gathers returned rows in a temporary B-tree it
/// opens and closes at each run (docs/performance.md, "The SQLite writer's statements without
/// `RETURNING`…").
pub(crate) const ADD_REF: &str = concat!(
    "INSERT INTO blobs (sha256, size, refcount, scan_state, object_key, seq) \
     VALUES (?, ?, 1, ?, ?, ",
    next_seq!(),
    ") ON CONFLICT (sha256) DO UPDATE SET refcount = blobs.refcount + 1, released_utc = NULL, \
       seq = COALESCE(blobs.seq, excluded.seq), \
       scan_state = CASE WHEN ? AND (blobs.scan_state IS NULL OR blobs.scan_state = 'failed') \
         THEN 'pending' ELSE blobs.scan_state END \
     WHERE blobs.deleting = 0"
);

/// The blob `ADD_REF` referenced (binds the hash): its scan state and detail, its object key, and
/// its number.
pub(crate) const ADDED_REF: &str =
    "SELECT scan_state, scan_detail, object_key, seq FROM blobs WHERE sha256 = ?";

/// What `ADDED_REF` answers: the blob's scan state and detail, its object key, and its number.
pub(crate) type AddedRef = (Option<String>, Option<String>, Option<String>, i64);

/// The attachments holding a blob's bytes (binds the hash), by the blob's number (migration
/// `0018`: an index in creation order), the hash compared too.
pub(crate) const ATTACHMENTS_OF_BLOB: &str =
    "SELECT id, file_name, size FROM attachments \
     WHERE blob_seq = (SELECT seq FROM blobs WHERE sha256 = ?1) AND sha256 = ?1 AND stores_blob = 1 \
     ORDER BY id";

/// Drops an upload's pin by its id.
pub(crate) const DROP_PIN: &str = "DELETE FROM blob_pins WHERE id = ?";

/// Pins a blob unless it is being deleted: binds the pin's id, the hash, the expiry and the hash.
pub(crate) const PIN: &str = "INSERT INTO blob_pins (id, sha256, expires_utc) SELECT ?, ?, ? \
     WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE sha256 = ? AND deleting = 1)";

/// Records an event (`record_event`): binds its id, type, space, actor, payload, time, and whether
/// it counts as dispatched (`SUBSCRIBED`).
pub(crate) const RECORD_EVENT: &str =
    "INSERT INTO events (id, event_type, space_id, actor_id, payload, created_utc, dispatched) \
     VALUES (?, ?, ?, ?, ?, ?, ?)";

/// Whether any application subscribes to events (binds the subscription kind).
pub(crate) const SUBSCRIBED: &str = "SELECT EXISTS (SELECT 1 FROM app_items WHERE kind = ?)";

/// A new event's id.
pub(crate) fn event_id() -> String {
    hangar_core::ids::time_ordered_key()
}

/// One more reference to a blob (creating its row at the first), given what held its bytes until
/// now (`BlobHold`): the upload's pin is dropped; placed bytes' key is written on a new row, and a
/// placed copy of content stored already is queued for its discard. Refused while the blob is
/// being deleted: an upload that pins does so first, so that cannot happen to it; placed bytes'
/// record is made again (`Ingest::record`). Answers whether it queued a job (a scan, a discard,
/// or a quarantined file's event to dispatch).
pub(crate) async fn add_ref(
    tx: &mut Tx,
    sha256: &str,
    size: i64,
    hold: Option<&BlobHold>,
    scan: Option<FileRef<'_>>,
) -> StoreResult<bool> {
    // With scanning on (`scan` names the file), new bytes, bytes stored while scanning was off and
    // bytes whose scan failed are (again) pending, and their scan is queued in this transaction.
    let added = sqlx::query(ADD_REF)
        .bind(sha256)
        .bind(size)
        .bind(scan.map(|_| "pending"))
        .bind(hold.and_then(BlobHold::placed))
        .bind(scan.is_some())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    if added.rows_affected() == 0 {
        return Err(StoreError::blob_busy());
    }
    let (state, detail, key, _): AddedRef = sqlx::query_as(ADDED_REF)
        .bind(sha256)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    if let Some(pin) = hold.and_then(BlobHold::pin) {
        sqlx::query(DROP_PIN)
            .bind(pin)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    let discarding = match crate::rules::discard_duplicate(hold, key.as_deref()) {
        Some(job) => enqueue_in(tx, &job).await.map(|()| true)?,
        None => false,
    };
    let queued = match crate::rules::after_ref(scan, sha256, state.as_deref(), detail.as_deref()) {
        Some(AfterRef::Scan(job)) => enqueue_in(tx, &job).await.map(|()| true),
        Some(AfterRef::Quarantine {
            kind,
            space,
            payload,
        }) => record_event(tx, kind, space.as_deref(), None, payload).await,
        None => Ok(false),
    }?;
    Ok(discarding || queued)
}

/// Gives up what held a blob's bytes for a record that takes no reference to them (a preview that
/// is its source's own bytes): the pin goes; a placed copy is queued for its discard.
pub(crate) async fn drop_hold(tx: &mut Tx, hold: Option<&BlobHold>) -> StoreResult<()> {
    if let Some(pin) = hold.and_then(BlobHold::pin) {
        sqlx::query(DROP_PIN)
            .bind(pin)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    match crate::rules::discard_duplicate(hold, None) {
        Some(job) => enqueue_in(tx, &job).await,
        None => Ok(()),
    }
}

/// One reference less. At the last, the row stays (released now) and a collection is queued for
/// the end of the grace period, in the same transaction; the blob's previews go too, dropping
/// their own references.
pub(crate) async fn drop_ref(tx: &mut Tx, sha256: &str, grace_ms: i64) -> StoreResult<()> {
    let now = now_ms();
    let mut pending = vec![sha256.to_string()];
    while let Some(sha256) = pending.pop() {
        let left: Option<i64> = sqlx::query_scalar(
            "UPDATE blobs SET refcount = refcount - 1, \
               released_utc = CASE WHEN refcount = 1 THEN ? ELSE released_utc END \
             WHERE sha256 = ? RETURNING refcount",
        )
        .bind(now)
        .bind(&sha256)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
        if left == Some(0) {
            queue_collection(tx, &sha256, now + grace_ms).await?;
            pending.extend(release_previews(tx, &sha256).await?);
        }
    }
    Ok(())
}

async fn queue_collection(tx: &mut Tx, sha256: &str, at: i64) -> StoreResult<()> {
    let job = NewJob::of(
        &CollectBlob {
            sha256: sha256.to_string(),
        },
        at,
    )
    .unique(CollectBlob::unique_key(sha256));
    enqueue_in(tx, &job).await
}

/// Records a domain event in the outbox, in the transaction of the change it describes, with the job
/// that dispatches it to webhooks (commit with `commit_queued` so that the runner starts at once).
/// Answers whether it queued that job: no application subscribes to an event recorded as
/// dispatched, and no runner needs waking for it.
pub(crate) async fn record_event(
    tx: &mut Tx,
    event_type: &str,
    space_id: Option<&str>,
    actor_id: Option<i64>,
    payload: serde_json::Value,
) -> StoreResult<bool> {
    let id = event_id();
    // An event that no application can receive (no subscription exists when it is committed) is
    // recorded as dispatched: no job to claim, run and complete for it, which on a busy upload
    // path was several write transactions per upload beside the upload's own
    // (`rules::may_skip_dispatch`).
    let dispatched = crate::rules::may_skip_dispatch(event_type)
        && !sqlx::query_scalar::<_, bool>(SUBSCRIBED)
            .bind(ItemKind::Subscription.as_str())
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
    sqlx::query(RECORD_EVENT)
        .bind(&id)
        .bind(event_type)
        .bind(space_id)
        .bind(actor_id)
        .bind(payload.to_string())
        .bind(now_ms())
        .bind(dispatched)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    if dispatched {
        return Ok(false);
    }
    let job = NewJob::of(&DispatchEvent { event_id: id }, now_ms());
    enqueue_in(tx, &job).await.map(|()| true)
}

/// Whether nothing references the blob: no row, or a row at refcount 0.
async fn unreferenced(tx: &mut Tx, sha256: &str) -> StoreResult<bool> {
    let refcount: Option<i64> = sqlx::query_scalar("SELECT refcount FROM blobs WHERE sha256 = ?")
        .bind(sha256)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(refcount.unwrap_or(0) == 0)
}

#[async_trait]
impl BlobLifecycleStore for SqliteStore {
    async fn pin_blob(&self, pin_id: &str, sha256: &str, expires_utc: i64) -> StoreResult<bool> {
        // In the group writer's transaction, which holds SQLite's write lock, so the check and the
        // insert are one step against `begin_blob_deletion` in any process. The pin needs no disk
        // flush of its own: WAL keeps commits in order, so it is durable before the upload's
        // record is; a pin lost to a power cut belonged to an upload that was never acknowledged,
        // whose bytes the orphan sweep takes after the grace period.
        let (pin_id, sha256) = (pin_id.to_string(), sha256.to_string());
        self.writer
            .write(false, move |conn: &Conn| {
                let pinned = conn
                    .prepare_cached(PIN)
                    .and_then(|mut pin| pin.execute((&pin_id, &sha256, expires_utc, &sha256)))
                    .map_err(driver_error)?;
                Ok(pinned == 1)
            })
            .await
    }

    async fn pin_blob_object(
        &self,
        pin_id: &str,
        sha256: &str,
        size: i64,
        expires_utc: i64,
        object_key: &str,
    ) -> StoreResult<PinnedObject> {
        // As `pin_blob`, and the blob's row is made here (at refcount 0, which the pin protects)
        // so that the key is recorded before any reference: the row's first key wins, and a later
        // upload of the same content learns that its own object is a duplicate.
        let (pin_id, sha256, key) = (
            pin_id.to_string(),
            sha256.to_string(),
            object_key.to_string(),
        );
        self.writer
            .write(false, move |conn: &Conn| {
                let row: Option<(bool, Option<String>)> = conn
                    .prepare_cached("SELECT deleting, object_key FROM blobs WHERE sha256 = ?")
                    .and_then(|mut find| {
                        find.query_row([&sha256], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(driver_error)?;
                let pinned = match row {
                    Some((true, _)) => return Ok(PinnedObject::Busy),
                    Some((false, Some(key))) => PinnedObject::Keyed(key),
                    Some((false, None)) => PinnedObject::Addressed,
                    None => {
                        conn.prepare_cached(concat!(
                            "INSERT INTO blobs (sha256, size, refcount, object_key, seq) \
                                 VALUES (?, ?, 0, ?, ",
                            next_seq!(),
                            ")"
                        ))
                        .and_then(|mut insert| insert.execute((&sha256, size, &key)))
                        .map_err(driver_error)?;
                        PinnedObject::Keyed(key.clone())
                    }
                };
                conn.prepare_cached(
                    "INSERT INTO blob_pins (id, sha256, expires_utc) VALUES (?, ?, ?)",
                )
                .and_then(|mut pin| pin.execute((&pin_id, &sha256, expires_utc)))
                .map_err(driver_error)?;
                Ok(pinned)
            })
            .await
    }

    async fn blob_object_key(&self, sha256: &str) -> StoreResult<Option<String>> {
        let key: Option<Option<String>> =
            sqlx::query_scalar("SELECT object_key FROM blobs WHERE sha256 = ?")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(key.flatten())
    }

    async fn blob_of_object(&self, object_key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT sha256 FROM blobs WHERE object_key = ?")
            .bind(object_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn release_pin(&self, pin_id: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let sha: Option<String> =
            sqlx::query_scalar("DELETE FROM blob_pins WHERE id = ? RETURNING sha256")
                .bind(pin_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if let Some(sha) = sha {
            if unreferenced(&mut tx, &sha).await? {
                queue_collection(&mut tx, &sha, now_ms()).await?;
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn expire_pins(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let shas: Vec<String> =
            sqlx::query_scalar("DELETE FROM blob_pins WHERE expires_utc <= ? RETURNING sha256")
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        for sha in &shas {
            if unreferenced(&mut tx, sha).await? {
                queue_collection(&mut tx, sha, now).await?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(shas.len() as u64)
    }

    async fn begin_blob_deletion(&self, sha256: &str, now: i64) -> StoreResult<Collect> {
        let mut tx = self.write().await?;
        let pinned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM blob_pins WHERE sha256 = ? AND expires_utc > ?",
        )
        .bind(sha256)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let row: Option<(i64, Option<i64>, i64)> =
            sqlx::query_as("SELECT refcount, released_utc, deleting FROM blobs WHERE sha256 = ?")
                .bind(sha256)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let row = row.map(|(refcount, released_utc, deleting)| BlobRow {
            refcount,
            released_utc,
            deleting: deleting != 0,
        });
        let (decision, mark) = collect_decision(row.as_ref(), pinned > 0, self.blob_grace_ms, now);
        if mark {
            // Without a row (never referenced), a row marks the deletion all the same.
            sqlx::query(concat!(
                "INSERT INTO blobs (sha256, size, refcount, released_utc, deleting, seq) \
                     VALUES (?, 0, 0, ?, 1, ",
                next_seq!(),
                ") ON CONFLICT (sha256) DO UPDATE SET deleting = 1"
            ))
            .bind(sha256)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(decision)
    }

    async fn finish_blob_deletion(&self, sha256: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM blobs WHERE sha256 = ? AND deleting = 1 AND refcount = 0")
            .bind(sha256)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn blob_record(&self, sha256: &str) -> StoreResult<BlobRecord> {
        let refcount: Option<i64> =
            sqlx::query_scalar("SELECT refcount FROM blobs WHERE sha256 = ?")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        let pinned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM blob_pins WHERE sha256 = ? AND expires_utc > ?",
        )
        .bind(sha256)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(BlobRecord {
            refcount,
            pinned: pinned > 0,
        })
    }

    async fn referenced_blobs(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT sha256, size FROM blobs WHERE refcount > 0 AND sha256 > ? \
             ORDER BY sha256 LIMIT ?",
        )
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn blob_users(&self, sha256: &str) -> StoreResult<Vec<String>> {
        let attachments: Vec<(i64, String)> =
            sqlx::query_as::<_, (i64, String, i64)>(ATTACHMENTS_OF_BLOB)
                .bind(sha256)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .into_iter()
                .map(|(id, file_name, _)| (id, file_name))
                .collect();
        let files: Vec<(String, String)> = sqlx::query_as(
            "SELECT space_id, path FROM storage_entries WHERE sha256 = ? AND kind = 'file' \
             ORDER BY space_id, path",
        )
        .bind(sha256)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let previews: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source_sha256, size FROM previews WHERE sha256 = ? AND counted = 1 \
             ORDER BY source_sha256, size",
        )
        .bind(sha256)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(crate::rules::blob_users(attachments, files, previews))
    }

    async fn collectable_blobs(&self, now: i64) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT b.sha256 FROM blobs b WHERE b.deleting = 1 OR (b.refcount = 0 \
             AND COALESCE(b.released_utc, 0) + ? <= ? \
             AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.sha256 = b.sha256 AND p.expires_utc > ?)) \
             ORDER BY b.sha256",
        )
        .bind(self.blob_grace_ms)
        .bind(now)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn holds_data(&self) -> StoreResult<bool> {
        let any: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM members) OR EXISTS (SELECT 1 FROM blobs) \
             OR EXISTS (SELECT 1 FROM spaces)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(any != 0)
    }

    async fn stored_totals(&self) -> StoreResult<StoredTotals> {
        let (blobs, bytes): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs")
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        Ok(StoredTotals { blobs, bytes })
    }
}
