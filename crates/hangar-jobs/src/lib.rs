//! Hangar's background work, run from the durable job queue in the database (`hangar_core::jobs`).
//!
//! Every node runs a [`Runner`]. It claims due jobs with a lease, runs each with the [`JobContext`]
//! (stores and blobs, never the HTTP state), renews the lease while the job runs, and removes the job
//! when it succeeds or puts it back with exponential backoff and jitter when it fails. A node that
//! dies loses its leases and another node takes its jobs over. Periodic chores are jobs too, each
//! queued once (unique key) and rescheduling itself, so several nodes never run the same chore twice.

mod blobs;
mod chores;
pub mod clamd;
mod direct;
pub mod fetch;
pub use direct::LOOK_EVERY_MS;
pub mod maintenance;
mod previews;
pub use previews::Previewer;
mod scan;
mod tus;
pub mod webhooks;

pub use blobs::{collect_blob, collect_blob_in};
pub use chores::{schedule_chores, Chore};

use futures_util::future::BoxFuture;
use hangar_blob::BlobStore;
use hangar_core::jobs::{ClaimedJob, JobKind, JobStore, NewJob};
use hangar_core::now_ms;
use hangar_core::secrets::Secrets;
use hangar_core::store::{
    Applications, AttachmentStore, AttemptStore, BlobLifecycleStore, IdentityStore, ProjectStore,
    StorageStore, StoreError, TusStore,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// What jobs work with: the stores, the blob store, the secrets and the outbound fetcher, and the
/// settings they need. Never the HTTP state.
pub struct JobContext {
    pub jobs: Arc<dyn JobStore>,
    pub blob_life: Arc<dyn BlobLifecycleStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub storage: Arc<dyn StorageStore>,
    /// Resumable uploads, for their expiry.
    pub tus: Arc<dyn TusStore>,
    /// Attachments, for the expiry of unattached ones.
    pub attachments: Arc<dyn AttachmentStore>,
    /// `--unattached-ttl`: how long an attachment attached to nothing is kept; None: for ever.
    pub unattached_ttl: Option<Duration>,
    pub identity: Arc<dyn IdentityStore>,
    /// The login throttle's counters (pruned by a chore).
    pub attempts: Arc<dyn AttemptStore>,
    pub projects: Arc<dyn ProjectStore>,
    pub apps: Arc<dyn Applications>,
    pub secrets: Arc<Secrets>,
    pub fetcher: Arc<fetch::Fetcher>,
    /// The server's URL as clients see it (in webhook payloads).
    pub public_url: String,
    /// How long unreferenced bytes are kept (SPEC §10); the orphan sweep spares younger blobs.
    pub blob_grace: Duration,
    /// Scan states of blobs (SPEC §9.6).
    pub scans: Arc<dyn hangar_core::scan::ScanStore>,
    /// The clamd that scans new files (`--clamd`); None: scanning is off on this node.
    pub clamd: Option<Arc<clamd::Clamd>>,
    /// Records the files of two-stage uploads sent straight to the object store; None where the
    /// node has no HTTP layer to record them with.
    pub direct_uploads: Option<Arc<dyn DirectUploads>>,
    /// Makes previews of new images and videos (SPEC §9.3); shared with the HTTP handlers, which
    /// make them on demand. None where the node makes none.
    pub previews: Option<Arc<Previewer>>,
}

/// How the files of two-stage uploads that clients PUT straight to the object store get recorded:
/// the HTTP layer knows how a file is stored (quota, conflicts, events), the job says when to look.
#[async_trait::async_trait]
pub trait DirectUploads: Send + Sync {
    /// Looks for the upload's object once: records the file if it is there (or gives the upload up
    /// if it cannot be), and says whether to look again.
    async fn finish(&self, upload_id: &str) -> Result<DirectUpload, JobError>;
}

/// Where a direct upload stands after a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectUpload {
    /// No object yet: look again, not after this time (epoch ms).
    Waiting { until: i64 },
    /// Recorded, refused or expired: nothing more to do.
    Over,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] hangar_blob::BlobError),
    #[error("the job's payload does not fit its kind: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("no job of kind {0:?} is known to this node")]
    UnknownKind(String),
    #[error("{0}")]
    Failed(String),
    /// Not done yet: run again at `at` (epoch ms), for jobs that keep their own schedule.
    #[error("{reason}")]
    RetryAt { at: i64, reason: String },
}

/// A job that a runner can run: a typed payload and the work it does.
#[async_trait::async_trait]
pub trait Job: JobKind + Sync {
    /// Attempts before the job is kept as failed; None: it is retried for as long as it takes.
    const MAX_ATTEMPTS: Option<i64> = None;
    /// The longest wait between two attempts, below the runner's own cap: for work that must resume
    /// soon after what it waits for comes back.
    const MAX_BACKOFF: Option<Duration> = None;
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError>;
}

type Handler =
    Arc<dyn Fn(serde_json::Value, Arc<JobContext>) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// How one run ended, and whether a failure is worth another attempt.
struct Outcome {
    result: Result<(), JobError>,
    max_attempts: Option<i64>,
    max_backoff: Option<Duration>,
}

/// Claims and runs jobs. One per node; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    ctx: Arc<JobContext>,
    handlers: Arc<HashMap<&'static str, Handler>>,
    /// This runner's name in leases.
    owner: Arc<str>,
    /// Changes when this process queued jobs.
    wake: watch::Receiver<u64>,
    settings: RunnerSettings,
}

/// Which kinds a runner takes: a node runs one runner for webhook deliveries (which may wait 20 s
/// on a slow endpoint) and one for everything else, so that neither holds up the other.
#[derive(Debug, Clone, Copy)]
pub enum Lane {
    All,
    Only(&'static [&'static str]),
    Except(&'static [&'static str]),
}

/// The kinds of the deliveries lane.
pub const DELIVERY_KINDS: &[&str] = &[<hangar_core::jobs::Deliver as JobKind>::KIND];

/// The kinds of the scanning lane: a scan holds its slot while a file streams to clamd and clamd
/// scans it, which for large files takes a while; other work must not wait behind a backlog of them.
pub const SCAN_KINDS: &[&str] = &[<hangar_core::jobs::ScanBlob as JobKind>::KIND];

/// What the general lane leaves to the other two.
pub const NOT_GENERAL_KINDS: &[&str] = &[
    <hangar_core::jobs::Deliver as JobKind>::KIND,
    <hangar_core::jobs::ScanBlob as JobKind>::KIND,
];

#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    pub lane: Lane,
    /// Jobs run at once.
    pub concurrency: usize,
    /// A claimed job is leased for this long, and the lease is renewed while it runs.
    pub lease: Duration,
    /// Longest sleep between two looks at the queue (jobs queued by other nodes are found so).
    pub poll: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            lane: Lane::All,
            concurrency: 8,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

impl Runner {
    /// A runner with every job kind of this crate registered.
    pub fn new(ctx: JobContext, wake: watch::Receiver<u64>, settings: RunnerSettings) -> Runner {
        let owner: [u8; 8] = rand::random();
        let mut runner = Runner {
            ctx: Arc::new(ctx),
            handlers: Arc::new(HashMap::new()),
            owner: Arc::from(format!("runner-{}", hex::encode(owner))),
            wake,
            settings,
        };
        runner.register::<hangar_core::jobs::CollectBlob>();
        runner.register::<hangar_core::jobs::DiscardObject>();
        runner.register::<hangar_core::jobs::DispatchEvent>();
        runner.register::<hangar_core::jobs::Deliver>();
        runner.register::<hangar_core::jobs::FinishDirectUpload>();
        runner.register::<hangar_core::jobs::ExpireTusUpload>();
        runner.register::<hangar_core::jobs::MakePreviews>();
        runner.register::<hangar_core::jobs::ScanBlob>();
        runner.register::<hangar_core::jobs::ScanBacklog>();
        chores::register_all(&mut runner);
        runner
    }

    /// Teaches the runner a job kind.
    pub fn register<J: Job + 'static>(&mut self) {
        let handler: Handler = Arc::new(|payload, ctx| {
            Box::pin(async move {
                let result = match serde_json::from_value::<J>(payload) {
                    Ok(job) => job.run(&ctx).await,
                    Err(e) => Err(JobError::Payload(e)),
                };
                Outcome {
                    result,
                    max_attempts: J::MAX_ATTEMPTS,
                    max_backoff: J::MAX_BACKOFF,
                }
            })
        });
        Arc::make_mut(&mut self.handlers).insert(J::KIND, handler);
    }

    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs the queue until the process ends.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run_forever().await })
    }

    async fn run_forever(self) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let mut wake = self.wake.clone();
        loop {
            let free = slots.available_permits();
            let claimed = if free > 0 {
                match self.claim(free as i64).await {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        tracing::warn!("cannot claim background jobs: {e}");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let got = claimed.len();
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return; // the semaphore is never closed
                };
                let runner = self.clone();
                tokio::spawn(async move {
                    runner.run_one(job).await;
                    drop(permit);
                });
            }
            if got > 0 && got == free {
                continue; // there may be more due right now
            }
            let sleep = self.sleep_for().await;
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                // Seen changes are marked, so a signal during the claim above is not lost.
                Ok(()) = wake.changed() => {}
            }
        }
    }

    /// Until the next job is due, at most `poll`.
    async fn sleep_for(&self) -> Duration {
        let poll = self.settings.poll;
        match self.ctx.jobs.next_due().await {
            Ok(Some(due)) => {
                let wait = (due - now_ms()).max(10) as u64;
                poll.min(Duration::from_millis(wait))
            }
            _ => poll,
        }
    }

    async fn claim(&self, limit: i64) -> Result<Vec<ClaimedJob>, StoreError> {
        let lease = self.settings.lease.as_millis() as i64;
        let (kinds, only): (&[&str], bool) = match self.settings.lane {
            Lane::All => (&[], false),
            Lane::Only(kinds) => (kinds, true),
            Lane::Except(kinds) => (kinds, false),
        };
        self.ctx
            .jobs
            .claim_jobs(&self.owner, lease, limit, kinds, only)
            .await
    }

    /// Runs every job that is due now, one after another, until none is left; answers how many ran.
    /// For tests and for `hangar admin` commands: no sleeping, no waiting for a poll.
    pub async fn run_pending(&self) -> Result<usize, StoreError> {
        let mut ran = 0;
        loop {
            let jobs = self.claim(self.settings.concurrency as i64).await?;
            if jobs.is_empty() {
                return Ok(ran);
            }
            for job in jobs {
                self.run_one(job).await;
                ran += 1;
            }
        }
    }

    /// Runs one claimed job, renewing its lease meanwhile, and records the outcome.
    async fn run_one(&self, job: ClaimedJob) {
        let Some(handler) = self.handlers.get(job.kind.as_str()).cloned() else {
            let error = JobError::UnknownKind(job.kind.clone());
            // Another node (a newer version) may know it: try again later rather than give up.
            self.record_failure(&job, &error, None, None).await;
            return;
        };
        let work = handler(job.payload.clone(), self.ctx.clone());
        tokio::pin!(work);
        let mut renew = tokio::time::interval(self.settings.lease / 3);
        renew.tick().await;
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = renew.tick() => {
                    let until = now_ms() + self.settings.lease.as_millis() as i64;
                    match self.ctx.jobs.extend_lease(job.id, &self.owner, until).await {
                        Ok(true) => {}
                        // Taken over (this node stalled past its lease): the other run counts.
                        Ok(false) => tracing::warn!(job = job.id, kind = %job.kind, "lost the lease of a running job"),
                        Err(e) => tracing::warn!(job = job.id, "cannot renew a job's lease: {e}"),
                    }
                }
            }
        };
        match outcome.result {
            Ok(()) => {
                if let Err(e) = self.ctx.jobs.complete_job(job.id, &self.owner).await {
                    tracing::warn!(job = job.id, kind = %job.kind, "cannot record a finished job: {e}");
                }
            }
            Err(error) => {
                self.record_failure(&job, &error, outcome.max_attempts, outcome.max_backoff)
                    .await
            }
        }
    }

    async fn record_failure(
        &self,
        job: &ClaimedJob,
        error: &JobError,
        max: Option<i64>,
        max_backoff: Option<Duration>,
    ) {
        let give_up = max.is_some_and(|m| job.attempts >= m);
        let run_after = match error {
            // The job keeps its own schedule (a webhook delivery's next attempt): nothing to warn
            // about here, the job recorded why.
            JobError::RetryAt { at, reason } => {
                tracing::debug!(job = job.id, kind = %job.kind, "background job runs again later: {reason}");
                *at
            }
            _ => {
                let cap = max_backoff.map_or(self.settings.backoff_max, |m| {
                    m.min(self.settings.backoff_max)
                });
                let delay = backoff(job.attempts, self.settings.backoff_base, cap);
                if give_up {
                    tracing::error!(job = job.id, kind = %job.kind, attempts = job.attempts, "background job gave up: {error}");
                } else {
                    tracing::warn!(job = job.id, kind = %job.kind, attempts = job.attempts, "background job failed, retrying in {delay:?}: {error}");
                }
                now_ms() + delay.as_millis() as i64
            }
        };
        let text = error.to_string();
        if let Err(e) = self
            .ctx
            .jobs
            .retry_job(job.id, &self.owner, run_after, &text, give_up)
            .await
        {
            tracing::warn!(job = job.id, "cannot record a failed job: {e}");
        }
    }
}

/// The delay before attempt `attempts + 1`: `base` doubling per attempt up to `max`, ±20 % jitter
/// so that jobs that failed together do not retry together.
pub fn backoff(attempts: i64, base: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let plain = base.saturating_mul(1u32 << exp).min(max);
    let jitter = rand::random::<f64>() * 0.4 + 0.8;
    plain.mul_f64(jitter)
}

/// Queues `job` to run now.
pub async fn enqueue<J: JobKind>(jobs: &dyn JobStore, job: &J) -> Result<(), StoreError> {
    jobs.enqueue(&NewJob::of(job, now_ms())).await
}

#[cfg(test)]
mod tests;
