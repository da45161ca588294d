//! Where blobs live on the disk, and how staged files are put there durably for many uploads at
//! once (group commit: one flush of the file system for the data of a batch's small files, and
//! one for its renames).
//!
//! The layout is one level of 256 shard directories, `ab/abcd…`, all created when the store opens,
//! so that no upload creates a directory. Stores written by earlier versions keep their blobs at
//! `ab/cd/abcd…`: those are read, listed, deduplicated against and deleted where they are. A store
//! created by this version is marked (`FLAT`), and its placer never looks for the old layout.
//!
//! The placer reaches its files relative to the store's root, opened once (`openat`, `renameat`
//! and the like), so that the kernel walks two components of each path instead of all of them
//! from `/`: with the look-up for a stored copy, those walks were a sixth of the placer's time on
//! the 4 KiB upload path (docs/performance.md).

use super::packs::{self, Slot};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

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

/// The mark of a store created by this version: an empty file at its root, made when the store
/// opened without any shard directory (so without any blob, in either layout).
const FLAT: &str = "layout-flat";

/// Which layouts a store's blobs may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// Only `ab/abcd…`: the store was created by this version (`FLAT`).
    Flat,
    /// `ab/abcd…`, and `ab/cd/abcd…` written by earlier versions.
    WithLegacy,
}

/// Creates the missing shard directories and `packs/` (mode 0700) and makes their creation durable; answers the
/// store's layout. The mark is made only with the shard directories of a new store, and never
/// taken back: no version since writes the old layout. (A crash before the root's sync may lose
/// it, which only keeps the look-ups for the old layout.)
pub(super) fn create_shards(root: &Path) -> io::Result<Layout> {
    let mut created = 0;
    for name in shard_names() {
        let mut builder = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(root.join(name)) {
            Ok(()) => created += 1,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let mut builder = fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    let made_packs = match builder.create(root.join(packs::DIR)) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    let mark = root.join(FLAT);
    let layout = if created == 256 {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&mark)?;
        Layout::Flat
    } else if mark.exists() {
        Layout::Flat
    } else {
        Layout::WithLegacy
    };
    if created > 0 || made_packs {
        sync_dir(root)?;
    }
    Ok(layout)
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a placement puts in place.
pub(super) enum Content {
    /// A staged temporary file. `unsynced`: the file as it was written, when its data is not
    /// durable yet (the batch makes it so before the rename): the descriptor that wrote it, so that
    /// an `fdatasync` through it reports any write-back error since, where a descriptor opened
    /// later might not.
    Staged {
        temp: PathBuf,
        unsynced: Option<File>,
    },
    /// A small body still in memory (`local::IN_MEMORY`): the batch writes it into a temporary of
    /// its own, unless the blob is stored already.
    Bytes(Vec<Bytes>),
    /// A small body still in memory, to be written into the batch's pack (`packs`) whether or not
    /// the blob is stored already (the database decides that afterwards).
    Pack(Vec<Bytes>),
}

/// A placement's answer: for a packed body, its slot.
type Answer = io::Result<Option<Slot>>;

/// One blob to put in place, and where its answer goes.
struct Placement {
    content: Content,
    sha256: String,
    target: PathBuf,
    /// Where an earlier version would have put it, in a store that may hold such blobs.
    legacy: Option<PathBuf>,
    reply: oneshot::Sender<Answer>,
}

/// Placements waiting for the placer before senders wait too.
const QUEUE: usize = 4096;

/// Puts blobs in place for many uploads at once, on a thread of its own: it takes every placement
/// queued while it worked and, in order: writes the small bodies sent in memory (each into a
/// temporary of its own), makes the data of the files not synced yet durable, renames them all,
/// makes the renames durable, and answers them all. So while one batch waits for the disk the next
/// one gathers, and an upload's task waits for its answer without holding a thread (it held a
/// blocking thread for the write of its temporary and another that slept on the batch leader's
/// lock before: with 32 clients, 37% of a 4 KiB upload's CPU samples were on blocking threads, see
/// docs/performance.md).
///
/// On Linux each of the two flushes is one `syncfs(2)` of the store's file system when it serves
/// more than one file or directory, instead of an `fdatasync` per file and an `fsync` per shard
/// directory: on the 4 KiB upload path those were most of the system time (each a device flush).
/// `syncfs` reports a write-back error of any file of the file system once, to the first call
/// after it (Linux 5.8 and later), through the long-lived descriptor kept here; so after one
/// failure the placer refuses every later placement until the server restarts (as PostgreSQL
/// does after a failed `fsync`): an error reported to one batch may have been another file's,
/// and no later success could be trusted.
pub(super) struct Placer {
    root: PathBuf,
    layout: Layout,
    queue: mpsc::Sender<Message>,
}

/// What the placer's thread is asked to do.
enum Message {
    Place(Placement),
    /// Stop filling the current pack if it was started at least this long ago, once what was
    /// queued before is placed, then answer.
    FinishPack(std::time::Duration, oneshot::Sender<()>),
}

/// What the placer's thread keeps between batches.
struct Leader {
    root: PathBuf,
    /// The store's root, opened once: the directory the placer's paths are relative to, and the
    /// descriptor its flushes go through (see `Placer` on why it stays open).
    dir: File,
    /// The directory of the packs, opened once (its sync makes a pack's rename durable).
    packs: File,
    /// The first flush failure: every placement after it fails.
    failed: Option<String>,
    /// The pack small bodies are appended to, once the first is placed. Its file holds an
    /// exclusive `flock` for as long as it is filled (`packs::being_filled`).
    filling: Option<packs::Filling>,
    /// The next pack, made ready on another thread while this one fills.
    spares: Spares,
}

impl Leader {
    fn new(root: &Path) -> io::Result<Leader> {
        let dir = File::open(root)?;
        let packs = File::open(root.join(packs::DIR))?;
        let spares = Spares::start(Store {
            root: root.to_path_buf(),
            dir: dir.try_clone()?,
            packs: packs.try_clone()?,
        })?;
        Ok(Leader {
            root: root.to_path_buf(),
            dir,
            packs,
            failed: None,
            filling: None,
            spares,
        })
    }

    /// `path` as the placer's system calls take it, with the root's descriptor: relative to the
    /// root when it is inside, as every path the store gives the placer is (blobs' places and
    /// temporaries, all built from the root). Any other path is passed unchanged: an absolute one
    /// resolves as usual, a relative one from the root.
    fn inside<'a>(&self, path: &'a Path) -> &'a Path {
        inside(&self.root, path)
    }
}

fn inside<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}

/// The store's root and its `packs/`, opened: what the maker of packs ahead of need works with.
struct Store {
    root: PathBuf,
    dir: File,
    packs: File,
}

/// Packs made ahead of need, one at a time, by a thread of their own: once the pack being filled
/// is a quarter full, the next one is created and filled with zeros there (`packs::ZEROED`), so
/// that the placer neither waits for that nor appends to a file that grows with each batch. A
/// placer that finds none ready makes an empty pack itself, as before; so does the maker on a
/// volume with little room to spare. A quiet server's placer never asks for one.
struct Spares {
    ask: std::sync::mpsc::SyncSender<()>,
    ready: std::sync::mpsc::Receiver<io::Result<packs::Filling>>,
    /// Whether a pack was asked for and not received yet.
    asked: bool,
}

/// Free space a volume keeps beyond its reserve before packs are filled with zeros ahead of their
/// bodies (a few packs' worth).
const ROOM_FOR_ZEROS: u64 = 4 * packs::ZEROED;

impl Spares {
    /// Starts the maker's thread; it ends when the placer's leader (and so `ask`) goes.
    fn start(store: Store) -> io::Result<Spares> {
        let (ask, asks) = std::sync::mpsc::sync_channel::<()>(1);
        let (made, ready) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("hangar-packs".into())
            .spawn(move || {
                for () in asks {
                    let zeros = room_for_zeros(&store.root);
                    let pack = make_pack(&store.root, &store.dir, &store.packs, zeros);
                    if made.send(pack).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Spares {
            ask,
            ready,
            asked: false,
        })
    }

    /// Asks for the next pack, unless it was asked for already.
    fn ask(&mut self) {
        if !self.asked {
            self.asked = self.ask.try_send(()).is_ok();
        }
    }

    /// The pack made ahead, when it is ready.
    fn take(&mut self) -> Option<packs::Filling> {
        let made = self.ready.try_recv().ok()?;
        self.asked = false;
        match made {
            Ok(mut filling) => {
                filling.taken();
                Some(filling)
            }
            Err(e) => {
                tracing::warn!("cannot make a pack ahead of need: {e}");
                None
            }
        }
    }
}

/// Whether the volume of `root` has room to fill a pack with zeros ahead of its bodies and still
/// keep its reserve and a few packs' worth.
fn room_for_zeros(root: &Path) -> bool {
    let Ok(stats) = rustix::fs::statvfs(root) else {
        return false;
    };
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    let total = stats.f_blocks.saturating_mul(stats.f_frsize);
    free >= hangar_core::volume::free_space_reserve(total).saturating_add(ROOM_FOR_ZEROS)
}

/// The same error for every upload that shared a failed flush.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn stopped() -> io::Error {
    io::Error::other("the blob store's placer stopped")
}

impl Placer {
    /// Starts the placer of the store at `root`, whose blobs are in `layout`; its thread ends
    /// once the placer is dropped and what was queued is placed.
    pub(super) fn start(root: &Path, layout: Layout) -> io::Result<Placer> {
        let (queue, placements) = mpsc::channel(QUEUE);
        let leader = Leader::new(root)?;
        std::thread::Builder::new()
            .name("hangar-placer".into())
            .spawn(move || run(leader, placements))?;
        Ok(Placer {
            root: root.to_path_buf(),
            layout,
            queue,
        })
    }

    /// Stops filling the current pack if it was started at least `older_than` ago (the next small
    /// bodies go to a new one), once what was queued before is placed: it may then go with its
    /// last slot, and the sweep may look at it.
    pub(super) async fn finish_pack(&self, older_than: std::time::Duration) -> io::Result<()> {
        let (done, finished) = oneshot::channel();
        self.queue
            .send(Message::FinishPack(older_than, done))
            .await
            .map_err(|_| stopped())?;
        finished.await.map_err(|_| stopped())
    }

    /// Puts `content` in place as the blob `sha256` (or drops it when the blob is there already)
    /// and returns once that is durable.
    pub(super) async fn place(&self, content: Content, sha256: &str) -> io::Result<()> {
        self.send(content, sha256).await.map(|_| ())
    }

    /// Writes a small body into a pack with the rest of its batch's, and returns its slot once
    /// the pack is durable in `packs/`.
    pub(super) async fn pack(&self, chunks: Vec<Bytes>, sha256: &str) -> io::Result<Slot> {
        self.send(Content::Pack(chunks), sha256)
            .await?
            .ok_or_else(|| io::Error::other("the placer answered a packed body without its slot"))
    }

    async fn send(&self, content: Content, sha256: &str) -> Answer {
        let (reply, answer) = oneshot::channel();
        let placement = Placement {
            content,
            sha256: sha256.to_string(),
            target: blob_path(&self.root, sha256),
            legacy: (self.layout == Layout::WithLegacy).then(|| legacy_path(&self.root, sha256)),
            reply,
        };
        if let Err(refused) = self.queue.send(Message::Place(placement)).await {
            if let Message::Place(placement) = refused.0 {
                discard(placement.content);
            }
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Removes the temporary of a placement that will not be placed.
fn discard(content: Content) {
    if let Content::Staged { temp, .. } = content {
        let _ = fs::remove_file(temp);
    }
}

fn run(mut leader: Leader, mut messages: mpsc::Receiver<Message>) {
    while let Some(first) = messages.blocking_recv() {
        let mut batch = Vec::new();
        let mut finished = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Place(placement) => batch.push(placement),
                Message::FinishPack(older_than, done) => finished.push((older_than, done)),
            }
            next = messages.try_recv().ok();
        }
        if !batch.is_empty() {
            place_batch(&mut leader, batch);
        }
        for (older_than, done) in finished {
            if leader
                .filling
                .as_ref()
                .is_some_and(|f| f.age() >= older_than)
            {
                leader.filling = None;
            }
            let _ = done.send(());
        }
    }
}

/// A placement on its way through a batch.
struct Placing {
    temp: Option<PathBuf>,
    unsynced: Option<File>,
    target: PathBuf,
    legacy: Option<PathBuf>,
    reply: oneshot::Sender<Answer>,
    /// The directory whose sync makes the placement durable, once it is in place.
    dir: Option<PathBuf>,
    /// Whether the stored copies were looked for already (in both layouts).
    looked: bool,
}

fn place_batch(leader: &mut Leader, batch: Vec<Placement>) {
    let (packed, batch): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|p| matches!(p.content, Content::Pack(_)));
    let mut packed = packed.into_iter().peekable();
    while packed.peek().is_some() {
        place_pack(leader, packed.by_ref().take(packs::MAX_SLOTS).collect());
    }
    if !batch.is_empty() {
        place_files(leader, batch);
    }
}

/// The refusal of every placement after a failed flush.
fn refusal(why: &str) -> io::Error {
    io::Error::other(format!(
        "an earlier flush of the blob store failed ({why}); restart the server once the disk is checked"
    ))
}

/// Appends the bodies of `placed` to the pack being filled (a new one when there is none or it is
/// full), makes them durable with one `fdatasync`, then answers each with its slot.
fn place_pack(leader: &mut Leader, placed: Vec<Placement>) {
    let bodies: Vec<(&str, &[Bytes])> = placed
        .iter()
        .map(|p| match &p.content {
            Content::Pack(chunks) => (p.sha256.as_str(), chunks.as_slice()),
            _ => (p.sha256.as_str(), &[][..]),
        })
        .collect();
    let written = match &leader.failed {
        Some(why) => Err(refusal(why)),
        None => append_to_pack(leader, &bodies),
    };
    let lens: Vec<u64> = bodies
        .iter()
        .map(|(_, chunks)| chunks.iter().map(|c| c.len() as u64).sum())
        .collect();
    drop(bodies);
    for (at, p) in placed.into_iter().enumerate() {
        let answer = match &written {
            Ok((name, offsets)) => Ok(Some(Slot {
                pack: name.clone(),
                offset: offsets[at],
                len: lens[at],
            })),
            Err(e) => Err(copy_error(e)),
        };
        let _ = p.reply.send(answer);
    }
}

/// Appends `bodies` to the pack being filled and syncs its data; answers the pack's name and
/// each body's offset. A pack that failed a write or a sync is not filled further.
fn append_to_pack(
    leader: &mut Leader,
    bodies: &[(&str, &[Bytes])],
) -> io::Result<(String, Vec<u64>)> {
    let mut filling = match leader.filling.take() {
        Some(filling) if filling.takes(bodies.len()) => filling,
        _ => start_pack(leader)?,
    };
    let offsets = filling.append(bodies).and_then(|offsets| {
        filling.file().sync_data()?;
        Ok(offsets)
    });
    match offsets {
        Ok(offsets) => {
            let name = filling.name().to_string();
            if filling.quarter_full() {
                leader.spares.ask();
            }
            leader.filling = Some(filling);
            Ok((name, offsets))
        }
        // Dropped: its file (and lock) closed, never filled again.
        Err(e) => Err(e),
    }
}

/// The pack to fill next: the one made ahead when it is ready, else a new empty one.
fn start_pack(leader: &mut Leader) -> io::Result<packs::Filling> {
    if let Some(spare) = leader.spares.take() {
        return Ok(spare);
    }
    make_pack(&leader.root, &leader.dir, &leader.packs, false)
}

/// Creates a new pack as SPEC §10 creates a file: its header (and with `zeros`, its room for
/// bodies filled with zeros) written into a temporary, synced, renamed into `packs/`, the rename
/// synced. Its file is locked (`flock`, exclusive) before it is there, so that no deletion of its
/// last slot and no sweep, of this process or another (`hangar admin gc`), removes it or frees its
/// tail while the placer appends to it.
fn make_pack(root: &Path, dir: &File, packs_dir: &File, zeros: bool) -> io::Result<packs::Filling> {
    use rustix::fs::{flock, openat, renameat, FlockOperation, Mode, OFlags};
    let name = packs::new_name();
    let temp = root.join("tmp").join(format!("{name}.pack"));
    let inside = inside(root, &temp);
    let target = Path::new(packs::DIR).join(&name);
    let started = (|| {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let file = File::from(openat(dir, inside, flags, Mode::RUSR | Mode::WUSR)?);
        flock(&file, FlockOperation::NonBlockingLockExclusive)?;
        let mut filling = packs::Filling::begin(name.clone(), file)?;
        if zeros {
            filling.zero_fill()?;
        }
        filling.file().sync_data()?;
        renameat(dir, inside, dir, &target)?;
        Ok(filling)
    })();
    let synced = started.and_then(|filling| {
        packs_dir.sync_all()?;
        Ok(filling)
    });
    if synced.is_err() {
        // The rename may or may not last: the pack goes (it holds no body yet).
        let _ = fs::remove_file(&temp);
        let _ = fs::remove_file(root.join(&target));
    }
    synced
}

/// Places the files (and the small bodies sent in memory to be written as files) of a batch.
fn place_files(leader: &mut Leader, batch: Vec<Placement>) {
    if let Some(why) = &leader.failed {
        let e = refusal(why);
        for p in batch {
            discard(p.content);
            let _ = p.reply.send(Err(copy_error(&e)));
        }
        return;
    }
    // 1. The bodies sent in memory, written into temporaries (none for a blob stored already).
    let mut placing = Vec::with_capacity(batch.len());
    for p in batch {
        let (temp, unsynced, dir, looked) = match p.content {
            Content::Staged { temp, unsynced } => (Some(temp), unsynced, None, false),
            Content::Bytes(chunks) | Content::Pack(chunks) => {
                match stored(leader, &p.target, p.legacy.as_deref()) {
                    Some(dir) => (None, None, Some(dir), true),
                    None => match write_temporary(leader, &chunks) {
                        Ok((temp, file)) => (Some(temp), Some(file), None, true),
                        Err(e) => {
                            let _ = p.reply.send(Err(e));
                            continue;
                        }
                    },
                }
            }
        };
        placing.push(Placing {
            temp,
            unsynced,
            target: p.target,
            legacy: p.legacy,
            reply: p.reply,
            dir,
            looked,
        });
    }
    // 2. The data of the files written without a sync of their own.
    let unsynced: Vec<&File> = placing.iter().filter_map(|p| p.unsynced.as_ref()).collect();
    if let Err(e) = flush_files(leader, &unsynced) {
        for p in placing {
            if let Some(temp) = &p.temp {
                let _ = fs::remove_file(temp);
            }
            let _ = p.reply.send(Err(copy_error(&e)));
        }
        return;
    }
    // 3. The renames. A body sent in memory was looked for in both layouts in step 1; a staged one
    //    is looked for in the old layout here (the new one answers through the rename).
    let mut placed = Vec::with_capacity(placing.len());
    for mut p in placing {
        if let Some(temp) = p.temp.take() {
            let legacy = p.legacy.as_deref().filter(|_| !p.looked);
            match put_in_place(leader, &temp, &p.target, legacy) {
                Ok(dir) => p.dir = Some(dir),
                Err(e) => {
                    let _ = fs::remove_file(&temp);
                    let _ = p.reply.send(Err(e));
                    continue;
                }
            }
        }
        placed.push(p);
    }
    // 4. The renames made durable: one flush of the file system, or each directory's sync.
    let mut dirs: HashMap<PathBuf, Vec<Placing>> = HashMap::new();
    for p in placed {
        let dir = p.dir.clone().unwrap_or_else(|| leader.root.clone());
        dirs.entry(dir).or_default().push(p);
    }
    if dirs.len() > 1 && cfg!(target_os = "linux") {
        let flushed = flush_all(leader);
        for p in dirs.into_values().flatten() {
            let _ = p
                .reply
                .send(flushed.as_ref().map(|_| None).map_err(copy_error));
        }
    } else {
        for (dir, placed) in dirs {
            let synced = sync_dir(&dir);
            for p in placed {
                let _ = p
                    .reply
                    .send(synced.as_ref().map(|_| None).map_err(copy_error));
            }
        }
    }
}

/// The directory of the stored copy of a blob, when it is stored already (at `target`, or in the
/// old layout at `legacy`).
fn stored(leader: &Leader, target: &Path, legacy: Option<&Path>) -> Option<PathBuf> {
    std::iter::once(target)
        .chain(legacy)
        .find(|path| exists(leader, path))
        .map(parent)
}

/// Whether `path` exists (as `Path::exists`: an error is "no"), looked up from the root.
fn exists(leader: &Leader, path: &Path) -> bool {
    use rustix::fs::{accessat, Access, AtFlags};
    accessat(
        &leader.dir,
        leader.inside(path),
        Access::EXISTS,
        AtFlags::empty(),
    )
    .is_ok()
}

fn parent(path: &Path) -> PathBuf {
    path.parent()
        .expect("blob paths have a shard directory")
        .to_path_buf()
}

/// A body sent in memory, written into a new temporary (not synced: its batch syncs it). The
/// temporary lives only while its batch runs, too short for a sweep (which takes temporaries an
/// hour old, or all of them before the server serves), so it is not locked as staged files are.
fn write_temporary(leader: &Leader, chunks: &[Bytes]) -> io::Result<(PathBuf, File)> {
    use rustix::fs::{openat, Mode, OFlags};
    let name: [u8; 16] = rand::random();
    let temp = leader
        .root
        .join("tmp")
        .join(format!("{}.part", hex::encode(name)));
    // Only the server reads the bytes: no group or other bits, whatever the umask.
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let opened = openat(
        &leader.dir,
        leader.inside(&temp),
        flags,
        Mode::RUSR | Mode::WUSR,
    );
    let mut file = File::from(opened.map_err(io::Error::from)?);
    let written = chunks.iter().try_for_each(|chunk| file.write_all(chunk));
    match written {
        Ok(()) => Ok((temp, file)),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Makes the data of `files` durable: one flush of the file system for several, else each file's
/// own `fdatasync`.
fn flush_files(leader: &mut Leader, files: &[&File]) -> io::Result<()> {
    match files {
        [] => Ok(()),
        _ if files.len() > 1 && cfg!(target_os = "linux") => flush_all(leader),
        each => each.iter().try_for_each(|file| file.sync_data()),
    }
}

/// Everything written to the store's file system made durable (`syncfs`; Linux only, the callers
/// sync each file and directory elsewhere). A failure is kept: every later placement fails (see
/// `Placer`).
fn flush_all(leader: &mut Leader) -> io::Result<()> {
    let flushed = sync_fs(&leader.dir);
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

/// Renames one staged file to its place, unless a copy is stored already (in `legacy`, the old
/// layout, when given, or at `target`); returns the directory whose sync makes that durable.
fn put_in_place(
    leader: &Leader,
    temp: &Path,
    target: &Path,
    legacy: Option<&Path>,
) -> io::Result<PathBuf> {
    // Same hash, same bytes: the stored copy serves. Its rename may not be durable yet (another
    // upload's batch may be between rename and sync): the sync of its directory makes sure.
    if let Some(legacy) = legacy.filter(|path| exists(leader, path)) {
        fs::remove_file(temp)?;
        return Ok(parent(legacy));
    }
    match rename_unless_there(leader, temp, target) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(temp)?,
        renamed => renamed?,
    }
    Ok(parent(target))
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`): one call that looks and
/// renames (`renameat2` with `RENAME_NOREPLACE`), instead of a look-up of `to` before the rename.
#[cfg(target_os = "linux")]
fn rename_unless_there(leader: &Leader, from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags};
    let (dir, from_inside, to_inside) = (&leader.dir, leader.inside(from), leader.inside(to));
    match renameat_with(dir, from_inside, dir, to_inside, RenameFlags::NOREPLACE) {
        // A file system without the flag: look, then rename.
        Err(rustix::io::Errno::INVAL) => rename_if_absent(leader, from, to),
        renamed => renamed.map_err(io::Error::from),
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_unless_there(leader: &Leader, from: &Path, to: &Path) -> io::Result<()> {
    rename_if_absent(leader, from, to)
}

fn rename_if_absent(leader: &Leader, from: &Path, to: &Path) -> io::Result<()> {
    if exists(leader, to) {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    let (from, to) = (leader.inside(from), leader.inside(to));
    rustix::fs::renameat(&leader.dir, from, &leader.dir, to).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        assert_eq!(create_shards(&root).unwrap(), Layout::Flat);
        fs::create_dir(root.join("tmp")).unwrap();
        (dir, root)
    }

    /// Once the pack being filled is a quarter full, the next one is made ahead on the maker's
    /// thread (filled with zeros where the volume has room), and the placer fills it next: the
    /// body lands in it whole, and the pack sheds its unused zeros once finished.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_pack_is_made_ahead_once_one_is_a_quarter_full() {
        use std::os::unix::fs::FileExt;
        let (_dir, root) = store();
        let placer = std::sync::Arc::new(Placer::start(&root, Layout::Flat).unwrap());
        let pack_files = || -> Vec<(String, u64)> {
            fs::read_dir(root.join(packs::DIR))
                .unwrap()
                .map(|e| e.unwrap())
                .map(|e| {
                    let name = e.file_name().into_string().unwrap();
                    (name, e.metadata().unwrap().len())
                })
                .collect()
        };
        let quarter = packs::MAX_SLOTS / 4;
        let mut first = None;
        for round in 0..quarter.div_ceil(64) {
            let tasks: Vec<_> = (round * 64..(round * 64 + 64).min(quarter))
                .map(|n| {
                    let placer = placer.clone();
                    tokio::spawn(async move {
                        let sha = format!("{:064x}", n + 1);
                        placer.pack(vec![Bytes::from(vec![1u8; 64])], &sha).await
                    })
                })
                .collect();
            for t in tasks {
                let slot = t.await.unwrap().unwrap();
                assert_eq!(first.get_or_insert(slot.pack.clone()), &slot.pack);
            }
        }
        let first = first.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let spare = loop {
            if let Some(spare) = pack_files().into_iter().find(|(name, _)| *name != first) {
                break spare;
            }
            assert!(std::time::Instant::now() < deadline, "no pack made ahead");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        if room_for_zeros(&root) {
            assert!(spare.1 > packs::ZEROED, "{spare:?}");
        }
        assert_eq!(pack_files().len(), 2);

        // The file is in `packs/` a moment before the maker hands it over (the rename is synced
        // first); a placer that comes in between makes a pack of its own, and takes the spare
        // the next time it starts one.
        let body = b"into the pack made ahead".to_vec();
        let (slot, sha) = loop {
            placer.finish_pack(std::time::Duration::ZERO).await.unwrap();
            let sha = format!("{:064x}", u64::MAX - pack_files().len() as u64);
            let slot = placer
                .pack(vec![Bytes::from(body.clone())], &sha)
                .await
                .unwrap();
            if slot.pack == spare.0 {
                break (slot, sha);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the spare is never taken"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let file = File::open(slot.path(&root)).unwrap();
        let mut read = vec![0u8; body.len()];
        file.read_exact_at(&mut read, slot.offset).unwrap();
        assert_eq!(read, body);
        assert!(packs::entries(&file)
            .unwrap()
            .iter()
            .any(|e| e.sha256 == sha && e.offset == slot.offset));
        placer.finish_pack(std::time::Duration::ZERO).await.unwrap();
        let len = file.metadata().unwrap().len();
        assert_eq!(
            len,
            slot.offset + packs::ALIGN,
            "the zeros after its slot are cut"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_placements_are_all_answered_and_all_in_place() {
        let (_dir, root) = store();
        let placer = std::sync::Arc::new(Placer::start(&root, Layout::Flat).unwrap());
        let tasks: Vec<_> = (0..48u32)
            .map(|n| {
                let (placer, root) = (placer.clone(), root.clone());
                tokio::spawn(async move {
                    // Four distinct contents, twelve uploads of each.
                    let body = format!("content {}", n % 4);
                    let sha = format!("{:02x}", n % 4).repeat(32);
                    let content = match n % 3 {
                        // Sent in memory.
                        0 => Content::Bytes(vec![Bytes::from(body.clone())]),
                        // Staged, written without a sync: the batch flushes it.
                        1 | 2 => {
                            let temp = root.join("tmp").join(format!("{n}.part"));
                            fs::write(&temp, &body).unwrap();
                            let unsynced = (n % 3 == 1).then(|| File::open(&temp).unwrap());
                            Content::Staged { temp, unsynced }
                        }
                        _ => unreachable!(),
                    };
                    placer.place(content, &sha).await.unwrap();
                    (sha, body)
                })
            })
            .collect();
        for t in tasks {
            let (sha, body) = t.await.unwrap();
            assert_eq!(fs::read_to_string(blob_path(&root, &sha)).unwrap(), body);
        }
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn after_a_failed_flush_every_placement_fails_and_leaves_nothing() {
        let (_dir, root) = store();
        let temp = root.join("a.part");
        fs::write(&temp, b"a").unwrap();
        let sha = "cd".repeat(32);
        let (reply, answer) = oneshot::channel();
        let mut leader = Leader::new(&root).unwrap();
        leader.failed = Some("EIO".into());
        let staged = Placement {
            sha256: sha.clone(),
            content: Content::Staged {
                temp: temp.clone(),
                unsynced: Some(File::open(&temp).unwrap()),
            },
            target: blob_path(&root, &sha),
            legacy: None,
            reply,
        };
        let (reply, in_memory) = oneshot::channel();
        let other = "ef".repeat(32);
        let sent = Placement {
            sha256: other.clone(),
            content: Content::Bytes(vec![Bytes::from_static(b"b")]),
            target: blob_path(&root, &other),
            legacy: None,
            reply,
        };
        place_batch(&mut leader, vec![staged, sent]);
        for answer in [answer, in_memory] {
            let e = answer.await.unwrap().unwrap_err();
            assert!(e.to_string().contains("EIO"), "{e}");
        }
        assert!(!temp.exists() && !blob_path(&root, &sha).exists());
        assert!(!blob_path(&root, &other).exists());
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    /// A store opened without any shard directory is marked as holding only the flat layout, for
    /// good; one opened with shard directories of an earlier version never is. The placer of a
    /// marked store does not look for the old layout (a copy put there by hand is not seen).
    #[tokio::test]
    async fn only_a_new_store_is_marked_flat_and_its_placer_skips_the_old_layout() {
        use std::os::unix::fs::PermissionsExt;
        let new = tempfile::tempdir().unwrap();
        assert_eq!(create_shards(new.path()).unwrap(), Layout::Flat);
        let mark = new.path().join(FLAT);
        assert_eq!(fs::metadata(&mark).unwrap().len(), 0);
        assert_eq!(
            fs::metadata(&mark).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(create_shards(new.path()).unwrap(), Layout::Flat);

        let old = tempfile::tempdir().unwrap();
        fs::create_dir_all(old.path().join("2c/f2")).unwrap();
        assert_eq!(create_shards(old.path()).unwrap(), Layout::WithLegacy);
        assert_eq!(create_shards(old.path()).unwrap(), Layout::WithLegacy);
        assert!(!old.path().join(FLAT).exists());

        let root = new.path();
        fs::create_dir(root.join("tmp")).unwrap();
        let sha = "56".repeat(32);
        fs::create_dir_all(legacy_path(root, &sha).parent().unwrap()).unwrap();
        fs::write(legacy_path(root, &sha), b"by hand").unwrap();
        let placer = Placer::start(root, Layout::Flat).unwrap();
        let sent = Content::Bytes(vec![Bytes::from_static(b"placed")]);
        placer.place(sent, &sha).await.unwrap();
        assert_eq!(fs::read(blob_path(root, &sha)).unwrap(), b"placed");
    }

    #[tokio::test]
    async fn a_blob_in_the_old_layout_is_not_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let sha = "ab".repeat(32);
        fs::create_dir_all(legacy_path(&root, &sha).parent().unwrap()).unwrap();
        fs::write(legacy_path(&root, &sha), b"old").unwrap();
        assert_eq!(create_shards(&root).unwrap(), Layout::WithLegacy);
        fs::create_dir(root.join("tmp")).unwrap();
        let placer = Placer::start(&root, Layout::WithLegacy).unwrap();
        let temp = root.join("new.part");
        fs::write(&temp, b"old").unwrap();
        let staged = Content::Staged {
            temp: temp.clone(),
            unsynced: None,
        };
        placer.place(staged, &sha).await.unwrap();
        let sent = Content::Bytes(vec![Bytes::from_static(b"old")]);
        placer.place(sent, &sha).await.unwrap();
        assert!(!temp.exists() && !blob_path(&root, &sha).exists());
        assert_eq!(fs::read(legacy_path(&root, &sha)).unwrap(), b"old");
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    /// A copy in place is never replaced: the rename refuses to (`RENAME_NOREPLACE`), in one batch
    /// as across batches. (Different bytes under one hash stand for a copy being replaced.)
    #[tokio::test]
    async fn a_stored_copy_is_kept_and_the_new_one_dropped() {
        let (_dir, root) = store();
        let sha = "34".repeat(32);
        let placement = |content| {
            let (reply, answer) = oneshot::channel();
            let p = Placement {
                content,
                sha256: sha.clone(),
                target: blob_path(&root, &sha),
                legacy: None,
                reply,
            };
            (p, answer)
        };
        let mut leader = Leader::new(&root).unwrap();
        let (first, a) = placement(Content::Bytes(vec![Bytes::from_static(b"first")]));
        let (second, b) = placement(Content::Bytes(vec![Bytes::from_static(b"second")]));
        place_batch(&mut leader, vec![first, second]);
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(fs::read(blob_path(&root, &sha)).unwrap(), b"first");
        let temp = root.join("tmp").join("third.part");
        fs::write(&temp, b"third").unwrap();
        let staged = Content::Staged {
            temp: temp.clone(),
            unsynced: None,
        };
        let (third, c) = placement(staged);
        place_batch(&mut leader, vec![third]);
        c.await.unwrap().unwrap();
        assert_eq!(fs::read(blob_path(&root, &sha)).unwrap(), b"first");
        assert!(!temp.exists());
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    /// Small bodies packed at once share one pack (or a few), each in a slot of its own that
    /// the pack's header lists; nothing is left in `tmp/`, and the shards hold no file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bodies_packed_at_once_each_get_a_slot_in_a_durable_pack() {
        use std::os::unix::fs::{FileExt, PermissionsExt};
        let (_dir, root) = store();
        let placer = std::sync::Arc::new(Placer::start(&root, Layout::Flat).unwrap());
        let tasks: Vec<_> = (0..40u32)
            .map(|n| {
                let placer = placer.clone();
                tokio::spawn(async move {
                    let body = format!("body number {n}").repeat(n as usize + 1);
                    let sha = format!("{n:02x}").repeat(32);
                    let chunks = vec![Bytes::from(body.clone())];
                    (placer.pack(chunks, &sha).await.unwrap(), sha, body)
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            let (slot, sha, body) = t.await.unwrap();
            assert!(seen.insert(slot.key()), "two bodies in one slot");
            assert_eq!(Slot::parse(&slot.key()), Some(slot.clone()));
            assert_eq!(slot.len, body.len() as u64);
            let file = File::open(slot.path(&root)).unwrap();
            let mut read = vec![0u8; body.len()];
            file.read_exact_at(&mut read, slot.offset).unwrap();
            assert_eq!(read, body.as_bytes());
            let listed = packs::entries(&file).unwrap();
            assert!(listed
                .iter()
                .any(|e| e.sha256 == sha && e.offset == slot.offset));
            let mode = file.metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert!(!blob_path(&root, &sha).exists());
        }
        assert!(fs::read_dir(root.join(packs::DIR)).unwrap().count() <= 40);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_body_sent_in_memory_lands_whole_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, root) = store();
        let placer = Placer::start(&root, Layout::Flat).unwrap();
        let sha = "12".repeat(32);
        let chunks = vec![Bytes::from_static(b"first "), Bytes::from_static(b"second")];
        placer.place(Content::Bytes(chunks), &sha).await.unwrap();
        let path = blob_path(&root, &sha);
        assert_eq!(fs::read(&path).unwrap(), b"first second");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
