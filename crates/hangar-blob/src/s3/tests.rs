//! The S3 store against a real S3-compatible server (s3s-fs, which checks every signature).

use super::test_server::{self, config, store};
use super::{S3BlobStore, S3Config};
use crate::conformance::KeyRows;
use crate::{BlobError, BlobStore, ByteStream, Ingest, MemoryBlobStore, TakenUpload};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// Tests that move tens of MiB run one at a time, so that the memory one of them measures is its own.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Chunk `k` of a deterministic pseudo-random body (64 KiB each), different for every `seed`.
fn chunk(seed: u64, k: u64) -> Bytes {
    let mut x = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D;
    let mut out = Vec::with_capacity(64 * 1024);
    while out.len() < 64 * 1024 {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    Bytes::from(out)
}

/// A body of `len` bytes (a multiple of 64 KiB) generated as it is read: nothing held in memory.
fn generated(seed: u64, len: u64) -> ByteStream {
    stream::iter(0..len / (64 * 1024))
        .map(move |k| Ok(chunk(seed, k)))
        .boxed()
}

/// Bytes `start..start + len` of the generated body.
fn generated_range(seed: u64, start: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for k in start / (64 * 1024)..=(start + len - 1) / (64 * 1024) {
        out.extend_from_slice(&chunk(seed, k));
    }
    let skip = (start % (64 * 1024)) as usize;
    out[skip..skip + len as usize].to_vec()
}

fn generated_sha256(seed: u64, len: u64) -> String {
    let mut hasher = Sha256::new();
    for k in 0..len / (64 * 1024) {
        hasher.update(chunk(seed, k));
    }
    hex::encode(hasher.finalize())
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

/// Every object under the store's prefix in `dir` (`tmp`, `blobs`, `uploads`).
async fn objects(store: &S3BlobStore, dir: &str) -> Vec<String> {
    let inner = &store.inner;
    let listed: Vec<_> = inner
        .s3
        .list(Some(&inner.path(dir)))
        .try_collect()
        .await
        .unwrap();
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

/// Waits (up to 5 s) for background deletions to leave `dir` empty.
async fn until_empty(store: &S3BlobStore, dir: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = objects(store, dir).await;
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still under {dir}/: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The peak resident memory of this process so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn s3_keeps_the_contract() {
    let store = store();
    crate::conformance::keeps_the_contract(&store, &MemoryBlobStore::new()).await;
    crate::conformance::keeps_the_partial_contract(&store).await;
    // Objects of its own that another S3 store (same bucket, another prefix) must not commit.
    let other = test_server::store();
    let staged = other
        .stage(stream::iter([Ok(Bytes::from_static(b"x"))]).boxed(), 10)
        .await;
    assert!(store.commit(staged.unwrap()).await.is_err());
    // Listed blobs carry their write time.
    let staged = store.stage(generated(1, 64 * 1024), MIB).await.unwrap();
    store.commit(staged).await.unwrap();
    let listed: Vec<_> = store.list().try_collect().await.unwrap();
    let age = hangar_core::now_ms() - listed[0].modified_utc;
    assert!((-60_000..60_000).contains(&age), "{listed:?}");
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_large_upload_streams_in_parts_and_reads_back_byte_exact() {
    let _heavy = HEAVY.lock().await;
    let store = store();
    let len = 40 * MIB;
    let before = peak_rss();
    let started = Instant::now();
    let staged = store.stage(generated(40, len), 64 * MIB).await.unwrap();
    let staged_in = started.elapsed();
    let peak = peak_rss().saturating_sub(before);
    assert_eq!(staged.size, len);
    assert_eq!(staged.sha256, generated_sha256(40, len));
    // Five parts of 8 MiB: a multipart upload's ETag ends with its number of parts.
    let temp = objects(&store, "tmp").await;
    let meta = store.inner.s3.head(&temp[0].as_str().into()).await.unwrap();
    assert!(
        meta.e_tag.as_deref().unwrap_or_default().ends_with("-5\""),
        "{meta:?}"
    );
    let sha = staged.sha256.clone();
    let started = Instant::now();
    store.commit(staged).await.unwrap();
    let committed_in = started.elapsed();
    eprintln!(
        "40 MiB: staged in {staged_in:?}, committed in {committed_in:?}, \
         peak resident memory grew by {} MiB",
        peak / MIB
    );
    // Buffering the body would take more than 40 MiB: two 8 MiB parts and the client's buffers
    // stay far below.
    assert!(peak < 32 * MIB, "peak memory grew by {peak} bytes");
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());

    // Ranges across part boundaries, at both ends, and the whole, byte-exact.
    for (start, n) in [
        (0, 10),
        (8 * MIB - 5, 10),
        (16 * MIB - 1, 2 * MIB + 2),
        (len - 7, 7),
        (len - 3, 100),
    ] {
        let want = generated_range(40, start, n.min(len - start));
        assert!(
            read_all(&store, &sha, start, n).await == want,
            "{start}+{n}"
        );
    }
    let mut hasher = Sha256::new();
    let mut whole = store.read(&sha, 0, len).await.unwrap();
    let mut read = 0;
    let mut sizes = Vec::new();
    while let Some(chunk) = whole.next().await {
        let chunk = chunk.unwrap();
        read += chunk.len() as u64;
        sizes.push(chunk.len());
        hasher.update(&chunk);
    }
    assert_eq!((read, hex::encode(hasher.finalize())), (len, sha.clone()));
    // Read ahead in large chunks (`read_ahead`), not in the pieces the server sent: only the last
    // may be smaller.
    sizes.pop();
    assert!(
        sizes.iter().all(|&n| n >= super::read_ahead::CHUNK),
        "{sizes:?}"
    );
    assert_eq!(read_all(&store, &sha, 5, 0).await, b"");
}

#[tokio::test]
async fn a_cap_exceeded_or_a_body_broken_mid_stream_leaves_nothing() {
    let _heavy = HEAVY.lock().await;
    let store = store();
    // The multipart upload has begun (more than a part) when the cap is passed.
    let err = store
        .stage(generated(2, 20 * MIB), 12 * MIB)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { limit } if limit == 12 * MIB),
        "{err}"
    );
    let broken = generated(3, 10 * MIB)
        .chain(stream::iter([Err(std::io::Error::other(
            "client went away",
        ))]))
        .boxed();
    let err = store.stage(broken, 64 * MIB).await.unwrap_err();
    assert!(matches!(err, BlobError::Interrupted(_)), "{err}");
    assert_eq!(objects(&store, "blobs").await, Vec::<String>::new());
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());
    assert!(!store.holds_blobs().await.unwrap());
}

#[tokio::test]
async fn a_body_of_known_length_goes_in_one_put_and_reads_back_byte_exact() {
    let _heavy = HEAVY.lock().await;
    let store = store();
    let len = 24 * MIB;
    let before = peak_rss();
    let staged = store
        .stage_exact(generated(41, len), len, 64 * MIB)
        .await
        .unwrap();
    let peak = peak_rss().saturating_sub(before);
    assert_eq!(
        (staged.size, staged.sha256.clone()),
        (len, generated_sha256(41, len))
    );
    // One PUT: the ETag of a multipart upload would end with its number of parts.
    let temp = objects(&store, "tmp").await;
    assert_eq!(temp.len(), 1, "{temp:?}");
    let meta = store.inner.s3.head(&temp[0].as_str().into()).await.unwrap();
    assert_eq!(meta.size, len);
    assert!(
        !meta.e_tag.as_deref().unwrap_or_default().contains('-'),
        "{meta:?}"
    );
    // Streamed, not gathered: far less than the body.
    assert!(peak < 16 * MIB, "peak memory grew by {peak} bytes");
    let sha = staged.sha256.clone();
    store.commit(staged).await.unwrap();
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());
    let mut hasher = Sha256::new();
    let mut whole = store.read(&sha, 0, len).await.unwrap();
    let mut read = 0;
    while let Some(chunk) = whole.next().await {
        let chunk = chunk.unwrap();
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!((read, hex::encode(hasher.finalize())), (len, sha.clone()));
    assert_eq!(
        read_all(&store, &sha, 9 * MIB - 3, 6).await,
        generated_range(41, 9 * MIB - 3, 6)
    );
    store.delete(&sha).await.unwrap();
}

#[tokio::test]
async fn a_known_length_body_that_ends_short_runs_long_or_breaks_leaves_nothing() {
    let _heavy = HEAVY.lock().await;
    let store = store();
    let short = store
        .stage_exact(generated(5, 16 * MIB), 20 * MIB, 64 * MIB)
        .await
        .unwrap_err();
    assert!(
        matches!(&short, BlobError::Interrupted(e) if e.to_string().contains("after 16777216 of its 20971520 bytes")),
        "{short}"
    );
    let long = store
        .stage_exact(generated(6, 20 * MIB), 16 * MIB, 64 * MIB)
        .await
        .unwrap_err();
    assert!(
        matches!(&long, BlobError::Interrupted(e) if e.to_string().contains("runs past")),
        "{long}"
    );
    let broken = generated(7, 10 * MIB)
        .chain(stream::iter([Err(std::io::Error::other(
            "client went away",
        ))]))
        .boxed();
    let err = store
        .stage_exact(broken, 20 * MIB, 64 * MIB)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlobError::Interrupted(e) if e.to_string() == "client went away"),
        "{err}"
    );
    // A length past the cap is refused before a byte is read.
    let err = store
        .stage_exact(generated(8, 20 * MIB), 20 * MIB, 12 * MIB)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlobError::TooLarge { limit } if limit == 12 * MIB),
        "{err}"
    );
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());
    assert_eq!(objects(&store, "blobs").await, Vec::<String>::new());
}

#[tokio::test]
async fn blobs_over_the_copy_limit_are_streamed_to_their_place() {
    let _heavy = HEAVY.lock().await;
    let mut config = config();
    config.copy_limit = MIB;
    let store = S3BlobStore::new(&config).unwrap();
    let len = 10 * MIB;
    let staged = store.stage(generated(4, len), 64 * MIB).await.unwrap();
    let sha = staged.sha256.clone();
    store.commit(staged).await.unwrap();
    assert_eq!(
        read_all(&store, &sha, len - 100, 100).await,
        generated_range(4, len - 100, 100)
    );
    let meta = store
        .inner
        .s3
        .head(&store.inner.blob_path(&sha))
        .await
        .unwrap();
    assert_eq!(meta.size, len);
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());
}

#[tokio::test]
async fn dropped_stagings_go_and_only_old_temporaries_are_swept() {
    let mut config = config();
    config.temp_min_age = Duration::ZERO;
    let store = S3BlobStore::new(&config).unwrap();
    drop(store.stage(generated(5, 64 * 1024), MIB).await.unwrap());
    until_empty(&store, "tmp").await;

    // A leftover of a crashed process, and an upload waiting for its commit.
    let leftover = store.inner.path("tmp/leftover");
    store.inner.s3.put(&leftover, "x".into()).await.unwrap();
    let waiting = store.stage(generated(6, 64 * 1024), MIB).await.unwrap();
    assert_eq!(
        store
            .remove_temporaries(Some(Duration::from_secs(3600)))
            .await
            .unwrap(),
        0
    );
    // The default minimum age (a day) holds whatever the caller asks, and with None.
    let careful = S3BlobStore::new(&S3Config {
        temp_min_age: S3Config::new("s3://x-y/z").unwrap().temp_min_age,
        ..config.clone()
    })
    .unwrap();
    assert_eq!(careful.remove_temporaries(None).await.unwrap(), 0);
    // Its sweep looks at every object: a starting server runs it beside serving.
    assert!(!careful.sweeps_quickly());
    assert_eq!(
        careful
            .remove_temporaries(Some(Duration::ZERO))
            .await
            .unwrap(),
        0
    );
    assert_eq!(objects(&store, "tmp").await.len(), 2);
    // With no minimum, everything old enough goes (here: all).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store
            .remove_temporaries(Some(Duration::from_secs(1)))
            .await
            .unwrap(),
        2
    );
    // The staging that lost its temporary says so on commit: nothing wrong is stored.
    let sha = waiting.sha256.clone();
    let err = store.commit(waiting).await.unwrap_err();
    assert!(matches!(err, BlobError::Io(_)), "{err}");
    assert!(err.to_string().contains("gone"), "{err}");
    assert!(!store.exists(&sha).await.unwrap());
}

#[tokio::test]
async fn a_presigned_put_is_taken_verified_and_moved() {
    let store = store();
    let client = reqwest::Client::new();
    let body = generated_range(7, 0, 100_000);
    let sha = hex::encode(Sha256::digest(&body));
    let key = "uploads/two-stage-1";
    let put = store
        .presign_upload(
            key,
            body.len() as u64,
            "image/png",
            Duration::from_secs(300),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(put.method, "PUT");
    assert!(
        put.url.contains("/hangar/uploads/two-stage-1?"),
        "{}",
        put.url
    );

    // The signature covers the content type: another one is refused.
    let refused = client
        .put(&put.url)
        .header("content-type", "text/html")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "{}", refused.text().await.unwrap());
    assert_eq!(store.upload_size(key).await.unwrap(), None);
    assert!(matches!(
        store.take_upload(key, 100_000).await.unwrap(),
        TakenUpload::Missing
    ));

    let mut request = client.put(&put.url).body(body.clone());
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    let sent = request.send().await.unwrap();
    assert!(sent.status().is_success(), "{}", sent.text().await.unwrap());
    assert_eq!(store.upload_size(key).await.unwrap(), Some(100_000));

    // Announced with another size: refused, and the object stays until the caller deletes it.
    assert!(matches!(
        store.take_upload(key, 99_999).await.unwrap(),
        TakenUpload::WrongSize(100_000)
    ));
    let TakenUpload::Staged(staged) = store.take_upload(key, 100_000).await.unwrap() else {
        panic!("the upload was not taken");
    };
    assert_eq!(
        (staged.sha256.as_str(), staged.size),
        (sha.as_str(), 100_000)
    );
    store.commit(staged).await.unwrap();
    assert_eq!(read_all(&store, &sha, 0, 100_000).await, body);
    assert_eq!(store.upload_size(key).await.unwrap(), None);
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());

    // A taken upload that is dropped leaves the client's object for another try.
    let again = store.presign_upload("uploads/2", 3, "text/plain", Duration::from_secs(60));
    let again = again.await.unwrap().unwrap();
    let sent = client
        .put(&again.url)
        .header("content-type", "text/plain")
        .body("abc")
        .send();
    assert!(sent.await.unwrap().status().is_success());
    drop(store.take_upload("uploads/2", 3).await.unwrap());
    until_empty(&store, "tmp").await;
    assert_eq!(store.upload_size("uploads/2").await.unwrap(), Some(3));
    store.delete_upload("uploads/2").await.unwrap();
    store.delete_upload("uploads/2").await.unwrap();
    assert_eq!(store.upload_size("uploads/2").await.unwrap(), None);

    // A presigned GET answers the blob's bytes (with the response-* headers asked for on AWS and
    // MinIO; s3s-fs ignores those parameters, so they are not checked here).
    let url = store
        .presign_download(
            &sha,
            "image/png",
            "attachment; filename=\"a.png\"",
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    let got = client.get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap(), body);

    // Clients never get a URL into the content-addressed or temporary objects.
    for bad in [
        format!("blobs/{sha}"),
        "tmp/x".into(),
        "../x".into(),
        "a//b".into(),
        "".into(),
    ] {
        let err = store
            .presign_upload(&bad, 1, "text/plain", Duration::from_secs(60))
            .await;
        assert!(matches!(err, Err(BlobError::Io(_))), "{bad}");
        assert!(store.take_upload(&bad, 1).await.is_err(), "{bad}");
    }
}

#[tokio::test]
async fn wrong_credentials_and_an_unreachable_store_are_told_apart() {
    let mut wrong = config();
    wrong.secret_access_key = Some("not-the-secret".into());
    let store = S3BlobStore::new(&wrong).unwrap();
    let BlobError::Io(err) = store.check().await.unwrap_err() else {
        panic!("wrong credentials are no missing blob");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    let denied = err;

    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gone = config();
    gone.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let store = S3BlobStore::new(&gone).unwrap();
    let started = Instant::now();
    let BlobError::Io(err) = store.check().await.unwrap_err() else {
        panic!("an unreachable store is no missing blob");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // Passing: the HTTP edge answers 503. Refused credentials are no such thing.
    let staged = store.stage(generated(8, 64 * 1024), MIB).await.unwrap_err();
    assert!(staged.is_unavailable(), "{staged}");
    let read = store.read(&"a".repeat(64), 0, 1).await.err().unwrap();
    assert!(read.is_unavailable(), "{read}");
    assert!(!BlobError::Io(denied).is_unavailable());
}

#[test]
fn parts_grow_so_that_memory_does_not_follow_the_cap() {
    use super::upload::{part_size, PART_SIZE};
    assert_eq!((part_size(0), part_size(999)), (PART_SIZE, PART_SIZE));
    assert_eq!(part_size(1000), 2 * PART_SIZE);
    let total: u64 = (0..10_000).map(|n| part_size(n) as u64).sum();
    assert!(total >= 5 << 40, "{total}"); // S3's largest object
    assert!((0..10_000).all(|n| part_size(n) <= 5 << 30)); // S3's largest part
}

#[tokio::test]
async fn with_recorded_keys_the_contract_holds_too() {
    let store = store();
    store.use_object_keys(Arc::new(KeyRows::default()));
    crate::conformance::keeps_the_contract(&store, &MemoryBlobStore::new()).await;
    crate::conformance::keeps_the_partial_contract(&store).await;
}

#[tokio::test]
async fn an_upload_stays_where_it_was_written_and_a_duplicate_goes() {
    let store = Arc::new(store());
    let rows = Arc::new(KeyRows::default());
    store.use_object_keys(rows.clone());
    let ingest = Ingest::new(store.clone(), rows.clone());
    let _heavy = HEAVY.lock().await;
    let len = 9 * MIB; // a multipart upload (parts of 8 MiB)
    let sha = generated_sha256(7, len);

    // Written once, to the key the database records: nothing under blobs/ or tmp/, no copy.
    let staged = ingest.receive(generated(7, len), 10 * MIB).await.unwrap();
    let committed = ingest.commit(staged).await.unwrap();
    assert_eq!(committed.sha256, sha);
    let key = rows.rows()[&sha].clone().expect("a key recorded");
    let written = objects(&store, "objects").await;
    assert_eq!(written, vec![format!("{}{key}", store.inner.prefix)]);
    assert_eq!(objects(&store, "blobs").await, Vec::<String>::new());
    assert_eq!(objects(&store, "tmp").await, Vec::<String>::new());
    assert_eq!(
        read_all(&*store, &sha, 0, u64::MAX).await,
        generated_range(7, 0, len)
    );
    assert_eq!(
        read_all(&*store, &sha, MIB, 10).await,
        generated_range(7, MIB, 10)
    );
    let listed: Vec<_> = store.list().try_collect().await.unwrap();
    assert_eq!(listed.iter().map(|b| &b.sha256).collect::<Vec<_>>(), [&sha]);

    // The same content again: the first object stays, the new one is deleted at once.
    let staged = ingest.receive(generated(7, len), 10 * MIB).await.unwrap();
    ingest.commit(staged).await.unwrap();
    assert_eq!(objects(&store, "objects").await, written);
    assert_eq!(rows.rows()[&sha].as_deref(), Some(key.as_str()));
    assert_eq!(store.count_temporaries().await.unwrap(), 0);

    // Deleting the blob deletes its object.
    store.delete(&sha).await.unwrap();
    assert_eq!(objects(&store, "objects").await, Vec::<String>::new());
    assert!(matches!(
        store.read(&sha, 0, 1).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn blobs_of_the_content_addressed_layout_are_still_served() {
    let store = Arc::new(store());
    let rows = Arc::new(KeyRows::default());
    // Stored by an earlier version: under blobs/<sha256>, its row without a key.
    let body = b"written before object keys".to_vec();
    let sha = hex::encode(Sha256::digest(&body));
    let inner = &store.inner;
    inner
        .s3
        .put(&inner.blob_path(&sha), body.clone().into())
        .await
        .unwrap();
    rows.rows().insert(sha.clone(), None);
    store.use_object_keys(rows.clone());
    assert_eq!(read_all(&*store, &sha, 0, u64::MAX).await, body);
    assert_eq!(read_all(&*store, &sha, 8, 6).await, body[8..14]);
    assert!(store.exists(&sha).await.unwrap());

    // Uploaded again, it keeps the old object and leaves no new one.
    let ingest = Ingest::new(store.clone(), rows.clone());
    let one = stream::iter([Ok(Bytes::from(body.clone()))]).boxed();
    let staged = ingest.receive(one, MIB).await.unwrap();
    ingest.commit(staged).await.unwrap();
    assert_eq!(objects(&store, "objects").await, Vec::<String>::new());
    assert_eq!(rows.rows()[&sha], None);
    assert_eq!(read_all(&*store, &sha, 0, u64::MAX).await, body);

    store.delete(&sha).await.unwrap();
    assert_eq!(objects(&store, "blobs").await, Vec::<String>::new());
}
