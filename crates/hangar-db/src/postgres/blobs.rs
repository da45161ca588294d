//! Blob reference counting, pins and deferred deletion (SPEC §10), and the event outbox, used inside
//! other concerns' transactions.

use super::jobs::enqueue_in;
use super::previews::release_previews;
use super::{backend, commit, PgStore, Tx};
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
use sqlx::PgPool;
use std::sync::LazyLock;

/// What taking one more reference does to a blob's row that exists already (the `ON CONFLICT` of
/// the row's insert): counts it, and with scanning on (`$4`, whether the file is to be scanned)
/// makes bytes never scanned or whose scan failed pending again. Refused (no row answered) while
/// the blob is being deleted.
pub(crate) const REF_EXISTING_BLOB: &str =
    "ON CONFLICT (sha256) DO UPDATE SET refcount = blobs.refcount + 1, released_utc = NULL, \
       scan_state = CASE WHEN $4 AND (blobs.scan_state IS NULL OR blobs.scan_state = 'failed') \
         THEN 'pending' ELSE blobs.scan_state END \
     WHERE NOT blobs.deleting";
/// The pin's removal and one more reference to a blob; answers the blob's scan state and detail
/// and its row's object key. Binds the hash, the size, the scan state of a new row (`'pending'` or
/// NULL), whether the file is to be scanned, the pin and the key of placed bytes, as `$1` to `$6`.
static ADD_REF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH unpinned AS (DELETE FROM blob_pins WHERE id = $5) \
         INSERT INTO blobs (sha256, size, refcount, scan_state, object_key) VALUES ($1, $2, 1, $3, $6) \
         {REF_EXISTING_BLOB} RETURNING scan_state, scan_detail, object_key"
    )
});

/// One more reference to a blob (creating its row at the first), given what held its bytes until
/// now (`BlobHold`): the upload's pin is dropped; placed bytes' key is written on a new row, and a
/// placed copy of content stored already is queued for its discard. Refused while the blob is
/// being deleted: an upload that pins does so first, so that cannot happen to it; placed bytes'
/// record is made again (`Ingest::record`). The upsert takes the blob's row lock: a collector
/// deciding about the row (`begin_blob_deletion`, which locks it first) either sees this reference,
/// or has marked the row, and then the `WHERE` refuses on the row as the collector left it.
/// Answers whether it queued a job (a scan, a discard, or a quarantined file's event to dispatch).
pub(crate) async fn add_ref(
    tx: &mut Tx,
    sha256: &str,
    size: i64,
    hold: Option<&BlobHold>,
    scan: Option<FileRef<'_>>,
) -> StoreResult<bool> {
    // With scanning on (`scan` names the file), new bytes, bytes stored while scanning was off and
    // bytes whose scan failed are (again) pending, and their scan is queued in this transaction.
    // The pin that protected the bytes until now goes in the same statement (a data-modifying
    // `WITH` runs whether or not the rest reads it; without a pin it matches no row): one round
    // trip less per upload.
    type Row = (Option<String>, Option<String>, Option<String>);
    let row: Option<Row> = sqlx::query_as(ADD_REF.as_str())
        .bind(sha256)
        .bind(size)
        .bind(scan.map(|_| "pending"))
        .bind(scan.is_some())
        .bind(hold.and_then(BlobHold::pin))
        .bind(hold.and_then(BlobHold::placed))
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    let Some((state, detail, key)) = row else {
        return Err(StoreError::blob_busy());
    };
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
        sqlx::query("DELETE FROM blob_pins WHERE id = $1")
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
               released_utc = CASE WHEN refcount = 1 THEN $1 ELSE released_utc END \
             WHERE sha256 = $2 RETURNING refcount",
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
    let id = hangar_core::ids::time_ordered_key();
    // An event that no application can receive (no subscription exists when it is committed) is
    // recorded as dispatched: no job to claim, run and complete for it, which on a busy upload
    // path was several write transactions per upload beside the upload's own
    // (`rules::may_skip_dispatch`).
    let dispatched: bool = sqlx::query_scalar(
        "INSERT INTO events (id, event_type, space_id, actor_id, payload, created_utc, dispatched) \
         VALUES ($1, $2, $3, $4, $5, $6, $7 AND NOT EXISTS (SELECT 1 FROM app_items WHERE kind = $8)) \
         RETURNING dispatched",
    )
    .bind(&id)
    .bind(event_type)
    .bind(space_id)
    .bind(actor_id)
    .bind(payload.to_string())
    .bind(now_ms())
    .bind(crate::rules::may_skip_dispatch(event_type))
    .bind(ItemKind::Subscription.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    if dispatched {
        return Ok(false);
    }
    let job = NewJob::of(&DispatchEvent { event_id: id }, now_ms());
    enqueue_in(tx, &job).await.map(|()| true)
}

/// Takes the blob's transaction-scoped advisory lock (keyed by a 64-bit hash of its SHA-256; two
/// blobs that share a key only wait for each other a moment).
async fn lock_blob(tx: &mut Tx, sha256: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(sha256)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Whether nothing references the blob: no row, or a row at refcount 0.
async fn unreferenced(tx: &mut Tx, sha256: &str) -> StoreResult<bool> {
    let refcount: Option<i64> = sqlx::query_scalar("SELECT refcount FROM blobs WHERE sha256 = $1")
        .bind(sha256)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(refcount.unwrap_or(0) == 0)
}

/// An upload's pin on a blob, as `PgStore::pin` hands it to the pins' batcher.
#[derive(Clone)]
pub(crate) struct Pin {
    pub id: String,
    pub sha256: String,
    pub size: i64,
    pub expires_utc: i64,
    pub object_key: Option<String>,
}

/// Whether the blob is being deleted (then nothing was pinned), and the object key its row records.
pub(crate) type Pinned = (bool, Option<String>);

/// Makes the pins of `batch` in one statement, `hangar_pin_blobs` (migrations 0012 and 0013): each
/// with the steps of `hangar_pin_blob` (migration 0011), written out in its loop, and answered as
/// that answers, in `batch`'s order.
pub(crate) async fn pin_batch(
    pool: &PgPool,
    batch: Vec<Pin>,
) -> StoreResult<Vec<StoreResult<Pinned>>> {
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pin in &batch {
        columns.0.push(pin.id.as_str());
        columns.1.push(pin.sha256.as_str());
        columns.2.push(pin.size);
        columns.3.push(pin.expires_utc);
        columns.4.push(pin.object_key.as_deref());
    }
    let rows: Vec<(i32, bool, Option<String>)> =
        sqlx::query_as("SELECT ord, busy, object_key FROM hangar_pin_blobs($1, $2, $3, $4, $5)")
            .bind(&columns.0)
            .bind(&columns.1)
            .bind(&columns.2)
            .bind(&columns.3)
            .bind(&columns.4)
            .fetch_all(pool)
            .await
            .map_err(backend)?;
    let mut out: Vec<StoreResult<Pinned>> = (0..batch.len())
        .map(|_| Err(StoreError::Backend("a pin was not answered".into())))
        .collect();
    for (ord, busy, key) in rows {
        if let Some(slot) = usize::try_from(ord)
            .ok()
            .and_then(|i| out.get_mut(i.wrapping_sub(1)))
        {
            *slot = Ok((busy, key));
        }
    }
    Ok(out)
}

impl PgStore {
    /// Pins a blob through the pins' batcher (`pin_batch`): the blob's advisory lock (held by
    /// `begin_blob_deletion` too), the check and the inserts in one statement with the other pins
    /// asked for meanwhile. The lock makes the check and the insert one step against a collector on
    /// any node: either the collector decided first and the pin is refused (answered busy), or the
    /// collector counts this pin. (A lock rather than the blob's row: a blob about to be stored for
    /// the first time has no row yet.) The pin needs no WAL flush of its own (the bookkeeping pool):
    /// the upload's record commits later and flushes it too; a pin lost to a crash belonged to an
    /// upload that was never acknowledged, whose bytes the orphan sweep takes after the grace
    /// period. Answers whether the blob is being deleted, and the object key its row records.
    async fn pin(
        &self,
        pin_id: &str,
        sha256: &str,
        size: i64,
        expires_utc: i64,
        object_key: Option<&str>,
    ) -> StoreResult<Pinned> {
        self.pins
            .submit(Pin {
                id: pin_id.to_string(),
                sha256: sha256.to_string(),
                size,
                expires_utc,
                object_key: object_key.map(str::to_string),
            })
            .await
    }
}

#[async_trait]
impl BlobLifecycleStore for PgStore {
    async fn referenced_blobs(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT sha256, size FROM blobs WHERE refcount > 0 AND sha256 > $1 \
             ORDER BY sha256 LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn blob_users(&self, sha256: &str) -> StoreResult<Vec<String>> {
        let attachments: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, file_name FROM attachments WHERE sha256 = $1 AND stores_blob ORDER BY id",
        )
        .bind(sha256)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let files: Vec<(String, String)> = sqlx::query_as(
            "SELECT space_id, path FROM storage_entries WHERE sha256 = $1 AND kind = 'file' \
             ORDER BY space_id, path",
        )
        .bind(sha256)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let previews: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source_sha256, size FROM previews WHERE sha256 = $1 AND counted \
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
            "SELECT b.sha256 FROM blobs b WHERE b.deleting OR (b.refcount = 0 \
             AND COALESCE(b.released_utc, 0) + $1 <= $2 \
             AND NOT EXISTS (SELECT 1 FROM blob_pins p WHERE p.sha256 = b.sha256 AND p.expires_utc > $2)) \
             ORDER BY b.sha256",
        )
        .bind(self.blob_grace_ms)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn pin_blob(&self, pin_id: &str, sha256: &str, expires_utc: i64) -> StoreResult<bool> {
        let (busy, _) = self.pin(pin_id, sha256, 0, expires_utc, None).await?;
        Ok(!busy)
    }

    async fn pin_blob_object(
        &self,
        pin_id: &str,
        sha256: &str,
        size: i64,
        expires_utc: i64,
        object_key: &str,
    ) -> StoreResult<PinnedObject> {
        // As `pin_blob`, and the blob's row is made too (at refcount 0, which the pin protects) so
        // that the key is recorded before any reference: the row's first key wins, and a later
        // upload of the same content learns that its own object is a duplicate.
        let pinned = match self
            .pin(pin_id, sha256, size, expires_utc, Some(object_key))
            .await?
        {
            (true, _) => PinnedObject::Busy,
            (false, Some(key)) => PinnedObject::Keyed(key),
            (false, None) => PinnedObject::Addressed,
        };
        Ok(pinned)
    }

    async fn blob_object_key(&self, sha256: &str) -> StoreResult<Option<String>> {
        let key: Option<Option<String>> =
            sqlx::query_scalar("SELECT object_key FROM blobs WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(key.flatten())
    }

    async fn blob_of_object(&self, object_key: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT sha256 FROM blobs WHERE object_key = $1")
            .bind(object_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn release_pin(&self, pin_id: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let sha: Option<String> =
            sqlx::query_scalar("DELETE FROM blob_pins WHERE id = $1 RETURNING sha256")
                .bind(pin_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if let Some(sha) = sha {
            if unreferenced(&mut tx, &sha).await? {
                queue_collection(&mut tx, &sha, now_ms()).await?;
            }
        }
        commit(tx).await
    }

    async fn expire_pins(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let shas: Vec<String> =
            sqlx::query_scalar("DELETE FROM blob_pins WHERE expires_utc <= $1 RETURNING sha256")
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        for sha in &shas {
            if unreferenced(&mut tx, sha).await? {
                queue_collection(&mut tx, sha, now).await?;
            }
        }
        commit(tx).await?;
        Ok(shas.len() as u64)
    }

    async fn begin_blob_deletion(&self, sha256: &str, now: i64) -> StoreResult<Collect> {
        let mut tx = self.write().await?;
        // Against pins: the blob's advisory lock (see `pin_blob`), taken before the pins are
        // counted, so a pin committed before it is counted and none is added until this commits.
        lock_blob(&mut tx, sha256).await?;
        // Against new references: the row lock, taken before the row is read (see `add_ref`).
        let row: Option<(i64, Option<i64>, bool)> = sqlx::query_as(
            "SELECT refcount, released_utc, deleting FROM blobs WHERE sha256 = $1 FOR UPDATE",
        )
        .bind(sha256)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let pinned: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM blob_pins WHERE sha256 = $1 AND expires_utc > $2)",
        )
        .bind(sha256)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let had_row = row.is_some();
        let row = row.map(|(refcount, released_utc, deleting)| BlobRow {
            refcount,
            released_utc,
            deleting,
        });
        let (mut decision, mark) = collect_decision(row.as_ref(), pinned, self.blob_grace_ms, now);
        if mark && had_row {
            sqlx::query("UPDATE blobs SET deleting = TRUE WHERE sha256 = $1")
                .bind(sha256)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        } else if mark {
            // Never referenced: a row marks the deletion all the same. A first reference that
            // inserted the row meanwhile wins (the insert waits for it, then does nothing).
            let inserted = sqlx::query(
                "INSERT INTO blobs (sha256, size, refcount, released_utc, deleting) \
                 VALUES ($1, 0, 0, $2, TRUE) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(sha256)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 0 {
                decision = Collect::Keep;
            }
        }
        commit(tx).await?;
        Ok(decision)
    }

    async fn finish_blob_deletion(&self, sha256: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM blobs WHERE sha256 = $1 AND deleting AND refcount = 0")
            .bind(sha256)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn blob_record(&self, sha256: &str) -> StoreResult<BlobRecord> {
        let refcount: Option<i64> =
            sqlx::query_scalar("SELECT refcount FROM blobs WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        let pinned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM blob_pins WHERE sha256 = $1 AND expires_utc > $2",
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

    async fn holds_data(&self) -> StoreResult<bool> {
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM members) OR EXISTS (SELECT 1 FROM blobs) \
             OR EXISTS (SELECT 1 FROM spaces)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(any)
    }

    async fn stored_totals(&self) -> StoreResult<StoredTotals> {
        let (blobs, bytes): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(size), 0)::BIGINT FROM blobs")
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        Ok(StoredTotals { blobs, bytes })
    }
}
