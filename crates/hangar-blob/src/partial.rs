//! Partial uploads (tus, SPEC §9.1): bytes that arrive in several requests, possibly on several
//! nodes and across restarts, kept by the backend under the upload's id until they are whole.
//!
//! The metadata store holds the upload's offset and is the truth: a backend keeps at least the bytes
//! before that offset, and may hold more after it (a chunk that was written but then refused, or
//! whose request failed before the database moved the offset). Writing at an offset discards
//! whatever the backend held from there on, so such leftovers never reach a finished file.

use crate::ByteStream;
use sha1::Digest as _;

/// The digest a client declared for one chunk (`Upload-Checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkDigest {
    Sha1,
    Sha256,
}

impl ChunkDigest {
    /// The algorithm named in an `Upload-Checksum` header.
    pub fn parse(name: &str) -> Option<ChunkDigest> {
        match name {
            "sha1" => Some(ChunkDigest::Sha1),
            "sha256" => Some(ChunkDigest::Sha256),
            _ => None,
        }
    }

    pub(crate) fn hasher(self) -> ChunkHasher {
        match self {
            ChunkDigest::Sha1 => ChunkHasher::Sha1(sha1::Sha1::new()),
            ChunkDigest::Sha256 => ChunkHasher::Sha256(sha2::Sha256::new()),
        }
    }
}

/// A running digest of one chunk.
pub(crate) enum ChunkHasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl ChunkHasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            ChunkHasher::Sha1(h) => h.update(bytes),
            ChunkHasher::Sha256(h) => h.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            ChunkHasher::Sha1(h) => h.finalize().to_vec(),
            ChunkHasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Hashes a chunk while counting it: the bookkeeping every backend's `partial_write` does.
pub(crate) struct ChunkMeter {
    pub(crate) written: u64,
    max: u64,
    hasher: Option<ChunkHasher>,
}

impl ChunkMeter {
    pub(crate) fn new(max: u64, digest: Option<ChunkDigest>) -> ChunkMeter {
        ChunkMeter {
            written: 0,
            max,
            hasher: digest.map(ChunkDigest::hasher),
        }
    }

    /// Counts (and hashes) one piece; `TooLarge` once more than `max` bytes arrived.
    pub(crate) fn take(&mut self, bytes: &[u8]) -> Result<(), crate::BlobError> {
        self.written += bytes.len() as u64;
        if self.written > self.max {
            return Err(crate::BlobError::TooLarge { limit: self.max });
        }
        if let Some(h) = &mut self.hasher {
            h.update(bytes);
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> WrittenChunk {
        WrittenChunk {
            len: self.written,
            digest: self.hasher.map(ChunkHasher::finish),
        }
    }
}

/// What one `partial_write` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenChunk {
    pub len: u64,
    /// The digest of the chunk's bytes, when one was asked for.
    pub digest: Option<Vec<u8>>,
}

/// A partial upload's id names one key or file of its own: 16 to 64 lowercase hex digits.
pub fn valid_partial_id(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn bad_id() -> crate::BlobError {
    crate::BlobError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "not a partial upload id",
    ))
}

pub(crate) fn missing_bytes(held: u64, offset: u64) -> crate::BlobError {
    crate::BlobError::Io(std::io::Error::other(format!(
        "the partial upload holds {held} bytes, fewer than the offset {offset}"
    )))
}

/// A body that stops after `len` bytes (a finished upload's leftovers are not part of it).
pub(crate) fn take_bytes(body: ByteStream, len: u64) -> ByteStream {
    use futures_util::StreamExt;
    futures_util::stream::unfold((body, len), |(mut body, left)| async move {
        if left == 0 {
            return None;
        }
        match body.next().await? {
            Ok(mut chunk) => {
                if chunk.len() as u64 > left {
                    chunk.truncate(left as usize);
                }
                let left = left - chunk.len() as u64;
                Some((Ok(chunk), (body, left)))
            }
            Err(e) => Some((Err(e), (body, 0))),
        }
    })
    .boxed()
}
