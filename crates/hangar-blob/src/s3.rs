//! Blobs in S3-compatible object storage, through object_store. With a database that records object
//! keys (`BlobStore::use_object_keys`, as every server and command has), an upload streams straight
//! to `PREFIX/objects/<random>`, the key the database then records on the blob's row; the first
//! object of a content is kept and later duplicates are deleted at once. Without one (and for rows
//! from before object keys, whose key is NULL), blobs live under `PREFIX/blobs/<sha256>`, staged under
//! `PREFIX/tmp/<random>` and copied there once hashed. The clients of two-stage uploads PUT to keys of
//! their own by presigned URL.

mod config;
mod partial;
mod read_ahead;
#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;
mod upload;

pub use config::{S3Config, S3ConfigError};

use upload::Upload;

use crate::{
    valid_sha256, BlobError, BlobStore, ByteStream, ChunkDigest, PresignedRequest, StagedBlob,
    StoredBlob, TakenUpload, WrittenChunk,
};
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use hangar_core::store::{BlobLifecycleStore, PinnedObject, StoreError};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::HttpErrorKind;
use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Blobs in one bucket under one prefix. Cheap to share: every operation is a request.
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    s3: AmazonS3,
    /// For the requests object_store cannot stream: a PUT whose body arrives as it is sent.
    http: reqwest::Client,
    /// `PREFIX/` or empty.
    prefix: String,
    /// `s3://BUCKET/PREFIX at ENDPOINT`, for messages.
    place: String,
    temp_min_age: Duration,
    copy_limit: u64,
    /// The database that records each blob's object key; unset, blobs are content-addressed.
    keys: OnceLock<Arc<dyn BlobLifecycleStore>>,
    /// Object keys looked up lately, by hash (None: content-addressed). A blob's key never changes
    /// while its row lives and is never reused: an entry gone stale (the blob was deleted, perhaps
    /// by another node, and stored again) reads as missing, and is looked up again then.
    key_cache: Mutex<HashMap<String, Option<String>>>,
}

/// Entries of `Inner::key_cache` before it is emptied (about 10 MiB at most).
const KEY_CACHE_ENTRIES: usize = 65_536;

impl S3BlobStore {
    /// A store as `config` says. Sends no request: [`BlobStore::check`] tells whether it works.
    pub fn new(config: &S3Config) -> Result<S3BlobStore, S3ConfigError> {
        let plain_http = config
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        // No overall time-out: a download streams for as long as its client reads. A stalled
        // connection still fails, by the connect and read time-outs.
        let client = ClientOptions::new()
            .with_allow_http(plain_http)
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(Duration::from_secs(60));
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: config.retries,
            retry_timeout: config.retry_timeout,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let s3 = builder
            .build()
            .map_err(|e| S3ConfigError(format!("{}: {e}", config.location())))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| S3ConfigError(format!("{}: {e}", config.location())))?;
        let endpoint = config.endpoint.as_deref().unwrap_or("AWS");
        Ok(S3BlobStore {
            inner: Arc::new(Inner {
                s3,
                http,
                prefix: match config.prefix.is_empty() {
                    true => String::new(),
                    false => format!("{}/", config.prefix),
                },
                place: format!("{} at {endpoint}", config.location()),
                temp_min_age: config.temp_min_age,
                copy_limit: config.copy_limit,
                keys: OnceLock::new(),
                key_cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A store for `storage_url` (`s3://BUCKET/PREFIX`) configured by the environment
    /// (`HANGAR_S3_ENDPOINT`, `HANGAR_S3_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn from_env(storage_url: &str) -> Result<S3BlobStore, S3ConfigError> {
        S3BlobStore::new(&S3Config::from_env(storage_url)?)
    }

    /// The staged blob of an object written to `temp` (under `object_key` when keys are recorded).
    fn staged(
        &self,
        temp: Path,
        object_key: Option<String>,
        sha256: String,
        size: u64,
    ) -> StagedBlob {
        let staging = S3Staging {
            inner: self.inner.clone(),
            temp: Some(temp),
            upload: None,
        };
        let mut staged = StagedBlob::new(sha256, size, staging);
        staged.object_key = object_key;
        staged
    }
}

impl Inner {
    /// Where a new upload is written: with keys recorded, where its bytes stay (no copy once they
    /// are hashed), under the object key returned; else a temporary object.
    fn staging_place(&self) -> (Path, Option<String>) {
        match self.keys.get() {
            Some(_) => {
                let key = self.new_object_key();
                (self.path(&key), Some(key))
            }
            None => (self.new_temp_path(), None),
        }
    }

    fn path(&self, relative: &str) -> Path {
        Path::from(format!("{}{relative}", self.prefix))
    }

    fn blob_path(&self, sha256: &str) -> Path {
        self.path(&format!("blobs/{sha256}"))
    }

    /// A new object key (relative to the prefix) for an upload's bytes.
    fn new_object_key(&self) -> String {
        format!("objects/{}", hex::encode(rand::random::<[u8; 16]>()))
    }

    /// Where a blob's bytes are: `(path, from the cache)`. The database is asked unless `fresh` is
    /// false and the cache knows.
    async fn locate(&self, sha256: &str, fresh: bool) -> Result<(Path, bool), BlobError> {
        let Some(life) = self.keys.get() else {
            return Ok((self.blob_path(sha256), false));
        };
        if !fresh {
            // The lock is never held across an await, so a poisoned one only lost an insert.
            let cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(key) = cache.get(sha256) {
                return Ok((self.keyed_path(sha256, key.as_deref()), true));
            }
        }
        let key = life
            .blob_object_key(sha256)
            .await
            .map_err(|e| self.store_error(e))?;
        let path = self.keyed_path(sha256, key.as_deref());
        self.remember(sha256, key);
        Ok((path, false))
    }

    fn keyed_path(&self, sha256: &str, key: Option<&str>) -> Path {
        match key {
            Some(key) => self.path(key),
            None => self.blob_path(sha256),
        }
    }

    fn remember(&self, sha256: &str, key: Option<String>) {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= KEY_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(sha256.to_string(), key);
    }

    fn forget(&self, sha256: &str) {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(sha256);
    }

    fn store_error(&self, e: StoreError) -> BlobError {
        BlobError::Io(std::io::Error::other(format!(
            "cannot look up an object key of {} in the database: {e}",
            self.place
        )))
    }

    /// The object key of an object listed under `objects/`, relative to the prefix.
    fn relative_key<'p>(&self, location: &'p Path) -> &'p str {
        let full: &str = location.as_ref();
        full.strip_prefix(self.prefix.as_str()).unwrap_or(full)
    }

    /// Objects under `objects/` that no blob row records (uploads in progress, or left by a crash
    /// between their upload and their pin), with their age.
    fn unrecorded_objects(self: &Arc<Self>) -> BoxStream<'static, Result<(Path, i64), BlobError>> {
        let Some(life) = self.keys.get().cloned() else {
            return futures_util::stream::empty().boxed();
        };
        let inner = self.clone();
        self.s3
            .list(Some(&self.path("objects")))
            .then(move |meta| {
                let (inner, life) = (inner.clone(), life.clone());
                async move {
                    let meta = match meta {
                        Ok(meta) => meta,
                        Err(e) => return Some(Err(inner.error(e))),
                    };
                    let key = inner.relative_key(&meta.location);
                    match life.blob_of_object(key).await {
                        Ok(Some(_)) => None,
                        Ok(None) => Some(Ok((
                            meta.location.clone(),
                            meta.last_modified.timestamp_millis(),
                        ))),
                        Err(e) => Some(Err(inner.store_error(e))),
                    }
                }
            })
            .filter_map(std::future::ready)
            .boxed()
    }

    fn new_temp_path(&self) -> Path {
        self.path(&format!("tmp/{}", hex::encode(rand::random::<[u8; 16]>())))
    }

    /// Where a client's presigned upload to `key` lands: a key of its own, never under `blobs/`
    /// (content-addressed, ours alone), `objects/` (ours too) or `tmp/`.
    fn upload_path(&self, key: &str) -> Result<Path, BlobError> {
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
        let first = key.split('/').next().unwrap_or_default();
        if key.len() > 512
            || !key.split('/').all(segment_ok)
            || matches!(first, "blobs" | "objects" | "tmp")
        {
            return Err(BlobError::Io(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("{key:?} is no key for an upload"),
            )));
        }
        Ok(self.path(key))
    }

    /// An object_store error as a blob error: a missing object is `NotFound`; anything else is
    /// `Io`, with a kind that tells an unreachable or refusing store from other failures (the HTTP
    /// edge answers those as unavailable) and a message that says where.
    fn error(&self, e: object_store::Error) -> BlobError {
        use object_store::Error as E;
        let (kind, what) = match &e {
            E::NotFound { .. } => return BlobError::NotFound,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
                ErrorKind::PermissionDenied,
                "the object storage refused the credentials (AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY) or their rights",
            ),
            _ => match http_error_kind(&e) {
                Some(HttpErrorKind::Connect) => (
                    ErrorKind::ConnectionRefused,
                    "cannot connect to the object storage",
                ),
                Some(HttpErrorKind::Timeout) => (
                    ErrorKind::TimedOut,
                    "the object storage did not answer in time",
                ),
                Some(_) => (
                    ErrorKind::ConnectionAborted,
                    "the connection to the object storage failed",
                ),
                None => (ErrorKind::Other, "the object storage failed"),
            },
        };
        BlobError::Io(std::io::Error::new(
            kind,
            format!("{what} ({}): {e}", self.place),
        ))
    }

    /// Copies `from` to `to` (overwriting): a server-side copy up to `copy_limit`, else streamed
    /// through this process into a multipart upload.
    async fn copy(&self, from: &Path, to: &Path, size: u64) -> Result<(), BlobError> {
        if size <= self.copy_limit {
            return self.s3.copy(from, to).await.map_err(|e| self.error(e));
        }
        let source = self.s3.get(from).await.map_err(|e| self.error(e))?;
        let mut upload = Upload::new(self, to.clone());
        let mut bytes = source.into_stream();
        while let Some(chunk) = bytes.next().await {
            let pushed = match chunk {
                Ok(chunk) => upload.push(chunk).await,
                Err(e) => Err(self.error(e)),
            };
            if let Err(e) = pushed {
                upload.abort().await;
                return Err(e);
            }
        }
        upload.finish().await
    }

    /// Deletes what is no longer needed; a failure only leaves an object for the sweep.
    async fn delete_quietly(&self, path: &Path) {
        if let Err(e) = self.s3.delete(path).await {
            tracing::warn!(object = %path, "cannot delete (the temporary sweep will): {e}");
        }
    }
}

/// The kind of the HTTP failure underneath an object_store error, if it was one.
fn http_error_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(http) = cause.downcast_ref::<object_store::client::HttpError>() {
            return Some(http.kind());
        }
        source = cause.source();
    }
    None
}

/// A staged upload: the temporary object, deleted in the background when dropped uncommitted (a
/// failed delete, or a drop with no runtime left, leaves it to `remove_temporaries`); for a taken
/// two-stage upload, also the client's object, deleted once the blob is committed.
struct S3Staging {
    inner: Arc<Inner>,
    temp: Option<Path>,
    upload: Option<Path>,
}

impl Drop for S3Staging {
    fn drop(&mut self) {
        let Some(temp) = self.temp.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let inner = self.inner.clone();
                runtime.spawn(async move { inner.delete_quietly(&temp).await });
            }
            Err(_) => tracing::warn!(object = %temp, "staged object left for the sweep"),
        }
    }
}

impl S3BlobStore {
    /// `len` bytes from `start` of the object at `path`.
    async fn read_at(&self, path: &Path, start: u64, len: u64) -> Result<ByteStream, BlobError> {
        let inner = &*self.inner;
        if len == 0 {
            // S3 has no empty range: only say whether the blob is there.
            inner.s3.head(path).await.map_err(|e| inner.error(e))?;
            return Ok(futures_util::stream::empty().boxed());
        }
        // "To the end" (a `len` past any size, as callers reading a whole blob give) is an open
        // range: a closed one ending near u64::MAX is refused by some S3 servers.
        let range = match start.checked_add(len) {
            Some(end) if end < u64::MAX => Some(GetRange::Bounded(start..end)),
            _ if start == 0 => None,
            _ => Some(GetRange::Offset(start)),
        };
        let options = GetOptions::new().with_range(range);
        let got = inner
            .s3
            .get_opts(path, options)
            .await
            .map_err(|e| inner.error(e))?;
        let large = got.range.end.saturating_sub(got.range.start) > read_ahead::CHUNK as u64;
        let stream = got.into_stream().map_err(std::io::Error::from).boxed();
        Ok(if large {
            read_ahead::read_ahead(stream)
        } else {
            stream
        })
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn stage(&self, mut body: ByteStream, max_bytes: u64) -> Result<StagedBlob, BlobError> {
        let inner = &*self.inner;
        let (temp, object_key) = inner.staging_place();
        let mut upload = Upload::new(inner, temp.clone());
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let pushed = match chunk {
                Err(e) => Err(BlobError::Interrupted(e)),
                Ok(chunk) if size + chunk.len() as u64 > max_bytes => {
                    Err(BlobError::TooLarge { limit: max_bytes })
                }
                Ok(chunk) => {
                    size += chunk.len() as u64;
                    hasher.update(&chunk);
                    upload.push(chunk).await
                }
            };
            if let Err(e) = pushed {
                upload.abort().await;
                return Err(e);
            }
        }
        upload.finish().await?;
        Ok(self.staged(temp, object_key, hex::encode(hasher.finalize()), size))
    }

    /// A body of known length between one part and S3's largest PUT goes in one streamed PUT (by a
    /// presigned URL, so that its bytes are not hashed a second time to sign them): a multipart
    /// upload would send it in signed parts that the server then joins, and on an S3-compatible
    /// server that stores parts as files, joining writes every byte once more. The cost: a PUT that
    /// fails cannot be retried (its body is gone), so the upload fails and its client sends again;
    /// parts are retried one by one.
    async fn stage_exact(
        &self,
        body: ByteStream,
        len: u64,
        max_bytes: u64,
    ) -> Result<StagedBlob, BlobError> {
        if len > max_bytes {
            return Err(BlobError::TooLarge { limit: max_bytes });
        }
        if len <= upload::PART_SIZE as u64 || len > upload::SINGLE_PUT_MAX {
            return self.stage(body, max_bytes).await;
        }
        let inner = &*self.inner;
        let (temp, object_key) = inner.staging_place();
        let sha256 = upload::put_streamed(inner, &temp, body, len).await?;
        Ok(self.staged(temp, object_key, sha256, len))
    }

    async fn commit(&self, mut staged: StagedBlob) -> Result<(), BlobError> {
        let (sha256, size) = (staged.sha256.clone(), staged.size);
        let object_key = staged.object_key.take();
        let recorded = staged.recorded.take();
        let mut staging = staged.into_staging::<S3Staging>()?;
        if !Arc::ptr_eq(&staging.inner, &self.inner) {
            return Err(BlobError::Io(std::io::Error::other(
                "the blob was staged by another S3 store",
            )));
        }
        let inner = &*self.inner;
        let Some(temp) = staging.temp.clone() else {
            return Ok(());
        };
        if let (Some(ours), Some(PinnedObject::Keyed(kept))) = (&object_key, &recorded) {
            // The database recorded this object as the blob's bytes (kept where it was written),
            // or an earlier object of the same content, whose bytes the pin keeps: this one is
            // then a duplicate.
            staging.temp = None;
            if kept != ours {
                inner.delete_quietly(&temp).await;
            }
            inner.remember(&sha256, Some(kept.clone()));
            if let Some(upload) = staging.upload.take() {
                inner.delete_quietly(&upload).await;
            }
            return Ok(());
        }
        // The content-addressed layout: no keys recorded, a row from before them, or a commit
        // outside the ingest pipeline.
        let target = inner.blob_path(&sha256);
        // Identical content is stored once, by a head check rather than copy_if_not_exists: that
        // needs a server-specific header (R2) or AWS's conditional multipart copy (one request
        // copies at most 5 GiB), and a plain S3-compatible server has neither. The check is enough
        // because the key is the content's hash: two uploads racing past it copy the same bytes.
        // (The collector cannot delete the blob meanwhile: the caller pinned it.)
        match inner.s3.head(&target).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                match inner.copy(&temp, &target, size).await {
                    Ok(()) => {}
                    Err(BlobError::NotFound) => {
                        return Err(BlobError::Io(std::io::Error::other(format!(
                            "the staged object {temp} is gone ({})",
                            inner.place
                        ))))
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(inner.error(e)),
        }
        staging.temp = None;
        inner.delete_quietly(&temp).await;
        if let Some(upload) = staging.upload.take() {
            inner.delete_quietly(&upload).await;
        }
        Ok(())
    }

    async fn read(&self, sha256: &str, start: u64, len: u64) -> Result<ByteStream, BlobError> {
        let inner = &*self.inner;
        if !valid_sha256(sha256) {
            return Err(BlobError::NotFound);
        }
        let (path, cached) = inner.locate(sha256, false).await?;
        match self.read_at(&path, start, len).await {
            // A stale cache entry: the blob was stored again under another key.
            Err(BlobError::NotFound) if cached => {
                let (fresh, _) = inner.locate(sha256, true).await?;
                if fresh == path {
                    return Err(BlobError::NotFound);
                }
                self.read_at(&fresh, start, len).await
            }
            read => read,
        }
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        if !valid_sha256(sha256) {
            return Ok(());
        }
        let inner = &*self.inner;
        let (path, _) = inner.locate(sha256, true).await?;
        inner.forget(sha256);
        // The content-addressed object goes too when the blob has a key: one left by a commit
        // outside the ingest pipeline is no one's once the blob's row goes.
        let mut paths = vec![inner.blob_path(sha256)];
        if path != paths[0] {
            paths.push(path);
        }
        for path in paths {
            match inner.s3.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(inner.error(e)),
            }
        }
        Ok(())
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        if !valid_sha256(sha256) {
            return Ok(false);
        }
        let inner = &*self.inner;
        let (path, _) = inner.locate(sha256, true).await?;
        match inner.s3.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(inner.error(e)),
        }
    }

    fn use_object_keys(&self, life: Arc<dyn BlobLifecycleStore>) {
        // Set once, at start, before any upload: a second call (the same database) changes nothing.
        let _ = self.inner.keys.set(life);
    }

    /// Whether any blob object is stored, in either layout (recorded or not: a database that knows
    /// none of them is refused at start).
    async fn holds_blobs(&self) -> Result<bool, BlobError> {
        let inner = &*self.inner;
        for dir in ["blobs", "objects"] {
            let mut listed = inner.s3.list(Some(&inner.path(dir)));
            if let Some(first) = listed.next().await {
                first.map_err(|e| inner.error(e))?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// S3 cannot tell whether an upload is still working on a temporary object, so only age
    /// decides: never younger than `S3Config::temp_min_age` (a day by default), whatever the
    /// caller asks, and so also with `None`. Dropped stagings delete their own at once; this is for
    /// those of crashed processes. Objects under `objects/` that no blob row records count as
    /// temporaries too.
    async fn count_temporaries(&self) -> Result<usize, BlobError> {
        let inner = &*self.inner;
        let mut temporaries = inner.s3.list(Some(&inner.path("tmp")));
        let mut count = 0;
        while let Some(meta) = temporaries.next().await {
            meta.map_err(|e| inner.error(e))?;
            count += 1;
        }
        let mut unrecorded = self.inner.unrecorded_objects();
        while let Some(object) = unrecorded.next().await {
            object?;
            count += 1;
        }
        Ok(count)
    }

    /// Lists every object under `objects/` and looks each up in the database.
    fn sweeps_quickly(&self) -> bool {
        false
    }

    async fn remove_temporaries(&self, older_than: Option<Duration>) -> Result<usize, BlobError> {
        let inner = &*self.inner;
        let age = older_than.unwrap_or_default().max(inner.temp_min_age);
        let cutoff = hangar_core::now_ms().saturating_sub(age.as_millis() as i64);
        let mut old = Vec::new();
        let mut temporaries = inner.s3.list(Some(&inner.path("tmp")));
        while let Some(meta) = temporaries.next().await {
            let meta = meta.map_err(|e| inner.error(e))?;
            if meta.last_modified.timestamp_millis() <= cutoff {
                old.push(meta.location);
            }
        }
        drop(temporaries);
        let mut unrecorded = self.inner.unrecorded_objects();
        while let Some(object) = unrecorded.next().await {
            let (path, modified) = object?;
            if modified <= cutoff {
                old.push(path);
            }
        }
        drop(unrecorded);
        let mut removed = 0;
        for path in old {
            match inner.s3.delete(&path).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(inner.error(e)),
            }
        }
        Ok(removed)
    }

    async fn partial_write(
        &self,
        id: &str,
        offset: u64,
        body: ByteStream,
        max_bytes: u64,
        digest: Option<ChunkDigest>,
    ) -> Result<WrittenChunk, BlobError> {
        partial::write(&self.inner, id, offset, body, max_bytes, digest).await
    }

    async fn partial_len(&self, id: &str) -> Result<Option<u64>, BlobError> {
        partial::len(&self.inner, id).await
    }

    async fn partial_finish(&self, id: &str, len: u64) -> Result<StagedBlob, BlobError> {
        let body = partial::read(&self.inner, id, len).await?;
        self.stage(body, len).await
    }

    async fn partial_abort(&self, id: &str) -> Result<(), BlobError> {
        partial::abort(&self.inner, id).await
    }

    /// Writes and deletes a small temporary object: the store is reachable, the credentials are
    /// good, and they may write.
    async fn check(&self) -> Result<(), BlobError> {
        let inner = &*self.inner;
        let probe = inner.path(&format!(
            "tmp/check-{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let written = inner.s3.put(&probe, PutPayload::from_static(b"ok")).await;
        written.map_err(|e| inner.error(e))?;
        inner.s3.delete(&probe).await.map_err(|e| inner.error(e))
    }

    /// Blobs in both layouts: `blobs/<sha256>`, and the objects under `objects/` that a blob row
    /// records (named by that row's hash; unrecorded ones are temporaries).
    fn list(&self) -> BoxStream<'static, Result<StoredBlob, BlobError>> {
        let inner = self.inner.clone();
        let keyed = match inner.keys.get().cloned() {
            None => futures_util::stream::empty().boxed(),
            Some(life) => {
                let inner = inner.clone();
                inner
                    .s3
                    .list(Some(&inner.path("objects")))
                    .then(move |meta| {
                        let (inner, life) = (inner.clone(), life.clone());
                        async move {
                            let meta = match meta {
                                Ok(meta) => meta,
                                Err(e) => return Some(Err(inner.error(e))),
                            };
                            let key = inner.relative_key(&meta.location);
                            match life.blob_of_object(key).await {
                                Ok(Some(sha256)) => Some(Ok(StoredBlob {
                                    sha256,
                                    modified_utc: meta.last_modified.timestamp_millis(),
                                })),
                                Ok(None) => None,
                                Err(e) => Some(Err(inner.store_error(e))),
                            }
                        }
                    })
                    .filter_map(std::future::ready)
                    .boxed()
            }
        };
        let listed = inner.s3.list(Some(&inner.path("blobs")));
        listed
            .filter_map(move |meta| {
                let item = match meta {
                    Err(e) => Some(Err(inner.error(e))),
                    Ok(meta) => meta
                        .location
                        .filename()
                        .filter(|name| valid_sha256(name))
                        .map(|name| {
                            Ok(StoredBlob {
                                sha256: name.to_string(),
                                modified_utc: meta.last_modified.timestamp_millis(),
                            })
                        }),
                };
                std::future::ready(item)
            })
            .chain(keyed)
            .boxed()
    }

    /// A presigned PUT to `PREFIX/key`, signed with its `Content-Type` (which the client must send
    /// as given). The size cannot be signed this way (object_store signs no `Content-Length`): it
    /// is checked when the upload is taken.
    fn takes_direct_uploads(&self) -> bool {
        true
    }

    async fn presign_upload(
        &self,
        key: &str,
        _size: u64,
        content_type: &str,
        expires: Duration,
    ) -> Result<Option<PresignedRequest>, BlobError> {
        let inner = &*self.inner;
        let path = inner.upload_path(key)?;
        let value = HeaderValue::from_str(content_type).map_err(|_| {
            BlobError::Io(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("{content_type:?} cannot be sent as a Content-Type"),
            ))
        })?;
        let options = SignedUrlOptions::new()
            .with_signed_header(HeaderName::from_static("content-type"), value);
        let url = inner
            .s3
            .signed_url_opts(Method::PUT, &path, expires, &options)
            .await
            .map_err(|e| inner.error(e))?;
        Ok(Some(PresignedRequest {
            method: "PUT".to_string(),
            url: url.to_string(),
            headers: vec![("content-type".to_string(), content_type.to_string())],
        }))
    }

    /// A presigned GET that S3 answers with the given `Content-Type` and `Content-Disposition`
    /// (its `response-*` parameters). S3 cannot add the other headers Hangar sends with user
    /// content (`X-Content-Type-Options: nosniff`, the sandboxing CSP): the caller decides whether
    /// a redirect to S3 is acceptable for a file (for instance, only with `attachment`).
    async fn presign_download(
        &self,
        sha256: &str,
        content_type: &str,
        content_disposition: &str,
        expires: Duration,
    ) -> Result<Option<String>, BlobError> {
        if !valid_sha256(sha256) {
            return Err(BlobError::NotFound);
        }
        let inner = &*self.inner;
        let options = SignedUrlOptions::new().with_query([
            ("response-content-type", content_type),
            ("response-content-disposition", content_disposition),
        ]);
        let url = inner
            .s3
            .signed_url_opts(
                Method::GET,
                &inner.locate(sha256, true).await?.0,
                expires,
                &options,
            )
            .await
            .map_err(|e| inner.error(e))?;
        Ok(Some(url.to_string()))
    }

    async fn upload_size(&self, key: &str) -> Result<Option<u64>, BlobError> {
        let inner = &*self.inner;
        match inner.s3.head(&inner.upload_path(key)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(inner.error(e)),
        }
    }

    /// Copies the client's object to a temporary of ours first and hashes that copy: what is
    /// committed is exactly what was hashed, even if the client PUTs again to its URL meanwhile.
    async fn take_upload(&self, key: &str, size: u64) -> Result<TakenUpload, BlobError> {
        let inner = &*self.inner;
        let upload = inner.upload_path(key)?;
        let found = match inner.s3.head(&upload).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(TakenUpload::Missing),
            Err(e) => return Err(inner.error(e)),
        };
        if found != size {
            return Ok(TakenUpload::WrongSize(found));
        }
        // The copy goes where the blob's bytes will stay when keys are recorded (see `stage`).
        let object_key = inner.keys.get().map(|_| inner.new_object_key());
        let temp = match &object_key {
            Some(key) => inner.path(key),
            None => inner.new_temp_path(),
        };
        match inner.copy(&upload, &temp, size).await {
            Ok(()) => {}
            Err(BlobError::NotFound) => return Ok(TakenUpload::Missing),
            Err(e) => return Err(e),
        }
        // From here on the guard deletes the copy on every early return.
        let staging = S3Staging {
            inner: self.inner.clone(),
            temp: Some(temp.clone()),
            upload: Some(upload),
        };
        let got = inner.s3.get(&temp).await.map_err(|e| inner.error(e))?;
        let mut bytes = got.into_stream();
        let mut hasher = Sha256::new();
        let mut copied = 0u64;
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| inner.error(e))?;
            copied += chunk.len() as u64;
            hasher.update(&chunk);
        }
        if copied != size {
            return Ok(TakenUpload::WrongSize(copied)); // replaced between the head and the copy
        }
        let sha256 = hex::encode(hasher.finalize());
        let mut staged = StagedBlob::new(sha256, size, staging);
        staged.object_key = object_key;
        Ok(TakenUpload::Staged(staged))
    }

    async fn delete_upload(&self, key: &str) -> Result<(), BlobError> {
        let inner = &*self.inner;
        match inner.s3.delete(&inner.upload_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(inner.error(e)),
        }
    }
}
