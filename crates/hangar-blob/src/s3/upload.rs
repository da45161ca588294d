//! Writing one object from a stream with bounded memory: one PUT for a short body, a multipart
//! upload with back-pressure for a long one, and one streamed PUT for a long body whose length is
//! known.

use super::Inner;
use crate::{BlobError, ByteStream};
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use std::io::ErrorKind;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinSet;

/// Size of the first parts of a multipart upload (S3 wants at least 5 MiB but for the last one).
pub(super) const PART_SIZE: usize = 8 << 20;
/// The largest object S3 takes in one PUT.
pub(super) const SINGLE_PUT_MAX: u64 = 5 << 30;
/// How long the URL of a streamed PUT stays valid: S3 checks it when the request begins, so this
/// bounds the wait for a connection, not the upload.
const PUT_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// What a streamed PUT's body saw pass: its hash, its size, and why it broke off if it did.
#[derive(Default)]
struct Tally {
    hasher: Sha256,
    size: u64,
    broken: Option<std::io::Error>,
}

/// Streams `body`, exactly `len` bytes, into the object at `path` in one PUT, hashing it on the way;
/// answers its SHA-256 (hex) once the store has taken it. The URL is presigned (the payload is not
/// part of the signature, as in every presigned PUT), so each byte is hashed once, for its content
/// address. Nothing is left behind when it fails: S3 creates an object only from a whole PUT.
pub(super) async fn put_streamed(
    inner: &Inner,
    path: &Path,
    body: ByteStream,
    len: u64,
) -> Result<String, BlobError> {
    let url = inner
        .s3
        .signed_url(Method::PUT, path, PUT_URL_LIFETIME)
        .await
        .map_err(|e| inner.error(e))?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let counted = futures_util::stream::unfold(
        (Some(body), tally.clone()),
        move |(body, seen)| async move {
            let mut body = body?;
            let item = tally_next(&mut body, &seen, len).await.transpose()?;
            // After a failure the stream ends (reqwest has stopped reading by then anyway).
            let body = item.is_ok().then_some(body);
            Some((item, (body, seen)))
        },
    );
    let sent = inner
        .http
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(counted))
        .send()
        .await;
    let Tally {
        hasher,
        size,
        broken,
    } = std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner));
    // The sender's failure first: the PUT failed because the body did.
    if let Some(e) = broken {
        return Err(BlobError::Interrupted(e));
    }
    if size != len {
        return Err(BlobError::Interrupted(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            format!("the body ended after {size} of its {len} bytes"),
        )));
    }
    let answer = sent.map_err(|e| put_failed(inner, path, &e))?;
    let status = answer.status();
    if !status.is_success() {
        let text = answer.text().await.unwrap_or_default();
        let kind = match status.as_u16() {
            401 | 403 => ErrorKind::PermissionDenied,
            // Busy or failing for now, as object_store's retries would have seen it.
            429 | 500..=599 => ErrorKind::ConnectionAborted,
            _ => ErrorKind::Other,
        };
        let excerpt: String = text.chars().take(500).collect();
        return Err(BlobError::Io(std::io::Error::new(
            kind,
            format!(
                "the object storage refused the PUT of {path} ({}): {status} {excerpt}",
                inner.place
            ),
        )));
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The next chunk of a streamed PUT's body, counted and hashed into `seen`; None at its end. The
/// chunk that completes `len` is handed on only once the body has ended (for a request body, at
/// once), so that S3 never receives a whole object from a body that runs past its length. A failure
/// is kept in `seen` and told to the sender as a copy.
async fn tally_next(
    body: &mut ByteStream,
    seen: &Mutex<Tally>,
    len: u64,
) -> std::io::Result<Option<Bytes>> {
    let told = |failed: std::io::Error| {
        let copy = std::io::Error::new(failed.kind(), failed.to_string());
        seen.lock().unwrap_or_else(PoisonError::into_inner).broken = Some(failed);
        copy
    };
    let runs_past = || {
        std::io::Error::new(
            ErrorKind::InvalidData,
            format!("the body runs past its announced {len} bytes"),
        )
    };
    let chunk = match body.next().await {
        None => return Ok(None),
        Some(Err(e)) => return Err(told(e)),
        Some(Ok(chunk)) => chunk,
    };
    let size = {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.size + chunk.len() as u64 > len {
            drop(seen);
            return Err(told(runs_past()));
        }
        seen.size += chunk.len() as u64;
        seen.hasher.update(&chunk);
        seen.size
    };
    if size == len {
        loop {
            match body.next().await {
                None => break,
                Some(Ok(empty)) if empty.is_empty() => continue,
                Some(Ok(_)) => return Err(told(runs_past())),
                Some(Err(e)) => return Err(told(e)),
            }
        }
    }
    Ok(Some(chunk))
}

/// A streamed PUT that got no answer, as a blob error of the kind `Inner::error` gives.
fn put_failed(inner: &Inner, path: &Path, e: &reqwest::Error) -> BlobError {
    let (kind, what) = if e.is_connect() {
        (
            ErrorKind::ConnectionRefused,
            "cannot connect to the object storage",
        )
    } else if e.is_timeout() {
        (
            ErrorKind::TimedOut,
            "the object storage did not answer in time",
        )
    } else {
        (
            ErrorKind::ConnectionAborted,
            "the connection to the object storage failed",
        )
    };
    BlobError::Io(std::io::Error::new(
        kind,
        format!("{what} during the PUT of {path} ({}): {e}", inner.place),
    ))
}
/// Parts being sent while the next one fills: an upload holds at most `(1 + this)` parts.
const PARTS_IN_FLIGHT: usize = 1;

/// The size of part `n` (from 0). S3 allows 10,000 parts of at most 5 GiB: parts double every
/// thousand, so the first 8 GiB go in 8 MiB parts and the 10,000 parts reach past S3's 5 TiB
/// objects. Memory grows only for the uploads that are that large, not with the cap.
pub(super) fn part_size(n: usize) -> usize {
    (PART_SIZE << (n / 1000).min(9)).min(5 << 30)
}

/// An object being written: bytes are gathered until a part is full; if the body ends first, they
/// go in one PUT; otherwise each full part is sent (on a task of its own) while the next fills, and
/// the body waits while `PARTS_IN_FLIGHT` parts are on their way.
pub(super) struct Upload<'a> {
    inner: &'a Inner,
    path: Path,
    buffer: Vec<Bytes>,
    buffered: usize,
    multipart: Option<Box<dyn MultipartUpload>>,
    parts: usize,
    sending: JoinSet<object_store::Result<()>>,
}

impl<'a> Upload<'a> {
    pub(super) fn new(inner: &'a Inner, path: Path) -> Upload<'a> {
        Upload {
            inner,
            path,
            buffer: Vec::new(),
            buffered: 0,
            multipart: None,
            parts: 0,
            sending: JoinSet::new(),
        }
    }

    pub(super) async fn push(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.buffered += chunk.len();
        self.buffer.push(chunk);
        if self.buffered >= part_size(self.parts) {
            self.send_part().await?;
        }
        Ok(())
    }

    /// Sends what is buffered as the next part, starting the multipart upload with the first.
    async fn send_part(&mut self) -> Result<(), BlobError> {
        let multipart = match &mut self.multipart {
            Some(multipart) => multipart,
            None => {
                let started = self.inner.s3.put_multipart(&self.path).await;
                self.multipart
                    .insert(started.map_err(|e| self.inner.error(e))?)
            }
        };
        while self.sending.len() >= PARTS_IN_FLIGHT {
            self.sending
                .join_next()
                .await
                .expect("a part is being sent")
                .map_err(|e| BlobError::Io(std::io::Error::other(e)))?
                .map_err(|e| self.inner.error(e))?;
        }
        let part = PutPayload::from_iter(std::mem::take(&mut self.buffer));
        self.buffered = 0;
        // Parts are numbered in the order of these calls, whatever order they finish in.
        self.sending.spawn(multipart.put_part(part));
        self.parts += 1;
        Ok(())
    }

    pub(super) async fn finish(mut self) -> Result<(), BlobError> {
        if self.multipart.is_none() {
            let payload = PutPayload::from_iter(std::mem::take(&mut self.buffer));
            let put = self.inner.s3.put(&self.path, payload).await;
            return put.map(drop).map_err(|e| self.inner.error(e));
        }
        let sent = self.send_rest().await;
        match sent {
            Ok(()) => Ok(()),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn send_rest(&mut self) -> Result<(), BlobError> {
        if self.buffered > 0 {
            self.send_part().await?; // the last part may be small
        }
        while let Some(sent) = self.sending.join_next().await {
            sent.map_err(|e| BlobError::Io(std::io::Error::other(e)))?
                .map_err(|e| self.inner.error(e))?;
        }
        let multipart = self.multipart.as_mut().expect("the upload was started");
        let completed = multipart.complete().await;
        completed.map(drop).map_err(|e| self.inner.error(e))
    }

    /// Gives up: parts on their way are stopped and a multipart upload is aborted (its parts
    /// deleted); a single PUT never started.
    pub(super) async fn abort(mut self) {
        self.sending.shutdown().await;
        if let Some(mut multipart) = self.multipart.take() {
            if let Err(e) = multipart.abort().await {
                // Parts of an upload that was neither completed nor aborted are invisible to
                // listings: the bucket's lifecycle rule for incomplete multipart uploads ends them.
                tracing::warn!(object = %self.path, "cannot abort a multipart upload: {e}");
            }
        }
    }
}
