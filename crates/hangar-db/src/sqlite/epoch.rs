//! Changes made by another process on the same SQLite file: `hangar admin user disable` (or
//! `reset-password`, or anything else an administration command changes) run beside the serving
//! process must take effect in its read caches at once, and SQLite has no notifications between
//! processes. So a process that changes the database beside the server (the administration
//! commands, see `SqliteStore::announcing_changes`) writes a new value into a small file beside the
//! database after its commit, and the serving process reads that value (one `pread` of 16 bytes from
//! a file it keeps open, in the page cache) before a cache lookup: when it changed, every cache is
//! emptied. The server's own changes do not need it: they invalidate its caches directly.
//!
//! A busy server looks at most once per `GATE` (every request would otherwise make one or two more
//! system calls), and the announcing process waits twice that long after writing: by the time it
//! goes on (and the command returns), any lookup has either read the new value or is due to.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a value read stays current for the serving process.
const GATE: Duration = Duration::from_millis(1);

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
    /// When the file was read last, in nanoseconds since `opened` (taken before the read).
    read_at: AtomicU64,
    opened: Instant,
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
        let opened = Instant::now();
        let seen = read(&file);
        Ok(Epoch {
            file,
            seen: Mutex::new(seen),
            writes: AtomicU64::new(0),
            read_at: AtomicU64::new(0),
            opened,
        })
    }

    /// Whether another process announced a change since the last call (or since opening), looking
    /// at the file at most once per `GATE`.
    pub(crate) fn changed(&self) -> bool {
        let since_open = u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let last = self.read_at.load(Ordering::Relaxed);
        if since_open.saturating_sub(last) < GATE.as_nanos() as u64 {
            return false;
        }
        self.read_at.store(since_open, Ordering::Relaxed);
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
    /// process id and a counter). Returns once the serving process cannot miss it (see `GATE`):
    /// a short blocking sleep, acceptable in the administration commands that announce.
    pub(crate) fn announce(&self) -> std::io::Result<()> {
        self.write_value()?;
        std::thread::sleep(2 * GATE);
        Ok(())
    }

    fn write_value(&self) -> std::io::Result<()> {
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

    /// A serving process's epoch and an administration command's on one new database, the first
    /// one's look at the file done (and past its gate). The directory lives as long as the caller
    /// keeps it.
    fn server_and_admin() -> (tempfile::TempDir, Epoch, Epoch) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hangar.db");
        let server = Epoch::open(&db).unwrap();
        let admin = Epoch::open(&db).unwrap();
        std::thread::sleep(2 * GATE);
        assert!(!server.changed());
        (dir, server, admin)
    }

    #[test]
    fn an_announcement_of_another_process_is_seen_once() {
        let (_dir, server, admin) = server_and_admin();
        admin.announce().unwrap();
        assert!(server.changed());
        std::thread::sleep(2 * GATE);
        assert!(!server.changed());
        admin.announce().unwrap();
        admin.announce().unwrap();
        assert!(server.changed());
        std::thread::sleep(2 * GATE);
        assert!(!server.changed());
    }

    #[test]
    fn an_announcement_that_returned_is_never_missed() {
        let (_dir, server, admin) = server_and_admin();
        // A value written without the wait is seen once the gate has passed.
        admin.write_value().unwrap();
        std::thread::sleep(2 * GATE);
        assert!(server.changed());
        // An announcement that returned is seen by the very next lookup, however busy the server.
        for _ in 0..20 {
            admin.announce().unwrap();
            assert!(server.changed());
        }
    }
}
