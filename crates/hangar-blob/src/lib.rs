//! Hangar's blob store: bytes addressed by their SHA-256, shared by every attachment or file with the
//! same content. An upload is first *staged* (streamed to a temporary place while it is hashed, counted
//! and capped), then *committed* (made durable under its hash). Only then may the metadata store refer
//! to it, so a crash at any moment leaves at worst an unreferenced blob, never a dangling reference.

#[cfg(test)]
mod conformance;
pub mod ingest;
mod local;
mod memory;
pub mod partial;
mod s3;
pub mod small;

pub use ingest::{Committed, Ingest, IngestError};
pub use local::{LocalBlobStore, PackEntry, PackSlot};
pub use memory::MemoryBlobStore;
pub use partial::{valid_partial_id, ChunkDigest, WrittenChunk};
pub use s3::{S3BlobStore, S3Config, S3ConfigError};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use hangar_core::store::{BlobLifecycleStore, PinnedObject};
use std::any::Any;
use std::sync::Arc;
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

impl BlobError {
    /// Whether the storage could not be reached (an object store that refuses connections, times
    /// out or drops them): a passing condition, which the HTTP edge answers with 503.
    pub fn is_unavailable(&self) -> bool {
        use std::io::ErrorKind::*;
        matches!(self, BlobError::Io(e) if matches!(
            e.kind(),
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | TimedOut
        ))
    }
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

/// Bytes that arrived completely and were hashed, waiting to be committed. Where they wait belongs to
/// the backend that staged them (a locked temporary file, a buffer, a temporary object); dropping the
/// `StagedBlob` without committing it discards them.
pub struct StagedBlob {
    pub sha256: String,
    pub size: u64,
    /// The first bytes (up to `hangar_core::content_type::SNIFF_LEN`), kept by the ingest pipeline
    /// to tell what the file is; empty when staged some other way.
    head: Bytes,
    /// The object the bytes were written to, when the backend keeps them where they were staged
    /// (object stores: see `BlobStore::use_object_keys`); the ingest pipeline records it.
    object_key: Option<String>,
    /// What the database holds for the blob, once the ingest pipeline pinned it with
    /// `object_key`: that object, an earlier one (this one is then a duplicate), or the
    /// content-addressed layout.
    recorded: Option<PinnedObject>,
    staging: Box<dyn Any + Send + Sync>,
}

impl StagedBlob {
    fn new(sha256: String, size: u64, staging: impl Any + Send + Sync) -> StagedBlob {
        StagedBlob {
            sha256,
            size,
            head: Bytes::new(),
            object_key: None,
            recorded: None,
            staging: Box::new(staging),
        }
    }

    /// The file's first bytes, as the ingest pipeline saw them.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The type the file is stored as: `declared` unless it says nothing, else what the first
    /// bytes, then the name, show (`hangar_core::content_type::resolve`). Every upload mode asks
    /// here, so every mode types files alike.
    pub fn content_type(&self, declared: Option<&str>, file_name: Option<&str>) -> String {
        hangar_core::content_type::resolve(declared, &self.head, file_name)
    }

    /// The backend's own staging, if this backend staged it.
    fn into_staging<T: Any>(self) -> Result<Box<T>, BlobError> {
        self.staging.downcast::<T>().map_err(|_| {
            BlobError::Io(std::io::Error::other(
                "the blob was staged by another storage backend",
            ))
        })
    }
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A request that a client sends straight to the storage backend (a presigned URL), with the headers
/// it was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// What became of the object a client sent straight to the backend (a two-stage upload's presigned
/// PUT) when Hangar went to take it.
#[derive(Debug)]
pub enum TakenUpload {
    /// Nothing there (yet, or any more).
    Missing,
    /// An object of another size than announced (its size); it stays where it is.
    WrongSize(u64),
    /// Its bytes, hashed and staged like an upload through Hangar: commit them, or drop them.
    Staged(StagedBlob),
}

/// Where blobs live. Narrow on purpose: the store never knows who asks or why.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Streams `body` to a temporary place, hashing and counting; fails with `TooLarge` as soon as more
    /// than `max_bytes` arrive. Memory use does not depend on the size of the body.
    async fn stage(&self, body: ByteStream, max_bytes: u64) -> Result<StagedBlob, BlobError>;
    /// `stage` for a body that announced its length (a request's `Content-Length`, which the HTTP
    /// server holds it to): a store that must know an object's size before writing it can then
    /// send the body in one request (S3's PUT) instead of in parts. A body that ends short of `len`
    /// or runs past it fails as `Interrupted`; stores that have no use for the length ignore it.
    async fn stage_exact(
        &self,
        body: ByteStream,
        len: u64,
        max_bytes: u64,
    ) -> Result<StagedBlob, BlobError> {
        let _ = len;
        self.stage(body, max_bytes).await
    }
    /// Makes a staged blob durable under an object key of the store's own choosing that no other
    /// upload can get, and sets that key on it (a store that writes many small bodies into one
    /// file per batch: see `local::packs`). The bytes are then committed: the ingest pipeline
    /// takes no pin and does not call `commit`, and the upload's record writes the key on the
    /// blob's row (`model::BlobHold::Placed`). False (the default): nothing was done, and `commit`
    /// places the blob after the pin.
    async fn place_keyed(&self, staged: &mut StagedBlob) -> Result<bool, BlobError> {
        let _ = staged;
        Ok(false)
    }
    /// Frees the bytes under `object_key` (placed by `place_keyed`) unless a blob row records that
    /// key: a duplicate's copy (`jobs::DiscardObject`). Nothing to do by default.
    async fn discard_object(&self, object_key: &str) -> Result<(), BlobError> {
        let _ = object_key;
        Ok(())
    }
    /// Makes a staged blob durable under its hash (idempotent: identical content is stored once).
    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError>;
    /// A second staged blob with the same bytes, when making one costs nothing (bytes held in
    /// memory, shared): the ingest pipeline then commits the bytes while their pin is being
    /// taken, and commits the copy should the collector have removed them before the pin held.
    /// None (the default): the bytes are committed once pinned.
    fn stand_in(&self, staged: &StagedBlob) -> Option<StagedBlob> {
        let _ = staged;
        None
    }
    /// Lets the store keep each blob's bytes under an object key of its own, recorded in the
    /// database by the ingest pipeline and looked up there by every read and delete (object stores,
    /// where a copy to the content-addressed key would write the bytes twice). Stores that can
    /// rename ignore it.
    fn use_object_keys(&self, life: Arc<dyn BlobLifecycleStore>) {
        let _ = life;
    }
    /// `len` bytes of a blob from `start`.
    async fn read(&self, sha256: &str, start: u64, len: u64) -> Result<ByteStream, BlobError>;
    /// `len` bytes of a blob from `start` in one piece, for small reads (`small::SMALL_BLOB`):
    /// whatever `read` streams, gathered.
    async fn read_small(&self, sha256: &str, start: u64, len: u64) -> Result<Bytes, BlobError> {
        use futures_util::TryStreamExt;
        let mut stream = self.read(sha256, start, len).await?;
        let mut whole = bytes::BytesMut::with_capacity(len as usize);
        while let Some(chunk) = stream.try_next().await? {
            whole.extend_from_slice(&chunk);
        }
        Ok(whole.freeze())
    }
    /// Removes a blob; removing a missing blob is not an error.
    async fn delete(&self, sha256: &str) -> Result<(), BlobError>;
    async fn exists(&self, sha256: &str) -> Result<bool, BlobError>;
    /// `exists`, asked right after this store put the blob in place (or found it there): where
    /// that look is cheap enough to make without handing it to another thread, a store does so.
    async fn exists_after_placing(&self, sha256: &str) -> Result<bool, BlobError> {
        self.exists(sha256).await
    }
    /// Removes temporaries left by interrupted work, never one that an upload (of any process) is
    /// still writing; with `older_than`, only those at least that old.
    async fn remove_temporaries(&self, older_than: Option<Duration>) -> Result<usize, BlobError>;
    /// Whether `remove_temporaries` is quick whatever the store holds (a read of a directory of
    /// temporaries), so that a starting server may wait for it before it serves; an object store's
    /// looks at every object, which grows with the store, and is swept beside serving.
    fn sweeps_quickly(&self) -> bool {
        true
    }
    /// How many temporaries there are now (uploads in progress and leftovers), for checks and
    /// metrics.
    async fn count_temporaries(&self) -> Result<usize, BlobError>;
    /// Whether the store is reachable and writable.
    async fn check(&self) -> Result<(), BlobError>;
    /// Every stored blob with its age, as a stream (a store can hold millions; for the sweep of blobs
    /// that the database does not know).
    fn list(&self) -> BoxStream<'static, Result<StoredBlob, BlobError>>;
    /// Whether the store holds any blob at all (stops at the first).
    async fn holds_blobs(&self) -> Result<bool, BlobError> {
        match self.list().next().await {
            None => Ok(false),
            Some(first) => first.map(|_| true),
        }
    }
    /// Whether `presign_upload` gives URLs (two-stage bytes go straight to the backend).
    fn takes_direct_uploads(&self) -> bool {
        false
    }
    /// A URL under which a client may PUT an upload's bytes directly to the backend, to `key`, within
    /// `expires` (two-stage uploads on object storage). None where the backend has no such thing (the
    /// local disk): the bytes then go through Hangar.
    async fn presign_upload(
        &self,
        _key: &str,
        _size: u64,
        _content_type: &str,
        _expires: Duration,
    ) -> Result<Option<PresignedRequest>, BlobError> {
        Ok(None)
    }
    /// A URL from which a client may GET a blob's bytes directly, within `expires`, answered with the
    /// given headers. None where the backend has no such thing: downloads go through Hangar.
    async fn presign_download(
        &self,
        _sha256: &str,
        _content_type: &str,
        _content_disposition: &str,
        _expires: Duration,
    ) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
    /// The size of the object a client PUT to `key` by a presigned URL, None while there is none
    /// (always, where the backend has no presigned uploads).
    async fn upload_size(&self, _key: &str) -> Result<Option<u64>, BlobError> {
        Ok(None)
    }
    /// Takes the object a client PUT to `key` into staging if its size is `size`: hashed while it
    /// is read, committed like any staged blob (which also removes the client's object), or dropped.
    async fn take_upload(&self, _key: &str, _size: u64) -> Result<TakenUpload, BlobError> {
        Ok(TakenUpload::Missing)
    }
    /// Removes what a client PUT to `key` (a refused or expired upload); removing nothing is fine.
    async fn delete_upload(&self, _key: &str) -> Result<(), BlobError> {
        Ok(())
    }

    /// Writes `body` into the partial upload `id` (see `partial`) at `offset`, discarding what it
    /// held from there on; durable when it answers. Counts the bytes (`TooLarge` past `max_bytes`)
    /// and hashes them with `digest` when given. A body that breaks off fails the write: the
    /// caller's offset does not move, and the next write at it replaces the leftovers.
    async fn partial_write(
        &self,
        id: &str,
        offset: u64,
        body: ByteStream,
        max_bytes: u64,
        digest: Option<ChunkDigest>,
    ) -> Result<WrittenChunk, BlobError>;
    /// How many bytes the partial upload holds in one piece from its start; None when it has none.
    async fn partial_len(&self, id: &str) -> Result<Option<u64>, BlobError>;
    /// Stages the first `len` bytes of the partial upload as a blob, hashed while they are read.
    /// The partial upload stays as it is (a completion that fails can run again) until
    /// `partial_abort`.
    async fn partial_finish(&self, id: &str, len: u64) -> Result<StagedBlob, BlobError>;
    /// Removes the partial upload; removing none is fine.
    async fn partial_abort(&self, id: &str) -> Result<(), BlobError>;
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

/// The fewest bytes a stream read through `idle_limited` must bring in each window of `idle`: about
/// 1 KiB/s, far below any real link, but enough that a client trickling a byte now and then cannot hold
/// an upload (its connection, temporary file and quota reservation) open for ever.
pub const MIN_BYTES_PER_WINDOW: u64 = 64 * 1024;

/// Fails a byte stream that pauses longer than `idle`, or that brings fewer than
/// `MIN_BYTES_PER_WINDOW` bytes in a window of `idle` (a slow-drip client).
pub fn idle_limited(stream: ByteStream, idle: std::time::Duration) -> ByteStream {
    paced(stream, idle, MIN_BYTES_PER_WINDOW)
}

/// `idle_limited` with the minimum per window given. A window counts only the time spent waiting for
/// the stream's next bytes, not the time its reader spent elsewhere (writing to a slow disk or object
/// store), so a pause of the server's own is never taken for a slow client.
pub fn paced(stream: ByteStream, idle: std::time::Duration, min_per_window: u64) -> ByteStream {
    struct Pace {
        inner: ByteStream,
        waited: std::time::Duration,
        window_bytes: u64,
    }
    let start = Pace {
        inner: stream,
        waited: std::time::Duration::ZERO,
        window_bytes: 0,
    };
    let timed_out = |text: String| std::io::Error::new(std::io::ErrorKind::TimedOut, text);
    futures_util::stream::unfold(Some(start), move |state| async move {
        let mut pace = state?;
        let asked = tokio::time::Instant::now();
        match tokio::time::timeout(idle, pace.inner.next()).await {
            Ok(Some(Ok(bytes))) => {
                pace.waited += asked.elapsed();
                pace.window_bytes += bytes.len() as u64;
                if pace.waited >= idle {
                    if pace.window_bytes < min_per_window {
                        let text = format!(
                            "only {} bytes arrived in {} s (at least {min_per_window} are needed)",
                            pace.window_bytes,
                            pace.waited.as_secs()
                        );
                        return Some((Err(timed_out(text)), None));
                    }
                    pace.waited = std::time::Duration::ZERO;
                    pace.window_bytes = 0;
                }
                Some((Ok(bytes), Some(pace)))
            }
            Ok(Some(Err(e))) => Some((Err(e), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(timed_out(format!(
                    "no data arrived for {} s",
                    idle.as_secs()
                ))),
                None,
            )),
        }
    })
    .boxed()
}

#[cfg(test)]
mod pace_tests {
    use super::*;
    use std::time::Duration;

    /// A stream that yields `chunk` bytes every `every` of virtual time, `count` times.
    fn drip(chunk: usize, every: Duration, count: usize) -> ByteStream {
        futures_util::stream::unfold(0, move |n| async move {
            if n == count {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Bytes::from(vec![0u8; chunk])), n + 1))
        })
        .boxed()
    }

    async fn drain(mut stream: ByteStream) -> Result<u64, std::io::Error> {
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            total += chunk?.len() as u64;
        }
        Ok(total)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_drip_fails_and_a_steady_stream_passes() {
        let idle = Duration::from_secs(60);
        // A byte every 10 s never pauses 60 s, but brings 6 bytes a minute.
        let err = drain(paced(drip(1, Duration::from_secs(10), 100), idle, 1024))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        // 512 bytes every 10 s: 3 KiB a minute, for five minutes.
        let total = drain(paced(drip(512, Duration::from_secs(10), 30), idle, 1024))
            .await
            .unwrap();
        assert_eq!(total, 512 * 30);
        // Silence longer than `idle` fails whatever came before.
        let err = drain(paced(drip(4096, Duration::from_secs(61), 2), idle, 1024))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_reader_spends_elsewhere_does_not_count() {
        let idle = Duration::from_secs(60);
        let mut stream = paced(drip(100, Duration::from_millis(10), 50), idle, 1024);
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            total += chunk.unwrap().len();
            // The reader is slow (a stalled disk), not the client.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        assert_eq!(total, 5000);
    }
}
