//! What an operator runs by hand (`hangar admin check | gc | backup`, SPEC §9.8), beside a running
//! server or without one: every decision about bytes goes through the same database rules as the
//! background collector (pins, grace period, the deleting mark), so running them side by side is safe.

use crate::blobs::collect_blob_in;
use crate::JobError;
use futures_util::StreamExt;
use hangar_blob::{BlobError, BlobStore};
use hangar_core::jobs::JobStore;
use hangar_core::now_ms;
use hangar_core::store::{BlobLifecycleStore, Collect, StoreError};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Blobs are listed from the database in pages of this many.
const PAGE: i64 = 500;
/// A backup pins the blobs it copies for this long (renewed by nothing: a copy taking longer only
/// loses the protection, and a blob deleted meanwhile makes the copy start over).
const BACKUP_PIN: Duration = Duration::from_secs(6 * 3600);
/// Snapshots a backup takes before it gives up on a store that deletes faster than it copies.
const BACKUP_ATTEMPTS: usize = 5;
/// Temporaries younger than this are never removed (as the periodic sweep).
const TEMP_MIN_AGE: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Job(#[from] JobError),
    /// A blob the snapshot refers to was deleted before it could be copied (a backup starts over).
    #[error("the blob {0} was deleted while it was being copied")]
    Raced(String),
    #[error("the blob {sha256} is damaged in the source store (its bytes hash to {actual})")]
    Damaged { sha256: String, actual: String },
    #[error("{0}")]
    Failed(String),
}

/// The stores an operator's command works on.
pub struct Maintenance {
    pub jobs: Arc<dyn JobStore>,
    pub blob_life: Arc<dyn BlobLifecycleStore>,
    pub blobs: Arc<dyn BlobStore>,
    /// As `--blob-grace`: unknown stored blobs younger than this are never deleted.
    pub blob_grace: Duration,
}

/// Something wrong with a referenced blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub sha256: String,
    /// What is wrong, in words (`missing`, `damaged: …`).
    pub what: String,
    /// What refers to it (`attachment 12 "a.txt"`, …).
    pub users: Vec<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users = if self.users.is_empty() {
            "nothing found".to_string()
        } else {
            self.users.join(", ")
        };
        write!(
            f,
            "blob {} {}; referred to by {users}",
            self.sha256, self.what
        )
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub checked: u64,
    pub problems: Vec<Problem>,
}

/// What a collection deleted, or (dry run) would delete.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Unreferenced blobs past their grace period.
    pub unreferenced: Vec<String>,
    /// Stored blobs the database does not know, older than the grace period.
    pub unknown: Vec<String>,
    /// Abandoned temporaries (not counted in a dry run).
    pub temporaries: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Blobs the copied database refers to.
    pub blobs: u64,
    /// Of those, copied now (the others were in the target already).
    pub copied: u64,
    /// Snapshots taken (more than one when blobs were deleted while being copied).
    pub snapshots: usize,
}

impl Maintenance {
    /// Every blob something refers to is present (with `scrub`, its bytes hash to its name and
    /// have its size). Calls `on_problem` as each problem is found.
    pub async fn check(
        &self,
        scrub: bool,
        mut on_problem: impl FnMut(&Problem),
    ) -> Result<CheckReport, MaintenanceError> {
        let mut report = CheckReport::default();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .blob_life
                .referenced_blobs(after.as_deref(), PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (sha256, size) in page {
                report.checked += 1;
                let what = if !self.blobs.exists(&sha256).await? {
                    Some("is missing".to_string())
                } else if scrub {
                    self.scrub_one(&sha256, size).await?
                } else {
                    None
                };
                if let Some(what) = what {
                    let users = self.blob_life.blob_users(&sha256).await?;
                    let problem = Problem {
                        sha256,
                        what,
                        users,
                    };
                    on_problem(&problem);
                    report.problems.push(problem);
                }
            }
        }
        Ok(report)
    }

    /// Re-hashes a blob: None when its bytes are what their name says.
    async fn scrub_one(&self, sha256: &str, size: i64) -> Result<Option<String>, MaintenanceError> {
        let mut stream = match self.blobs.read(sha256, 0, u64::MAX).await {
            Ok(s) => s,
            Err(BlobError::NotFound) => return Ok(Some("is missing".into())),
            Err(e) => return Err(e.into()),
        };
        let mut hasher = Sha256::new();
        let mut len: u64 = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    len += bytes.len() as u64;
                    hasher.update(&bytes);
                }
                Err(e) => return Ok(Some(format!("cannot be read: {e}"))),
            }
        }
        let actual = hex::encode(hasher.finalize());
        if actual != sha256 {
            return Ok(Some(format!("is damaged: its bytes hash to {actual}")));
        }
        if i64::try_from(len).ok() != Some(size) {
            return Ok(Some(format!("has {len} bytes, the database says {size}")));
        }
        Ok(None)
    }

    /// Deletes now what the background collector would: unreferenced blobs past their grace
    /// period (through the same database decision, so never one that an upload pinned meanwhile),
    /// stored blobs the database does not know that are older than the grace period, and abandoned
    /// temporaries. With `dry_run`, only says what that would be.
    pub async fn gc(&self, dry_run: bool) -> Result<GcReport, MaintenanceError> {
        let mut report = GcReport::default();
        if !dry_run {
            self.blob_life.expire_pins(now_ms()).await?;
        }
        for sha256 in self.blob_life.collectable_blobs(now_ms()).await? {
            if dry_run || self.collect(&sha256).await? {
                report.unreferenced.push(sha256);
            }
        }
        let cutoff = now_ms() - self.blob_grace.as_millis() as i64;
        let mut unknown = Vec::new();
        let mut listing = self.blobs.list();
        while let Some(blob) = listing.next().await {
            let blob = blob?;
            if blob.modified_utc > cutoff {
                continue;
            }
            let record = self.blob_life.blob_record(&blob.sha256).await?;
            if record.refcount.is_none() && !record.pinned {
                unknown.push(blob.sha256);
            }
        }
        drop(listing);
        for sha256 in unknown {
            if dry_run || self.collect(&sha256).await? {
                report.unknown.push(sha256);
            }
        }
        if !dry_run {
            report.temporaries = self.blobs.remove_temporaries(Some(TEMP_MIN_AGE)).await?;
        }
        Ok(report)
    }

    async fn collect(&self, sha256: &str) -> Result<bool, MaintenanceError> {
        let decision = collect_blob_in(&*self.jobs, &*self.blob_life, &*self.blobs, sha256).await?;
        Ok(decision == Collect::Delete)
    }

    /// Copies into `target` every blob that a snapshot of the database refers to. `snapshot` takes
    /// a consistent copy of the database (replacing an earlier one) and answers it. Each blob is
    /// pinned in the live database before it is read, so the collector leaves it alone while it is
    /// copied; a blob deleted between the snapshot and its pin (its last reference went, and its
    /// grace period too) makes the backup take a new snapshot, which no longer refers to it, and go
    /// on (blobs already copied stay: they are named by their hash). So the copy is consistent:
    /// every blob its database refers to is in it.
    pub async fn backup<F, Fut>(
        &self,
        target: &dyn BlobStore,
        mut snapshot: F,
    ) -> Result<BackupReport, MaintenanceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Arc<dyn BlobLifecycleStore>, MaintenanceError>>,
    {
        let mut report = BackupReport::default();
        let pin_prefix = format!("backup-{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut pins: Vec<String> = Vec::new();
        let result = loop {
            report.snapshots += 1;
            let copy = snapshot().await?;
            match self
                .copy_referenced(&*copy, target, &pin_prefix, &mut pins)
                .await
            {
                Ok((blobs, copied)) => {
                    report.blobs = blobs;
                    report.copied += copied;
                    break Ok(report);
                }
                Err(MaintenanceError::Raced(sha256)) if report.snapshots < BACKUP_ATTEMPTS => {
                    tracing::info!(blob = %sha256, "a blob was deleted while copying: taking a new snapshot");
                }
                Err(e) => break Err(e),
            }
        };
        for pin in pins {
            // The collector decides about these blobs again, as after any upload's pin.
            self.blob_life.release_pin(&pin).await?;
        }
        result
    }

    async fn copy_referenced(
        &self,
        snapshot: &dyn BlobLifecycleStore,
        target: &dyn BlobStore,
        pin_prefix: &str,
        pins: &mut Vec<String>,
    ) -> Result<(u64, u64), MaintenanceError> {
        let (mut blobs, mut copied) = (0, 0);
        let mut after: Option<String> = None;
        loop {
            let page = snapshot.referenced_blobs(after.as_deref(), PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (sha256, size) in page {
                blobs += 1;
                if target.exists(&sha256).await? {
                    continue;
                }
                let pin = format!("{pin_prefix}-{sha256}");
                let expires = now_ms() + BACKUP_PIN.as_millis() as i64;
                if !pins.contains(&pin) {
                    if !self.blob_life.pin_blob(&pin, &sha256, expires).await? {
                        return Err(MaintenanceError::Raced(sha256)); // being deleted right now
                    }
                    pins.push(pin);
                }
                let stream = match self.blobs.read(&sha256, 0, u64::MAX).await {
                    Ok(s) => s,
                    Err(BlobError::NotFound) => return Err(MaintenanceError::Raced(sha256)),
                    Err(e) => return Err(e.into()),
                };
                let limit = u64::try_from(size).unwrap_or(0).saturating_add(1);
                let staged = target.stage(stream, limit).await?;
                if staged.sha256 != sha256 {
                    return Err(MaintenanceError::Damaged {
                        sha256,
                        actual: staged.sha256.clone(),
                    });
                }
                target.commit(staged).await?;
                copied += 1;
            }
        }
        Ok((blobs, copied))
    }
}
