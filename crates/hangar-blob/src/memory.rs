//! Blobs in memory, for tests: the same contract as the other backends (staging that is discarded
//! unless committed, ranged reads, listing) with no disk at all. Staging holds the whole body in
//! memory, so this is no backend for real files.

use crate::{valid_sha256, BlobError, BlobStore, ByteStream, StagedBlob, StoredBlob};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct MemoryBlobStore {
    blobs: Arc<Mutex<BTreeMap<String, (Bytes, i64)>>>,
}

impl MemoryBlobStore {
    pub fn new() -> MemoryBlobStore {
        MemoryBlobStore::default()
    }

    fn blobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, i64)>> {
        // A panic while holding this lock can only come from a bug in this file; the map is still
        // consistent (every operation is one insert or remove), so carry on with it.
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Staged bytes, waiting in memory.
struct MemoryStaging {
    bytes: Bytes,
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn stage(&self, mut body: ByteStream, max_bytes: u64) -> Result<StagedBlob, BlobError> {
        let mut buffer = BytesMut::new();
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Interrupted)?;
            if buffer.len() as u64 + chunk.len() as u64 > max_bytes {
                return Err(BlobError::TooLarge { limit: max_bytes });
            }
            hasher.update(&chunk);
            buffer.extend_from_slice(&chunk);
        }
        let bytes = buffer.freeze();
        let size = bytes.len() as u64;
        Ok(StagedBlob::new(
            hex::encode(hasher.finalize()),
            size,
            MemoryStaging { bytes },
        ))
    }

    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError> {
        let sha256 = staged.sha256.clone();
        let staging = staged.into_staging::<MemoryStaging>()?;
        self.blobs()
            .entry(sha256)
            .or_insert((staging.bytes, hangar_core::now_ms()));
        Ok(())
    }

    async fn read(&self, sha256: &str, start: u64, len: u64) -> Result<ByteStream, BlobError> {
        let bytes = self
            .blobs()
            .get(sha256)
            .map(|(b, _)| b.clone())
            .ok_or(BlobError::NotFound)?;
        let start = (start as usize).min(bytes.len());
        let end = start.saturating_add(len as usize).min(bytes.len());
        let part = bytes.slice(start..end);
        Ok(futures_util::stream::iter([Ok(part)]).boxed())
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        self.blobs().remove(sha256);
        Ok(())
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        Ok(valid_sha256(sha256) && self.blobs().contains_key(sha256))
    }

    async fn remove_temporaries(&self, _older_than: Option<Duration>) -> Result<usize, BlobError> {
        Ok(0) // staged bytes live only as long as their StagedBlob
    }

    async fn count_temporaries(&self) -> Result<usize, BlobError> {
        Ok(0)
    }

    async fn check(&self) -> Result<(), BlobError> {
        Ok(())
    }

    fn list(&self) -> BoxStream<'static, Result<StoredBlob, BlobError>> {
        let listed: Vec<_> = self
            .blobs()
            .iter()
            .map(|(sha256, (_, modified_utc))| {
                Ok(StoredBlob {
                    sha256: sha256.clone(),
                    modified_utc: *modified_utc,
                })
            })
            .collect();
        futures_util::stream::iter(listed).boxed()
    }
}
