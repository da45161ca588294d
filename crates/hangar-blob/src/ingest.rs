//! One ingest pipeline for every upload route (attachments, workspace storage in every mode, tus
//! and presigned uploads, previews): the bytes are *received* (streamed to the backend's staging
//! while hashed, counted and capped), checked against a declared checksum by the caller,
//! *committed* under a hold that keeps the collector away (a pin, or for a body placed under a key
//! of its own, that key: `BlobHold`), *recorded* by the caller's store transaction (which drops
//! the pin or writes the key), and on failure *released* (the pin goes and the collector decides).

use crate::{BlobError, BlobStore, ByteStream, StagedBlob};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hangar_core::content_type::SNIFF_LEN;
use hangar_core::model::BlobHold;
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

/// Bytes made durable and held, waiting to be recorded.
#[derive(Debug, Clone)]
pub struct Committed {
    pub sha256: String,
    pub size: u64,
    /// The hold to hand to the store's record (it drops the pin, or records the key, in the same
    /// transaction).
    pub hold: BlobHold,
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

    /// Makes the staged bytes durable and holds them for their record: pinned, or placed under a
    /// key of their own.
    pub async fn commit(&self, mut staged: StagedBlob) -> Result<Committed, IngestError> {
        // A store that packs small bodies places them under a key no other upload gets: nothing
        // can collect them before the record writes that key (or, for content stored already,
        // queues the discard of this copy), so they need no pin, which saves the upload a round
        // trip through the database's writer.
        if staged.object_key.is_none() && self.blobs.place_keyed(&mut staged).await? {
            if let Some(key) = staged.object_key.take() {
                return Ok(Committed {
                    sha256: staged.sha256.clone(),
                    size: staged.size,
                    hold: BlobHold::Placed(key),
                });
            }
        }
        let pin = hangar_core::ids::time_ordered_key();
        let committed = Committed {
            sha256: staged.sha256.clone(),
            size: staged.size,
            hold: BlobHold::Pin(pin.clone()),
        };
        if staged.object_key.is_none() {
            if let Some(copy) = self.blobs.stand_in(&staged) {
                return self
                    .commit_while_pinning(staged, copy, committed, &pin)
                    .await;
            }
        }
        self.pin(&mut staged, &pin).await?;
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
        pin: &str,
    ) -> Result<Committed, IngestError> {
        let sha256 = staged.sha256.clone();
        let (pinned, placed) = tokio::join!(self.pin_hash(&sha256, pin), self.blobs.commit(staged));
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

    /// Gives up committed bytes whose record was not made: pins are released (the collector
    /// decides), placed copies discarded. Best effort: a pin that cannot be released now expires,
    /// and a copy left behind goes with the sweep of unrecorded objects.
    pub async fn release(&self, committed: &[Committed]) {
        for c in committed {
            let released = match &c.hold {
                BlobHold::Pin(pin) => self.life.release_pin(pin).await.map_err(|e| e.to_string()),
                BlobHold::Placed(key) => self
                    .blobs
                    .discard_object(key)
                    .await
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = released {
                tracing::warn!(blob = %c.sha256, "cannot give up an upload's bytes (they go later): {e}");
            }
        }
    }

    /// `release` after a record failed with `failure`. A failure that leaves it unknown whether
    /// the record was made (the database lost mid-commit) keeps placed copies: the sweep of
    /// unrecorded objects decides about them once no record can still be on its way.
    pub async fn release_after(&self, committed: &[Committed], failure: &StoreError) {
        if not_made(failure) {
            return self.release(committed).await;
        }
        let pinned: Vec<Committed> = committed
            .iter()
            .filter(|c| c.hold.pin().is_some())
            .cloned()
            .collect();
        self.release(&pinned).await
    }

    /// Runs `attempt`, the record of `committed`, again while it is refused because a blob of
    /// placed bytes is being deleted right now (a pin waits for that before the bytes are written;
    /// placed bytes meet it at their record), for at most `PIN_PATIENCE`.
    pub async fn record<T, F, Fut>(
        &self,
        committed: &[Committed],
        attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = attempt;
        let placed = committed.iter().any(|c| c.hold.placed().is_some());
        let deadline = tokio::time::Instant::now() + PIN_PATIENCE;
        loop {
            match attempt().await {
                Err(e) if placed && e.is_blob_busy() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(PIN_RETRY).await
                }
                recorded => return recorded,
            }
        }
    }

    /// Commits `staged` and records it with `record` (given the committed bytes; called again
    /// while their blob is being deleted, see `Ingest::record`), releasing the bytes when the
    /// record fails.
    pub async fn store<T, F, Fut>(&self, staged: StagedBlob, record: F) -> Result<T, IngestError>
    where
        F: FnMut(Committed) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut record = record;
        let committed = self.commit(staged).await?;
        let held = std::slice::from_ref(&committed);
        match self.record(held, || record(committed.clone())).await {
            Ok(recorded) => Ok(recorded),
            Err(e) => {
                self.release_after(held, &e).await;
                Err(e.into())
            }
        }
    }
}

/// Whether a record that failed so was surely not made: refused by a rule of the data (the
/// transaction rolled back by the store), as opposed to a database that failed or went away.
fn not_made(failure: &StoreError) -> bool {
    matches!(
        failure,
        StoreError::Conflict(_) | StoreError::NotFound(_) | StoreError::Refused { .. }
    )
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
