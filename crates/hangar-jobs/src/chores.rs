//! Periodic chores: expiry, purging, sweeping and pruning. Each is one queued job (its kind is its
//! unique key) that queues its own next run when it finishes, so that any number of nodes run each
//! chore once per interval between them.

use crate::blobs::SweepOrphanBlobs;
use crate::{Job, JobContext, JobError, Runner};
use hangar_core::jobs::{JobKind, JobStore, NewJob};
use hangar_core::now_ms;
use hangar_core::store::StoreError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Finished deliveries, unfurl queue items and dispatched events are kept this long, for inspection.
const HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Temporaries younger than this are never swept, even unlocked (one may be between its creation
/// and its lock).
const TEMP_MIN_AGE: Duration = Duration::from_secs(600);

/// A chore: a job that runs again every `INTERVAL`.
#[async_trait::async_trait]
pub trait Chore: JobKind + Sync + Default {
    const INTERVAL: Duration;
    async fn work(&self, ctx: &JobContext) -> Result<(), JobError>;
}

#[async_trait::async_trait]
impl<C: Chore> Job for C {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        self.work(ctx).await?;
        // Re-queued under the same key while it runs: the runner's completion then leaves it.
        let next = NewJob::of(self, now_ms() + C::INTERVAL.as_millis() as i64).unique(C::KIND);
        ctx.jobs.enqueue(&next).await?;
        Ok(())
    }
}

macro_rules! chore {
    ($(#[$doc:meta])* $name:ident, $kind:literal, every $interval:expr, |$ctx:ident| $body:block) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct $name {}

        impl JobKind for $name {
            const KIND: &'static str = $kind;
        }

        #[async_trait::async_trait]
        impl Chore for $name {
            const INTERVAL: Duration = $interval;
            async fn work(&self, $ctx: &JobContext) -> Result<(), JobError> $body
        }
    };
}

chore!(
    /// Two-stage uploads whose URL expired, and quota reservations whose lease ran out.
    ExpireUploads, "expire-uploads", every Duration::from_secs(60), |ctx| {
        ctx.storage.expire_uploads(now_ms()).await?;
        Ok(())
    }
);

chore!(
    /// Sessions past their expiry, and failed-attempt windows of the login throttle that ended.
    PurgeSessions, "purge-sessions", every Duration::from_secs(60), |ctx| {
        ctx.identity.purge_sessions(now_ms()).await?;
        ctx.attempts.prune_attempts(now_ms()).await?;
        Ok(())
    }
);

chore!(
    /// Blob pins that their upload never used (it crashed or failed): their blobs get collected.
    ExpirePins, "expire-pins", every Duration::from_secs(60), |ctx| {
        ctx.blob_life.expire_pins(now_ms()).await?;
        Ok(())
    }
);

chore!(
    /// Temporaries that no upload holds any more.
    SweepTemporaries, "sweep-temporaries", every Duration::from_secs(3600), |ctx| {
        let n = ctx.blobs.remove_temporaries(Some(TEMP_MIN_AGE)).await?;
        if n > 0 {
            tracing::info!("removed {n} abandoned temporary files");
        }
        Ok(())
    }
);

chore!(
    /// Old finished deliveries, unfurl queue items, expired application tokens and dispatched events.
    PruneHistory, "prune-history", every Duration::from_secs(3600), |ctx| {
        let before = now_ms() - HISTORY_RETENTION.as_millis() as i64;
        let n = ctx.apps.prune_app_data(before).await?;
        if n > 0 {
            tracing::info!(rows = n, "pruned old deliveries, unfurl queue items and events");
        }
        Ok(())
    }
);

chore!(
    /// With `--unattached-ttl`: attachments attached to no message or issue for that long (SPEC §9.5).
    /// Each goes the way a deletion by its owner goes, with its `Attachment.Deleted` event. Run twice
    /// a minute, so an expired attachment is gone within the TTL plus one minute.
    ExpireUnattached, "expire-unattached", every Duration::from_secs(30), |ctx| {
        let Some(ttl) = ctx.unattached_ttl else {
            return Ok(());
        };
        let cutoff = now_ms() - ttl.as_millis() as i64;
        let mut expired = 0;
        loop {
            let batch = ctx.attachments.unattached_before(cutoff, UNATTACHED_BATCH).await?;
            for &id in &batch {
                match ctx.attachments.delete_attachment(id).await {
                    Ok(()) => expired += 1,
                    // Its owner deleted it meanwhile.
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if (batch.len() as i64) < UNATTACHED_BATCH {
                break;
            }
        }
        if expired > 0 {
            tracing::info!(attachments = expired, "expired unattached attachments");
        }
        Ok(())
    }
);

/// Attachments the unattached expiry looks at per query.
const UNATTACHED_BATCH: i64 = 500;

#[async_trait::async_trait]
impl Chore for SweepOrphanBlobs {
    const INTERVAL: Duration = Duration::from_secs(24 * 3600);
    async fn work(&self, ctx: &JobContext) -> Result<(), JobError> {
        SweepOrphanBlobs::sweep(ctx).await?;
        Ok(())
    }
}

pub(crate) fn register_all(runner: &mut Runner) {
    runner.register::<ExpireUploads>();
    runner.register::<PurgeSessions>();
    runner.register::<ExpirePins>();
    runner.register::<SweepTemporaries>();
    runner.register::<PruneHistory>();
    runner.register::<SweepOrphanBlobs>();
    runner.register::<ExpireUnattached>();
}

async fn schedule<C: Chore>(jobs: &dyn JobStore) -> Result<(), StoreError> {
    jobs.enqueue(
        &NewJob::of(&C::default(), now_ms())
            .unique(C::KIND)
            .if_absent(),
    )
    .await
}

/// Queues every chore that is not queued yet (a new database, or a chore of a newer version), due
/// now. Every node calls it at start; a chore already queued is left where it is. The orphan sweep
/// also runs once after a start (one run however many nodes start together), and so does the sweep
/// of temporaries with `sweep_temporaries`: a blob store whose sweep looks at everything it holds
/// (S3) is swept by one node's job runner after a start, beside serving, instead of by every
/// starting node before it serves.
pub async fn schedule_chores(
    jobs: &dyn JobStore,
    sweep_temporaries: bool,
) -> Result<(), StoreError> {
    schedule::<ExpireUploads>(jobs).await?;
    schedule::<PurgeSessions>(jobs).await?;
    schedule::<ExpirePins>(jobs).await?;
    schedule::<SweepTemporaries>(jobs).await?;
    schedule::<PruneHistory>(jobs).await?;
    schedule::<SweepOrphanBlobs>(jobs).await?;
    schedule::<ExpireUnattached>(jobs).await?;
    if sweep_temporaries {
        after_start::<SweepTemporaries>(jobs).await?;
    }
    after_start::<SweepOrphanBlobs>(jobs).await
}

/// Queues one run of a chore now, beside its schedule, unless one is queued already.
async fn after_start<C: Chore>(jobs: &dyn JobStore) -> Result<(), StoreError> {
    let run = NewJob::of(&C::default(), now_ms())
        .unique(format!("{}:after-start", C::KIND))
        .if_absent();
    jobs.enqueue(&run).await
}
