//! Where blobs live on the disk, and how staged files are put there durably for many uploads at
//! once (group commit of renames: one `fsync` per shard directory per batch).
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
    outcome: Mutex<Option<io::Result<()>>>,
}

/// Puts staged files in place for many uploads at once. Each caller (on a blocking thread) queues
/// its file, then waits for the leader's lock; whoever holds it takes every file queued meanwhile,
/// renames them all, then syncs each shard directory once, and answers them all. So while one
/// batch waits for the disk the next one gathers, and a directory `fsync` serves every rename
/// into it since the last one.
#[derive(Default)]
pub(super) struct Placer {
    queue: Mutex<Vec<Arc<Placement>>>,
    leader: Mutex<()>,
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
    pub(super) fn place(&self, root: &Path, temp: PathBuf, sha256: &str) -> io::Result<()> {
        let placement = Arc::new(Placement {
            temp,
            target: blob_path(root, sha256),
            legacy: legacy_path(root, sha256),
            outcome: Mutex::new(None),
        });
        lock(&self.queue).push(placement.clone());
        let _leader = lock(&self.leader);
        // A leader takes only queued files and answers all it took before it lets go: either
        // ours was answered, or it is still queued and this thread leads the next batch.
        if let Some(outcome) = lock(&placement.outcome).take() {
            return outcome;
        }
        let batch = std::mem::take(&mut *lock(&self.queue));
        place_batch(&batch);
        let outcome = lock(&placement.outcome).take();
        outcome.unwrap_or_else(|| Err(io::Error::other("the blob was not placed")))
    }
}

fn place_batch(batch: &[Arc<Placement>]) {
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
    for (dir, placed) in dirs {
        let synced = sync_dir(&dir);
        for p in placed {
            *lock(&p.outcome) = Some(match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(copy_error(e)),
            });
        }
    }
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
                    placer.place(&root, temp, &sha).unwrap();
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
    fn a_blob_in_the_old_layout_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sha = "ab".repeat(32);
        fs::create_dir_all(legacy_path(root, &sha).parent().unwrap()).unwrap();
        fs::write(legacy_path(root, &sha), b"old").unwrap();
        create_shards(root).unwrap();
        let temp = root.join("new.part");
        fs::write(&temp, b"old").unwrap();
        Placer::default().place(root, temp.clone(), &sha).unwrap();
        assert!(!temp.exists() && !blob_path(root, &sha).exists());
        assert_eq!(fs::read(legacy_path(root, &sha)).unwrap(), b"old");
    }
}
