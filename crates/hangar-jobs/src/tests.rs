//! The runner against a real SQLite file and a real blob directory: two workers share one queue,
//! a killed worker's job is taken over, and the collector races uploads of the same bytes.

use super::*;
use bytes::Bytes;
use futures_util::StreamExt;
use hangar_blob::{ByteStream, Ingest, LocalBlobStore, MemoryBlobStore};
use hangar_core::model::{NewAttachment, Role};
use hangar_core::store::{AttachmentStore, BlobLifecycleStore, Collect, IdentityStore};
use hangar_core::AttachmentState;
use hangar_db::SqliteStore;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

struct Installation {
    dir: tempfile::TempDir,
    /// Shared by every node when the installation keeps its blobs in memory; else each node opens
    /// the shared directory itself.
    memory: Option<Arc<MemoryBlobStore>>,
    /// Whether the directory's small bodies go into packs, their slots recorded as object keys (as
    /// every server's do).
    packed: bool,
}

impl Installation {
    fn new() -> Installation {
        Installation {
            dir: tempfile::tempdir().unwrap(),
            memory: None,
            packed: false,
        }
    }

    fn packed() -> Installation {
        Installation {
            packed: true,
            ..Installation::new()
        }
    }

    fn in_memory() -> Installation {
        Installation {
            memory: Some(Arc::new(MemoryBlobStore::new())),
            ..Installation::new()
        }
    }

    /// One process's view: its own pool on the shared database, the shared blob directory; its
    /// jobs are leased for a second.
    async fn node(&self, grace: Duration) -> (SqliteStore, Runner) {
        self.node_with_lease(grace, Duration::from_secs(1)).await
    }

    /// `node`, with jobs leased for `lease`.
    async fn node_with_lease(&self, grace: Duration, lease: Duration) -> (SqliteStore, Runner) {
        let url = format!("sqlite://{}/hangar.db", self.dir.path().display());
        let store = SqliteStore::open(&url)
            .await
            .unwrap()
            .with_blob_grace(grace);
        let blobs: Arc<dyn hangar_blob::BlobStore> = match &self.memory {
            Some(memory) => memory.clone(),
            None => Arc::new(LocalBlobStore::open(self.dir.path().join("blobs")).unwrap()),
        };
        if self.packed {
            blobs.use_object_keys(Arc::new(store.clone()));
        }
        let ctx = JobContext {
            jobs: Arc::new(store.clone()),
            blob_life: Arc::new(store.clone()),
            blobs,
            storage: Arc::new(store.clone()),
            tus: Arc::new(store.clone()),
            attachments: Arc::new(store.clone()),
            unattached_ttl: None,
            identity: Arc::new(store.clone()),
            attempts: Arc::new(store.clone()),
            projects: Arc::new(store.clone()),
            apps: Arc::new(store.clone()),
            secrets: Arc::new(hangar_core::secrets::Secrets::new(&[7; 32])),
            fetcher: Arc::new(fetch::Fetcher::new(
                hangar_core::net::AllowList::default(),
                fetch::FetchLimits {
                    first_byte: Duration::from_secs(5),
                    idle: Duration::from_secs(5),
                    total: Duration::from_secs(5),
                },
            )),
            public_url: "http://127.0.0.1:1".into(),
            blob_grace: grace,
            scans: Arc::new(store.clone()),
            clamd: None,
            direct_uploads: None,
            previews: None,
        };
        let settings = RunnerSettings {
            lease,
            poll: Duration::from_millis(20),
            backoff_base: Duration::from_millis(10),
            ..RunnerSettings::default()
        };
        let mut runner = Runner::new(ctx, store.job_signal(), settings);
        runner.register::<Count>();
        runner.register::<HangOnce>();
        (store, runner)
    }
}

/// Counts its runs per `n`.
#[derive(Serialize, Deserialize)]
struct Count {
    n: usize,
}

static COUNTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

impl JobKind for Count {
    const KIND: &'static str = "test-count";
}

#[async_trait::async_trait]
impl Job for Count {
    async fn run(&self, _ctx: &JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut counts = COUNTS.lock().unwrap();
        if counts.len() <= self.n {
            counts.resize(self.n + 1, 0);
        }
        counts[self.n] += 1;
        Ok(())
    }
}

/// Hangs on its first run (its worker is then killed), finishes on the next.
#[derive(Serialize, Deserialize)]
struct HangOnce {}

static HUNG: AtomicBool = AtomicBool::new(false);
static HANG_RUNS: AtomicUsize = AtomicUsize::new(0);

impl JobKind for HangOnce {
    const KIND: &'static str = "test-hang-once";
}

#[async_trait::async_trait]
impl Job for HangOnce {
    async fn run(&self, _ctx: &JobContext) -> Result<(), JobError> {
        HANG_RUNS.fetch_add(1, Ordering::SeqCst);
        if !HUNG.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

async fn wait_for_empty_queue(store: &SqliteStore) {
    for _ in 0..1000 {
        let c = store.queue_counts().await.unwrap();
        if c.queued + c.running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the queue did not drain: {:?}",
        store.queue_counts().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_database_run_each_job_once() {
    let install = Installation::new();
    let (a_store, a) = install.node(Duration::ZERO).await;
    let (_b_store, b) = install.node(Duration::ZERO).await;
    let jobs = 200;
    for n in 0..jobs {
        enqueue(&a_store, &Count { n }).await.unwrap();
    }
    let (ta, tb) = (a.spawn(), b.spawn());
    wait_for_empty_queue(&a_store).await;
    ta.abort();
    tb.abort();
    let counts = COUNTS.lock().unwrap().clone();
    assert_eq!(counts.len(), jobs);
    let twice: Vec<usize> = (0..jobs).filter(|&n| counts[n] != 1).collect();
    assert!(twice.is_empty(), "jobs not run exactly once: {twice:?}");
}

#[test]
fn a_killed_workers_job_is_taken_over_after_its_lease() {
    let install = Installation::new();
    // The first worker lives in its own runtime, shut down mid-job like a killed process: its job
    // and its lease renewals stop at once.
    // Leases of a few seconds: the survivor must open its store and look at the queue while the
    // dead worker's lease still holds, on a loaded machine too.
    let lease = Duration::from_secs(4);
    let doomed = tokio::runtime::Runtime::new().unwrap();
    doomed.block_on(async {
        let (store, runner) = install.node_with_lease(Duration::ZERO, lease).await;
        enqueue(&store, &HangOnce {}).await.unwrap();
        runner.spawn();
        while HANG_RUNS.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    doomed.shutdown_background();

    let survivor = tokio::runtime::Runtime::new().unwrap();
    survivor.block_on(async {
        let (store, runner) = install.node_with_lease(Duration::ZERO, lease).await;
        // Still leased to the dead worker: nothing to run yet.
        assert_eq!(runner.run_pending().await.unwrap(), 0);
        assert_eq!(store.queue_counts().await.unwrap().running, 1);
        let mut ran = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            ran += runner.run_pending().await.unwrap();
            if ran > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ran, 1, "the job was taken over once its lease ran out");
        assert_eq!(HANG_RUNS.load(Ordering::SeqCst), 2);
        let counts = store.queue_counts().await.unwrap();
        assert_eq!(counts.queued + counts.running + counts.failed, 0);
    });
}

fn body(bytes: &'static [u8]) -> ByteStream {
    futures_util::stream::iter([Ok(Bytes::from_static(bytes))]).boxed()
}

async fn upload(ingest: &Ingest, store: &SqliteStore, owner: i64, bytes: &'static [u8]) -> i64 {
    let staged = ingest.receive(body(bytes), 1 << 20).await.unwrap();
    let id = hangar_core::ids::random_id();
    ingest
        .store(staged, |c| async move {
            let new = NewAttachment {
                id,
                uploader_id: owner,
                file_name: "same.bin".into(),
                content_type: "application/octet-stream".into(),
                size: c.size as i64,
                sha256: c.sha256,
                state: AttachmentState::ReadyForDownloadFromServerToClient,
                media_context: None,
                stores_blob: true,
                hold: Some(c.hold),
            };
            store.create_attachments(&[new], None, None).await
        })
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_racing_an_upload_of_the_same_bytes_never_loses_them() {
    collector_races_uploads(Installation::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_racing_a_packed_upload_of_the_same_bytes_never_loses_them() {
    collector_races_uploads(Installation::packed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_racing_an_upload_in_memory_never_loses_them() {
    collector_races_uploads(Installation::in_memory()).await;
}

async fn collector_races_uploads(install: Installation) {
    // Grace zero: every drop of the last reference makes the bytes collectable at once.
    let (store, runner) = install.node(Duration::ZERO).await;
    let (other_store, other_runner) = install.node(Duration::ZERO).await;
    let blobs = runner.context().blobs.clone();
    let ingest = Ingest::new(blobs.clone(), Arc::new(other_store.clone()));
    let owner = store
        .create_member("alice", "h", "Alice", Role::Member)
        .await
        .unwrap()
        .id;
    const BYTES: &[u8] = b"the same bytes, uploaded again and again";
    let sha = hex_sha256(BYTES);
    for round in 0..60 {
        let first = upload(&ingest, &other_store, owner, BYTES).await;
        store.delete_attachment(first).await.unwrap();
        // The collector (on one node) and a new upload of the same bytes (on the other) race.
        let (collected, second) = tokio::join!(
            runner.run_pending(),
            upload(&ingest, &other_store, owner, BYTES)
        );
        collected.unwrap();
        other_runner.run_pending().await.unwrap();
        assert!(
            blobs.exists(&sha).await.unwrap(),
            "round {round}: attachment {second} refers to bytes that were deleted"
        );
        store.delete_attachment(second).await.unwrap();
        runner.run_pending().await.unwrap();
        assert!(
            !blobs.exists(&sha).await.unwrap(),
            "round {round}: unreferenced bytes were kept"
        );
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The collector's critical moment made wide: between deciding to delete (the blob is marked) and
/// finishing, an upload of the same bytes must wait, and then store them anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_waits_while_its_bytes_are_being_deleted() {
    upload_waits_for_a_deletion(Installation::new()).await;
}

/// As above for a packed body, which takes no pin: its record is refused while the blob is being
/// deleted, and made again once the deletion is over, under the body's own slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packed_upload_waits_while_its_bytes_are_being_deleted() {
    upload_waits_for_a_deletion(Installation::packed()).await;
}

async fn upload_waits_for_a_deletion(install: Installation) {
    let (store, runner) = install.node(Duration::ZERO).await;
    let blobs = runner.context().blobs.clone();
    let ingest = Ingest::new(blobs.clone(), Arc::new(store.clone()));
    let owner = store
        .create_member("bob", "h", "Bob", Role::Member)
        .await
        .unwrap()
        .id;
    const BYTES: &[u8] = b"bytes caught between decision and deletion";
    let sha = hex_sha256(BYTES);
    let first = upload(&ingest, &store, owner, BYTES).await;
    store.delete_attachment(first).await.unwrap();
    // The collector's first step, by hand.
    assert_eq!(
        store.begin_blob_deletion(&sha, now_ms()).await.unwrap(),
        Collect::Delete
    );
    let racing = {
        let (ingest, store) = (ingest.clone(), store.clone());
        tokio::spawn(async move { upload(&ingest, &store, owner, BYTES).await })
    };
    let mut racing = std::pin::pin!(racing);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut racing)
            .await
            .is_err(),
        "the upload waits for the deletion to finish"
    );
    // The collector's second and third steps.
    blobs.delete(&sha).await.unwrap();
    store.finish_blob_deletion(&sha).await.unwrap();
    let second = racing.await.unwrap();
    assert!(blobs.exists(&sha).await.unwrap(), "stored anew");
    assert_eq!(store.blob_record(&sha).await.unwrap().refcount, Some(1));
    assert!(store.attachment(second).await.unwrap().is_some());
    let mut read = blobs.read(&sha, 0, u64::MAX).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = read.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, BYTES);
}

/// A packed body whose content is stored already is a duplicate: its record queues the discard of
/// its slot, which a job runner frees; the first body's slot, which the row records, stays.
#[tokio::test]
async fn a_packed_duplicate_is_discarded_by_its_job() {
    let install = Installation::packed();
    let (store, runner) = install.node(Duration::from_secs(3600)).await;
    let ingest = Ingest::new(runner.context().blobs.clone(), Arc::new(store.clone()));
    let owner = store
        .create_member("carol", "h", "Carol", Role::Member)
        .await
        .unwrap()
        .id;
    const BYTES: &[u8] = b"the same small body, twice";
    let sha = hex_sha256(BYTES);
    let live = || {
        let root = install.dir.path().join("blobs");
        LocalBlobStore::packed_blobs(&root)
            .unwrap()
            .into_iter()
            .filter(|(_, entry, holds)| *holds && entry.sha256 == sha)
            .count()
    };
    upload(&ingest, &store, owner, BYTES).await;
    upload(&ingest, &store, owner, BYTES).await;
    assert_eq!(live(), 2, "both copies are durable before their records");
    assert_eq!(runner.run_pending().await.unwrap(), 1);
    assert_eq!(live(), 1, "the duplicate's slot is freed");
    assert_eq!(store.blob_record(&sha).await.unwrap().refcount, Some(2));
    let recorded = store.blob_object_key(&sha).await.unwrap().unwrap();
    assert!(recorded.starts_with("packs/"), "{recorded}");
    let read = runner
        .context()
        .blobs
        .read_small(&sha, 0, 100)
        .await
        .unwrap();
    assert_eq!(&read[..], BYTES);
}

/// The operator's commands on a real database and blob directory.
mod maintenance {
    use super::*;
    use crate::maintenance::{Maintenance, MaintenanceError};

    fn maintenance(store: &SqliteStore, blobs: Arc<dyn hangar_blob::BlobStore>) -> Maintenance {
        Maintenance {
            jobs: Arc::new(store.clone()),
            blob_life: Arc::new(store.clone()),
            blobs,
            blob_grace: Duration::ZERO,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_deleted_after_the_snapshot_makes_the_backup_take_another() {
        let install = Installation::new();
        let (store, runner) = install.node(Duration::ZERO).await;
        let blobs = runner.context().blobs.clone();
        let ingest = Ingest::new(blobs.clone(), Arc::new(store.clone()));
        let owner = store
            .create_member("carol", "h", "Carol", Role::Member)
            .await
            .unwrap()
            .id;
        const KEPT: &[u8] = b"bytes that stay";
        const GOING: &[u8] = b"bytes deleted while the backup runs";
        upload(&ingest, &store, owner, KEPT).await;
        let going = upload(&ingest, &store, owner, GOING).await;

        let backup = install.dir.path().join("backup");
        std::fs::create_dir(&backup).unwrap();
        let target = LocalBlobStore::open(backup.join("blobs")).unwrap();
        let snapshots = Arc::new(AtomicUsize::new(0));
        let last: Arc<Mutex<Option<SqliteStore>>> = Arc::new(Mutex::new(None));
        let (live, db, taken, keep) = (
            store.clone(),
            backup.join("hangar.db"),
            snapshots.clone(),
            last.clone(),
        );
        let runner2 = runner.clone();
        let report = maintenance(&store, blobs.clone())
            .backup(&target, move || {
                let (live, db, taken, keep, runner) = (
                    live.clone(),
                    db.clone(),
                    taken.clone(),
                    keep.clone(),
                    runner2.clone(),
                );
                async move {
                    let _ = std::fs::remove_file(&db);
                    live.snapshot_into(&db).await?;
                    if taken.fetch_add(1, Ordering::SeqCst) == 0 {
                        // Right after the first snapshot: the last reference goes, and (grace 0)
                        // the collector deletes the bytes before the backup copies them.
                        live.delete_attachment(going).await?;
                        runner
                            .run_pending()
                            .await
                            .map_err(MaintenanceError::Store)?;
                    }
                    let url = format!("sqlite://{}", db.display());
                    let copy = SqliteStore::open_existing(&url)
                        .await
                        .map_err(|e| MaintenanceError::Failed(e.to_string()))?;
                    *keep.lock().unwrap() = Some(copy.clone());
                    Ok(Arc::new(copy) as Arc<dyn BlobLifecycleStore>)
                }
            })
            .await
            .expect("the backup starts over instead of failing");
        assert_eq!(report.snapshots, 2, "{report:?}");
        assert!(!blobs.exists(&hex_sha256(GOING)).await.unwrap());
        // Consistent: every blob the copied database refers to is in the copy.
        let copy = last.lock().unwrap().clone().unwrap();
        let referenced = copy.referenced_blobs(None, 100).await.unwrap();
        assert_eq!(referenced.len(), 1);
        assert_eq!(referenced[0].0, hex_sha256(KEPT));
        assert!(target.exists(&hex_sha256(KEPT)).await.unwrap());
        // The backup's pins are gone: the live collector decides about the blobs again.
        assert!(!store.blob_record(&hex_sha256(KEPT)).await.unwrap().pinned);
    }

    #[tokio::test]
    async fn check_names_missing_and_damaged_blobs_and_what_refers_to_them() {
        let install = Installation::new();
        let (store, runner) = install.node(Duration::ZERO).await;
        let blobs = runner.context().blobs.clone();
        let ingest = Ingest::new(blobs.clone(), Arc::new(store.clone()));
        let owner = store
            .create_member("dave", "h", "Dave", Role::Member)
            .await
            .unwrap()
            .id;
        let missing = upload(&ingest, &store, owner, b"these bytes will be lost").await;
        upload(&ingest, &store, owner, b"these bytes will rot").await;
        upload(&ingest, &store, owner, b"these bytes are fine").await;
        let m = maintenance(&store, blobs.clone());
        assert!(m.check(true, |_| {}).await.unwrap().problems.is_empty());

        let root = install.dir.path().join("blobs");
        let path = |sha: &str| root.join(&sha[..2]).join(sha);
        let lost = hex_sha256(b"these bytes will be lost");
        std::fs::remove_file(path(&lost)).unwrap();
        let rot = hex_sha256(b"these bytes will rot");
        std::fs::remove_file(path(&rot)).unwrap();
        std::fs::write(path(&rot), b"these bytes have rotted").unwrap();

        let report = m.check(false, |_| {}).await.unwrap();
        assert_eq!(report.checked, 3);
        assert_eq!(report.problems.len(), 1, "{report:?}");
        assert_eq!(report.problems[0].sha256, lost);
        let line = report.problems[0].to_string();
        assert!(line.contains(&lost) && line.contains("missing"), "{line}");
        assert!(line.contains(&format!("attachment {missing}")), "{line}");

        let report = m.check(true, |_| {}).await.unwrap();
        let shas: Vec<&str> = report.problems.iter().map(|p| p.sha256.as_str()).collect();
        assert_eq!(shas.len(), 2, "{report:?}");
        assert!(shas.contains(&rot.as_str()));
        let rotten = report.problems.iter().find(|p| p.sha256 == rot).unwrap();
        assert!(rotten.what.contains("damaged"), "{rotten}");
    }

    #[tokio::test]
    async fn gc_deletes_what_the_collector_would_and_a_dry_run_nothing() {
        let install = Installation::new();
        let (store, runner) = install.node(Duration::ZERO).await;
        let blobs = runner.context().blobs.clone();
        let ingest = Ingest::new(blobs.clone(), Arc::new(store.clone()));
        let owner = store
            .create_member("erin", "h", "Erin", Role::Member)
            .await
            .unwrap()
            .id;
        let gone = upload(&ingest, &store, owner, b"unreferenced soon").await;
        upload(&ingest, &store, owner, b"referenced").await;
        store.delete_attachment(gone).await.unwrap();
        // Bytes the database never knew (no row, no pin).
        let staged = blobs.stage(body(b"unknown bytes"), 1 << 20).await.unwrap();
        blobs.commit(staged).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;

        let m = maintenance(&store, blobs.clone());
        let dry = m.gc(true).await.unwrap();
        assert_eq!(dry.unreferenced, vec![hex_sha256(b"unreferenced soon")]);
        assert_eq!(dry.unknown, vec![hex_sha256(b"unknown bytes")]);
        for bytes in [&b"unreferenced soon"[..], b"unknown bytes", b"referenced"] {
            assert!(blobs.exists(&hex_sha256(bytes)).await.unwrap(), "dry run");
        }
        let done = m.gc(false).await.unwrap();
        assert_eq!(done.unreferenced, dry.unreferenced);
        assert_eq!(done.unknown, dry.unknown);
        assert!(!blobs
            .exists(&hex_sha256(b"unreferenced soon"))
            .await
            .unwrap());
        assert!(!blobs.exists(&hex_sha256(b"unknown bytes")).await.unwrap());
        assert!(blobs.exists(&hex_sha256(b"referenced")).await.unwrap());
        assert_eq!(m.gc(false).await.unwrap(), Default::default());
    }
}

/// Every starting node queues the chores; with an object store, one sweep of temporaries is also
/// queued due now (beside its hourly run), once however many nodes start, for one node's runner to
/// do beside serving.
#[tokio::test]
async fn a_start_queues_one_sweep_of_an_object_stores_temporaries() {
    let installation = Installation::new();
    let (store, _runner) = installation.node(Duration::from_secs(60)).await;
    let now = || hangar_core::now_ms() + 1;
    schedule_chores(&store, false).await.unwrap();
    assert_eq!(store.due_jobs("sweep-temporaries", now()).await.unwrap(), 1);
    for _node in 0..2 {
        schedule_chores(&store, true).await.unwrap();
    }
    assert_eq!(store.due_jobs("sweep-temporaries", now()).await.unwrap(), 2);
    assert_eq!(
        store.due_jobs("sweep-orphan-blobs", now()).await.unwrap(),
        2
    );
    store.close().await;
}
