//! The durable job queue's vocabulary: a job as it is queued and claimed, the store that holds the
//! queue, and the kinds of work that the metadata store itself enqueues inside its transactions.
//!
//! A job is a row. Claiming it takes a lease (owner and expiry); a worker that dies loses its lease
//! and the job is claimed again by another. A job that succeeds is removed; one that fails is put
//! back with a later `run_after`, and after too many attempts is kept as `failed` for an operator.

use crate::store::StoreResult;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A job to put in the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// At most one queued job per key: enqueueing again moves the existing one (to the later of the
    /// two `run_after`s) instead of adding a second. Periodic work uses it so that several nodes
    /// scheduling the same chore queue it once.
    pub unique_key: Option<String>,
    /// Not before this time (epoch ms).
    pub run_after: i64,
    /// With a unique key: leave a queued job of that key as it is instead of moving it.
    pub keep_existing: bool,
}

impl NewJob {
    /// A job of a typed kind, due at `run_after`.
    pub fn of<J: JobKind>(job: &J, run_after: i64) -> NewJob {
        NewJob {
            kind: J::KIND.to_string(),
            // Job payloads are plain data structs: serializing them cannot fail.
            payload: serde_json::to_value(job).unwrap_or(serde_json::Value::Null),
            unique_key: None,
            run_after,
            keep_existing: false,
        }
    }

    pub fn unique(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }

    /// Queue it only if no job of its unique key is queued already.
    pub fn if_absent(mut self) -> NewJob {
        self.keep_existing = true;
        self
    }
}

/// A job that a worker holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// How many jobs wait, and how many gave up, for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    async fn enqueue(&self, job: &NewJob) -> StoreResult<()>;
    /// Takes up to `limit` jobs that are due (or whose lease expired), leasing them to `owner` for
    /// `lease_ms`. The time is read once the claim holds the queue, so that a claim that waited for
    /// another does not hand out a lease that already ran out. Two workers never hold the same job
    /// at once. `kinds` with `only` restricts the claim to those kinds; without, excludes them.
    async fn claim_jobs(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: i64,
        kinds: &[&str],
        only: bool,
    ) -> StoreResult<Vec<ClaimedJob>>;
    /// Extends a lease still held by `owner`; false when it was lost (expired and taken over).
    async fn extend_lease(&self, id: i64, owner: &str, lease_until: i64) -> StoreResult<bool>;
    /// The job succeeded: it leaves the queue (unless it was enqueued again meanwhile).
    async fn complete_job(&self, id: i64, owner: &str) -> StoreResult<()>;
    /// The job failed: it runs again at `run_after`, or is kept as failed when `give_up`.
    async fn retry_job(
        &self,
        id: i64,
        owner: &str,
        run_after: i64,
        error: &str,
        give_up: bool,
    ) -> StoreResult<()>;
    async fn queue_counts(&self) -> StoreResult<QueueCounts>;
    /// Jobs of `kind` that are due now or running: work that has to happen before the queue is
    /// quiet for that kind.
    async fn due_jobs(&self, kind: &str, now: i64) -> StoreResult<i64>;
    /// When the earliest queued job is due (None: the queue is empty), so a worker sleeps no longer.
    async fn next_due(&self) -> StoreResult<Option<i64>>;
}

/// A typed job: its kind names it in the queue, its fields are its payload.
pub trait JobKind: Serialize + for<'de> Deserialize<'de> + Send {
    const KIND: &'static str;
}

/// Delete a blob's bytes if nothing references or pins it (enqueued when its last reference goes,
/// and when a pin expires unused).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectBlob {
    pub sha256: String,
}

impl JobKind for CollectBlob {
    const KIND: &'static str = "collect-blob";
}

/// Free the bytes stored under an object key that no blob row records (enqueued by the record of an
/// upload whose bytes were placed under a key of their own, `model::BlobHold::Placed`, and that
/// found the same content stored already: its copy is a duplicate).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiscardObject {
    pub object_key: String,
}

impl JobKind for DiscardObject {
    const KIND: &'static str = "discard-object";
}

/// Turn one outbox event into webhook deliveries and unfurl queue items (enqueued with the event,
/// in the transaction of the change it describes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchEvent {
    pub event_id: String,
}

impl JobKind for DispatchEvent {
    const KIND: &'static str = "dispatch-event";
}

/// Send one webhook delivery (enqueued with the delivery; each failed attempt runs it again later).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deliver {
    pub delivery_id: String,
}

impl JobKind for Deliver {
    const KIND: &'static str = "deliver";
}

/// Record the file of a two-stage upload whose bytes the client PUT straight to the object store
/// (SPEC §13), once they are there: it looks every few seconds until the upload expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishDirectUpload {
    pub upload_id: String,
}

impl JobKind for FinishDirectUpload {
    const KIND: &'static str = "finish-direct-upload";
}

impl FinishDirectUpload {
    /// One queued job per upload.
    pub fn unique_key(upload_id: &str) -> String {
        format!("finish-direct-upload:{upload_id}")
    }
}

/// End a resumable upload left idle past its `Upload-Expires` (queued at its creation and moved
/// with every chunk): its bytes are freed and an unfinished attachment fails.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpireTusUpload {
    pub upload_id: String,
}

impl JobKind for ExpireTusUpload {
    const KIND: &'static str = "expire-tus-upload";
}

impl ExpireTusUpload {
    /// One queued expiry per upload.
    pub fn unique_key(upload_id: &str) -> String {
        format!("expire-tus-upload:{upload_id}")
    }
}

/// Make the previews of an image (or the poster of a video) whose bytes were just recorded as an
/// attachment (queued in the transaction that makes the attachment ready, once per source).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MakePreviews {
    pub sha256: String,
    pub content_type: String,
}

impl JobKind for MakePreviews {
    const KIND: &'static str = "make-previews";
}

impl MakePreviews {
    /// One queued job per source.
    pub fn unique_key(sha256: &str) -> String {
        format!("make-previews:{sha256}")
    }

    /// The job for a new attachment, if its type is worth one.
    pub fn for_attachment(sha256: &str, content_type: &str, now: i64) -> Option<NewJob> {
        crate::preview::wants_preview(content_type).then(|| {
            let job = MakePreviews {
                sha256: sha256.to_string(),
                content_type: content_type.to_string(),
            };
            NewJob::of(&job, now)
                .unique(MakePreviews::unique_key(sha256))
                .if_absent()
        })
    }
}

/// Stream a blob to clamd and record what it found (SPEC §9.6): queued, with scanning on, in the
/// transaction that records the first file holding the bytes. While clamd cannot be reached it fails
/// and runs again with backoff; the bytes stay unserved meanwhile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanBlob {
    pub sha256: String,
}

impl JobKind for ScanBlob {
    const KIND: &'static str = "scan-blob";
}

impl ScanBlob {
    /// One queued scan per blob.
    pub fn unique_key(sha256: &str) -> String {
        format!("scan-blob:{sha256}")
    }
}

/// Queue scans for the blobs stored while scanning was off, a batch at a time (queued at start when
/// scanning is on; it runs again until none is left).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanBacklog {}

impl JobKind for ScanBacklog {
    const KIND: &'static str = "scan-backlog";
}

impl CollectBlob {
    /// One queued collection per blob.
    pub fn unique_key(sha256: &str) -> String {
        format!("collect-blob:{sha256}")
    }
}
