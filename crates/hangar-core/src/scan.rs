//! Malware scanning's vocabulary (SPEC §9.6): the scan state of stored bytes, what a scan found, and
//! the store that records it.
//!
//! The state belongs to the blob, not to a file: bytes scanned once are clean (or infected) for every
//! attachment and storage file that holds them, so deduplicated content is never scanned twice.

use crate::store::StoreResult;
use async_trait::async_trait;

/// Where a blob stands with the scanner. Only `Clean` bytes are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanState {
    /// Not scanned yet (queued, or waiting for clamd to answer).
    Pending,
    Clean,
    /// clamd found something: never served.
    Infected,
    /// clamd could not scan it (larger than its `StreamMaxLength`, or another error it answered):
    /// never served, as `Pending`.
    Failed,
}

impl ScanState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanState::Pending => "pending",
            ScanState::Clean => "clean",
            ScanState::Infected => "infected",
            ScanState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ScanState> {
        Some(match s {
            "pending" => ScanState::Pending,
            "clean" => ScanState::Clean,
            "infected" => ScanState::Infected,
            "failed" => ScanState::Failed,
            _ => return None,
        })
    }
}

/// What a finished scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    Clean,
    /// The signature's name as clamd reports it.
    Infected(String),
    /// Why clamd could not scan the bytes (its answer, in words).
    Failed(String),
}

impl ScanVerdict {
    pub fn state(&self) -> ScanState {
        match self {
            ScanVerdict::Clean => ScanState::Clean,
            ScanVerdict::Infected(_) => ScanState::Infected,
            ScanVerdict::Failed(_) => ScanState::Failed,
        }
    }

    /// The signature name, or why the scan failed.
    pub fn detail(&self) -> Option<&str> {
        match self {
            ScanVerdict::Clean => None,
            ScanVerdict::Infected(d) | ScanVerdict::Failed(d) => Some(d),
        }
    }
}

/// A blob as the scanner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobScan {
    /// None: stored while scanning was off, and not queued since.
    pub state: Option<ScanState>,
    pub size: i64,
    /// The signature name (infected) or the reason (failed).
    pub detail: Option<String>,
}

/// Scan states in the database, shared by every node. With scanning on, the store marks every newly
/// referenced blob `pending` and queues its `ScanBlob` job in the transaction that records the file
/// (and queues it again for bytes whose scan `failed`, so an operator who raised clamd's limit can
/// have a file scanned again by uploading it again).
#[async_trait]
pub trait ScanStore: Send + Sync {
    /// The blob's scan record; None when the database has no row for it.
    async fn blob_scan(&self, sha256: &str) -> StoreResult<Option<BlobScan>>;
    /// Records the verdict on a `pending` blob and, when infected, an `Attachment.Quarantined` or
    /// `StorageFile.Quarantined` event for every file that holds it, in one transaction. False when
    /// the blob is gone or was not pending any more (nothing recorded).
    async fn record_scan(&self, sha256: &str, verdict: &ScanVerdict) -> StoreResult<bool>;
    /// Marks up to `limit` referenced blobs that have no scan state (stored before scanning was
    /// turned on) `pending` and queues their scans; answers how many.
    async fn queue_unscanned(&self, limit: i64) -> StoreResult<u64>;
    /// Makes every referenced blob whose scan `failed` `pending` again and queues its scan (an
    /// operator raised clamd's limits); answers their SHA-256s.
    async fn retry_failed_scans(&self) -> StoreResult<Vec<String>>;
}
