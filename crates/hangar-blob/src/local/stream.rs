//! Streaming a blob file into a response: large reads on the blocking pool, straight into the
//! buffers that go to the socket, with the next read running while the last chunk is sent.

use crate::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use std::fs::File;
use std::io::{self, Read};
use tokio::task::JoinHandle;

/// The most one read takes: large enough that the hops to a blocking thread are few (1,024 for a
/// GiB), small enough that a download holds little memory (two chunks: one being sent, one read).
const READ_CHUNK: u64 = 1 << 20;

/// One read done on a blocking thread: the file back (at its new position) and the bytes.
type PendingRead = JoinHandle<io::Result<(File, Bytes)>>;

/// Reads up to `want` bytes at the file's position, into a buffer of exactly that size (not zeroed
/// first; the standard library reads into its spare capacity).
fn read_chunk(mut file: File, want: u64) -> PendingRead {
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(want as usize);
        Read::by_ref(&mut file).take(want).read_to_end(&mut buf)?;
        Ok((file, Bytes::from(buf)))
    })
}

struct Reading {
    ahead: Option<PendingRead>,
    /// Bytes still to read after the one in `ahead`.
    left: u64,
}

/// `len` bytes of `file` from its current position (fewer when the file ends first).
pub(super) fn stream_file(file: File, len: u64) -> ByteStream {
    let first = len.min(READ_CHUNK);
    if len > first {
        // A download of several chunks reads on: `POSIX_FADV_SEQUENTIAL` doubles the kernel's
        // read-ahead for this file. A 1 GiB file not in the page cache (a large upload is written
        // past it) was read at 414–762 MB/s without, 1,020–1,423 with; in the cache, the same
        // (about 2,950 MB/s). Asking for each range ahead (`POSIX_FADV_WILLNEED`) read the file
        // from the disk faster still (1,506–1,633 MB/s), but in single pages that every later
        // download then read 15% slower. Not for a single chunk: a small body (in a pack, among
        // others) must not bring its neighbours in. A hint: a failure changes nothing.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
    }
    let start = Reading {
        ahead: (first > 0).then(|| read_chunk(file, first)),
        left: len - first,
    };
    futures_util::stream::unfold(start, |mut reading| async move {
        let read = reading.ahead.take()?.await;
        let (file, chunk) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Some((Err(e), reading)),
            Err(e) => return Some((Err(io::Error::other(e.to_string())), reading)),
        };
        if chunk.is_empty() {
            return None; // the file is shorter than asked
        }
        if reading.left > 0 {
            let next = reading.left.min(READ_CHUNK);
            reading.left -= next;
            reading.ahead = Some(read_chunk(file, next));
        }
        Some((Ok(chunk), reading))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    async fn all(stream: ByteStream) -> Vec<u8> {
        let chunks: Vec<_> = stream.collect().await;
        chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn ranges_across_chunks_and_past_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(READ_CHUNK as usize * 2 + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        file.write_all(&data).unwrap();
        let at = |offset: u64| {
            let mut f = file.try_clone().unwrap();
            f.seek(SeekFrom::Start(offset)).unwrap();
            f
        };
        assert_eq!(all(stream_file(at(0), u64::MAX)).await, data);
        let (s, n) = (READ_CHUNK as usize - 10, READ_CHUNK as usize + 20);
        assert_eq!(
            all(stream_file(at(s as u64), n as u64)).await,
            &data[s..s + n]
        );
        assert_eq!(all(stream_file(at(5), 0)).await, Vec::<u8>::new());
        assert_eq!(all(stream_file(at(5), 3)).await, &data[5..8]);
    }
}
