//! Previews on PostgreSQL (SPEC §9.3): what is known of each source, its preview blobs and their
//! references, released with the source's last reference (`release_previews`, from `drop_ref`).

use super::blobs::{add_ref, drop_hold};
use super::jobs::enqueue_in;
use super::{backend, commit, retrying, PgStore, Tx};
use async_trait::async_trait;
use hangar_core::jobs::MakePreviews;
use hangar_core::now_ms;
use hangar_core::preview::{NewPreview, PreviewRecord, PreviewRecorded, PreviewSource};
use hangar_core::store::{PreviewStore, StoreResult};

/// Queues the preview job of a new ready attachment, in the transaction that records it. Answers
/// whether its type has previews (and a job was queued).
pub(crate) async fn queue_previews(
    tx: &mut Tx,
    sha256: &str,
    content_type: &str,
) -> StoreResult<bool> {
    match MakePreviews::for_attachment(sha256, content_type, now_ms()) {
        Some(job) => enqueue_in(tx, &job).await.map(|()| true),
        None => Ok(false),
    }
}

/// Forgets a source's previews (its last reference just went): answers the preview blobs whose
/// references the caller must drop.
pub(crate) async fn release_previews(tx: &mut Tx, source: &str) -> StoreResult<Vec<String>> {
    let released: Vec<(String, bool)> =
        sqlx::query_as("DELETE FROM previews WHERE source_sha256 = $1 RETURNING sha256, counted")
            .bind(source)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
    sqlx::query("DELETE FROM preview_sources WHERE sha256 = $1")
        .bind(source)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(released
        .into_iter()
        .filter(|(_, counted)| *counted)
        .map(|(sha, _)| sha)
        .collect())
}

/// Whether something references the blob now, holding its row lock until the transaction ends, so
/// that its last reference cannot go (and release the previews) before this transaction commits.
async fn referenced(tx: &mut Tx, sha256: &str) -> StoreResult<bool> {
    let refcount: Option<i64> = sqlx::query_scalar(
        "SELECT refcount FROM blobs WHERE sha256 = $1 AND NOT deleting FOR UPDATE",
    )
    .bind(sha256)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(refcount.unwrap_or(0) > 0)
}

#[async_trait]
impl PreviewStore for PgStore {
    async fn preview_source(&self, sha256: &str) -> StoreResult<Option<PreviewSource>> {
        let row: Option<(String, Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT state, width, height FROM preview_sources WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|(state, w, h)| crate::rules::preview_source(&state, w, h)))
    }

    async fn preview(&self, source: &str, size: i64) -> StoreResult<Option<PreviewRecord>> {
        let row: Option<(i64, String, i64, String, i64, i64)> = sqlx::query_as(
            "SELECT size, sha256, bytes, content_type, width, height FROM previews \
             WHERE source_sha256 = $1 AND size = $2",
        )
        .bind(source)
        .bind(size)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(crate::rules::preview_record))
    }

    async fn record_previews(
        &self,
        source: &str,
        width: i64,
        height: i64,
        previews: &[NewPreview],
    ) -> StoreResult<PreviewRecorded> {
        retrying(|| self.record_previews_once(source, width, height, previews)).await
    }

    async fn record_no_preview(&self, source: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        if referenced(&mut tx, source).await? {
            sqlx::query(
                "INSERT INTO preview_sources (sha256, state, created_utc) VALUES ($1, 'none', $2) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(source)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        commit(tx).await
    }
}

impl PgStore {
    /// One attempt at `record_previews`. Several preview blobs' rows are locked (by `add_ref`) in
    /// the order of their hashes, after the source's.
    async fn record_previews_once(
        &self,
        source: &str,
        width: i64,
        height: i64,
        previews: &[NewPreview],
    ) -> StoreResult<PreviewRecorded> {
        let mut tx = self.write().await?;
        if !referenced(&mut tx, source).await? {
            return Ok(PreviewRecorded::SourceGone);
        }
        let inserted = sqlx::query(
            "INSERT INTO preview_sources (sha256, state, width, height, created_utc) \
             VALUES ($1, 'ready', $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(source)
        .bind(width)
        .bind(height)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 0 {
            return Ok(PreviewRecorded::AlreadyThere);
        }
        let mut ordered: Vec<&NewPreview> = previews.iter().collect();
        ordered.sort_by(|x, y| x.record.sha256.cmp(&y.record.sha256));
        for p in ordered {
            let r = &p.record;
            // A preview that is the source's own bytes takes no reference: it would keep the source
            // alive through itself.
            let counted = r.sha256 != source;
            if counted {
                // Previews are Hangar's own re-encoding of scanned bytes: not scanned themselves.
                add_ref(&mut tx, &r.sha256, r.bytes, p.hold.as_ref(), None).await?;
            } else {
                drop_hold(&mut tx, p.hold.as_ref()).await?;
            }
            sqlx::query(
                "INSERT INTO previews (source_sha256, size, sha256, bytes, content_type, width, height, counted) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(source)
            .bind(r.size)
            .bind(&r.sha256)
            .bind(r.bytes)
            .bind(&r.content_type)
            .bind(r.width)
            .bind(r.height)
            .bind(counted)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        commit(tx).await?;
        Ok(PreviewRecorded::Recorded)
    }
}
