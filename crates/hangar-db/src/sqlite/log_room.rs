//! Room for the metadata's writes on a nearly full volume. Uploads stop at the volume's reserve
//! (`hangar_core::volume`), but the WAL keeps growing after them (job bookkeeping, records, events)
//! until its next checkpoint, which only comes every `WAL_AUTOCHECKPOINT` pages: on a small or full
//! volume the log can eat the whole reserve, and then the deletes that would make room fail for
//! want of a few pages. So before a write, a volume found under its reserve has its log copied back
//! and truncated, which frees the space of every page the log held more than once.

use hangar_core::volume::free_space_reserve;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one reading of the volume's free space serves the next writes.
const FRESH: Duration = Duration::from_millis(100);

pub(crate) struct LogRoom {
    /// The database file (None in memory: no volume to fill).
    db: Option<PathBuf>,
    /// When the volume was last read.
    read: Mutex<Option<Instant>>,
}

impl LogRoom {
    pub(crate) fn new(db: Option<PathBuf>) -> LogRoom {
        LogRoom {
            db,
            read: Mutex::new(None),
        }
    }

    /// The free bytes of the database's volume when they are fewer than its reserve, read at most
    /// once per `FRESH` (a reading that found room answers None until the next one).
    pub(crate) fn short(&self) -> Option<u64> {
        let db = self.db.as_ref()?;
        {
            let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
            if read.is_some_and(|at| at.elapsed() < FRESH) {
                return None;
            }
            *read = Some(Instant::now());
        }
        // No statistics (an unusual filesystem): SQLITE_FULL answers then.
        let stats = rustix::fs::statvfs(db).ok()?;
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        let total = stats.f_blocks.saturating_mul(stats.f_frsize);
        (available < free_space_reserve(total)).then_some(available)
    }

    /// The bytes the database file is shorter than the database its log describes: what copying
    /// the log back adds to the file (the rest of the log's pages overwrite pages it has).
    pub(crate) fn growth(&self, pages: u64, page_size: u64) -> Option<u64> {
        let file = std::fs::metadata(self.db.as_ref()?).ok()?.len();
        Some(pages.saturating_mul(page_size).saturating_sub(file))
    }
}
