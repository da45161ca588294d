//! Where blobs live on the disk, and how staged files are put there durably for many uploads at
//! once (group commit: one flush of the file system for the data of a batch's small files, and
//! one for its renames).
//!
//! The layout is one level of 256 shard directories, `ab/abcd…`, all created when the store opens,
//! so that no upload creates a directory. Stores written by earlier versions keep their blobs at
//! `ab/cd/abcd…`: those are read, listed, deduplicated against and deleted where they are.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The names of the shard directories: `00` to `ff`.
pub(super) fn shard_names() -> impl Iterator<Item = String> {
    (0..=255u8).map(|b| format!("{b:02x}"))
}

/// Where a blob is written: `root/ab/abcd…`.
pub(super) fn blob_path(root: &Path, sha256: &str) -> PathBuf {
    root.join(&sha256[0..2]).join(sha256)
}

/// Where earlier versions wrote it: `root/ab/cd/abcd…`.
pub(super) fn legacy_path(root: &Path, sha256: &str) -> PathBuf {
    root.join(&sha256[0..2]).join(&sha256[2..4]).join(sha256)
}

/// Creates the missing shard directories (mode 0700) and makes their creation durable.
pub(super) fn create_shards(root: &Path) -> io::Result<()> {
    let mut created = false;
    for name in shard_names() {
        let mut builder = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(root.join(name)) {
            Ok(()) => created = true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if created {
        sync_dir(root)?;
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One staged file to put in place, and what became of it.
struct Placement {
    temp: PathBuf,
    target: PathBuf,
    legacy: PathBuf,
    /// The file as it was written, when its data is not durable yet (the batch makes it so before
    /// the rename). The descriptor that wrote it: an `fdatasync` through it reports any write-back
    /// error since, where a descriptor opened later might not.
    unsynced: Option<File>,
    outcome: Mutex<Option<io::Result<()>>>,
}

/// Puts staged files in place for many uploads at once. Each caller (on a blocking thread) queues
/// its file, then waits for the leader's lock; whoever holds it takes every file queued meanwhile
/// and, in order: makes the data of the files not synced yet durable, renames them all, makes the
/// renames durable, and answers them all. So while one batch waits for the disk the next one
/// gathers.
///
/// On Linux each of the two steps is one `syncfs(2)` of the store's file system when it serves
/// more than one file or directory, instead of an `fdatasync` per file and an `fsync` per shard
/// directory: on the 4 KiB upload path those were most of the system time (each a device flush).
/// `syncfs` reports a write-back error of any file of the file system once, to the first call
/// after it (Linux 5.8 and later), through the long-lived descriptor kept here; so after one
/// failure the placer refuses every later placement until the server restarts (as PostgreSQL
/// does after a failed `fsync`): an error reported to one batch may have been another file's,
/// and no later success could be trusted.
#[derive(Default)]
pub(super) struct Placer {
    queue: Mutex<Vec<Arc<Placement>>>,
    leader: Mutex<Leader>,
}

/// What the batch leader keeps between batches.
#[derive(Default)]
struct Leader {
    /// The store's root, opened once (see `Placer` on why it stays open).
    root: Option<File>,
    /// The first flush failure: every placement after it fails.
    failed: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The same error for every upload that shared a failed directory sync.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl Placer {
    /// Renames `temp` to the blob's place under `root` (or removes it when the blob is there
    /// already) and returns once that is durable. Blocking.
    /// `unsynced`: the file as written, when its data is not durable yet.
    pub(super) fn place(
        &self,
        root: &Path,
        temp: PathBuf,
        sha256: &str,
        unsynced: Option<File>,
    ) -> io::Result<()> {
        let placement = Arc::new(Placement {
            temp,
            target: blob_path(root, sha256),
            legacy: legacy_path(root, sha256),
            unsynced,
            outcome: Mutex::new(None),
        });
        lock(&self.queue).push(placement.clone());
        let mut leader = lock(&self.leader);
        // A leader takes only queued files and answers all it took before it lets go: either
        // ours was answered, or it is still queued and this thread leads the next batch.
        if let Some(outcome) = lock(&placement.outcome).take() {
            return outcome;
        }
        let batch = std::mem::take(&mut *lock(&self.queue));
        place_batch(&mut leader, root, &batch);
        let outcome = lock(&placement.outcome).take();
        outcome.unwrap_or_else(|| Err(io::Error::other("the blob was not placed")))
    }
}

/// Answers every placement of `placed` with `result` (the same error for each).
fn answer<'a>(placed: impl IntoIterator<Item = &'a Placement>, result: &io::Result<()>) {
    for p in placed {
        *lock(&p.outcome) = Some(match result {
            Ok(()) => Ok(()),
            Err(e) => Err(copy_error(e)),
        });
    }
}

fn place_batch(leader: &mut Leader, root: &Path, batch: &[Arc<Placement>]) {
    let fail = |batch: &[Arc<Placement>], e: &io::Error| {
        for p in batch {
            let _ = fs::remove_file(&p.temp);
        }
        answer(batch.iter().map(|p| &**p), &Err(copy_error(e)));
    };
    if let Some(why) = &leader.failed {
        let e = io::Error::other(format!(
            "an earlier flush of the blob store failed ({why}); restart the server once the disk is checked"
        ));
        return fail(batch, &e);
    }
    // 1. The data of the files written without a sync of their own.
    let unsynced: Vec<&File> = batch.iter().filter_map(|p| p.unsynced.as_ref()).collect();
    if let Err(e) = flush_files(leader, root, &unsynced) {
        return fail(batch, &e);
    }
    // 2. The renames.
    let mut dirs: HashMap<PathBuf, Vec<&Placement>> = HashMap::new();
    for p in batch {
        match put_in_place(p) {
            Ok(dir) => dirs.entry(dir).or_default().push(p),
            Err(e) => {
                let _ = fs::remove_file(&p.temp);
                *lock(&p.outcome) = Some(Err(e));
            }
        }
    }
    // 3. The renames made durable: one flush of the file system, or each directory's sync.
    if dirs.len() > 1 && cfg!(target_os = "linux") {
        let flushed = flush_all(leader, root);
        answer(dirs.into_values().flatten(), &flushed);
    } else {
        for (dir, placed) in dirs {
            answer(placed, &sync_dir(&dir));
        }
    }
}

/// Makes the data of `files` durable: one flush of the file system for several, else each file's
/// own `fdatasync`.
fn flush_files(leader: &mut Leader, root: &Path, files: &[&File]) -> io::Result<()> {
    match files {
        [] => Ok(()),
        _ if files.len() > 1 && cfg!(target_os = "linux") => flush_all(leader, root),
        each => each.iter().try_for_each(|file| file.sync_data()),
    }
}

/// Everything written to the store's file system made durable (`syncfs`; Linux only, the callers
/// sync each file and directory elsewhere). A failure is kept: every later placement fails (see
/// `Placer`).
fn flush_all(leader: &mut Leader, root: &Path) -> io::Result<()> {
    let flushed = (|| {
        let dir = match &leader.root {
            Some(dir) => dir,
            None => leader.root.insert(File::open(root)?),
        };
        sync_fs(dir)
    })();
    if let Err(e) = &flushed {
        tracing::error!(
            "flushing the blob store's file system failed: {e}; every later upload fails until the server restarts"
        );
        leader.failed = Some(e.to_string());
    }
    flushed
}

#[cfg(target_os = "linux")]
fn sync_fs(dir: &File) -> io::Result<()> {
    rustix::fs::syncfs(dir).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn sync_fs(dir: &File) -> io::Result<()> {
    dir.sync_all()
}

/// Renames one staged file to its place; returns the directory whose sync makes that durable.
fn put_in_place(p: &Placement) -> io::Result<PathBuf> {
    let parent = |path: &Path| {
        path.parent()
            .expect("blob paths have a shard directory")
            .to_path_buf()
    };
    // Same hash, same bytes: the stored copy serves. Its rename may not be durable yet (another
    // upload's batch may be between rename and sync): the sync of its directory makes sure.
    for stored in [&p.target, &p.legacy] {
        if stored.exists() {
            fs::remove_file(&p.temp)?;
            return Ok(parent(stored));
        }
    }
    fs::rename(&p.temp, &p.target)?;
    Ok(parent(&p.target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_placements_are_all_answered_and_all_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        create_shards(root).unwrap();
        fs::create_dir(root.join("tmp")).unwrap();
        let placer = Arc::new(Placer::default());
        let threads: Vec<_> = (0..32u32)
            .map(|n| {
                let (placer, root) = (placer.clone(), root.to_path_buf());
                std::thread::spawn(move || {
                    // Four distinct contents, eight uploads of each.
                    let sha = format!("{:02x}", n % 4).repeat(32);
                    let temp = root.join("tmp").join(format!("{n}.part"));
                    fs::write(&temp, format!("content {}", n % 4)).unwrap();
                    // Half of them written without a sync: their batch flushes them.
                    let unsynced = (n % 2 == 0).then(|| File::open(&temp).unwrap());
                    placer.place(&root, temp, &sha, unsynced).unwrap();
                    sha
                })
            })
            .collect();
        for t in threads {
            let sha = t.join().unwrap();
            assert!(blob_path(root, &sha).is_file());
        }
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn after_a_failed_flush_every_placement_fails_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        create_shards(root).unwrap();
        let placer = Placer::default();
        lock(&placer.leader).failed = Some("EIO".into());
        let temp = root.join("a.part");
        fs::write(&temp, b"a").unwrap();
        let sha = "cd".repeat(32);
        let unsynced = Some(File::open(&temp).unwrap());
        let e = placer
            .place(root, temp.clone(), &sha, unsynced)
            .unwrap_err();
        assert!(e.to_string().contains("EIO"), "{e}");
        assert!(!temp.exists() && !blob_path(root, &sha).exists());
    }

    #[test]
    fn a_blob_in_the_old_layout_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sha = "ab".repeat(32);
        fs::create_dir_all(legacy_path(root, &sha).parent().unwrap()).unwrap();
        fs::write(legacy_path(root, &sha), b"old").unwrap();
        create_shards(root).unwrap();
        let temp = root.join("new.part");
        fs::write(&temp, b"old").unwrap();
        Placer::default()
            .place(root, temp.clone(), &sha, None)
            .unwrap();
        assert!(!temp.exists() && !blob_path(root, &sha).exists());
        assert_eq!(fs::read(legacy_path(root, &sha)).unwrap(), b"old");
    }
}
