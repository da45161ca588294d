//! Small bodies packed many to a file. The placer appends the small bodies of each batch to the
//! pack it is filling and makes them durable with one `fdatasync` of that file, instead of a file
//! per body (one inode, one directory entry and one flush each) or a new pack per batch (an inode
//! created, renamed and its directory synced for every batch: the file's creation alone was half
//! of the placer's time on the 4 KiB upload path, docs/performance.md). A pack is created as SPEC
//! §10 creates a file (a temporary with its empty header, synced, renamed into `packs/`, the
//! directory synced) and then filled batch by batch until it is full or `FILL_FOR` old; a pack is
//! never appended to after a failed write or once the process that filled it has stopped.
//!
//! A body's place in a pack is its blob's object key, `packs/<pack>/<offset>-<len>`, written on the
//! blob's row by the upload's record once its batch is durable (so a key always names bytes on the
//! disk) and looked up there by reads and deletes. Bytes no row records are never read.
//!
//! A pack starts with a header that lists its slots (offset, length and SHA-256 of each body): its
//! count is rewritten by each batch, which writes its own entries after the others. The header has
//! room for `MAX_SLOTS` entries (`HEADER_ROOM`); the bodies follow, each at a multiple of `ALIGN`.
//! A crash during a batch may leave entries whose bodies were not written (their slots hold no
//! data and no row records them), entries not written (zeros, skipped by `entries`), or bodies
//! after the last listed slot (the sweep frees those: `free_tail`). Deleting a blob frees its slot
//! (a hole punched in the file, so the bytes are gone at once, as a deleted file's are); the pack
//! goes once no slot holds data and it is not being filled. A slot that no row records is freed
//! by the job its record queues when it is a duplicate (`DiscardObject`), or, when its upload
//! stopped before its record or the record failed, by `LocalBlobStore::sweep_packs`.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The directory of the packs, under the store's root.
pub(super) const DIR: &str = "packs";
/// Every slot starts at a multiple of this (the usual file system block), so that freeing one
/// frees whole blocks and touches no other slot.
pub const ALIGN: u64 = 4096;
const MAGIC: &[u8; 8] = b"HNGRPACK";
const VERSION: u32 = 1;
/// The header's fixed part: the magic, the version and the slot count (both u32, little-endian).
const FIXED: usize = 16;
/// One slot in the header: offset and length (u64, little-endian), then the SHA-256 (32 bytes).
const ENTRY: usize = 48;
/// The header's room: the first body of a pack filled batch by batch starts here.
const HEADER_ROOM: u64 = 64 * ALIGN;
/// The most slots one pack holds (a header of at most `HEADER_ROOM`); the placer starts another
/// pack for the bodies that do not fit.
pub(super) const MAX_SLOTS: usize = (HEADER_ROOM as usize - FIXED) / ENTRY;
/// The bodies' bytes after which a pack takes no more batches (one batch may go past it).
const FILL_BYTES: u64 = 64 << 20;
/// How long a pack takes new batches: an older one is left to the sweep of unrecorded slots
/// (`LocalBlobStore::sweep_packs`), which never looks at the pack being filled and finishes it
/// first when it is this old (a quiet server sends no batch that would).
pub(super) const FILL_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// The room for bodies that a pack made ahead of need is filled with zeros before its first batch
/// (`Filling::zero_fill`): a full pack of 4 KiB bodies. A batch written over blocks that are
/// allocated and durable already changes no metadata, so its `fdatasync` is one flush of the
/// device without a commit of the file system's journal: 0.29 ms against 0.48 for an append on the
/// bench machine, and faster flushes of the database's log beside it (docs/performance.md).
pub(super) const ZEROED: u64 = MAX_SLOTS as u64 * ALIGN;

/// Where a body is in a pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The pack's name: 32 lowercase hex digits.
    pub pack: String,
    pub offset: u64,
    pub len: u64,
}

impl Slot {
    /// The slot as an object key.
    pub fn key(&self) -> String {
        format!("{DIR}/{}/{}-{}", self.pack, self.offset, self.len)
    }

    /// The slot a key names; None for any other key (an object store's, or a malformed one).
    pub fn parse(key: &str) -> Option<Slot> {
        let (pack, range) = key.strip_prefix("packs/")?.split_once('/')?;
        let (offset, len) = range.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !valid_pack_name(pack) || !digits(offset) || !digits(len) {
            return None;
        }
        let slot = Slot {
            pack: pack.to_string(),
            offset: offset.parse().ok()?,
            len: len.parse().ok()?,
        };
        (slot.offset.is_multiple_of(ALIGN) && slot.offset.checked_add(slot.len).is_some())
            .then_some(slot)
    }

    /// The pack's file under the store's `root`.
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join(DIR).join(&self.pack)
    }
}

/// A pack's name is 32 lowercase hex digits; anything else names nothing (and never a path).
pub fn valid_pack_name(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new pack's name: the time in milliseconds (12 hex digits), then 20 random ones. Names, and so
/// the keys of the slots, grow with time, so that the database's index of keys takes a batch's new
/// keys at its end instead of in as many random places (a page written per upload).
pub(super) fn new_name() -> String {
    let now = u64::try_from(hangar_core::now_ms()).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{now:012x}{}", hex::encode(rand::random::<[u8; 10]>()))
}

fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// One body listed in a pack's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub sha256: String,
    pub offset: u64,
    pub len: u64,
}

/// The pack the placer is filling: its file, how many slots its header lists and where the next
/// body goes. When it goes (full, old, failed or its process stopping), the zeros after its last
/// body are cut off (see `Drop`).
pub(super) struct Filling {
    name: String,
    file: File,
    count: usize,
    end: u64,
    /// Where the zeros written ahead of the bodies end (`HEADER_ROOM`: none).
    zeroed: u64,
    started: std::time::Instant,
}

impl Filling {
    /// Writes the empty header of the pack `name` into `file`, new and empty. Not synced: the
    /// caller does that before the pack is renamed into `packs/`.
    pub(super) fn begin(name: String, file: File) -> io::Result<Filling> {
        file.write_all_at(&header_start(0), 0)?;
        Ok(Filling {
            name,
            file,
            count: 0,
            end: HEADER_ROOM,
            zeroed: HEADER_ROOM,
            started: std::time::Instant::now(),
        })
    }

    /// Writes zeros over the room for the first `ZEROED` bytes of bodies of this pack, new and
    /// empty. Not synced: the caller syncs it with the header. The zeros come from one static block
    /// of the binary's zeroed memory, which costs no memory until read and then maps the kernel's
    /// page of zeros.
    pub(super) fn zero_fill(&mut self) -> io::Result<()> {
        const BLOCK: usize = 256 << 10;
        static ZEROS: [u8; BLOCK] = [0; BLOCK];
        let end = HEADER_ROOM + ZEROED;
        let mut at = self.zeroed.max(self.end);
        while at < end {
            // At most BLOCK, so the cast back cannot truncate.
            let len = (end - at).min(BLOCK as u64) as usize;
            self.file.write_all_at(&ZEROS[..len], at)?;
            at += len as u64;
        }
        self.zeroed = end;
        Ok(())
    }

    /// Starts the clock of a pack made ahead of need as the placer takes it (`FILL_FOR` counts
    /// from its first batch).
    pub(super) fn taken(&mut self) {
        self.started = std::time::Instant::now();
    }

    /// Whether a quarter of this pack is used (of its slots or of its bytes): time to make the next
    /// one ready.
    pub(super) fn quarter_full(&self) -> bool {
        self.count >= MAX_SLOTS / 4 || self.end - HEADER_ROOM >= FILL_BYTES / 4
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// How long ago this pack was started.
    pub(super) fn age(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// Whether `bodies` more go into this pack: a new pack takes a batch of any size (up to
    /// `MAX_SLOTS` bodies), a pack with bodies only while it is below `FILL_BYTES` and `FILL_FOR`.
    pub(super) fn takes(&self, bodies: usize) -> bool {
        self.count + bodies <= MAX_SLOTS
            && (self.count == 0
                || (self.end < HEADER_ROOM + FILL_BYTES && self.started.elapsed() < FILL_FOR))
    }

    /// Writes `bodies` (each a SHA-256 and its chunks) after the pack's last slot, their entries
    /// after the header's last one, then the header's new count. Answers each body's offset. Not
    /// synced: the caller does that. After an error the pack must take no more bodies (its tail
    /// may hold bytes its header does not list, or its header entries for bytes not written).
    pub(super) fn append(&mut self, bodies: &[(&str, &[Bytes])]) -> io::Result<Vec<u64>> {
        let count = self.count + bodies.len();
        if count > MAX_SLOTS {
            return Err(io::Error::other("too many bodies for one pack"));
        }
        let mut listed = Vec::with_capacity(ENTRY * bodies.len());
        let mut offsets = Vec::with_capacity(bodies.len());
        let mut next = self.end;
        for (sha256, chunks) in bodies {
            let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
            let digest = hex::decode(sha256)
                .ok()
                .filter(|d| d.len() == 32)
                .ok_or_else(|| io::Error::other("a packed body needs its SHA-256"))?;
            listed.extend_from_slice(&next.to_le_bytes());
            listed.extend_from_slice(&len.to_le_bytes());
            listed.extend_from_slice(&digest);
            offsets.push(next);
            next = align_up(next + len.max(1));
        }
        for ((_, chunks), &offset) in bodies.iter().zip(&offsets) {
            let mut at = offset;
            for chunk in chunks.iter() {
                self.file.write_all_at(chunk, at)?;
                at += chunk.len() as u64;
            }
        }
        self.file
            .write_all_at(&listed, (FIXED + ENTRY * self.count) as u64)?;
        // u32: `count` is at most `MAX_SLOTS`.
        self.file.write_all_at(&header_start(count as u32), 0)?;
        self.count = count;
        self.end = next;
        Ok(offsets)
    }
}

impl Drop for Filling {
    /// Cuts off the zeros after the last body, while the pack is still locked: a pack that takes
    /// no more bodies keeps no room for them. (Should this fail, or the process die first, the sweep
    /// frees them like any bytes after the last slot: `free_tail`.)
    fn drop(&mut self) {
        if self.zeroed > self.end {
            if let Err(e) = self.file.set_len(self.end) {
                tracing::warn!(pack = %self.name, "cannot cut off the unused end of a pack: {e}");
            }
        }
    }
}

/// The header's fixed part for `count` slots.
fn header_start(count: u32) -> [u8; FIXED] {
    let mut fixed = [0u8; FIXED];
    fixed[..8].copy_from_slice(MAGIC);
    fixed[8..12].copy_from_slice(&VERSION.to_le_bytes());
    fixed[12..].copy_from_slice(&count.to_le_bytes());
    fixed
}

/// The bodies a pack's header lists.
pub fn entries(file: &File) -> io::Result<Vec<Entry>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a pack of small bodies");
    let mut fixed = [0u8; FIXED];
    file.read_exact_at(&mut fixed, 0)?;
    let version = u32::from_le_bytes(fixed[8..12].try_into().map_err(|_| bad())?);
    if &fixed[..8] != MAGIC || version != VERSION {
        return Err(bad());
    }
    let count = u32::from_le_bytes(fixed[12..16].try_into().map_err(|_| bad())?) as usize;
    if count > MAX_SLOTS {
        return Err(bad());
    }
    let mut listed = vec![0u8; ENTRY * count];
    file.read_exact_at(&mut listed, FIXED as u64)?;
    let mut found = Vec::with_capacity(count);
    for e in listed.chunks_exact(ENTRY) {
        let number =
            |r: std::ops::Range<usize>| e[r].try_into().map(u64::from_le_bytes).map_err(|_| bad());
        let (offset, len) = (number(0..8)?, number(8..16)?);
        // An entry a crash left unwritten (zeros) or torn names no slot: never the header.
        if offset < first_slot(count) || !offset.is_multiple_of(ALIGN) {
            continue;
        }
        found.push(Entry {
            offset,
            len,
            sha256: hex::encode(&e[16..48]),
        });
    }
    Ok(found)
}

/// Whether a placer (of this process or another) is filling the pack open as `file`: it holds an
/// exclusive `flock` on the pack for as long as it does. When not, the lock is taken through
/// `file` (kept until `file` is closed): the pack is never filled again.
pub(super) fn being_filled(file: &File) -> io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(false),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Whether any slot the pack's header lists holds data (or bytes after the first, which the sweep
/// frees: `free_tail`). Entries a crash left after the count are not slots.
pub(super) fn holds_any_slot(file: &File) -> io::Result<bool> {
    match entries(file)?.iter().map(|e| e.offset).min() {
        Some(first) => any_data_from(file, first),
        None => Ok(false),
    }
}

/// Where the slots of a pack start: after the header's listed entries (a pack filled batch by
/// batch has its first slot further on, after `HEADER_ROOM`, with holes between).
pub(super) fn slots_start(file: &File) -> io::Result<u64> {
    let mut fixed = [0u8; FIXED];
    file.read_exact_at(&mut fixed, 0)?;
    let count = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
    Ok(first_slot(count.min(MAX_SLOTS)))
}

/// Frees whatever a pack holds after the last of its `listed` slots (bytes a batch wrote before
/// a crash or a failed write stopped it, which its header does not list): such a pack is never
/// appended to again. Answers whether there was anything to free.
pub(super) fn free_tail(file: &File, listed: &[Entry], slots_start: u64) -> io::Result<bool> {
    let tail = listed
        .iter()
        .map(|e| align_up(e.offset.saturating_add(e.len.max(1))))
        .max()
        .unwrap_or(slots_start)
        .max(slots_start);
    let size = file.metadata()?.len();
    if tail >= size || !any_data_from(file, tail)? {
        return Ok(false);
    }
    free(file, tail, size - tail)?;
    Ok(true)
}

/// Frees a slot: its blocks go back to the file system (a hole), or where the file system makes no
/// holes, its bytes are overwritten with zeros. Either way the bytes are gone.
pub(super) fn free(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let span = align_up(len.max(1));
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{fallocate, FallocateFlags};
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match fallocate(file, punch, offset, span) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    file.write_all_at(&vec![0u8; span as usize], offset)
}

/// Whether the file system under `dir` makes holes (a probe file is written there, a hole punched
/// in it, and removed). Packs are written only where it does: a freed slot must read as missing.
pub(super) fn holes_work(dir: &Path) -> bool {
    let probe = dir.join(format!(".holes-{}", new_name()));
    let works = (|| -> io::Result<bool> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&probe)?;
        file.write_all_at(&[1u8; 2 * ALIGN as usize], 0)?;
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{fallocate, FallocateFlags};
            let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
            fallocate(&file, punch, 0, ALIGN)?;
        }
        Ok(!holds_data(&file, 0)? && holds_data(&file, ALIGN)?)
    })();
    let _ = std::fs::remove_file(&probe);
    works.unwrap_or(false)
}

/// Whether the slot at `offset` holds data (is not a hole). A file system without holes answers
/// yes for every slot.
pub fn holds_data(file: &File, offset: u64) -> io::Result<bool> {
    data_from(file, offset).map(|found| found == Some(offset))
}

/// Whether any slot from `offset` on holds data.
pub(super) fn any_data_from(file: &File, offset: u64) -> io::Result<bool> {
    data_from(file, offset).map(|found| found.is_some())
}

/// Where the first data at or after `offset` starts; None when only holes follow.
fn data_from(file: &File, offset: u64) -> io::Result<Option<u64>> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{seek, SeekFrom};
        match seek(file, SeekFrom::Data(offset)) {
            Ok(at) => Ok(Some(at)),
            Err(rustix::io::Errno::NXIO) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let len = file.metadata()?.len();
        Ok((offset < len).then_some(offset))
    }
}

/// Where the slots start in a pack of `count` bodies (after the header).
pub(super) fn first_slot(count: usize) -> u64 {
    align_up((FIXED + ENTRY * count) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_are_valid_and_grow_with_time() {
        let first = new_name();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_name();
        assert!(valid_pack_name(&first) && valid_pack_name(&second));
        assert!(first < second, "{first} {second}");
    }

    #[test]
    fn keys_name_slots_and_nothing_else() {
        let slot = Slot {
            pack: "ab".repeat(16),
            offset: 8192,
            len: 5,
        };
        assert_eq!(slot.key(), format!("packs/{}/8192-5", "ab".repeat(16)));
        assert_eq!(Slot::parse(&slot.key()), Some(slot));
        for bad in [
            "objects/0123",
            "packs/../../etc/passwd/0-5",
            "packs/ABABABABABABABABABABABABABABABAB/0-5",
            &format!("packs/{}/10-5", "ab".repeat(16)),
            &format!("packs/{}/4096-", "ab".repeat(16)),
            &format!("packs/{}/4096-+5", "ab".repeat(16)),
            &format!("packs/{}/18446744073709549568-4096", "ab".repeat(16)),
        ] {
            assert_eq!(Slot::parse(bad), None, "{bad}");
        }
    }

    fn new_pack(dir: &Path) -> Filling {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join("p"))
            .unwrap();
        Filling::begin("p".into(), file).unwrap()
    }

    /// A pack filled with zeros ahead keeps its length while bodies go over the zeros (so its
    /// batches change no metadata), reads back each body and its zeros-free header, and sheds the
    /// zeros after its last body when it goes; with no body at all it keeps only its header.
    #[test]
    fn a_pack_filled_with_zeros_ahead_sheds_them_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut pack = new_pack(dir.path());
        pack.zero_fill().unwrap();
        let full = HEADER_ROOM + ZEROED;
        assert_eq!(pack.file().metadata().unwrap().len(), full);
        let (a, b) = ("0a".repeat(32), "0b".repeat(32));
        let body = [Bytes::from(vec![5u8; 4096])];
        let tail = [Bytes::from_static(b"tail")];
        let offsets = pack
            .append(&[(a.as_str(), &body[..]), (b.as_str(), &tail[..])])
            .unwrap();
        assert_eq!(offsets, [HEADER_ROOM, HEADER_ROOM + ALIGN]);
        assert_eq!(pack.file().metadata().unwrap().len(), full, "no growth");
        let listed = entries(pack.file()).unwrap();
        assert_eq!(listed.len(), 2);
        let mut read = vec![0u8; 4096];
        pack.file().read_exact_at(&mut read, HEADER_ROOM).unwrap();
        assert_eq!(read, vec![5u8; 4096]);
        let path = dir.path().join("p");
        drop(pack);
        let file = File::open(&path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), HEADER_ROOM + 2 * ALIGN);
        assert_eq!(entries(&file).unwrap(), listed);
        let mut read = [0u8; 4];
        file.read_exact_at(&mut read, HEADER_ROOM + ALIGN).unwrap();
        assert_eq!(&read, b"tail");

        let empty_path = dir.path().join("empty");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&empty_path)
            .unwrap();
        let mut empty = Filling::begin("empty".into(), file).unwrap();
        empty.zero_fill().unwrap();
        drop(empty);
        let file = File::open(&empty_path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), HEADER_ROOM);
        assert!(!holds_any_slot(&file).unwrap());
        assert!(
            !any_data_from(&file, ALIGN).unwrap(),
            "nothing after the header's block"
        );
    }

    #[test]
    fn a_pack_lists_its_bodies_and_frees_them_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut pack = new_pack(dir.path());
        assert_eq!(entries(pack.file()).unwrap(), []);
        let (a, b, c) = ("0a".repeat(32), "0b".repeat(32), "0c".repeat(32));
        let big = Bytes::from(vec![7u8; 5000]);
        let hello = [Bytes::from_static(b"he"), Bytes::from_static(b"llo")];
        let bodies: Vec<(&str, &[Bytes])> =
            vec![(&a, &hello[..]), (&b, std::slice::from_ref(&big))];
        let first = HEADER_ROOM;
        assert_eq!(pack.append(&bodies).unwrap(), [first, first + 4096]);
        // A second batch goes after the first, its entries after the first batch's.
        let empty: [Bytes; 0] = [];
        assert_eq!(pack.append(&[(&c, &empty[..])]).unwrap(), [first + 12288]);
        let file = pack.file();
        let listed = entries(file).unwrap();
        assert_eq!(
            listed,
            [
                Entry {
                    sha256: a.clone(),
                    offset: first,
                    len: 5
                },
                Entry {
                    sha256: b.clone(),
                    offset: first + 4096,
                    len: 5000
                },
                Entry {
                    sha256: c.clone(),
                    offset: first + 12288,
                    len: 0
                },
            ]
        );
        let mut five = [0u8; 5];
        file.read_exact_at(&mut five, first).unwrap();
        assert_eq!(&five, b"hello");
        assert_eq!(slots_start(file).unwrap(), 4096);

        free(file, first, 5).unwrap();
        file.read_exact_at(&mut five, first).unwrap();
        assert_eq!(five, [0; 5], "a freed slot's bytes are gone");
        let mut kept = vec![0u8; 5000];
        file.read_exact_at(&mut kept, first + 4096).unwrap();
        assert_eq!(kept, big, "freeing one slot leaves the next one whole");
        free(file, first + 4096, 5000).unwrap();
        file.read_exact_at(&mut kept, first + 4096).unwrap();
        assert!(kept.iter().all(|&b| b == 0));
        // On a file system with holes (the tests' temporary directory here is one), nothing is
        // left after the header.
        if holds_data(file, first).unwrap() {
            eprintln!("this file system makes no holes: the slots were zeroed instead");
        } else {
            assert!(!any_data_from(file, slots_start(file).unwrap()).unwrap());
        }

        let other = dir.path().join("not-a-pack");
        std::fs::write(&other, b"just some file, long enough to read").unwrap();
        let e = entries(&File::open(&other).unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    /// What a crash during a batch may leave: its count written but not its entries (zeros,
    /// which name no slot, never the header), or its bodies written after the last listed slot
    /// (freed by `free_tail`, the listed slots kept).
    #[test]
    fn a_torn_batch_lists_no_header_and_its_tail_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let mut pack = new_pack(dir.path());
        let a = "0a".repeat(32);
        let body = [Bytes::from_static(b"kept")];
        pack.append(&[(&a, &body[..])]).unwrap();
        let file = pack.file();
        file.write_all_at(&header_start(3), 0).unwrap();
        let listed = entries(file).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].offset, HEADER_ROOM);
        file.write_all_at(&[9u8; 9000], HEADER_ROOM + 4096).unwrap();
        assert!(free_tail(file, &listed, slots_start(file).unwrap()).unwrap());
        if holds_data(file, HEADER_ROOM + 4096).unwrap() {
            eprintln!("this file system makes no holes: the tail was zeroed instead");
        } else {
            assert!(!any_data_from(file, HEADER_ROOM + 4096).unwrap());
        }
        let mut tail = vec![0u8; 9000];
        file.read_exact_at(&mut tail, HEADER_ROOM + 4096).unwrap();
        assert!(tail.iter().all(|&b| b == 0), "the unlisted bytes are gone");
        let mut kept = [0u8; 4];
        file.read_exact_at(&mut kept, HEADER_ROOM).unwrap();
        assert_eq!(&kept, b"kept");
        assert!(!free_tail(file, &listed, slots_start(file).unwrap()).unwrap());
        // An entry a crash left after the count (in the header's room) is no slot: once the
        // listed one is freed, the pack holds none.
        assert!(holds_any_slot(file).unwrap());
        file.write_all_at(&[7u8; ENTRY], (FIXED + ENTRY * 5) as u64)
            .unwrap();
        file.write_all_at(&header_start(1), 0).unwrap();
        free(file, HEADER_ROOM, 4).unwrap();
        if !holds_data(file, HEADER_ROOM).unwrap() {
            assert!(!holds_any_slot(file).unwrap());
        }
        let mut fixed = [0u8; FIXED];
        file.read_exact_at(&mut fixed, 0).unwrap();
        assert_eq!(&fixed[..8], MAGIC, "the header is whole");
    }
}
