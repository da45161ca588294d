//! Large bodies written past the page cache (`O_DIRECT`).
//!
//! A body of several batches is synced when it ends; through the page cache, each byte was copied
//! into a cached page by the write, then written back by the kernel's flusher, and the buffered
//! write path's bookkeeping (page allocation, dirty accounting) cost as much as the copy: 0.56 s of
//! system time per GiB against 0.32 s with `O_DIRECT` (dd, 4 MiB writes, synced, on this disk), on
//! a machine whose two cores also hash the body and receive it. Here the bytes are copied once into
//! a buffer aligned to the disk's blocks and written from there straight to the disk; the last
//! partial block goes through the file's ordinary descriptor, whose `fdatasync` then makes all of
//! it durable (the data written directly has reached the disk by then; the sync flushes the
//! disk's cache and writes the size).
//!
//! The body's batches are copied into the aligned buffers as their chunks arrive, on the
//! connection's thread (`Aligned`), so that the thread writing a batch only writes it: the disk is
//! not left idle while a batch is copied.
//!
//! Written by hand: the standard library has no aligned buffer without `unsafe`; an over-allocated
//! `Vec` sliced at its first aligned address serves. A file system without `O_DIRECT` (tmpfs), or
//! one that refuses a write's alignment, gets the ordinary path instead.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The alignment of buffers, offsets and lengths: a multiple of every common logical block size.
pub(super) const BLOCK: usize = 4096;

/// A file being written with `O_DIRECT`, in whole blocks at block-aligned offsets.
pub(super) struct Direct {
    file: File,
}

impl Direct {
    /// Opens `path` (created already) a second time, for direct writes; None where the file system
    /// does not take `O_DIRECT`.
    pub(super) fn open(path: &Path) -> Option<Direct> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
            .ok()?;
        Some(Direct { file })
    }

    /// Writes `blocks` (whole blocks from an aligned buffer: `Aligned::whole_blocks`) at `offset`
    /// (a multiple of `BLOCK`). `Err(Refused)` when the file system refuses the write's alignment
    /// or direct writes: the caller writes the same bytes the ordinary way.
    pub(super) fn write_at(&self, blocks: &[u8], offset: u64) -> Result<(), DirectError> {
        self.file.write_all_at(blocks, offset).map_err(|e| {
            if e.kind() == ErrorKind::InvalidInput {
                DirectError::Refused
            } else {
                DirectError::Io(e)
            }
        })
    }
}

/// Why a direct write failed.
pub(super) enum DirectError {
    /// The file system refused the write's alignment or `O_DIRECT` itself.
    Refused,
    Io(std::io::Error),
}

/// A batch of a body, gathered as it arrives into a buffer aligned to `BLOCK`, so that its whole
/// blocks can be written directly without another copy. Every batch of a body but its last is
/// whole blocks; the last one's bytes after its last whole block are written the ordinary way.
pub(super) struct Aligned {
    /// Over-allocated by a block; `buf[start..start + len]` are the bytes, `buf[start]` aligned.
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// An empty buffer with room for `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> Aligned {
        let buf = vec![0u8; capacity + BLOCK];
        let start = buf.as_ptr().align_offset(BLOCK);
        Aligned { buf, start, len: 0 }
    }

    /// Appends `bytes`, making room when they do not fit (keeping the alignment).
    pub(super) fn extend(&mut self, bytes: &[u8]) {
        let end = self.start + self.len;
        if self.buf.len() < end + bytes.len() {
            let mut grown = Aligned::with_capacity((self.len + bytes.len()).max(2 * self.len));
            grown.extend(self.bytes());
            *self = grown;
        }
        let end = self.start + self.len;
        self.buf[end..end + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// All the bytes gathered.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The bytes up to the end of the last whole block.
    pub(super) fn whole_blocks(&self) -> &[u8] {
        &self.bytes()[..self.len / BLOCK * BLOCK]
    }

    /// Empties the buffer (its room stays).
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    /// Moves the bytes off the alignment, so that a direct write of them is refused (tests of the
    /// way back to ordinary writes).
    #[cfg(test)]
    pub(super) fn misalign(&mut self) {
        let len = self.len;
        if self.buf.len() < self.start + len + 1 {
            self.buf.resize(self.start + len + 1, 0);
        }
        self.buf
            .copy_within(self.start..self.start + len, self.start + 1);
        self.start += 1;
    }
}
