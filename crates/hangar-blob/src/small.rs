//! Small blobs in one piece: read whole with one call (on disk: open and read on one blocking
//! thread, instead of an open, a seek and reads each on its own), and kept in a bounded memory
//! cache. Blobs are content-addressed, so a cached blob is never stale: whoever serves it must only
//! have decided first that the caller may read a file holding these bytes (the download routes do).

use crate::{BlobError, BlobStore};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Blobs up to this size are read in one piece and may be cached.
pub const SMALL_BLOB: u64 = 64 * 1024;

/// Reads `len` bytes from `start` of the file that `open` opens, on one blocking thread.
pub(crate) async fn read_file_range(
    open: impl FnOnce() -> std::io::Result<std::fs::File> + Send + 'static,
    start: u64,
    len: u64,
) -> Result<Bytes, BlobError> {
    tokio::task::spawn_blocking(move || -> Result<Bytes, BlobError> {
        use std::os::unix::fs::FileExt;
        let file = open()?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, start)?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| BlobError::Io(std::io::Error::other(e.to_string())))?
}

/// Whole small blobs by SHA-256, at most `max_bytes` in all; the oldest goes first when full.
pub struct SmallBlobCache {
    max_bytes: usize,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    blobs: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

impl SmallBlobCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            state: Mutex::default(),
        }
    }

    fn get(&self, sha256: &str) -> Option<Bytes> {
        self.lock().blobs.get(sha256).cloned()
    }

    fn put(&self, sha256: &str, bytes: Bytes) {
        if bytes.len() > self.max_bytes {
            return;
        }
        let mut s = self.lock();
        if s.blobs.contains_key(sha256) {
            return;
        }
        while s.bytes + bytes.len() > self.max_bytes {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            if let Some(gone) = s.blobs.remove(&old) {
                s.bytes -= gone.len();
            }
        }
        s.bytes += bytes.len();
        s.order.push_back(sha256.to_string());
        s.blobs.insert(sha256.to_string(), bytes);
    }

    /// Blobs and bytes held now.
    pub fn usage(&self) -> (usize, usize) {
        let s = self.lock();
        (s.blobs.len(), s.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `len` bytes from `start` of a blob of `size` bytes (at most `SMALL_BLOB`), from the cache or
    /// read whole from `store` and kept.
    pub async fn read(
        &self,
        store: &dyn BlobStore,
        sha256: &str,
        size: u64,
        start: u64,
        len: u64,
    ) -> Result<Bytes, BlobError> {
        let whole = match self.get(sha256) {
            Some(whole) => whole,
            None => {
                let whole = store.read_small(sha256, 0, size).await?;
                if whole.len() as u64 != size {
                    return Err(BlobError::Io(std::io::Error::other(format!(
                        "blob {sha256} holds {} bytes, not {size}",
                        whole.len()
                    ))));
                }
                self.put(sha256, whole.clone());
                whole
            }
        };
        let end = start.saturating_add(len).min(whole.len() as u64);
        Ok(whole.slice(start.min(end) as usize..end as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBlobStore;

    #[tokio::test]
    async fn small_blobs_are_read_whole_and_kept_within_the_budget() {
        let store = MemoryBlobStore::default();
        let mut shas = Vec::new();
        for n in 0..3u8 {
            let body = vec![n; 10];
            let staged = store
                .stage(
                    Box::pin(futures_util::stream::once(
                        async move { Ok(Bytes::from(body)) },
                    )),
                    100,
                )
                .await
                .unwrap();
            shas.push(staged.sha256.clone());
            store.commit(staged).await.unwrap();
        }
        let cache = SmallBlobCache::new(25);
        let part = cache.read(&store, &shas[0], 10, 2, 3).await.unwrap();
        assert_eq!(&part[..], &[0, 0, 0]);
        assert_eq!(cache.usage(), (1, 10));
        cache.read(&store, &shas[1], 10, 0, 10).await.unwrap();
        cache.read(&store, &shas[2], 10, 0, 10).await.unwrap();
        assert_eq!(cache.usage(), (2, 20), "the oldest made room");
        // Served from memory even once the store no longer has it (content-addressed).
        store.delete(&shas[2]).await.unwrap();
        let whole = cache.read(&store, &shas[2], 10, 0, 10).await.unwrap();
        assert_eq!(&whole[..], &[2; 10]);
        // The evicted one is read from the store again: gone there, gone here.
        store.delete(&shas[0]).await.unwrap();
        assert!(matches!(
            cache.read(&store, &shas[0], 10, 0, 10).await,
            Err(BlobError::NotFound)
        ));
    }
}
