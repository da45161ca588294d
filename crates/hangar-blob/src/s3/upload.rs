//! Writing one object from a stream with bounded memory: one PUT for a short body, a multipart
//! upload with back-pressure for a long one.

use super::Inner;
use crate::BlobError;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tokio::task::JoinSet;

/// Size of the first parts of a multipart upload (S3 wants at least 5 MiB but for the last one).
pub(super) const PART_SIZE: usize = 8 << 20;
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
