//! Blobs in S3-compatible object storage, through object_store: `PREFIX/blobs/<sha256>`, staged under
//! `PREFIX/tmp/<random>`; the clients of two-stage uploads PUT to keys of their own by presigned URL.

mod config;
mod partial;
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
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::HttpErrorKind;
use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use sha2::{Digest, Sha256};
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

/// Blobs in one bucket under one prefix. Cheap to share: every operation is a request.
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    s3: AmazonS3,
    /// `PREFIX/` or empty.
    prefix: String,
    /// `s3://BUCKET/PREFIX at ENDPOINT`, for messages.
    place: String,
    temp_min_age: Duration,
    copy_limit: u64,
}

impl S3BlobStore {
    /// A store as `config` says. Sends no request: [`BlobStore::check`] tells whether it works.
    pub fn new(config: &S3Config) -> Result<S3BlobStore, S3ConfigError> {
        let http = config
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        // No overall time-out: a download streams for as long as its client reads. A stalled
        // connection still fails, by the connect and read time-outs.
        let client = ClientOptions::new()
            .with_allow_http(http)
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
        let endpoint = config.endpoint.as_deref().unwrap_or("AWS");
        Ok(S3BlobStore {
            inner: Arc::new(Inner {
                s3,
                prefix: match config.prefix.is_empty() {
                    true => String::new(),
                    false => format!("{}/", config.prefix),
                },
                place: format!("{} at {endpoint}", config.location()),
                temp_min_age: config.temp_min_age,
                copy_limit: config.copy_limit,
            }),
        })
    }

    /// A store for `storage_url` (`s3://BUCKET/PREFIX`) configured by the environment
    /// (`HANGAR_S3_ENDPOINT`, `HANGAR_S3_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub fn from_env(storage_url: &str) -> Result<S3BlobStore, S3ConfigError> {
        S3BlobStore::new(&S3Config::from_env(storage_url)?)
    }
}

impl Inner {
    fn path(&self, relative: &str) -> Path {
        Path::from(format!("{}{relative}", self.prefix))
    }

    fn blob_path(&self, sha256: &str) -> Path {
        self.path(&format!("blobs/{sha256}"))
    }

    fn new_temp_path(&self) -> Path {
        self.path(&format!("tmp/{}", hex::encode(rand::random::<[u8; 16]>())))
    }

    /// Where a client's presigned upload to `key` lands: a key of its own, never under `blobs/`
    /// (content-addressed, ours alone) or `tmp/`.
    fn upload_path(&self, key: &str) -> Result<Path, BlobError> {
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
        let first = key.split('/').next().unwrap_or_default();
        if key.len() > 512 || !key.split('/').all(segment_ok) || matches!(first, "blobs" | "tmp") {
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

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn stage(&self, mut body: ByteStream, max_bytes: u64) -> Result<StagedBlob, BlobError> {
        let inner = &*self.inner;
        let temp = inner.new_temp_path();
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
        let staging = S3Staging {
            inner: self.inner.clone(),
            temp: Some(temp),
            upload: None,
        };
        Ok(StagedBlob::new(
            hex::encode(hasher.finalize()),
            size,
            staging,
        ))
    }

    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError> {
        let (sha256, size) = (staged.sha256.clone(), staged.size);
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
        let path = inner.blob_path(sha256);
        if len == 0 {
            // S3 has no empty range: only say whether the blob is there.
            inner.s3.head(&path).await.map_err(|e| inner.error(e))?;
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
            .get_opts(&path, options)
            .await
            .map_err(|e| inner.error(e))?;
        Ok(got.into_stream().map_err(std::io::Error::from).boxed())
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        if !valid_sha256(sha256) {
            return Ok(());
        }
        let inner = &*self.inner;
        match inner.s3.delete(&inner.blob_path(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(inner.error(e)),
        }
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        if !valid_sha256(sha256) {
            return Ok(false);
        }
        let inner = &*self.inner;
        match inner.s3.head(&inner.blob_path(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(inner.error(e)),
        }
    }

    /// S3 cannot tell whether an upload is still working on a temporary object, so only age
    /// decides: never younger than `S3Config::temp_min_age` (a day by default), whatever the
    /// caller asks, and so also with `None`. Dropped stagings delete their own at once; this is for
    /// those of crashed processes.
    async fn count_temporaries(&self) -> Result<usize, BlobError> {
        let inner = &*self.inner;
        let mut temporaries = inner.s3.list(Some(&inner.path("tmp")));
        let mut count = 0;
        while let Some(meta) = temporaries.next().await {
            meta.map_err(|e| inner.error(e))?;
            count += 1;
        }
        Ok(count)
    }

    async fn remove_temporaries(&self, older_than: Option<Duration>) -> Result<usize, BlobError> {
        let inner = &*self.inner;
        let age = older_than.unwrap_or_default().max(inner.temp_min_age);
        let cutoff = hangar_core::now_ms().saturating_sub(age.as_millis() as i64);
        let mut temporaries = inner.s3.list(Some(&inner.path("tmp")));
        let mut removed = 0;
        while let Some(meta) = temporaries.next().await {
            let meta = meta.map_err(|e| inner.error(e))?;
            if meta.last_modified.timestamp_millis() > cutoff {
                continue;
            }
            match inner.s3.delete(&meta.location).await {
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

    fn list(&self) -> BoxStream<'static, Result<StoredBlob, BlobError>> {
        let inner = self.inner.clone();
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
            .signed_url_opts(Method::GET, &inner.blob_path(sha256), expires, &options)
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
        let temp = inner.new_temp_path();
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
        Ok(TakenUpload::Staged(StagedBlob::new(sha256, size, staging)))
    }

    async fn delete_upload(&self, key: &str) -> Result<(), BlobError> {
        let inner = &*self.inner;
        match inner.s3.delete(&inner.upload_path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(inner.error(e)),
        }
    }
}
