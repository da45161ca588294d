//! Deleting blob bytes that nothing needs any more: the collector of one blob (queued by the
//! database when a blob's last reference goes or an unused pin expires), and the sweep of blobs that
//! the database does not know at all.

use crate::{Job, JobContext, JobError};
use futures_util::StreamExt;
use hangar_blob::BlobStore;
use hangar_core::jobs::{CollectBlob, DiscardObject, JobKind, JobStore};
use hangar_core::now_ms;
use hangar_core::store::{BlobLifecycleStore, Collect};
use serde::{Deserialize, Serialize};

#[async_trait::async_trait]
impl Job for CollectBlob {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        if collect_blob(ctx, &self.sha256).await? == Collect::Delete {
            tracing::debug!(blob = %self.sha256, "deleted the bytes of an unreferenced blob");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Job for DiscardObject {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        // The store frees the bytes only if no blob row records the key (a row that did would
        // keep them: the record that queued this job recorded another).
        ctx.blobs.discard_object(&self.object_key).await?;
        tracing::debug!(object = %self.object_key, "discarded an upload's copy of stored content");
        Ok(())
    }
}

/// Deletes the blob's bytes if the database says nothing references or pins it; a blob still in
/// its grace period gets its collection queued for the end of it.
pub async fn collect_blob(ctx: &JobContext, sha256: &str) -> Result<Collect, JobError> {
    collect_blob_in(&*ctx.jobs, &*ctx.blob_life, &*ctx.blobs, sha256).await
}

/// `collect_blob` with only the stores it needs (for `hangar admin gc`, which has no job context).
pub async fn collect_blob_in(
    jobs: &dyn JobStore,
    blob_life: &dyn BlobLifecycleStore,
    blobs: &dyn BlobStore,
    sha256: &str,
) -> Result<Collect, JobError> {
    let decision = blob_life.begin_blob_deletion(sha256, now_ms()).await?;
    match decision {
        Collect::Keep => {}
        Collect::Later(at) => {
            let job = hangar_core::jobs::NewJob::of(
                &CollectBlob {
                    sha256: sha256.to_string(),
                },
                at,
            )
            .unique(CollectBlob::unique_key(sha256));
            jobs.enqueue(&job).await?;
        }
        Collect::Delete => {
            // Marked as being deleted: no upload can pin it until `finish_blob_deletion`, so no new
            // reference can appear between these two steps. A crash here leaves the mark, and the
            // job (leased) is taken over and finishes the deletion.
            blobs.delete(sha256).await?;
            blob_life.finish_blob_deletion(sha256).await?;
        }
    }
    Ok(decision)
}

/// Deletes stored blobs that the database has no record of (no reference, no pin) and that are
/// older than the grace period: bytes of an upload that crashed before this version kept pins, or
/// of a database restored from an older backup. Younger ones are left alone (SPEC §10).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SweepOrphanBlobs {}

impl JobKind for SweepOrphanBlobs {
    const KIND: &'static str = "sweep-orphan-blobs";
}

impl SweepOrphanBlobs {
    pub(crate) async fn sweep(ctx: &JobContext) -> Result<u64, JobError> {
        let cutoff = now_ms() - ctx.blob_grace.as_millis() as i64;
        let mut removed = 0;
        let mut listing = ctx.blobs.list();
        while let Some(blob) = listing.next().await {
            let blob = blob?;
            if blob.modified_utc > cutoff {
                continue;
            }
            let record = ctx.blob_life.blob_record(&blob.sha256).await?;
            if record.refcount.is_some() || record.pinned {
                continue; // known: the collector decides about it
            }
            if collect_blob(ctx, &blob.sha256).await? == Collect::Delete {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!("removed {removed} stored blobs that the database did not know");
        }
        Ok(removed)
    }
}
