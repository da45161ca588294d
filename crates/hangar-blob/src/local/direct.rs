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
//! Written by hand: the standard library has no aligned buffer without `unsafe`; an over-allocated
//! `Vec` sliced at its first aligned address serves. A file system without `O_DIRECT` (tmpfs), or
//! one that refuses a write's alignment, gets the ordinary path instead.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The alignment of buffers, offsets and lengths: a multiple of every common logical block size.
pub(super) const BLOCK: usize = 4096;

/// A file being written with `O_DIRECT`, from its start, in whole blocks.
pub(super) struct Direct {
    file: File,
    /// Over-allocated by a block; `buf[start..]` is aligned.
    buf: Vec<u8>,
    start: usize,
    /// Bytes in the buffer not written yet (fewer than a block between batches).
    held: usize,
    /// Where the next whole block goes in the file.
    offset: u64,
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
        let mut direct = Direct {
            file,
            buf: Vec::new(),
            start: 0,
            held: 0,
            offset: 0,
        };
        direct.reserve(super::WRITE_BATCH + BLOCK);
        Some(direct)
    }

    /// Room for `len` bytes from the aligned start, keeping the held ones.
    fn reserve(&mut self, len: usize) {
        if self.buf.len() >= self.start + len {
            return;
        }
        let mut buf = vec![0u8; len + BLOCK];
        let start = buf.as_ptr().align_offset(BLOCK);
        buf[start..start + self.held]
            .copy_from_slice(&self.buf[self.start..self.start + self.held]);
        self.buf = buf;
        self.start = start;
    }

    /// Writes the chunks' whole blocks to the disk and keeps the rest for the next call. On an
    /// error, nothing of the chunks is kept: `Err(Refused)` when the file system refuses direct
    /// writes (the caller writes everything `pending` answers, then the chunks, the ordinary way).
    pub(super) fn write(&mut self, chunks: &[bytes::Bytes]) -> Result<(), DirectError> {
        let len: usize = chunks.iter().map(|c| c.len()).sum();
        self.reserve(self.held + len);
        let mut end = self.start + self.held;
        for chunk in chunks {
            self.buf[end..end + chunk.len()].copy_from_slice(chunk);
            end += chunk.len();
        }
        let whole = (end - self.start) / BLOCK * BLOCK;
        if let Err(e) = self
            .file
            .write_all_at(&self.buf[self.start..self.start + whole], self.offset)
        {
            // The held bytes stay for `pending`; the chunks are the caller's to write.
            return Err(if e.kind() == ErrorKind::InvalidInput {
                DirectError::Refused
            } else {
                DirectError::Io(e)
            });
        }
        self.offset += whole as u64;
        self.held = end - self.start - whole;
        self.buf.copy_within(self.start + whole..end, self.start);
        Ok(())
    }

    /// The bytes not written to the disk yet (less than a block, or all the held ones after a
    /// refusal), and where they go in the file.
    pub(super) fn pending(&self) -> (&[u8], u64) {
        (&self.buf[self.start..self.start + self.held], self.offset)
    }

    /// Moves the buffer off its alignment, so that the next write is refused (tests of the way
    /// back to ordinary writes).
    #[cfg(test)]
    pub(super) fn misalign(&mut self) {
        let held = self.held;
        self.reserve(held + 2 * BLOCK);
        self.buf
            .copy_within(self.start..self.start + held, self.start + 1);
        self.start += 1;
    }
}

/// Why a direct write failed.
pub(super) enum DirectError {
    /// The file system refused the write's alignment or `O_DIRECT` itself.
    Refused,
    Io(std::io::Error),
}
