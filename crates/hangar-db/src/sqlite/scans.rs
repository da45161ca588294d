//! Scan states of blobs (SPEC §9.6): what the scanner reads and records, and the backlog of blobs
//! stored while scanning was off.

use super::blobs::{record_event, ATTACHMENTS_OF_BLOB};
use super::jobs::enqueue_in;
use super::{backend, SqliteStore};
use crate::rules::{quarantined_event, scan_state, FileRef};
use async_trait::async_trait;
use hangar_core::jobs::{NewJob, ScanBlob};
use hangar_core::now_ms;
use hangar_core::scan::{BlobScan, ScanStore, ScanVerdict};
use hangar_core::store::StoreResult;

#[async_trait]
impl ScanStore for SqliteStore {
    async fn blob_scan(&self, sha256: &str) -> StoreResult<Option<BlobScan>> {
        let row: Option<(Option<String>, i64, Option<String>)> =
            sqlx::query_as("SELECT scan_state, size, scan_detail FROM blobs WHERE sha256 = ?")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|(state, size, detail)| BlobScan {
            state: scan_state(state.as_deref()),
            size,
            detail,
        }))
    }

    async fn record_scan(&self, sha256: &str, verdict: &ScanVerdict) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE blobs SET scan_state = ?, scan_detail = ?, scanned_utc = ? \
             WHERE sha256 = ? AND scan_state = 'pending'",
        )
        .bind(verdict.state().as_str())
        .bind(verdict.detail())
        .bind(now_ms())
        .bind(sha256)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let ScanVerdict::Infected(signature) = verdict {
            let attachments: Vec<(i64, String, i64)> = sqlx::query_as(ATTACHMENTS_OF_BLOB)
                .bind(sha256)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
            let files: Vec<(String, String)> = sqlx::query_as(
                "SELECT space_id, path FROM storage_entries WHERE sha256 = ? AND kind = 'file' \
                 ORDER BY space_id, path",
            )
            .bind(sha256)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            let refs = attachments
                .iter()
                .map(|(id, file_name, size)| FileRef::Attachment {
                    id: *id,
                    file_name,
                    size: *size,
                })
                .chain(
                    files
                        .iter()
                        .map(|(space_id, path)| FileRef::StorageFile { space_id, path }),
                );
            for file in refs {
                let (kind, space, payload) = quarantined_event(file, sha256, Some(signature));
                record_event(&mut tx, kind, space.as_deref(), None, payload).await?;
            }
        }
        self.commit_queued(tx).await?;
        Ok(true)
    }

    async fn queue_unscanned(&self, limit: i64) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let marked: Vec<String> = sqlx::query_scalar(
            "UPDATE blobs SET scan_state = 'pending' WHERE sha256 IN \
             (SELECT b.sha256 FROM blobs b WHERE b.scan_state IS NULL AND b.refcount > 0 AND b.deleting = 0 \
             AND NOT EXISTS (SELECT 1 FROM previews p WHERE p.sha256 = b.sha256) LIMIT ?) \
             RETURNING sha256",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for sha256 in &marked {
            queue_scan(&mut tx, sha256).await?;
        }
        self.commit_queued(tx).await?;
        Ok(marked.len() as u64)
    }

    async fn retry_failed_scans(&self) -> StoreResult<Vec<String>> {
        let mut tx = self.write().await?;
        let marked: Vec<String> = sqlx::query_scalar(
            "UPDATE blobs SET scan_state = 'pending', scan_detail = NULL \
             WHERE scan_state = 'failed' AND refcount > 0 AND deleting = 0 RETURNING sha256",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for sha256 in &marked {
            queue_scan(&mut tx, sha256).await?;
        }
        self.commit_queued(tx).await?;
        Ok(marked)
    }
}

async fn queue_scan(tx: &mut super::Tx, sha256: &str) -> StoreResult<()> {
    let job = NewJob::of(
        &ScanBlob {
            sha256: sha256.to_string(),
        },
        now_ms(),
    )
    .unique(ScanBlob::unique_key(sha256));
    enqueue_in(tx, &job).await
}
