//! Changes made by another process on the same SQLite file: `hangar admin user disable` (or
//! `reset-password`, or anything else an administration command changes) run beside the serving
//! process must take effect in its read caches at once, and SQLite has no notifications between
//! processes. So a process that changes the database beside the server (the administration
//! commands, see `SqliteStore::announcing_changes`) writes a new value into a small file beside the
//! database after its commit, and the serving process reads that value (one `pread` of 16 bytes from
//! a file it keeps open, in the page cache) before every cache lookup: when it changed, every cache
//! is emptied. The server's own changes do not need it: they invalidate its caches directly.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The file beside the database `db`.
pub(crate) fn path_beside(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".cache-epoch");
    PathBuf::from(name)
}

/// The epoch file, opened once.
pub(crate) struct Epoch {
    file: File,
    /// The value read last (the first 16 bytes of the file).
    seen: Mutex<[u8; 16]>,
    /// Makes each value this process writes differ from its previous one.
    writes: AtomicU64,
}

impl Epoch {
    /// Opens (creating, mode 0600) the epoch file beside `db`.
    pub(crate) fn open(db: &Path) -> std::io::Result<Epoch> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path_beside(db))?;
        let seen = read(&file);
        Ok(Epoch {
            file,
            seen: Mutex::new(seen),
            writes: AtomicU64::new(0),
        })
    }

    /// Whether another process announced a change since the last call (or since opening).
    pub(crate) fn changed(&self) -> bool {
        let now = read(&self.file);
        // A poisoned lock only means another thread panicked between two plain assignments.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == now {
            return false;
        }
        *seen = now;
        true
    }

    /// Announces a committed change to the serving process: a value no earlier write had (time,
    /// process id and a counter).
    pub(crate) fn announce(&self) -> std::io::Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let count = self.writes.fetch_add(1, Ordering::Relaxed);
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&nanos.to_le_bytes());
        value[8..].copy_from_slice(&((u64::from(std::process::id()) << 32) ^ count).to_le_bytes());
        self.file.write_all_at(&value, 0)
    }
}

/// The file's first 16 bytes (zeros where it is shorter, or cannot be read).
fn read(file: &File) -> [u8; 16] {
    let mut value = [0u8; 16];
    let mut filled = 0;
    while filled < value.len() {
        match file.read_at(&mut value[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_of_another_process_is_seen_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hangar.db");
        let server = Epoch::open(&db).unwrap();
        let admin = Epoch::open(&db).unwrap();
        assert!(!server.changed());
        admin.announce().unwrap();
        assert!(server.changed());
        assert!(!server.changed());
        admin.announce().unwrap();
        admin.announce().unwrap();
        assert!(server.changed());
        assert!(!server.changed());
    }
}
