//! One ingest pipeline for every upload route (attachments, workspace storage in every mode, and
//! later tus and presigned uploads): the bytes are *received* (streamed to the backend's staging
//! while hashed, counted and capped), checked against a declared checksum by the caller, *committed*
//! under a pin (so that the collector keeps them), *recorded* by the caller's store transaction
//! (which drops the pin), and on failure *released* (the pin goes and the collector decides).

use crate::{BlobError, BlobStore, ByteStream, StagedBlob};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hangar_core::content_type::SNIFF_LEN;
use hangar_core::now_ms;
use hangar_core::store::{BlobLifecycleStore, PinnedObject, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a pin protects committed bytes that their upload has not recorded yet. Recording
/// follows the commit at once; this only bounds the bytes of an upload that crashed in between.
pub const PIN_TTL: Duration = Duration::from_secs(3600);
/// While the collector is deleting the same bytes, pinning waits this long between attempts…
const PIN_RETRY: Duration = Duration::from_millis(20);
/// …for at most this long (deleting one blob's bytes takes milliseconds).
const PIN_PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The metadata store failed or refused the record.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The same bytes were being deleted for longer than `PIN_PATIENCE`.
    #[error("the stored bytes are being deleted; try again")]
    Busy,
}

/// Bytes made durable under their hash and pinned, waiting to be recorded.
#[derive(Debug, Clone)]
pub struct Committed {
    pub sha256: String,
    pub size: u64,
    /// The pin to hand to the store's record (it drops it in the same transaction).
    pub pin: String,
}

/// The pipeline's two backends. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    pub blobs: Arc<dyn BlobStore>,
    pub life: Arc<dyn BlobLifecycleStore>,
}

impl Ingest {
    pub fn new(blobs: Arc<dyn BlobStore>, life: Arc<dyn BlobLifecycleStore>) -> Ingest {
        Ingest { blobs, life }
    }

    /// Streams `body` to the backend's staging, hashing and counting; fails as soon as more than
    /// `max_bytes` arrive. Memory stays flat whatever the size. The first bytes are kept on the
    /// staged blob (`StagedBlob::head`) so that the file's type can be told from them.
    pub async fn receive(&self, body: ByteStream, max_bytes: u64) -> Result<StagedBlob, BlobError> {
        self.receive_sized(body, None, max_bytes).await
    }

    /// `receive` for a body whose exact length is known before it arrives (`len`): the store may
    /// then write it in one piece (`BlobStore::stage_exact`).
    pub async fn receive_sized(
        &self,
        body: ByteStream,
        len: Option<u64>,
        max_bytes: u64,
    ) -> Result<StagedBlob, BlobError> {
        let (head, replay) = read_head(body).await;
        let mut staged = match len {
            Some(len) => self.blobs.stage_exact(replay, len, max_bytes).await?,
            None => self.blobs.stage(replay, max_bytes).await?,
        };
        staged.head = head;
        Ok(staged)
    }

    /// Pins the staged bytes' blob and makes them durable under their hash.
    pub async fn commit(&self, staged: StagedBlob) -> Result<Committed, IngestError> {
        let pin = hangar_core::ids::time_ordered_key();
        let committed = Committed {
            sha256: staged.sha256.clone(),
            size: staged.size,
            pin,
        };
        let mut staged = staged;
        // A store that packs small bodies places them first (the key it records must name bytes
        // on the disk), then pins them under that key below.
        if staged.object_key.is_none() && !self.blobs.place_keyed(&mut staged).await? {
            if let Some(copy) = self.blobs.stand_in(&staged) {
                return self.commit_while_pinning(staged, copy, committed).await;
            }
        }
        self.pin(&mut staged, &committed.pin).await?;
        if let Err(e) = self.blobs.commit(staged).await {
            self.release(std::slice::from_ref(&committed)).await;
            return Err(e.into());
        }
        Ok(committed)
    }

    /// `commit` of bytes held in memory, which the store writes while the pin is being taken so
    /// that the upload waits for the longer of the two, not for both. Until the pin holds, the
    /// collector may remove the bytes (same content, released earlier, past its grace period): the
    /// pin fails while it is at work, and once the pin holds, bytes found missing are written again
    /// from `copy`, safe from then on.
    async fn commit_while_pinning(
        &self,
        staged: StagedBlob,
        copy: StagedBlob,
        committed: Committed,
    ) -> Result<Committed, IngestError> {
        let sha256 = staged.sha256.clone();
        let (pinned, placed) = tokio::join!(
            self.pin_hash(&sha256, &committed.pin),
            self.blobs.commit(staged)
        );
        pinned?;
        let placed = match placed {
            Ok(()) => self.blobs.exists_after_placing(&sha256).await,
            Err(e) => Err(e),
        };
        let kept = match placed {
            Ok(true) => Ok(()),
            Ok(false) => self.blobs.commit(copy).await,
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            self.release(std::slice::from_ref(&committed)).await;
            return Err(e.into());
        }
        Ok(committed)
    }

    /// Pins `staged`'s blob under `pin` (recording its object, if it has one of its own).
    async fn pin(&self, staged: &mut StagedBlob, pin: &str) -> Result<(), IngestError> {
        let Some(key) = staged.object_key.clone() else {
            return self.pin_hash(&staged.sha256, pin).await;
        };
        let size = i64::try_from(staged.size).unwrap_or(i64::MAX);
        let (sha256, key) = (&staged.sha256, &key);
        let recorded = until_pinned(|expires| async move {
            let found = self
                .life
                .pin_blob_object(pin, sha256, size, expires, key)
                .await?;
            Ok((found != PinnedObject::Busy).then_some(found))
        })
        .await?;
        staged.recorded = Some(recorded);
        Ok(())
    }

    /// Pins the blob of `sha256` under `pin`.
    async fn pin_hash(&self, sha256: &str, pin: &str) -> Result<(), IngestError> {
        until_pinned(|expires| async move {
            let pinned = self.life.pin_blob(pin, sha256, expires).await?;
            Ok(pinned.then_some(()))
        })
        .await
    }

    /// Gives up committed bytes that will not be recorded. Best effort: a pin that cannot be
    /// released now expires, and the collector decides then.
    pub async fn release(&self, committed: &[Committed]) {
        for c in committed {
            if let Err(e) = self.life.release_pin(&c.pin).await {
                tracing::warn!(blob = %c.sha256, "cannot release an upload's pin (it will expire): {e}");
            }
        }
    }

    /// Commits `staged` and records it with `record` (given the pin), releasing the bytes when the
    /// record fails.
    pub async fn store<T, F, Fut>(&self, staged: StagedBlob, record: F) -> Result<T, IngestError>
    where
        F: FnOnce(Committed) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let committed = self.commit(staged).await?;
        match record(committed.clone()).await {
            Ok(recorded) => Ok(recorded),
            Err(e) => {
                self.release(std::slice::from_ref(&committed)).await;
                Err(e.into())
            }
        }
    }
}

/// Runs `attempt` (given the pin's expiry) until it pins (answers Some), waiting while the
/// collector deletes the same bytes, for at most `PIN_PATIENCE`.
async fn until_pinned<T, F, Fut>(mut attempt: F) -> Result<T, IngestError>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = Result<Option<T>, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + PIN_PATIENCE;
    loop {
        let expires = now_ms() + PIN_TTL.as_millis() as i64;
        if let Some(pinned) = attempt(expires).await? {
            return Ok(pinned);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(IngestError::Busy);
        }
        tokio::time::sleep(PIN_RETRY).await;
    }
}

/// The first `SNIFF_LEN` bytes of `body` (fewer when it is shorter or fails early), and a stream of
/// all of its bytes, those included. Only the chunks read ahead wait in memory: at most `SNIFF_LEN`
/// bytes and one chunk.
async fn read_head(mut body: ByteStream) -> (Bytes, ByteStream) {
    let mut head = BytesMut::new();
    let mut early = Vec::new();
    // A stream that ended (or failed) must not be polled again.
    let mut more = true;
    while more && head.len() < SNIFF_LEN {
        match body.next().await {
            Some(Ok(chunk)) => {
                let take = chunk.len().min(SNIFF_LEN - head.len());
                head.extend_from_slice(&chunk[..take]);
                early.push(Ok(chunk));
            }
            Some(Err(e)) => {
                early.push(Err(e));
                more = false;
            }
            None => more = false,
        }
    }
    let early = futures_util::stream::iter(early);
    let replay = if more {
        early.chain(body).boxed()
    } else {
        early.boxed()
    };
    (head.freeze(), replay)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(stream: ByteStream) -> (Vec<u8>, usize) {
        let results: Vec<_> = stream.collect().await;
        let errors = results.iter().filter(|r| r.is_err()).count();
        let bytes = results.into_iter().flatten().flatten().collect();
        (bytes, errors)
    }

    fn chunks(parts: Vec<Result<Vec<u8>, std::io::Error>>) -> ByteStream {
        futures_util::stream::iter(parts.into_iter().map(|p| p.map(Bytes::from))).boxed()
    }

    #[tokio::test]
    async fn the_head_is_read_ahead_and_every_byte_still_streams() {
        let big: Vec<u8> = (0..3 * SNIFF_LEN).map(|i| i as u8).collect();
        let parts = big.chunks(1000).map(|c| Ok(c.to_vec())).collect();
        let (head, replay) = read_head(chunks(parts)).await;
        assert_eq!(&head[..], &big[..SNIFF_LEN]);
        assert_eq!(all(replay).await, (big, 0));

        // A short body, in one chunk: all of it is the head, and the stream ends once.
        let (head, replay) = read_head(chunks(vec![Ok(b"PNG".to_vec())])).await;
        assert_eq!(&head[..], b"PNG");
        assert_eq!(all(replay).await, (b"PNG".to_vec(), 0));

        // An empty body, and one that fails: the failure still reaches staging.
        let (head, replay) = read_head(chunks(vec![])).await;
        assert!(head.is_empty());
        assert_eq!(all(replay).await, (vec![], 0));
        let broken = vec![Ok(b"ab".to_vec()), Err(std::io::Error::other("gone"))];
        let (head, replay) = read_head(chunks(broken)).await;
        assert_eq!(&head[..], b"ab");
        assert_eq!(all(replay).await, (b"ab".to_vec(), 1));
    }
}
