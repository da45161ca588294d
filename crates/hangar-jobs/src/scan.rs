//! Malware scanning (SPEC §9.6): a `ScanBlob` job streams a pending blob from the blob store (local
//! disk or S3) to clamd and records the verdict; `ScanBacklog` queues the blobs stored while scanning
//! was off. clamd unreachable or slow: the job fails and the runner tries again with backoff, while
//! the bytes stay unserved (fail closed).

use crate::{Job, JobContext, JobError};
use hangar_core::jobs::{ScanBacklog, ScanBlob};
use hangar_core::now_ms;
use hangar_core::scan::{ScanState, ScanVerdict};
use std::time::Duration;

/// Blobs marked and queued per run of the backlog job.
const BACKLOG_BATCH: i64 = 500;

#[async_trait::async_trait]
impl Job for ScanBlob {
    /// While clamd is away, look again at least every minute: files are unserved until it answers,
    /// so scans resume within a minute of its return (an hour's backoff would leave them waiting).
    const MAX_BACKOFF: Option<Duration> = Some(Duration::from_secs(60));

    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let Some(clamd) = &ctx.clamd else {
            return Err(JobError::Failed(
                "this node has no --clamd: it cannot scan (give every node the same --clamd)"
                    .into(),
            ));
        };
        let Some(blob) = ctx.scans.blob_scan(&self.sha256).await? else {
            return Ok(()); // collected meanwhile: nothing holds these bytes any more
        };
        if blob.state != Some(ScanState::Pending) {
            return Ok(()); // scanned already (a job queued twice)
        }
        let bytes = if blob.size > 0 {
            ctx.blobs
                .read(&self.sha256, 0, blob.size.max(0) as u64)
                .await?
        } else {
            Box::pin(futures_util::stream::empty())
        };
        let verdict = clamd
            .scan(bytes)
            .await
            .map_err(|e| JobError::Failed(e.to_string()))?;
        match &verdict {
            ScanVerdict::Clean => tracing::debug!(sha256 = %self.sha256, "scanned: clean"),
            ScanVerdict::Infected(signature) => {
                tracing::warn!(sha256 = %self.sha256, %signature, "scanned: infected, quarantined")
            }
            ScanVerdict::Failed(reason) => {
                tracing::warn!(sha256 = %self.sha256, %reason, "scan failed: the file stays unserved")
            }
        }
        metrics::counter!("hangar_scans_total", "outcome" => verdict.state().as_str()).increment(1);
        ctx.scans.record_scan(&self.sha256, &verdict).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Job for ScanBacklog {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let queued = ctx.scans.queue_unscanned(BACKLOG_BATCH).await?;
        if queued > 0 {
            tracing::info!(
                queued,
                "queued scans of files stored while scanning was off"
            );
        }
        if queued as i64 == BACKLOG_BATCH {
            return Err(JobError::RetryAt {
                at: now_ms(),
                reason: "more files stored while scanning was off".into(),
            });
        }
        Ok(())
    }
}
