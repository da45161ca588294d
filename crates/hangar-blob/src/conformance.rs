//! The contract every blob backend keeps, checked against each of them with the same test.

use crate::{BlobError, BlobStore, ByteStream, LocalBlobStore, MemoryBlobStore};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

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
}

#[tokio::test]
async fn memory_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let other = LocalBlobStore::open(dir.path()).unwrap();
    let store = MemoryBlobStore::new();
    keeps_the_contract(&store, &other).await;
    has_no_presigned_urls(&store).await;
}
