//! Hangar's blob store: bytes addressed by their SHA-256, shared by every attachment or file with the
//! same content. An upload is first *staged* (streamed to a temporary place while it is hashed, counted
//! and capped), then *committed* (made durable under its hash). Only then may the metadata store refer
//! to it, so a crash at any moment leaves at worst an unreferenced blob, never a dangling reference.

pub mod ingest;
mod local;

pub use ingest::{Committed, Ingest, IngestError};
pub use local::LocalBlobStore;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use std::path::PathBuf;
use std::time::Duration;

/// A stream of body bytes, from a request or from a multipart field.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the content exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The sender's stream failed (client gone, malformed chunked encoding…): nothing was stored.
    #[error("the upload was interrupted: {0}")]
    Interrupted(std::io::Error),
    #[error("blob not found")]
    NotFound,
    #[error("the storage is full")]
    NoSpace,
    #[error("storage failure: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        // ENOSPC and EDQUOT: the disk, not the request, is the problem.
        match e.raw_os_error() {
            Some(28) | Some(122) => BlobError::NoSpace,
            _ if e.kind() == std::io::ErrorKind::NotFound => BlobError::NotFound,
            _ => BlobError::Io(e),
        }
    }
}

/// Bytes that arrived completely and were hashed, waiting to be committed. Dropping it without
/// committing removes the temporary copy.
#[derive(Debug)]
pub struct StagedBlob {
    pub sha256: String,
    pub size: u64,
    temp: Option<PathBuf>,
    /// The open temporary, holding its lock, so that no sweep (of this or another process) takes
    /// it while it waits to be committed.
    _lock: Option<std::fs::File>,
}

impl StagedBlob {
    fn take_temp(&mut self) -> Option<PathBuf> {
        self.temp.take()
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        if let Some(path) = self.temp.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Where blobs live. Narrow on purpose: the store never knows who asks or why.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Streams `body` to a temporary place, hashing and counting; fails with `TooLarge` as soon as more
    /// than `max_bytes` arrive. Memory use does not depend on the size of the body.
    async fn stage(&self, body: ByteStream, max_bytes: u64) -> Result<StagedBlob, BlobError>;
    /// Makes a staged blob durable under its hash (idempotent: identical content is stored once).
    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError>;
    /// `len` bytes of a blob from `start`.
    async fn read(&self, sha256: &str, start: u64, len: u64) -> Result<ByteStream, BlobError>;
    /// Removes a blob; removing a missing blob is not an error.
    async fn delete(&self, sha256: &str) -> Result<(), BlobError>;
    async fn exists(&self, sha256: &str) -> Result<bool, BlobError>;
    /// Removes temporaries left by interrupted work, never one that an upload (of any process) is
    /// still writing; with `older_than`, only those at least that old.
    async fn remove_temporaries(&self, older_than: Option<Duration>) -> Result<usize, BlobError>;
    /// Whether the store is reachable and writable.
    async fn check(&self) -> Result<(), BlobError>;
    /// Every stored blob with its age (for the sweep of blobs that the database does not know).
    async fn list(&self) -> Result<Vec<StoredBlob>, BlobError>;
    /// Whether the store holds any blob at all (stops at the first).
    async fn holds_blobs(&self) -> Result<bool, BlobError>;
}

/// A blob as listed by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub sha256: String,
    /// When its bytes were last written (epoch ms).
    pub modified_utc: i64,
}

/// A blob name is 64 lowercase hex digits; anything else names nothing (and never a path).
pub fn valid_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Fails a byte stream that pauses longer than `idle`.
pub fn idle_limited(stream: ByteStream, idle: std::time::Duration) -> ByteStream {
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut inner = state?;
        match tokio::time::timeout(idle, inner.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(inner))),
            Ok(Some(Err(e))) => Some((Err(e), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data arrived for {} s", idle.as_secs()),
                )),
                None,
            )),
        }
    })
    .boxed()
}
