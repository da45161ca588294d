//! The contract every blob backend keeps, checked against each of them with the same test.

use crate::{BlobError, BlobStore, ByteStream, LocalBlobStore, MemoryBlobStore};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use hangar_core::store::{
    BlobLifecycleStore, BlobRecord, Collect, PinnedObject, StoreResult, StoredTotals,
};

fn body(chunks: &[&'static [u8]]) -> ByteStream {
    let chunks: Vec<_> = chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
    stream::iter(chunks).boxed()
}

async fn read_all(store: &dyn BlobStore, sha: &str, start: u64, len: u64) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .read(sha, start, len)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

async fn listed(store: &dyn BlobStore) -> Vec<String> {
    let mut names: Vec<String> = store.list().map(|b| b.unwrap().sha256).collect().await;
    names.sort();
    names
}

/// What every backend must do; `other` is a backend of another kind, whose staged blobs this one
/// must refuse to commit.
pub(crate) async fn keeps_the_contract(store: &dyn BlobStore, other: &dyn BlobStore) {
    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    assert!(!store.holds_blobs().await.unwrap());
    assert!(listed(store).await.is_empty());

    // Staging hashes and counts; nothing is visible before the commit.
    let staged = store.stage(body(&[b"hel", b"lo"]), 10).await.unwrap();
    assert_eq!((staged.sha256.as_str(), staged.size), (HELLO, 5));
    assert!(!store.exists(HELLO).await.unwrap());
    assert!(listed(store).await.is_empty());
    store.commit(staged).await.unwrap();
    assert!(store.exists(HELLO).await.unwrap());
    assert_eq!(read_all(store, HELLO, 0, 5).await, b"hello");
    assert_eq!(read_all(store, HELLO, 1, 3).await, b"ell");
    // A length past the end reads to the end (how a whole blob is read without knowing its size).
    assert_eq!(read_all(store, HELLO, 0, u64::MAX).await, b"hello");
    assert_eq!(read_all(store, HELLO, 2, u64::MAX).await, b"llo");
    assert_eq!(read_all(store, HELLO, 3, u64::MAX - 3).await, b"lo");

    // Identical bytes are stored once; a dropped staging leaves nothing.
    let again = store.stage(body(&[b"hello"]), 10).await.unwrap();
    store.commit(again).await.unwrap();
    drop(store.stage(body(&[b"discarded"]), 100).await.unwrap());
    assert_eq!(listed(store).await, vec![HELLO.to_string()]);
    // A dropped staging's temporary goes (on object stores by a task of its own).
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = store.count_temporaries().await.unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0);
    assert!(store.holds_blobs().await.unwrap());

    // Limits and broken bodies.
    assert!(matches!(
        store.stage(body(&[b"12345", b"6"]), 5).await.unwrap_err(),
        BlobError::TooLarge { limit: 5 }
    ));
    let broken: ByteStream = stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(matches!(
        store.stage(broken, 100).await.unwrap_err(),
        BlobError::Interrupted(_)
    ));
    assert_eq!(listed(store).await, vec![HELLO.to_string()]);

    // Staged by another backend: refused, never half-committed.
    let foreign = other.stage(body(&[b"foreign"]), 100).await.unwrap();
    let foreign_sha = foreign.sha256.clone();
    assert!(store.commit(foreign).await.is_err());
    assert!(!store.exists(&foreign_sha).await.unwrap());

    // Deleting is idempotent; names that are no hash name nothing.
    store.delete(HELLO).await.unwrap();
    store.delete(HELLO).await.unwrap();
    assert!(!store.exists(HELLO).await.unwrap());
    assert!(matches!(
        store.read(HELLO, 0, 1).await.err(),
        Some(BlobError::NotFound)
    ));
    assert!(!store.exists("../../etc/passwd").await.unwrap());
    assert!(!store.holds_blobs().await.unwrap());
    store.check().await.unwrap();
}

/// Partial (tus) uploads: chunks appended at the offset the caller keeps, leftovers past it
/// replaced, the whole staged as one blob without losing the partial, and aborted.
pub(crate) async fn keeps_the_partial_contract(store: &dyn BlobStore) {
    use crate::ChunkDigest;
    use sha1::Digest as _;
    const HELLO_WORLD: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let id = "0123456789abcdef0123456789abcdef";
    assert_eq!(store.partial_len(id).await.unwrap(), None);
    // Nothing can be written past what the upload holds.
    assert!(store
        .partial_write(id, 3, body(&[b"x"]), 10, None)
        .await
        .is_err());
    let first = store
        .partial_write(id, 0, body(&[b"hel", b"lo"]), 100, Some(ChunkDigest::Sha1))
        .await
        .unwrap();
    assert_eq!(first.len, 5);
    assert_eq!(first.digest.unwrap(), sha1::Sha1::digest(b"hello").to_vec());
    assert_eq!(store.partial_len(id).await.unwrap(), Some(5));
    // A chunk the caller then refuses (its offset stays 5) is replaced by the next write there.
    let refused = store
        .partial_write(id, 5, body(&[b" wrong!!"]), 100, Some(ChunkDigest::Sha256))
        .await
        .unwrap();
    assert_eq!(refused.len, 8);
    // Limits and broken bodies fail the write.
    assert!(matches!(
        store
            .partial_write(id, 5, body(&[b"123456"]), 5, None)
            .await
            .unwrap_err(),
        BlobError::TooLarge { limit: 5 }
    ));
    let broken: ByteStream = stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(matches!(
        store
            .partial_write(id, 5, broken, 100, None)
            .await
            .unwrap_err(),
        BlobError::Interrupted(_)
    ));
    let second = store
        .partial_write(id, 5, body(&[b" wor", b"ld"]), 100, None)
        .await
        .unwrap();
    assert_eq!((second.len, second.digest), (6, None));
    // An empty chunk changes nothing.
    store
        .partial_write(id, 11, body(&[]), 100, None)
        .await
        .unwrap();
    assert_eq!(store.partial_len(id).await.unwrap(), Some(11));

    // Finishing stages the whole (hashed) and keeps the partial, so it can run again.
    let staged = store.partial_finish(id, 11).await.unwrap();
    assert_eq!((staged.sha256.as_str(), staged.size), (HELLO_WORLD, 11));
    drop(staged);
    let staged = store.partial_finish(id, 11).await.unwrap();
    store.commit(staged).await.unwrap();
    assert_eq!(read_all(store, HELLO_WORLD, 0, 11).await, b"hello world");
    assert!(store.partial_finish(id, 12).await.is_err());
    store.partial_abort(id).await.unwrap();
    store.partial_abort(id).await.unwrap();
    assert_eq!(store.partial_len(id).await.unwrap(), None);
    // The committed blob outlives its partial upload.
    assert_eq!(read_all(store, HELLO_WORLD, 0, 11).await, b"hello world");
    store.delete(HELLO_WORLD).await.unwrap();
    // Ids are hex names, never paths.
    assert!(store
        .partial_write("../../etc", 0, body(&[b"x"]), 10, None)
        .await
        .is_err());
}

/// Backends without presigned URLs: the bytes go through Hangar.
async fn has_no_presigned_urls(store: &dyn BlobStore) {
    let presigned = store
        .presign_upload("k", 5, "text/plain", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(presigned, None);
    assert_eq!(store.upload_size("k").await.unwrap(), None);
    assert!(matches!(
        store.take_upload("k", 5).await.unwrap(),
        crate::TakenUpload::Missing
    ));
}

#[tokio::test]
async fn the_local_disk_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path()).unwrap();
    keeps_the_contract(&store, &MemoryBlobStore::new()).await;
    has_no_presigned_urls(&store).await;
    keeps_the_partial_contract(&store).await;
}

#[tokio::test]
async fn memory_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let other = LocalBlobStore::open(dir.path()).unwrap();
    let store = MemoryBlobStore::new();
    keeps_the_contract(&store, &other).await;
    has_no_presigned_urls(&store).await;
    keeps_the_partial_contract(&store).await;
}

/// The blob rows of a database, as far as object keys go (`BlobStore::use_object_keys`): the hash
/// of each row and its key (None: a row from before keys, content-addressed).
#[derive(Default)]
pub(crate) struct KeyRows(std::sync::Mutex<std::collections::HashMap<String, Option<String>>>);

impl KeyRows {
    /// What the databases' records do for committed bytes, as far as keys go: a placed body's key
    /// is written on the blob's row when the record makes it; for content stored already, its copy
    /// is discarded (the job the record queues, `DiscardObject`, run at once).
    pub(crate) async fn record(&self, store: &dyn BlobStore, committed: &crate::Committed) {
        let Some(key) = committed.hold.placed() else {
            return;
        };
        let kept = self
            .rows()
            .entry(committed.sha256.clone())
            .or_insert_with(|| Some(key.to_string()))
            .clone();
        if kept.as_deref() != Some(key) {
            store.discard_object(key).await.unwrap();
        }
    }

    pub(crate) fn rows(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Option<String>>> {
        self.0.lock().unwrap() // no test panics while holding it
    }
}

#[async_trait::async_trait]
impl BlobLifecycleStore for KeyRows {
    async fn pin_blob(&self, _: &str, _: &str, _: i64) -> StoreResult<bool> {
        Ok(true)
    }
    async fn pin_blob_object(
        &self,
        _pin: &str,
        sha256: &str,
        _size: i64,
        _expires: i64,
        object_key: &str,
    ) -> StoreResult<PinnedObject> {
        let mut rows = self.rows();
        let key = rows
            .entry(sha256.to_string())
            .or_insert_with(|| Some(object_key.to_string()));
        Ok(match key {
            Some(key) => PinnedObject::Keyed(key.clone()),
            None => PinnedObject::Addressed,
        })
    }
    async fn blob_object_key(&self, sha256: &str) -> StoreResult<Option<String>> {
        Ok(self.rows().get(sha256).cloned().flatten())
    }
    async fn blob_of_object(&self, object_key: &str) -> StoreResult<Option<String>> {
        let rows = self.rows();
        let found = rows.iter().find(|(_, k)| k.as_deref() == Some(object_key));
        Ok(found.map(|(sha, _)| sha.clone()))
    }
    async fn release_pin(&self, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn expire_pins(&self, _: i64) -> StoreResult<u64> {
        Ok(0)
    }
    async fn begin_blob_deletion(&self, _: &str, _: i64) -> StoreResult<Collect> {
        Ok(Collect::Delete)
    }
    async fn finish_blob_deletion(&self, sha256: &str) -> StoreResult<()> {
        self.rows().remove(sha256);
        Ok(())
    }
    async fn blob_record(&self, sha256: &str) -> StoreResult<BlobRecord> {
        Ok(BlobRecord {
            refcount: self.rows().contains_key(sha256).then_some(1),
            pinned: false,
        })
    }
    async fn holds_data(&self) -> StoreResult<bool> {
        Ok(!self.rows().is_empty())
    }
    async fn referenced_blobs(&self, _: Option<&str>, _: i64) -> StoreResult<Vec<(String, i64)>> {
        Ok(Vec::new())
    }
    async fn blob_users(&self, _: &str) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }
    async fn collectable_blobs(&self, _: i64) -> StoreResult<Vec<String>> {
        Ok(Vec::new())
    }
    async fn stored_totals(&self) -> StoreResult<StoredTotals> {
        Ok(StoredTotals::default())
    }
}
