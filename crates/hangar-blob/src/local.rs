//! Blobs on the local disk, sharded as `ab/abcd…` under a root (see `placing`), with temporaries
//! in `tmp/`; with object keys recorded (`BlobStore::use_object_keys`, as every server has), small
//! bodies uploaded in one piece go into packs (`packs/`, see `packs`) instead.

mod direct;
mod packs;
mod placing;
mod stream;

pub use packs::{Entry as PackEntry, Slot as PackSlot};

use crate::partial::{bad_id, missing_bytes, ChunkMeter};
use crate::{
    valid_partial_id, valid_sha256, BlobError, BlobStore, ByteStream, ChunkDigest, StagedBlob,
    StoredBlob, WrittenChunk,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use hangar_core::store::BlobLifecycleStore;
use hangar_core::volume::free_space_reserve;
use packs::Slot;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Bytes gathered before they are hashed and written in one blocking call; with one batch being
/// written while the next is gathered into a second aligned buffer (`direct::Aligned`), an upload
/// holds about twice this in memory. 4 MiB rather than 1: a quarter of the thread hops and
/// direct writes four times as large, 0.85–1.08 GB/s for a 1 GiB upload against 0.70–0.80, the CPU
/// 1.0–1.2 s against 1.3–1.4 (8 MiB did no better; docs/performance.md, "Large uploads past the
/// page cache").
const WRITE_BATCH: usize = 4 << 20;
/// A batch at least this large is hashed on a thread of its own while another writes it: hashing
/// (about 1 GB/s) and writing to the page cache then overlap instead of adding up. A smaller batch
/// (a small file's only batch) is hashed where it is written, saving a thread hop.
const HASH_APART: usize = 256 * 1024;
/// A body at most this large that arrives in one batch is kept in memory until it is committed,
/// then written by the placer's thread with the rest of its batch (`placing::Content::Bytes`): no
/// blocking thread writes it, and a blob stored already is not written at all. It is hashed where
/// it arrives (64 KiB in about 60 µs).
const IN_MEMORY: usize = 64 * 1024;
/// Read chunk for hashing a finished partial upload.
const READ_CHUNK: usize = 256 * 1024;

pub struct LocalBlobStore {
    root: PathBuf,
    placer: Arc<placing::Placer>,
    room: Arc<Room>,
    /// The database that records packed bodies' slots as object keys; unset, every blob is a file.
    keys: OnceLock<Arc<dyn BlobLifecycleStore>>,
    /// Whether the store's file system makes holes: small bodies are packed only then, so that a
    /// freed slot reads as missing (never as zeros).
    holes: bool,
    /// Slots looked up lately, by hash. A blob's slot never changes while its row lives, and a
    /// pack's name is never reused: an entry gone stale (the blob was deleted and stored again)
    /// finds its pack or its slot gone, and is looked up again then.
    slots: Mutex<HashMap<String, Slot>>,
    /// How old a pack must be before its slots that no row records are freed, whatever the sweep's
    /// caller asks (`keeping_unrecorded`).
    unrecorded_min_age: Duration,
}

/// `LocalBlobStore::unrecorded_min_age` unless set: the default blob grace period.
const UNRECORDED_MIN_AGE: Duration = Duration::from_secs(3600);

/// Entries of `LocalBlobStore::slots` before it is emptied (about 10 MiB at most).
const SLOT_CACHE_ENTRIES: usize = 65_536;

/// A stored blob opened for reading: its file, where its bytes start in it, and how many there
/// are (None: to the file's end).
struct Opened {
    file: File,
    base: u64,
    len: Option<u64>,
}

impl Opened {
    /// How many of `len` bytes from `start` there are to read.
    fn clamp(&self, start: u64, len: u64) -> u64 {
        match self.len {
            Some(have) => len.min(have.saturating_sub(start)),
            None => len,
        }
    }
}

/// How long one reading of the volume's free space serves the next uploads' checks.
const ROOM_FRESH: Duration = Duration::from_millis(100);

/// The volume's free space as last read, and the bytes let in since: a burst of small uploads
/// reads it (a `statvfs`) once per `ROOM_FRESH` instead of once per upload.
struct Room {
    fresh: Duration,
    last: std::sync::Mutex<Option<RoomReading>>,
}

impl Default for Room {
    fn default() -> Room {
        Room {
            fresh: ROOM_FRESH,
            last: std::sync::Mutex::default(),
        }
    }
}

struct RoomReading {
    at: std::time::Instant,
    available: u64,
    total: u64,
    admitted: u64,
}

impl Room {
    /// Refuses `incoming` more bytes when they would eat into the volume's reserve. Only a fresh
    /// reading refuses: a recent one lets the bytes in when what it saw, less what it let in since,
    /// still leaves twice the reserve (files deleted meanwhile only make it cautious). Near the
    /// reserve every upload reads the volume again, because a recent reading knows nothing of what
    /// else was written since: the database's log grows with each upload recorded (about 57 KiB
    /// per 1 MiB upload on a small volume), and a burst of uploads within `ROOM_FRESH` would
    /// otherwise be let into the reserve meant for it. A disk filled by others between a reading
    /// and the write still ends in ENOSPC, answered as `NoSpace`.
    fn check(&self, dir: &Path, incoming: u64) -> Result<(), BlobError> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(r) = last.as_mut().filter(|r| r.at.elapsed() < self.fresh) {
            let left = r.available.saturating_sub(r.admitted);
            if left >= incoming.saturating_add(2 * free_space_reserve(r.total)) {
                r.admitted = r.admitted.saturating_add(incoming);
                return Ok(());
            }
        }
        let Ok(stats) = rustix::fs::statvfs(dir) else {
            *last = None;
            return Ok(()); // no statistics (an unusual filesystem): rely on ENOSPC
        };
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        let total = stats.f_blocks.saturating_mul(stats.f_frsize);
        *last = Some(RoomReading {
            at: std::time::Instant::now(),
            available,
            total,
            admitted: 0,
        });
        if available < incoming.saturating_add(free_space_reserve(total)) {
            return Err(BlobError::NoSpace);
        }
        if let Some(r) = last.as_mut() {
            r.admitted = incoming;
        }
        Ok(())
    }
}

/// Creates a directory and its missing parents with mode 0700 (SPEC §1: nothing the server creates
/// is open to group or others; the mode is given, so the umask cannot widen it).
fn private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

impl LocalBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        private_dir_all(&root.join("tmp"))?;
        private_dir_all(&root.join("partial"))?;
        let layout = placing::create_shards(&root)?;
        let placer = Arc::new(placing::Placer::start(&root, layout)?);
        let holes = packs::holes_work(&root.join("tmp"));
        Ok(Self {
            root,
            placer,
            room: Arc::default(),
            keys: OnceLock::new(),
            holes,
            slots: Mutex::default(),
            unrecorded_min_age: UNRECORDED_MIN_AGE,
        })
    }

    /// Frees packed bodies that no blob row records only from packs at least `age` old (the blob
    /// grace period; an hour unless set), at start too. SPEC §10: start-up deletes no blob that the
    /// database does not know unless it is older than that, and a database restored from an older
    /// backup does not know the bodies stored since.
    pub fn keeping_unrecorded(mut self, age: Duration) -> Self {
        self.unrecorded_min_age = age;
        self
    }

    /// Stops filling the pack small bodies are appended to; the next ones go to a new pack. A pack
    /// being filled stays even when its every slot is freed (the placer may append to it); once
    /// finished it goes with its last slot, or with the sweep when that was freed before.
    pub async fn finish_pack(&self) -> Result<(), BlobError> {
        Ok(self.placer.finish_pack(Duration::ZERO).await?)
    }

    /// The bodies in the packs of the store at `root`, each with whether its slot still holds
    /// data (for checks and tests: a slot freed by a deletion holds none).
    pub fn packed_blobs(root: &Path) -> std::io::Result<Vec<(PathBuf, PackEntry, bool)>> {
        let mut found = Vec::new();
        let dir = match fs::read_dir(root.join(packs::DIR)) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for entry in dir {
            let path = entry?.path();
            let Ok(file) = File::open(&path) else {
                continue; // gone meanwhile
            };
            for listed in packs::entries(&file)? {
                let holds = packs::holds_data(&file, listed.offset)?;
                found.push((path.clone(), listed, holds));
            }
        }
        Ok(found)
    }

    fn remember(&self, sha256: &str, slot: Slot) {
        let mut cache = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= SLOT_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(sha256.to_string(), slot);
    }

    fn forget(&self, sha256: &str) {
        let mut cache = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(sha256);
    }

    fn cached_slot(&self, sha256: &str) -> Option<Slot> {
        let cache = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(sha256).cloned()
    }

    /// The slot the database records for a blob; None when it records none (a file, or no row).
    async fn recorded_slot(&self, sha256: &str) -> Result<Option<Slot>, BlobError> {
        let Some(life) = self.keys.get() else {
            return Ok(None);
        };
        let key = life.blob_object_key(sha256).await.map_err(|e| {
            BlobError::Io(std::io::Error::other(format!(
                "cannot look up where blob {sha256} is packed: {e}"
            )))
        })?;
        Ok(key.as_deref().and_then(Slot::parse))
    }

    /// Opens a stored blob: its file, or the pack that holds it (a slot freed, or a pack gone,
    /// reads as missing).
    async fn open_blob(&self, sha256: &str) -> Result<Opened, BlobError> {
        if !valid_sha256(sha256) {
            return Err(BlobError::NotFound);
        }
        let cached = self.cached_slot(sha256);
        let (paths, root) = (self.blob_paths(sha256), self.root.clone());
        let first = cached.clone();
        let found = blocking(move || match first {
            Some(slot) => open_slot(&root, &slot),
            None => open_first(paths)
                .map(|file| Opened {
                    file,
                    base: 0,
                    len: None,
                })
                .map_err(BlobError::from),
        })
        .await;
        match found {
            Err(BlobError::NotFound) if self.keys.get().is_some() => {}
            found => return found,
        }
        // A stale slot, or a blob that is no file: the database says where it is, if anywhere.
        if cached.is_some() {
            self.forget(sha256);
            let paths = self.blob_paths(sha256);
            let file = blocking(move || open_first(paths).map_err(BlobError::from)).await;
            match file {
                Err(BlobError::NotFound) => {}
                file => {
                    return file.map(|file| Opened {
                        file,
                        base: 0,
                        len: None,
                    })
                }
            }
        }
        let Some(slot) = self.recorded_slot(sha256).await? else {
            return Err(BlobError::NotFound);
        };
        let (root, at) = (self.root.clone(), slot.clone());
        let opened = blocking(move || open_slot(&root, &at)).await?;
        self.remember(sha256, slot);
        Ok(opened)
    }

    /// Frees a packed body's slot, and removes its pack once no slot in it holds data.
    async fn free_slot(&self, slot: Slot) -> Result<(), BlobError> {
        let root = self.root.clone();
        blocking(move || free_slot(&root, &slot)).await
    }

    /// Frees the slots of packs that no blob row records: a duplicate's, or an upload's that
    /// stopped between its placement and its record. Only packs not swept before are looked at, and
    /// only those at least `older_than` old (younger ones may have records on their way), and never
    /// younger than `keeping_unrecorded` says;
    /// a pack is marked swept (its owner-execute bit) once its unrecorded slots (and any bytes
    /// after its last slot) are freed, and removed when none is left. The pack being filled is
    /// left alone. Answers how many slots were freed.
    pub async fn sweep_packs(&self, older_than: Option<Duration>) -> Result<usize, BlobError> {
        let Some(life) = self.keys.get() else {
            return Ok(0);
        };
        let dir = self.root.join(packs::DIR);
        let age = older_than.unwrap_or_default().max(self.unrecorded_min_age);
        // A quiet server's pack is finished here, or it would be filled (and skipped) for ever.
        self.placer.finish_pack(packs::FILL_FOR).await?;
        let candidates = blocking(move || unswept_packs(&dir, age)).await?;
        let mut freed = 0;
        for path in candidates {
            let opened = {
                let path = path.clone();
                blocking(move || {
                    let file = File::options().read(true).write(true).open(&path)?;
                    // Locked from here on; a pack being filled (by this process or another) waits.
                    if packs::being_filled(&file)? {
                        return Ok(None);
                    }
                    let listed = packs::entries(&file)?;
                    Ok(Some((file, listed)))
                })
                .await
            };
            let (file, listed) = match opened {
                Ok(Some(opened)) => opened,
                Ok(None) => continue,
                Err(BlobError::NotFound) => continue,
                Err(e) => {
                    tracing::warn!(pack = %path.display(), "cannot sweep a pack: {e}");
                    continue;
                }
            };
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let mut dead = Vec::new();
            let mut live = 0;
            for e in &listed {
                let slot = Slot {
                    pack: name.to_string(),
                    offset: e.offset,
                    len: e.len,
                };
                let recorded = life.blob_of_object(&slot.key()).await.map_err(|e| {
                    BlobError::Io(std::io::Error::other(format!(
                        "cannot sweep the packs (the database): {e}"
                    )))
                })?;
                match recorded {
                    Some(_) => live += 1,
                    None => dead.push(slot),
                }
            }
            freed += blocking(move || sweep_pack(&path, &file, &listed, &dead, live)).await?;
        }
        Ok(freed)
    }

    /// Removes the temporaries no upload holds (see `BlobStore::remove_temporaries`).
    async fn remove_temporary_files(
        &self,
        older_than: Option<Duration>,
    ) -> Result<usize, BlobError> {
        let dir = self.tmp_dir();
        tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
            let mut removed = 0;
            let now = SystemTime::now();
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                if let Some(age) = older_than {
                    // A temporary can vanish mid-scan (its upload finished): skip it.
                    let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                        continue;
                    };
                    if now.duration_since(modified).unwrap_or_default() < age {
                        continue;
                    }
                }
                // An upload in progress holds a lock on its temporary: leave it alone.
                let Ok(file) = File::open(entry.path()) else {
                    continue;
                };
                let held =
                    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                        .is_err();
                if !held && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e.to_string())))?
        .map_err(BlobError::from)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A partial (tus) upload's file: beside the temporaries, never swept with them (it waits for
    /// its next chunk for as long as its upload lives).
    fn partial_path(&self, id: &str) -> Result<PathBuf, BlobError> {
        if !valid_partial_id(id) {
            return Err(bad_id());
        }
        Ok(self.root.join("partial").join(id))
    }

    /// Where a blob is written (`ab/abcd…`), then where an earlier version may have put it.
    fn blob_paths(&self, sha256: &str) -> [PathBuf; 2] {
        [
            placing::blob_path(&self.root, sha256),
            placing::legacy_path(&self.root, sha256),
        ]
    }
}

/// Opens the first of `paths` that exists.
fn open_first(paths: [PathBuf; 2]) -> std::io::Result<File> {
    match File::open(&paths[0]) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::open(&paths[1]),
        found => found,
    }
}

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(join_error)?
}

/// Opens the pack holding `slot`; a pack gone or a slot freed is `NotFound`.
fn open_slot(root: &Path, slot: &Slot) -> Result<Opened, BlobError> {
    let file = File::open(slot.path(root))?;
    if !packs::holds_data(&file, slot.offset)? {
        return Err(BlobError::NotFound);
    }
    Ok(Opened {
        file,
        base: slot.offset,
        len: Some(slot.len),
    })
}

/// Frees `slot` and removes its pack once no slot in it holds data, unless a placer is filling
/// it. A pack gone already is fine.
fn free_slot(root: &Path, slot: &Slot) -> Result<(), BlobError> {
    let path = slot.path(root);
    let file = match File::options().read(true).write(true).open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        opened => opened?,
    };
    packs::free(&file, slot.offset, slot.len)?;
    if !packs::holds_any_slot(&file)? && !packs::being_filled(&file)? {
        remove_pack(&path)?;
    }
    Ok(())
}

fn remove_pack(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        removed => removed,
    }
}

/// The mark of a swept pack: its owner's execute bit (its owner must still write it, to free
/// slots, so the mark cannot be a read-only mode).
const SWEPT: u32 = 0o100;

/// The packs in `dir` that no sweep marked and that were last changed at least `age` ago.
fn unswept_packs(dir: &Path, age: Duration) -> Result<Vec<PathBuf>, BlobError> {
    use std::os::unix::fs::PermissionsExt;
    let now = SystemTime::now();
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        entries => entries?,
    };
    for entry in entries {
        let entry = entry?;
        let named = entry.file_name();
        if !named.to_str().is_some_and(packs::valid_pack_name) {
            continue;
        }
        // A pack can vanish mid-scan (its last slot freed): skip it.
        let Ok(meta) = entry.metadata() else { continue };
        if meta.permissions().mode() & SWEPT != 0 {
            continue;
        }
        let modified = meta.modified().unwrap_or(now);
        if now.duration_since(modified).unwrap_or_default() < age {
            continue;
        }
        found.push(entry.path());
    }
    Ok(found)
}

/// Frees the `dead` slots of the pack at `path` that still hold data, and any bytes after its
/// `listed` slots; removes the pack when no slot is `live`, else marks it swept. Answers how many
/// slots were freed.
fn sweep_pack(
    path: &Path,
    file: &File,
    listed: &[PackEntry],
    dead: &[Slot],
    live: usize,
) -> Result<usize, BlobError> {
    use std::os::unix::fs::PermissionsExt;
    let mut freed = 0;
    for slot in dead {
        if packs::holds_data(file, slot.offset)? {
            packs::free(file, slot.offset, slot.len)?;
            freed += 1;
        }
    }
    if live == 0 {
        remove_pack(path)?;
    } else {
        packs::free_tail(file, listed, packs::slots_start(file)?)?;
        let mode = file.metadata()?.permissions().mode();
        file.set_permissions(fs::Permissions::from_mode((mode & 0o777) | SWEPT))?;
    }
    Ok(freed)
}

/// A staged upload on this disk: the temporary file, removed when dropped unless it was committed,
/// and the open file holding its lock, so that no sweep (of this or another process) takes it while
/// it waits to be committed; or, for a small body, its bytes (`IN_MEMORY`).
struct LocalStaging {
    temp: Option<PathBuf>,
    in_memory: Option<Vec<Bytes>>,
    _lock: Option<File>,
    /// Whether the file's data was synced when it was written; otherwise the placer makes it
    /// durable with the rest of its batch (small files: see `Writer::write_batch`), through `_lock`.
    synced: bool,
}

impl Drop for LocalStaging {
    fn drop(&mut self) {
        if let Some(path) = self.temp.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A temporary file being written, with the hash of what went into it so far.
struct Writer {
    file: File,
    /// The same file opened for writes past the page cache, for a body of several batches.
    direct: Option<direct::Direct>,
    hasher: Sha256,
    size: u64,
    synced: bool,
}

impl Writer {
    /// Creates the temporary file, locked (on a blocking thread); with `direct`, opens it for
    /// writes past the page cache too, where the file system allows.
    fn create(temp: &Path, direct: bool) -> std::io::Result<Writer> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Only the server reads the bytes: no group or other bits, whatever the umask.
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(temp)?;
        // Held until the blob is committed or dropped: sweeps skip locked temporaries. (An `flock`
        // belongs to this open file, so closing the direct one leaves it.)
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        Ok(Writer {
            file,
            direct: if direct {
                direct::Direct::open(temp)
            } else {
                None
            },
            hasher: Sha256::new(),
            size: 0,
            synced: false,
        })
    }

    /// Writes a body's only batch through the page cache (on a blocking thread), and hashes it too
    /// unless `hashed_apart`. Its data is made durable by the placer, with the rest of the placer's
    /// batch of small files (`placing::place_batch`).
    fn write_batch(mut self, batch: Vec<Bytes>, hashed_apart: bool) -> std::io::Result<Writer> {
        use std::os::unix::fs::FileExt;
        if !hashed_apart {
            batch.iter().for_each(|chunk| self.hasher.update(chunk));
        }
        for chunk in &batch {
            self.file.write_all_at(chunk, self.size)?;
            self.size += chunk.len() as u64;
        }
        Ok(self)
    }

    /// Writes one batch of a body of several (`Aligned`, on a blocking thread; the batch is hashed
    /// on another): its whole blocks past the page cache where the file system allows, the
    /// ordinary way where it does not or refuses them (and from then on); with `last`, the bytes
    /// after them too, then makes the file durable.
    fn write_aligned(mut self, batch: &direct::Aligned, last: bool) -> std::io::Result<Writer> {
        use std::os::unix::fs::FileExt;
        let start = self.size;
        let blocks = batch.whole_blocks();
        let written_directly = match self.direct.as_ref().map(|d| d.write_at(blocks, start)) {
            Some(Ok(())) => true,
            Some(Err(direct::DirectError::Io(e))) => return Err(e),
            Some(Err(direct::DirectError::Refused)) => {
                self.direct = None;
                false
            }
            None => false,
        };
        if !written_directly {
            self.file.write_all_at(blocks, start)?;
        }
        self.size += blocks.len() as u64;
        if last {
            // The last partial block, through the ordinary descriptor.
            let rest = &batch.bytes()[blocks.len()..];
            self.file.write_all_at(rest, self.size)?;
            self.size += rest.len() as u64;
            self.direct = None;
            // The data (what was written directly is on the disk already: this flushes the disk's
            // cache) and the size; the rename that follows is made durable with its directory.
            self.file.sync_data()?;
            self.synced = true;
        } else if self.direct.is_none() {
            self.start_write_back(start);
        }
        Ok(self)
    }

    /// Starts the write-back of what was written from `start` on, without waiting.
    fn start_write_back(&self, start: u64) {
        if let Some(len) = std::num::NonZeroU64::new(self.size - start) {
            // `POSIX_FADV_DONTNEED` on pages just written starts their write-back without waiting
            // (it only drops pages already clean). A hint: a failure changes nothing.
            let _ = rustix::fs::fadvise(&self.file, start, Some(len), rustix::fs::Advice::DontNeed);
        }
    }
}

/// Where a batch is written: into a temporary file to create, or after the batches before.
enum Target {
    New(PathBuf),
    After(Writer),
}

/// A body's only batch being written through the page cache, and hashed, on blocking threads.
struct InFlight {
    writing: tokio::task::JoinHandle<std::io::Result<Writer>>,
    /// The hash so far, when a large batch is hashed beside its writing (`HASH_APART`).
    hashing: Option<tokio::task::JoinHandle<Sha256>>,
}

impl InFlight {
    fn start(temp: PathBuf, batch: Vec<Bytes>, batch_len: usize) -> InFlight {
        // The chunks are shared, not copied: `Bytes` clones are reference counts.
        let hashed = (batch_len >= HASH_APART).then(|| batch.clone());
        let apart = hashed.is_some();
        // The writing starts first (see `start_write`).
        let writing = tokio::task::spawn_blocking(move || {
            Writer::create(&temp, false)?.write_batch(batch, apart)
        });
        let hashing = hashed.map(|chunks| {
            tokio::task::spawn_blocking(move || {
                let mut hasher = Sha256::new();
                chunks.iter().for_each(|chunk| hasher.update(chunk));
                hasher
            })
        });
        InFlight { writing, hashing }
    }

    /// Waits for the batch: the writer, with the hash of the body.
    async fn done(self) -> Result<Writer, BlobError> {
        // The writing first: the caller removes the file on an error, and must not before then.
        let mut writer = self.writing.await.map_err(join_error)??;
        if let Some(hashing) = self.hashing {
            writer.hasher = hashing.await.map_err(join_error)?;
        }
        Ok(writer)
    }
}

/// Starts writing a batch of a body of several on a blocking thread (`Writer::write_aligned`).
/// A body's batches are written one after the other and hashed one after the other, the two
/// chains apart: the write of a batch waits for the write before it and for the batch, not for any
/// hash. (Both threads of a batch used to wake at once; on cores busy receiving and hashing, the
/// one woken second waited about as long as the next batch took to arrive, and the disk stood idle
/// that long when it was the writer.)
fn start_write(
    into: Target,
    batch: Arc<direct::Aligned>,
    last: bool,
) -> tokio::task::JoinHandle<std::io::Result<Writer>> {
    tokio::task::spawn_blocking(move || {
        let writer = match into {
            Target::New(temp) => Writer::create(&temp, true)?,
            Target::After(writer) => writer,
        };
        writer.write_aligned(&batch, last)
    })
}

/// Starts hashing a batch of a body of several after the batches before (`hasher`), on a blocking
/// thread: its whole blocks, and with `last` all of it. Answers the hash so far and the batch.
fn start_hash(
    batch: Arc<direct::Aligned>,
    last: bool,
    mut hasher: Sha256,
) -> tokio::task::JoinHandle<(Sha256, Arc<direct::Aligned>)> {
    tokio::task::spawn_blocking(move || {
        hasher.update(if last {
            batch.bytes()
        } else {
            batch.whole_blocks()
        });
        (hasher, batch)
    })
}

/// Fills `into` up to `WRITE_BATCH` bytes, from the chunks left over from the batch before
/// (`leftover`: a chunk that did not fit keeps its rest there) and then from the body, copying each
/// chunk as it arrives. Answers the bytes received from the body, and whether it ended.
async fn fill_batch(
    body: &mut ByteStream,
    leftover: &mut std::collections::VecDeque<Bytes>,
    into: &mut direct::Aligned,
    received: &mut u64,
    max_bytes: u64,
) -> Result<(u64, bool), BlobError> {
    let mut arrived = 0u64;
    while into.len() < WRITE_BATCH {
        let chunk = match leftover.pop_front() {
            Some(chunk) => chunk,
            None => match body.next().await {
                Some(Ok(chunk)) => {
                    *received += chunk.len() as u64;
                    if *received > max_bytes {
                        return Err(BlobError::TooLarge { limit: max_bytes });
                    }
                    arrived += chunk.len() as u64;
                    chunk
                }
                Some(Err(e)) => return Err(BlobError::Interrupted(e)),
                None => return Ok((arrived, true)),
            },
        };
        let room = WRITE_BATCH - into.len();
        if chunk.len() > room {
            into.extend(&chunk[..room]);
            leftover.push_front(chunk.slice(room..));
        } else {
            into.extend(&chunk);
        }
    }
    Ok((arrived, false))
}

/// The next batch of a body: up to about `WRITE_BATCH` bytes, and whether the body ended.
async fn next_batch(
    body: &mut ByteStream,
    received: &mut u64,
    max_bytes: u64,
) -> Result<(Vec<Bytes>, usize, bool), BlobError> {
    let mut batch = Vec::new();
    let mut batch_len = 0;
    while batch_len < WRITE_BATCH {
        match body.next().await {
            Some(Ok(chunk)) => {
                *received += chunk.len() as u64;
                if *received > max_bytes {
                    return Err(BlobError::TooLarge { limit: max_bytes });
                }
                batch_len += chunk.len();
                batch.push(chunk);
            }
            Some(Err(e)) => return Err(BlobError::Interrupted(e)),
            None => return Ok((batch, batch_len, true)),
        }
    }
    Ok((batch, batch_len, false))
}

fn join_error(e: tokio::task::JoinError) -> BlobError {
    BlobError::Io(std::io::Error::other(e.to_string()))
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn stage(&self, mut body: ByteStream, max_bytes: u64) -> Result<StagedBlob, BlobError> {
        let name: [u8; 16] = rand::random();
        let temp = self.tmp_dir().join(format!("{}.part", hex::encode(name)));
        // From here on the guard removes the temporary on every early return.
        let mut staging = LocalStaging {
            temp: Some(temp.clone()),
            in_memory: None,
            _lock: None,
            synced: false,
        };
        // Chunks are gathered into batches on this task and each batch is hashed and written on
        // blocking threads (`InFlight`) while the next one arrives. A client that stalls holds no blocking thread.
        // The file is created with the first batch, and a body that fits in one batch is created,
        // written and synced in one blocking call.
        let mut received = 0u64;
        let (batch, batch_len, mut ended) = next_batch(&mut body, &mut received, max_bytes).await?;
        self.room.check(&self.root, batch_len as u64)?;
        if ended && batch_len <= IN_MEMORY {
            let mut hasher = Sha256::new();
            batch.iter().for_each(|chunk| hasher.update(chunk));
            staging.temp = None;
            staging.in_memory = Some(batch);
            let sha256 = hex::encode(hasher.finalize());
            return Ok(StagedBlob::new(sha256, batch_len as u64, staging));
        }
        let writer = if ended {
            // A body of one batch: written through the page cache, and made durable by the placer
            // with the rest of its batch.
            InFlight::start(temp, batch, batch_len).done().await?
        } else {
            // A body of several batches, each gathered into an aligned buffer as it arrives and
            // written past the page cache (`direct`) and hashed while the next one arrives. Every
            // batch but the last holds `WRITE_BATCH` bytes: whole blocks.
            let mut leftover: std::collections::VecDeque<Bytes> = batch.into();
            let mut first = direct::Aligned::with_capacity(WRITE_BATCH);
            fill_batch(
                &mut body,
                &mut leftover,
                &mut first,
                &mut received,
                max_bytes,
            )
            .await?;
            let first = Arc::new(first);
            let mut writing = start_write(Target::New(temp), Arc::clone(&first), false);
            let mut hashing = start_hash(first, false, Sha256::new());
            let mut spare = None;
            while !ended {
                let mut next = spare
                    .take()
                    .unwrap_or_else(|| direct::Aligned::with_capacity(WRITE_BATCH));
                next.clear();
                let filled = fill_batch(
                    &mut body,
                    &mut leftover,
                    &mut next,
                    &mut received,
                    max_bytes,
                )
                .await;
                // The writer must be done before the guard removes the file on an early return.
                let writer = writing.await.map_err(join_error)??;
                let (arrived, end) = filled?;
                self.room.check(&self.root, arrived)?;
                ended = end;
                let next = Arc::new(next);
                writing = start_write(Target::After(writer), Arc::clone(&next), end);
                let (hasher, hashed) = hashing.await.map_err(join_error)?;
                hashing = start_hash(next, end, hasher);
                // Its write is done too: the buffer is free for the batch after.
                spare = Arc::into_inner(hashed);
            }
            let mut writer = writing.await.map_err(join_error)??;
            writer.hasher = hashing.await.map_err(join_error)?.0;
            writer
        };
        let sha256 = hex::encode(writer.hasher.finalize());
        staging._lock = Some(writer.file);
        staging.synced = writer.synced;
        Ok(StagedBlob::new(sha256, writer.size, staging))
    }

    async fn place_keyed(&self, staged: &mut StagedBlob) -> Result<bool, BlobError> {
        if self.keys.get().is_none()
            || !self.holes
            || staged.size == 0
            || staged.object_key.is_some()
        {
            return Ok(false);
        }
        let Some(staging) = staged.staging.downcast_ref::<LocalStaging>() else {
            return Ok(false);
        };
        // `Bytes` are shared: the staged blob keeps the same buffers, for `commit`'s fallback.
        let Some(chunks) = staging.in_memory.clone() else {
            return Ok(false);
        };
        let slot = self.placer.pack(chunks, &staged.sha256).await?;
        staged.object_key = Some(slot.key());
        // Not remembered for reads: the slot may be a duplicate's, freed by its record's job
        // while a read that found it in the cache is under way (a hole reads as zeros). Reads
        // look up the slot the row records.
        Ok(true)
    }

    async fn discard_object(&self, object_key: &str) -> Result<(), BlobError> {
        let (Some(life), Some(slot)) = (self.keys.get(), Slot::parse(object_key)) else {
            return Ok(());
        };
        let recorded = life.blob_of_object(object_key).await.map_err(|e| {
            BlobError::Io(std::io::Error::other(format!(
                "cannot tell whether {object_key} is recorded: {e}"
            )))
        })?;
        if recorded.is_some() {
            return Ok(());
        }
        self.free_slot(slot).await
    }

    async fn commit(&self, staged: StagedBlob) -> Result<(), BlobError> {
        if staged.object_key.is_some() {
            // Packed by `place_keyed`: durable already, and settled by the upload's record.
            return Ok(());
        }
        let sha256 = staged.sha256.clone();
        let mut staging = staged.into_staging::<LocalStaging>()?;
        if let Some(chunks) = staging.in_memory.take() {
            let sent = placing::Content::Bytes(chunks);
            return self
                .placer
                .place(sent, &sha256)
                .await
                .map_err(BlobError::from);
        }
        let Some(path) = staging.temp.as_ref() else {
            return Ok(());
        };
        // The descriptor that wrote the file (a duplicate shares its write-back error state).
        // Taken before the temporary leaves the guard, which removes it on an early return.
        let unsynced = match (&staging._lock, staging.synced) {
            (_, true) => None,
            (Some(file), false) => Some(file.try_clone()?),
            (None, false) => Some(File::open(path)?),
        };
        let Some(temp) = staging.temp.take() else {
            return Ok(());
        };
        let staged = placing::Content::Staged { temp, unsynced };
        self.placer
            .place(staged, &sha256)
            .await
            .map_err(BlobError::from)
    }

    fn stand_in(&self, staged: &StagedBlob) -> Option<StagedBlob> {
        let staging = staged.staging.downcast_ref::<LocalStaging>()?;
        // `Bytes` are shared: the copy holds the same buffers.
        let chunks = staging.in_memory.clone()?;
        let copy = LocalStaging {
            temp: None,
            in_memory: Some(chunks),
            _lock: None,
            synced: false,
        };
        Some(StagedBlob::new(staged.sha256.clone(), staged.size, copy))
    }

    async fn read(&self, sha256: &str, start: u64, len: u64) -> Result<ByteStream, BlobError> {
        if !valid_sha256(sha256) {
            return Err(BlobError::NotFound);
        }
        if self.keys.get().is_none() {
            // Files only: the open and the seek in one blocking call.
            let paths = self.blob_paths(sha256);
            let file = blocking(move || {
                let mut f = open_first(paths)?;
                f.seek(SeekFrom::Start(start))?;
                Ok(f)
            })
            .await?;
            return Ok(stream::stream_file(file, len));
        }
        let opened = self.open_blob(sha256).await?;
        let len = opened.clamp(start, len);
        let mut file = opened.file;
        let at = opened.base.saturating_add(start);
        let file = blocking(move || {
            file.seek(SeekFrom::Start(at))?;
            Ok(file)
        })
        .await?;
        Ok(stream::stream_file(file, len))
    }

    async fn read_small(&self, sha256: &str, start: u64, len: u64) -> Result<Bytes, BlobError> {
        if !valid_sha256(sha256) {
            return Err(BlobError::NotFound);
        }
        if self.keys.get().is_none() {
            let paths = self.blob_paths(sha256);
            return crate::small::read_file_range(move || open_first(paths), start, len).await;
        }
        let opened = self.open_blob(sha256).await?;
        let len = opened.clamp(start, len);
        let at = opened.base.saturating_add(start);
        // A packed body's slot, to look at again after the read: freed meanwhile (the blob
        // deleted), it read as zeros, and the blob is gone.
        let slot = opened.len.map(|_| opened.base);
        blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; len as usize];
            opened.file.read_exact_at(&mut buf, at)?;
            if let Some(slot) = slot {
                if !packs::holds_data(&opened.file, slot)? {
                    return Err(BlobError::NotFound);
                }
            }
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        if !valid_sha256(sha256) {
            return Ok(());
        }
        // Its file, in either layout (a file is in one of them, never both)…
        for path in self.blob_paths(sha256) {
            match tokio::fs::remove_file(path).await {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        // …and its slot, when its row records one (a blob can have both: a file stored by an
        // upload that pinned the blob while another recorded its slot).
        self.forget(sha256);
        if let Some(slot) = self.recorded_slot(sha256).await? {
            self.free_slot(slot).await?;
        }
        Ok(())
    }

    async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        if !valid_sha256(sha256) {
            return Ok(false);
        }
        for path in self.blob_paths(sha256) {
            if tokio::fs::try_exists(path).await? {
                return Ok(true);
            }
        }
        let Some(slot) = self.recorded_slot(sha256).await? else {
            return Ok(false);
        };
        let root = self.root.clone();
        match blocking(move || open_slot(&root, &slot)).await {
            Ok(_) => Ok(true),
            Err(BlobError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn use_object_keys(&self, life: Arc<dyn BlobLifecycleStore>) {
        // Set once, at start, before any upload: a second call (the same database) changes nothing.
        let _ = self.keys.set(life);
    }

    /// Whether any blob is stored: a file, or a pack.
    async fn holds_blobs(&self) -> Result<bool, BlobError> {
        let packs = self.root.join(packs::DIR);
        let packed = blocking(move || match fs::read_dir(&packs) {
            Ok(mut entries) => Ok(entries.next().is_some()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        })
        .await?;
        match self.list().next().await {
            _ if packed => Ok(true),
            None => Ok(false),
            Some(first) => first.map(|_| true),
        }
    }

    /// On the calling thread: the placement just looked the path up (or wrote it), so its shard
    /// directory and the entry are in the kernel's cache and the look takes a few microseconds,
    /// less than handing it to a blocking thread and waking this task again (two wake-ups).
    async fn exists_after_placing(&self, sha256: &str) -> Result<bool, BlobError> {
        if !valid_sha256(sha256) {
            return Ok(false);
        }
        for path in self.blob_paths(sha256) {
            if path.try_exists()? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn count_temporaries(&self) -> Result<usize, BlobError> {
        let dir = self.tmp_dir();
        tokio::task::spawn_blocking(move || match fs::read_dir(&dir) {
            Ok(entries) => Ok(entries.count()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(BlobError::Io(e)),
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e.to_string())))?
    }

    async fn remove_temporaries(&self, older_than: Option<Duration>) -> Result<usize, BlobError> {
        let removed = self.remove_temporary_files(older_than).await?;
        let freed = self.sweep_packs(older_than).await?;
        if freed > 0 {
            tracing::info!("freed {freed} slots of packed bodies that no blob row records");
        }
        Ok(removed)
    }

    fn list(&self) -> BoxStream<'static, Result<StoredBlob, BlobError>> {
        // A blocking thread walks the shards and hands blobs over a small channel, so that listing
        // millions of blobs holds only a few in memory.
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = walk(&root, &mut |blob| tx.blocking_send(Ok(blob)).is_ok()) {
                let _ = tx.blocking_send(Err(BlobError::from(e)));
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }

    async fn partial_write(
        &self,
        id: &str,
        offset: u64,
        mut body: ByteStream,
        max_bytes: u64,
        digest: Option<ChunkDigest>,
    ) -> Result<WrittenChunk, BlobError> {
        let path = self.partial_path(id)?;
        let mut file = tokio::task::spawn_blocking(move || -> Result<File, BlobError> {
            let file = fs::OpenOptions::new()
                .write(true)
                .create(offset == 0)
                .truncate(false)
                .open(&path)?;
            let held = file.metadata()?.len();
            if held < offset {
                return Err(missing_bytes(held, offset));
            }
            // Leftovers of a chunk the database never counted go; then the chunk follows.
            file.set_len(offset)?;
            Ok(file)
        })
        .await
        .map_err(join_error)??;
        let mut meter = ChunkMeter::new(max_bytes, digest);
        loop {
            let mut batch = Vec::new();
            let mut batch_len = 0;
            let mut ended = false;
            while batch_len < WRITE_BATCH {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        meter.take(&chunk)?;
                        batch_len += chunk.len();
                        batch.push(chunk);
                    }
                    Some(Err(e)) => return Err(BlobError::Interrupted(e)),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            self.room.check(&self.root, batch_len as u64)?;
            file = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
                file.seek(SeekFrom::End(0))?;
                for chunk in &batch {
                    file.write_all(chunk)?;
                }
                Ok(file)
            })
            .await
            .map_err(join_error)??;
            if ended {
                break;
            }
        }
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(join_error)??;
        Ok(meter.finish())
    }

    async fn partial_len(&self, id: &str) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.partial_path(id)?).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn partial_finish(&self, id: &str, len: u64) -> Result<StagedBlob, BlobError> {
        let path = self.partial_path(id)?;
        let name: [u8; 16] = rand::random();
        let temp = self.tmp_dir().join(format!("{}.part", hex::encode(name)));
        // The staged blob is a second name of the partial file: no copy, and the partial upload
        // stays whole should the completion fail and run again.
        let mut staging = LocalStaging {
            temp: Some(temp.clone()),
            in_memory: None,
            _lock: None,
            synced: false,
        };
        let (sha256, file) =
            tokio::task::spawn_blocking(move || -> Result<(String, File), BlobError> {
                let held = fs::metadata(&path)?.len();
                if held < len {
                    return Err(missing_bytes(held, len));
                }
                if held > len {
                    fs::OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(len)?;
                }
                fs::hard_link(&path, &temp)?;
                let file = File::open(&temp)?;
                rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                    .map_err(std::io::Error::from)?;
                let mut hasher = Sha256::new();
                let mut reader = std::io::BufReader::with_capacity(READ_CHUNK, &file);
                std::io::copy(&mut reader, &mut hasher)?;
                Ok((hex::encode(hasher.finalize()), file))
            })
            .await
            .map_err(join_error)??;
        staging._lock = Some(file);
        Ok(StagedBlob::new(sha256, len, staging))
    }

    async fn partial_abort(&self, id: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.partial_path(id)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        let meta = tokio::fs::metadata(self.tmp_dir()).await?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(BlobError::Io(std::io::Error::other(
                "the blob temporary directory is not a directory",
            )))
        }
    }
}

/// Calls `found` for every stored blob under `root` until it answers false: `ab/abcd…`, and
/// `ab/cd/abcd…` as earlier versions stored them.
fn walk(root: &Path, found: &mut dyn FnMut(StoredBlob) -> bool) -> std::io::Result<()> {
    let is_shard = |name: &std::ffi::OsStr| {
        name.to_str()
            .is_some_and(|n| n.len() == 2 && valid_sha256(&n.repeat(32)))
    };
    for top in fs::read_dir(root)? {
        let top = top?;
        // Only the two-hex-digit shard directories hold blobs (a mount point's lost+found and the
        // like are none of ours).
        if !is_shard(&top.file_name()) || !top.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(top.path())? {
            let entry = entry?;
            let more = if is_shard(&entry.file_name()) && entry.file_type()?.is_dir() {
                walk_shard(&entry.path(), found)?
            } else {
                report(&entry, found)
            };
            if !more {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reports the blobs of one directory; false when `found` wants no more.
fn walk_shard(dir: &Path, found: &mut dyn FnMut(StoredBlob) -> bool) -> std::io::Result<bool> {
    for blob in fs::read_dir(dir)? {
        if !report(&blob?, found) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reports one entry if it is a blob; false when `found` wants no more.
fn report(blob: &fs::DirEntry, found: &mut dyn FnMut(StoredBlob) -> bool) -> bool {
    let name = blob.file_name();
    let Some(name) = name.to_str().filter(|n| valid_sha256(n)) else {
        return true;
    };
    // A blob can vanish mid-scan (collected): skip it.
    let Ok(modified) = blob.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    let modified_utc = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    found(StoredBlob {
        sha256: name.to_string(),
        modified_utc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
        stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
    }

    fn temporaries(root: &Path) -> usize {
        fs::read_dir(root.join("tmp")).unwrap().count()
    }

    async fn read_all(store: &LocalBlobStore, sha: &str, start: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = store.read(sha, start, len).await.unwrap();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    fn pack_files(root: &Path) -> Vec<PathBuf> {
        fs::read_dir(root.join(packs::DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    /// A store that records keys in `rows`, with an ingest pipeline over both.
    fn keyed() -> (tempfile::TempDir, Arc<LocalBlobStore>, Arc<KeyRows>, Ingest) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let store = Arc::new(store.keeping_unrecorded(Duration::ZERO));
        let rows = Arc::new(KeyRows::default());
        store.use_object_keys(rows.clone());
        let ingest = Ingest::new(store.clone(), rows.clone());
        (dir, store, rows, ingest)
    }

    use crate::conformance::KeyRows;
    use crate::Ingest;

    #[tokio::test]
    async fn with_packs_the_contract_holds_too() {
        let (_dir, store, _rows, _) = keyed();
        crate::conformance::keeps_the_contract(&*store, &crate::MemoryBlobStore::new()).await;
        crate::conformance::keeps_the_partial_contract(&*store).await;
    }

    /// A small body committed through the ingest pipeline lands in a pack, under the key the
    /// database records; it reads whole and in ranges, a duplicate gets a slot of its own in the
    /// same pack, freed once its record finds the blob stored, and deleting the blob frees its
    /// slot and removes the emptied pack once it is no longer filled.
    #[tokio::test]
    async fn small_bodies_are_packed_read_deduplicated_and_freed() {
        let (dir, store, rows, ingest) = keyed();
        let root = dir.path();
        let staged = ingest
            .receive(body(vec![b"packed ", b"bytes"]), 100)
            .await
            .unwrap();
        let sha = staged.sha256.clone();
        let committed = ingest.commit(staged).await.unwrap();
        assert!(
            committed.hold.placed().is_some(),
            "placed, not pinned: {committed:?}"
        );
        assert!(rows.rows().is_empty(), "no row before the record");
        rows.record(&*store, &committed).await;
        let key = rows
            .rows()
            .get(&sha)
            .cloned()
            .flatten()
            .expect("a key recorded");
        let slot = Slot::parse(&key).expect("a pack's slot");
        assert_eq!(slot.len, 12);
        assert!(!placing::blob_path(root, &sha).exists(), "no file per body");
        assert_eq!(pack_files(root), [slot.path(root)]);
        assert!(store.exists(&sha).await.unwrap());
        assert_eq!(read_all(&store, &sha, 0, u64::MAX).await, b"packed bytes");
        assert_eq!(read_all(&store, &sha, 7, 3).await, b"byt");
        assert_eq!(read_all(&store, &sha, 7, 100).await, b"bytes");
        assert_eq!(
            &store.read_small(&sha, 0, 12).await.unwrap()[..],
            b"packed bytes"
        );
        assert_eq!(&store.read_small(&sha, 9, 50).await.unwrap()[..], b"tes");
        // A fresh store over the same directory finds it through the database alone.
        let reopened = LocalBlobStore::open(root).unwrap();
        reopened.use_object_keys(rows.clone());
        assert_eq!(
            &reopened.read_small(&sha, 0, 6).await.unwrap()[..],
            b"packed"
        );

        let again = ingest
            .receive(body(vec![b"packed bytes"]), 100)
            .await
            .unwrap();
        let duplicate = ingest.commit(again).await.unwrap();
        let copy = Slot::parse(duplicate.hold.placed().unwrap()).unwrap();
        assert_ne!(copy, slot, "a slot of its own");
        assert_eq!(copy.pack, slot.pack, "in the pack being filled");
        let holding = |at: &Slot| {
            LocalBlobStore::packed_blobs(root)
                .unwrap()
                .into_iter()
                .find(|(_, e, _)| e.offset == at.offset)
                .map(|(_, _, holds)| holds)
        };
        assert_eq!(
            holding(&copy),
            Some(true),
            "the duplicate is durable before its record"
        );
        rows.record(&*store, &duplicate).await;
        assert_eq!(rows.rows().get(&sha).cloned().flatten(), Some(key.clone()));
        assert_eq!(holding(&copy), Some(false), "the duplicate's slot is freed");
        assert_eq!(holding(&slot), Some(true));
        assert_eq!(pack_files(root), [slot.path(root)]);
        assert_eq!(temporaries(root), 0);

        store.finish_pack().await.unwrap();
        store.delete(&sha).await.unwrap();
        assert!(pack_files(root).is_empty(), "the emptied pack is removed");
        assert!(!store.exists(&sha).await.unwrap());
        assert!(matches!(
            store.read(&sha, 0, 1).await,
            Err(BlobError::NotFound)
        ));
        assert!(matches!(
            reopened.read_small(&sha, 0, 1).await,
            Err(BlobError::NotFound)
        ));
        // Empty bodies are files, as before.
        let empty = ingest.receive(body(vec![]), 10).await.unwrap();
        let empty_sha = empty.sha256.clone();
        ingest.commit(empty).await.unwrap();
        assert!(placing::blob_path(root, &empty_sha).is_file());
    }

    /// Freeing one body's slot leaves the others of its pack readable, and the pack stays until
    /// its last slot is freed; a freed slot reads as missing, not as zeros.
    #[tokio::test]
    async fn a_freed_slot_reads_as_missing_and_its_neighbours_stay() {
        let (dir, store, rows, ingest) = keyed();
        // Committed together, the bodies share a batch (or a few).
        let bodies: Vec<Vec<u8>> = (0..16u8).map(|n| vec![n; 100 + n as usize * 300]).collect();
        let commits = bodies.iter().map(|b| {
            let ingest = ingest.clone();
            let chunk = Bytes::from(b.clone());
            async move {
                let staged = ingest
                    .receive(stream::iter([Ok(chunk)]).boxed(), 1 << 20)
                    .await
                    .unwrap();
                ingest.commit(staged).await.unwrap()
            }
        });
        let mut shas = Vec::new();
        for committed in futures_util::future::join_all(commits).await {
            rows.record(&*store, &committed).await;
            shas.push(committed.sha256);
        }
        assert_eq!(pack_files(dir.path()).len(), 1, "one pack filled");
        for (n, sha) in shas.iter().enumerate().step_by(2) {
            store.delete(sha).await.unwrap();
            rows.rows().remove(sha);
            assert!(
                matches!(store.read(sha, 0, 1).await, Err(BlobError::NotFound)),
                "{n}"
            );
        }
        for (n, sha) in shas.iter().enumerate().skip(1).step_by(2) {
            assert_eq!(read_all(&store, sha, 0, u64::MAX).await, bodies[n], "{n}");
        }
        store.finish_pack().await.unwrap();
        for sha in shas.iter().skip(1).step_by(2) {
            assert_eq!(pack_files(dir.path()).len(), 1);
            store.delete(sha).await.unwrap();
        }
        assert!(pack_files(dir.path()).is_empty());
    }

    /// The pack being filled stays when every slot it holds is freed (the placer appends to it
    /// still): bodies placed after read whole. Finished, it goes with its last slot; a pack
    /// emptied while it was filled goes with the sweep.
    #[tokio::test]
    async fn the_pack_being_filled_stays_when_its_slots_are_freed() {
        let (dir, store, rows, ingest) = keyed();
        let ingest_first = ingest.clone();
        let root = dir.path();
        let first = ingest.receive(body(vec![b"first"]), 100).await.unwrap();
        let first = ingest.commit(first).await.unwrap();
        rows.record(&*store, &first).await;
        store.delete(&first.sha256).await.unwrap();
        rows.rows().remove(&first.sha256);
        assert_eq!(pack_files(root).len(), 1, "kept while filled");
        let second = ingest.receive(body(vec![b"second"]), 100).await.unwrap();
        let second = ingest.commit(second).await.unwrap();
        rows.record(&*store, &second).await;
        let slot = Slot::parse(second.hold.placed().unwrap()).unwrap();
        assert_eq!(pack_files(root), [slot.path(root)]);
        assert_eq!(read_all(&store, &second.sha256, 0, 100).await, b"second");
        // A new store over the directory (a restart) starts a pack of its own.
        let restarted = Arc::new(LocalBlobStore::open(root).unwrap());
        restarted.use_object_keys(rows.clone());
        let ingest = Ingest::new(restarted.clone(), rows.clone());
        let third = ingest.receive(body(vec![b"third"]), 100).await.unwrap();
        let third = ingest.commit(third).await.unwrap();
        rows.record(&*restarted, &third).await;
        let other = Slot::parse(third.hold.placed().unwrap()).unwrap();
        assert_ne!(other.pack, slot.pack);
        assert_eq!(pack_files(root).len(), 2);

        // Another store over the directory (`hangar admin gc` while the server runs) frees the
        // last slot of the pack this one fills: the pack stays, and takes the next body.
        restarted.delete(&second.sha256).await.unwrap();
        rows.rows().remove(&second.sha256);
        assert_eq!(pack_files(root).len(), 2, "still the pack being filled");
        let fourth = ingest_first
            .receive(body(vec![b"fourth"]), 100)
            .await
            .unwrap();
        let fourth = ingest_first.commit(fourth).await.unwrap();
        rows.record(&*store, &fourth).await;
        assert_eq!(
            Slot::parse(fourth.hold.placed().unwrap()).unwrap().pack,
            slot.pack
        );
        assert_eq!(read_all(&store, &fourth.sha256, 0, 100).await, b"fourth");
        store.delete(&fourth.sha256).await.unwrap();
        rows.rows().remove(&fourth.sha256);
        store.finish_pack().await.unwrap();
        assert_eq!(store.sweep_packs(None).await.unwrap(), 0);
        assert!(
            !slot.path(root).exists(),
            "the sweep removed the emptied pack"
        );
    }

    /// A row from before keys (its file stored, as every such row's is before its record): a
    /// placed upload of the same content is a duplicate, whose slot is discarded; a slot that a
    /// row records is never discarded.
    #[tokio::test]
    async fn a_row_without_a_key_keeps_its_file_and_the_copy_is_discarded() {
        let (dir, store, rows, ingest) = keyed();
        let old = store.stage(body(vec![b"old row"]), 100).await.unwrap();
        let sha = old.sha256.clone();
        store.commit(old).await.unwrap();
        rows.rows().insert(sha.clone(), None);
        let staged = ingest.receive(body(vec![b"old row"]), 100).await.unwrap();
        let committed = ingest.commit(staged).await.unwrap();
        let copy = Slot::parse(committed.hold.placed().unwrap()).unwrap();
        assert_eq!(pack_files(dir.path()).len(), 1);
        rows.record(&*store, &committed).await;
        let file = File::open(copy.path(dir.path())).unwrap();
        assert!(!packs::holds_data(&file, copy.offset).unwrap(), "discarded");
        assert_eq!(read_all(&store, &sha, 0, 100).await, b"old row");

        let staged = ingest.receive(body(vec![b"new row"]), 100).await.unwrap();
        let committed = ingest.commit(staged).await.unwrap();
        rows.record(&*store, &committed).await;
        let key = committed.hold.placed().unwrap().to_string();
        store.discard_object(&key).await.unwrap();
        assert_eq!(pack_files(dir.path()).len(), 1, "a recorded slot stays");
        assert_eq!(
            read_all(&store, &committed.sha256, 0, 100).await,
            b"new row"
        );
    }

    /// The sweep frees the slots no row records (an upload that stopped between its placement
    /// and its record) and removes packs left without a recorded slot; a pack with one is kept,
    /// whole where recorded, and marked so that later sweeps skip it. Young packs wait, with an
    /// age given, and so does the pack being filled.
    #[tokio::test]
    async fn the_sweep_frees_unrecorded_slots_and_keeps_recorded_ones() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store, rows, ingest) = keyed();
        let root = dir.path();
        let mut orphan = store
            .stage(body(vec![b"never recorded"]), 100)
            .await
            .unwrap();
        assert!(store.place_keyed(&mut orphan).await.unwrap());
        let orphan_slot = Slot::parse(orphan.object_key.as_deref().unwrap()).unwrap();
        drop(orphan);
        let kept = ingest.receive(body(vec![b"recorded"]), 100).await.unwrap();
        let kept_sha = kept.sha256.clone();
        let committed = ingest.commit(kept).await.unwrap();
        rows.record(&*store, &committed).await;
        assert_eq!(pack_files(root), [orphan_slot.path(root)]);
        // A pack of its own, emptied: the sweep removes it.
        let alone = LocalBlobStore::open(root).unwrap();
        let mut lost = alone.stage(body(vec![b"lost"]), 100).await.unwrap();
        alone.use_object_keys(rows.clone());
        assert!(alone.place_keyed(&mut lost).await.unwrap());
        let lost_slot = Slot::parse(lost.object_key.as_deref().unwrap()).unwrap();
        // That store's placer holds its pack until it finishes it (or its process ends).
        alone.finish_pack().await.unwrap();
        drop((lost, alone));
        assert_eq!(pack_files(root).len(), 2);

        assert_eq!(
            store
                .sweep_packs(Some(Duration::from_secs(3600)))
                .await
                .unwrap(),
            0
        );
        assert_eq!(pack_files(root).len(), 2, "young packs are left alone");
        // A store keeping unrecorded bodies for the grace period leaves them at start too.
        let graceful = LocalBlobStore::open(root).unwrap();
        graceful.use_object_keys(rows.clone());
        assert_eq!(graceful.sweep_packs(None).await.unwrap(), 0);
        assert_eq!(
            pack_files(root).len(),
            2,
            "unknown bodies wait for the grace period"
        );
        assert_eq!(store.sweep_packs(None).await.unwrap(), 1, "the lost body");
        assert!(!lost_slot.path(root).exists());
        assert_eq!(
            store.sweep_packs(None).await.unwrap(),
            0,
            "not the pack being filled"
        );
        store.finish_pack().await.unwrap();
        assert_eq!(store.sweep_packs(None).await.unwrap(), 1);
        let left = pack_files(root);
        assert_eq!(left, [orphan_slot.path(root)]);
        let file = File::open(&left[0]).unwrap();
        assert!(!packs::holds_data(&file, orphan_slot.offset).unwrap());
        let mode = fs::metadata(&left[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "marked swept");
        assert_eq!(read_all(&store, &kept_sha, 0, 100).await, b"recorded");
        assert_eq!(store.sweep_packs(None).await.unwrap(), 0);
        // A swept pack still frees its slots and goes with its last one.
        store.delete(&kept_sha).await.unwrap();
        assert!(pack_files(root).is_empty());
        assert!(rows.rows().contains_key(&kept_sha));
    }

    /// Without keys recorded (a store no server opened: a backup's), small bodies are files.
    #[tokio::test]
    async fn without_keys_small_bodies_are_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let mut staged = store.stage(body(vec![b"a file"]), 100).await.unwrap();
        assert!(!store.place_keyed(&mut staged).await.unwrap());
        let sha = staged.sha256.clone();
        store.commit(staged).await.unwrap();
        assert!(placing::blob_path(dir.path(), &sha).is_file());
        assert!(pack_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn stage_commit_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let staged = store.stage(body(vec![b"hel", b"lo"]), 10).await.unwrap();
        assert_eq!(
            staged.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(staged.size, 5);
        let sha = staged.sha256.clone();
        store.commit(staged).await.unwrap();
        assert!(store.exists(&sha).await.unwrap());
        assert!(store.exists_after_placing(&sha).await.unwrap());
        assert!(dir.path().join(&sha[0..2]).join(&sha).is_file());
        let mut out = Vec::new();
        let mut s = store.read(&sha, 1, 3).await.unwrap();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        assert_eq!(out, b"ell");
        assert_eq!(temporaries(dir.path()), 0);
        // Same content again: committed once, no temporary left.
        let again = store.stage(body(vec![b"hello"]), 10).await.unwrap();
        store.commit(again).await.unwrap();
        assert_eq!(temporaries(dir.path()), 0);
        store.delete(&sha).await.unwrap();
        assert!(!store.exists(&sha).await.unwrap());
        assert!(!store.exists_after_placing(&sha).await.unwrap());
        assert!(!store
            .exists_after_placing("../../etc/passwd")
            .await
            .unwrap());
    }

    /// Bodies of one batch (large ones hashed on a thread of their own and small ones where they
    /// are written) and of several (gathered into whole-block batches, chunks split across them),
    /// in every order and with chunks of any size: the hash is that of all the bytes, and so is the
    /// file.
    #[tokio::test]
    async fn large_batches_hashed_apart_give_the_hash_and_the_bytes_of_the_whole_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        for (total, chunk) in [
            (WRITE_BATCH * 5 / 2, 64 * 1024),
            (WRITE_BATCH + 1000, 64 * 1024),
            (HASH_APART - 1, 64 * 1024),
            (HASH_APART, 64 * 1024),
            // ending on a batch's boundary: the last batch is empty
            (WRITE_BATCH * 2, 10_007),
            (WRITE_BATCH * 2 + 1, 1_000_003),
            // chunks larger than a batch
            (WRITE_BATCH * 3 + 4097, WRITE_BATCH + 7),
        ] {
            let bytes: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
            let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
                .chunks(chunk)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let staged = store
                .stage(stream::iter(chunks).boxed(), total as u64)
                .await
                .unwrap();
            assert_eq!(
                staged.sha256,
                hex::encode(Sha256::digest(&bytes)),
                "{total}"
            );
            assert_eq!(staged.size, total as u64);
            let sha = staged.sha256.clone();
            store.commit(staged).await.unwrap();
            let stored = fs::read(dir.path().join(&sha[0..2]).join(&sha)).unwrap();
            assert!(stored == bytes, "the stored bytes of {total} differ");
        }
        assert_eq!(temporaries(dir.path()), 0);
    }

    /// A body of several batches is written past the page cache, in whole blocks, with the last
    /// partial block the ordinary way: whatever the chunks' sizes, the file holds the body. Where
    /// a direct write is refused, the rest goes the ordinary way, from the bytes it held.
    #[test]
    fn a_body_written_past_the_page_cache_is_whole_and_refusals_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        for (n, (total, chunk, refuse_at)) in [
            (WRITE_BATCH * 2 + 4095, 10_007, None),
            (WRITE_BATCH * 3 + 1, 65_536, None),
            (WRITE_BATCH * 2 + 8192, 4096, None),
            (WRITE_BATCH * 3 + 333, 10_007, Some(1)),
            (WRITE_BATCH * 2 + 5, 1_000_003, Some(0)),
        ]
        .into_iter()
        .enumerate()
        {
            let bytes: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
            let path = dir.path().join(format!("{n}.part"));
            let mut writer = Writer::create(&path, true).unwrap();
            assert!(writer.direct.is_some(), "ext4 takes O_DIRECT");
            // Each batch gathered as `stage` gathers it: the chunks copied in as they come.
            let batches: Vec<direct::Aligned> = bytes
                .chunks(WRITE_BATCH)
                .map(|batch| {
                    let mut aligned = direct::Aligned::with_capacity(WRITE_BATCH);
                    batch.chunks(chunk).for_each(|c| aligned.extend(c));
                    aligned
                })
                .collect();
            let count = batches.len();
            let mut hasher = Sha256::new();
            for (i, mut batch) in batches.into_iter().enumerate() {
                let last = i + 1 == count;
                if refuse_at == Some(i) {
                    batch.misalign();
                }
                hasher.update(if last {
                    batch.bytes()
                } else {
                    batch.whole_blocks()
                });
                writer = writer.write_aligned(&batch, last).unwrap();
                if refuse_at.is_some_and(|at| i >= at) {
                    assert!(writer.direct.is_none(), "{n}: refused, so ordinary");
                }
            }
            assert!(writer.synced && writer.direct.is_none());
            assert_eq!(writer.size, total as u64);
            assert_eq!(
                hex::encode(hasher.finalize()),
                hex::encode(Sha256::digest(&bytes))
            );
            let stored = fs::read(&path).unwrap();
            assert_eq!(stored.len(), total, "{n}");
            assert!(stored == bytes, "{n}: the stored bytes differ");
        }
    }

    #[tokio::test]
    async fn blobs_in_the_old_two_level_layout_are_read_listed_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let old = dir.path().join("2c/f2").join(sha);
        fs::create_dir_all(old.parent().unwrap()).unwrap();
        fs::write(&old, b"hello").unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        assert!(store.exists(sha).await.unwrap());
        assert!(store.exists_after_placing(sha).await.unwrap());
        let mut out = Vec::new();
        let mut s = store.read(sha, 1, 3).await.unwrap();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        assert_eq!(out, b"ell");
        // Listed once beside a blob in the new layout; the same bytes staged again stay where
        // they are.
        let other = store.stage(body(vec![b"world"]), 10).await.unwrap();
        let other_sha = other.sha256.clone();
        store.commit(other).await.unwrap();
        let again = store.stage(body(vec![b"hello"]), 10).await.unwrap();
        store.commit(again).await.unwrap();
        assert!(!dir.path().join("2c").join(sha).exists());
        let mut listed: Vec<String> = store
            .list()
            .map(|b| b.unwrap().sha256)
            .collect::<Vec<_>>()
            .await;
        listed.sort();
        let mut expected = vec![sha.to_string(), other_sha];
        expected.sort();
        assert_eq!(listed, expected);
        store.delete(sha).await.unwrap();
        assert!(!old.exists() && !store.exists(sha).await.unwrap());
        assert!(!store.exists_after_placing(sha).await.unwrap());
    }

    #[tokio::test]
    async fn over_limit_and_interrupted_bodies_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let err = store
            .stage(body(vec![b"12345", b"6"]), 5)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::TooLarge { limit: 5 }));
        let broken: ByteStream = stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("client went away")),
        ])
        .boxed();
        assert!(matches!(
            store.stage(broken, 100).await.unwrap_err(),
            BlobError::Interrupted(_)
        ));
        let dropped = store.stage(body(vec![b"abc"]), 100).await.unwrap();
        drop(dropped);
        assert_eq!(temporaries(dir.path()), 0);
    }

    #[test]
    fn a_recent_reading_of_the_free_space_lets_bytes_in_far_from_the_reserve_but_never_refuses() {
        let dir = tempfile::tempdir().unwrap();
        // A window no test run outlasts, so that the second check uses the first reading.
        let room = Room {
            fresh: Duration::from_secs(3600),
            last: std::sync::Mutex::default(),
        };
        let free = rustix::fs::statvfs(dir.path()).unwrap();
        let available = free.f_bavail * free.f_frsize;
        room.check(dir.path(), 4096).unwrap();
        // Within the fresh window, what was let in counts against what was seen...
        let seen = room.last.lock().unwrap().as_ref().map(|r| r.admitted);
        assert_eq!(seen, Some(4096));
        room.check(dir.path(), 4096).unwrap();
        let seen = room.last.lock().unwrap().as_ref().map(|r| r.admitted);
        assert_eq!(seen, Some(8192));
        // Near the reserve, the volume is read again: the reading starts over with these bytes
        // (half a reserve from the reserve leaves room for other writes on this disk meanwhile).
        let reserve = free_space_reserve(free.f_blocks * free.f_frsize);
        let near = available - 8192 - reserve - reserve / 2;
        room.check(dir.path(), near).unwrap();
        let seen = room.last.lock().unwrap().as_ref().map(|r| r.admitted);
        assert_eq!(seen, Some(near));
        // ...and more than the volume holds is refused, on a fresh reading.
        assert!(matches!(
            room.check(dir.path(), available.saturating_mul(2)),
            Err(BlobError::NoSpace)
        ));
        let seen = room.last.lock().unwrap().as_ref().map(|r| r.admitted);
        assert_eq!(seen, Some(0));
    }

    #[tokio::test]
    async fn temporaries_are_swept_and_bad_names_name_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("tmp/leftover.part"), b"x").unwrap();
        assert_eq!(
            store
                .remove_temporaries(Some(Duration::from_secs(3600)))
                .await
                .unwrap(),
            0
        );
        // A temporary that an upload is still writing is never swept (a body too large to be
        // kept in memory until its commit).
        static LARGE: [u8; IN_MEMORY + 1] = [7; IN_MEMORY + 1];
        let writing = store.stage(body(vec![&LARGE]), 1 << 20).await.unwrap();
        assert_eq!(store.remove_temporaries(None).await.unwrap(), 1);
        assert_eq!(temporaries(dir.path()), 1);
        // A read of the temporaries' directory: a starting server waits for it.
        assert!(store.sweeps_quickly());
        drop(writing);
        assert_eq!(temporaries(dir.path()), 0);
        assert!(matches!(
            store.read("../../etc/passwd", 0, 1).await.err(),
            Some(BlobError::NotFound)
        ));
        assert!(!store.exists("ab").await.unwrap());
        store.check().await.unwrap();
    }
}
