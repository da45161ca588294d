//! Small bodies packed many to a file. The placer writes the small bodies of one batch into one new
//! file (a *pack*), makes it durable and renames it into `packs/` (SPEC §10's order, with the pack
//! as the file), instead of a file per body: one inode, one directory entry and one flush of its
//! data per batch, where files took one of each per body (docs/performance.md: 4 KiB uploads went
//! from 5,489–5,843 to 6,340–7,075 per second with the placement before the pin, which the
//! placement has since replaced: see `BlobHold::Placed`).
//!
//! A body's place in a pack is its blob's object key, `packs/<pack>/<offset>-<len>`, written on the
//! blob's row by the upload's record once the pack is durable (so a key always names bytes on the
//! disk) and looked up there by reads and deletes.
//!
//! A pack starts with a header that lists its slots (offset, length and SHA-256 of each body); the
//! bodies follow, each at a multiple of `ALIGN`. Deleting a blob frees its slot (a hole punched in
//! the file, so the bytes are gone at once, as a deleted file's are); the pack goes once no slot
//! holds data. A slot that no row records is freed by the job its record queues when it is a
//! duplicate (`DiscardObject`), or, when its upload stopped before its record or the record
//! failed, by `LocalBlobStore::sweep_packs`.

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
/// The most slots one pack holds (a header of at most 256 KiB); the placer splits a larger batch.
pub(super) const MAX_SLOTS: usize = (64 * ALIGN as usize - FIXED) / ENTRY;

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

/// Writes `bodies` (each a SHA-256 and its chunks) into `file`, new and empty: the header, then each
/// body in its slot. Answers each body's offset. Not synced: the caller does that.
pub(super) fn write(file: &File, bodies: &[(&str, &[Bytes])]) -> io::Result<Vec<u64>> {
    let count = u32::try_from(bodies.len())
        .ok()
        .filter(|&n| n as usize <= MAX_SLOTS)
        .ok_or_else(|| io::Error::other("too many bodies for one pack"))?;
    let mut header = Vec::with_capacity(FIXED + ENTRY * bodies.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&count.to_le_bytes());
    let mut offsets = Vec::with_capacity(bodies.len());
    let mut next = align_up((FIXED + ENTRY * bodies.len()) as u64);
    for (sha256, chunks) in bodies {
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let digest = hex::decode(sha256)
            .ok()
            .filter(|d| d.len() == 32)
            .ok_or_else(|| io::Error::other("a packed body needs its SHA-256"))?;
        header.extend_from_slice(&next.to_le_bytes());
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(&digest);
        offsets.push(next);
        next = align_up(next + len.max(1));
    }
    file.write_all_at(&header, 0)?;
    for ((_, chunks), &offset) in bodies.iter().zip(&offsets) {
        let mut at = offset;
        for chunk in chunks.iter() {
            file.write_all_at(chunk, at)?;
            at += chunk.len() as u64;
        }
    }
    Ok(offsets)
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
    listed
        .chunks_exact(ENTRY)
        .map(|e| {
            let number = |r: std::ops::Range<usize>| {
                e[r].try_into().map(u64::from_le_bytes).map_err(|_| bad())
            };
            Ok(Entry {
                offset: number(0..8)?,
                len: number(8..16)?,
                sha256: hex::encode(&e[16..48]),
            })
        })
        .collect()
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

    #[test]
    fn a_pack_lists_its_bodies_and_frees_them_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let (a, b) = ("0a".repeat(32), "0b".repeat(32));
        let big = Bytes::from(vec![7u8; 5000]);
        let hello = [Bytes::from_static(b"he"), Bytes::from_static(b"llo")];
        let bodies: Vec<(&str, &[Bytes])> =
            vec![(&a, &hello[..]), (&b, std::slice::from_ref(&big))];
        let offsets = write(&file, &bodies).unwrap();
        assert_eq!(offsets, [4096, 8192]);
        let listed = entries(&file).unwrap();
        assert_eq!(
            listed,
            [
                Entry {
                    sha256: a.clone(),
                    offset: 4096,
                    len: 5
                },
                Entry {
                    sha256: b.clone(),
                    offset: 8192,
                    len: 5000
                },
            ]
        );
        let mut five = [0u8; 5];
        file.read_exact_at(&mut five, 4096).unwrap();
        assert_eq!(&five, b"hello");
        assert_eq!(first_slot(2), 4096);

        free(&file, 4096, 5).unwrap();
        file.read_exact_at(&mut five, 4096).unwrap();
        assert_eq!(five, [0; 5], "a freed slot's bytes are gone");
        let mut kept = vec![0u8; 5000];
        file.read_exact_at(&mut kept, 8192).unwrap();
        assert_eq!(kept, big, "freeing one slot leaves the next one whole");
        free(&file, 8192, 5000).unwrap();
        file.read_exact_at(&mut kept, 8192).unwrap();
        assert!(kept.iter().all(|&b| b == 0));
        // On a file system with holes (the tests' temporary directory here is one), nothing is
        // left after the header.
        if holds_data(&file, 4096).unwrap() {
            eprintln!("this file system makes no holes: the slots were zeroed instead");
        } else {
            assert!(!any_data_from(&file, first_slot(2)).unwrap());
        }

        let other = dir.path().join("not-a-pack");
        std::fs::write(&other, b"just some file, long enough to read").unwrap();
        let e = entries(&File::open(&other).unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
