//! Blobs in memory, for tests: the same contract as the other backends (staging that is discarded
//! unless committed, ranged reads, listing) with no disk at all. Staging holds the whole body in
//! memory, so this is no backend for real files.

use crate::partial::{bad_id, missing_bytes, ChunkMeter};
use crate::{
    valid_partial_id, valid_sha256, BlobError, BlobStore, ByteStream, ChunkDigest, StagedBlob,
    StoredBlob, WrittenChunk,
};
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
    partials: Mutex<BTreeMap<String, Vec<u8>>>,
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

    async fn partial_write(
        &self,
        id: &str,
        offset: u64,
        mut body: ByteStream,
        max_bytes: u64,
        digest: Option<ChunkDigest>,
    ) -> Result<WrittenChunk, BlobError> {
        if !valid_partial_id(id) {
            return Err(bad_id());
        }
        let mut meter = ChunkMeter::new(max_bytes, digest);
        let mut chunk_bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Interrupted)?;
            meter.take(&chunk)?;
            chunk_bytes.extend_from_slice(&chunk);
        }
        let mut partials = self.partials.lock().unwrap_or_else(|e| e.into_inner());
        let held = partials.get(id).map_or(0, |p| p.len() as u64);
        if held < offset || (offset > 0 && !partials.contains_key(id)) {
            return Err(missing_bytes(held, offset));
        }
        let partial = partials.entry(id.to_string()).or_default();
        partial.truncate(offset as usize);
        partial.extend_from_slice(&chunk_bytes);
        Ok(meter.finish())
    }

    async fn partial_len(&self, id: &str) -> Result<Option<u64>, BlobError> {
        let partials = self.partials.lock().unwrap_or_else(|e| e.into_inner());
        Ok(partials.get(id).map(|p| p.len() as u64))
    }

    async fn partial_finish(&self, id: &str, len: u64) -> Result<StagedBlob, BlobError> {
        let bytes = {
            let partials = self.partials.lock().unwrap_or_else(|e| e.into_inner());
            let partial = partials.get(id).ok_or_else(|| missing_bytes(0, len))?;
            if (partial.len() as u64) < len {
                return Err(missing_bytes(partial.len() as u64, len));
            }
            Bytes::copy_from_slice(&partial[..len as usize])
        };
        self.stage(futures_util::stream::iter([Ok(bytes)]).boxed(), len)
            .await
    }

    async fn partial_abort(&self, id: &str) -> Result<(), BlobError> {
        self.partials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
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
