//! Large downloads from S3 read ahead of the client, in large pieces.
//!
//! The HTTP client hands an object's body over in the pieces the server sent (about 16 KiB each from
//! s3s-fs), and the response took them one at a time from the same task: each piece cost a wake-up
//! and a write to the client's socket, and while one was being sent nothing was read. Here a task of
//! its own reads the object, joins the pieces into chunks of `CHUNK` and keeps up to `DEPTH` of them
//! ready, so that the object store keeps sending while the client is written to, and the response
//! writes a few large chunks instead of many small ones. Measured on a 1 GiB download
//! (docs/performance.md): Hangar's CPU 15–20% lower, the transfer about 10% faster.
//!
//! Written here because the pieces are to be joined and read ahead at once: `tokio_util`'s
//! `ReaderStream` over a `StreamReader` yields at most one piece per read, and a bounded channel
//! alone would keep the small pieces.

use crate::ByteStream;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// The size of the chunks handed to the response (the last one may be smaller). Objects or ranges no
/// larger than this are read as they come, without a task of their own.
pub(super) const CHUNK: usize = 1 << 20;

/// Chunks kept ready ahead of the client: with the one being filled, a download holds at most
/// `(DEPTH + 1) × CHUNK` bytes of memory.
const DEPTH: usize = 4;

/// `upstream`'s bytes in chunks of `CHUNK`, read by a task of their own up to `DEPTH` chunks ahead.
/// An error is passed on after the bytes before it; the task ends when the returned stream is dropped
/// (the client went away), dropping `upstream` with it.
pub(super) fn read_ahead(upstream: ByteStream) -> ByteStream {
    let (ready, chunks) = mpsc::channel(DEPTH);
    tokio::spawn(async move {
        tokio::select! {
            () = fill(upstream, &ready) => {}
            () = ready.closed() => {}
        }
    });
    futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    })
    .boxed()
}

/// Joins `upstream`'s pieces into chunks and sends them, until the end, an error, or the receiver
/// is gone.
async fn fill(mut upstream: ByteStream, ready: &mpsc::Sender<std::io::Result<Bytes>>) {
    let mut chunk = BytesMut::new();
    while let Some(piece) = upstream.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(e) => {
                if !chunk.is_empty() && ready.send(Ok(chunk.split().freeze())).await.is_err() {
                    return;
                }
                let _ = ready.send(Err(e)).await;
                return;
            }
        };
        if chunk.is_empty() && piece.len() >= CHUNK {
            // Already large: passed on without a copy.
            if ready.send(Ok(piece)).await.is_err() {
                return;
            }
            continue;
        }
        if chunk.capacity() == 0 {
            chunk.reserve(CHUNK);
        }
        chunk.extend_from_slice(&piece);
        if chunk.len() >= CHUNK && ready.send(Ok(chunk.split().freeze())).await.is_err() {
            return;
        }
    }
    if !chunk.is_empty() {
        let _ = ready.send(Ok(chunk.freeze())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// `n` pieces of `size` bytes, each byte telling its place.
    fn pieces(n: usize, size: usize) -> Vec<std::io::Result<Bytes>> {
        (0..n)
            .map(|i| {
                Ok((0..size)
                    .map(|j| ((i * size + j) % 251) as u8)
                    .collect::<Vec<_>>()
                    .into())
            })
            .collect()
    }

    fn joined(chunks: &[std::io::Result<Bytes>]) -> Vec<u8> {
        chunks
            .iter()
            .flat_map(|c| c.as_ref().unwrap().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn small_pieces_come_out_as_large_chunks_with_the_same_bytes() {
        let input = pieces(3 * 64 + 5, 16 * 1024); // 3 MiB and 80 KiB
        let expected = joined(&input);
        let out: Vec<_> = read_ahead(futures_util::stream::iter(input).boxed())
            .collect()
            .await;
        let sizes: Vec<usize> = out.iter().map(|c| c.as_ref().unwrap().len()).collect();
        assert_eq!(sizes, vec![CHUNK, CHUNK, CHUNK, 5 * 16 * 1024]);
        assert_eq!(joined(&out), expected);
    }

    #[tokio::test]
    async fn a_large_piece_passes_whole_and_an_empty_body_stays_empty() {
        let input = pieces(2, CHUNK + 7);
        let expected = joined(&input);
        let out: Vec<_> = read_ahead(futures_util::stream::iter(input).boxed())
            .collect()
            .await;
        let sizes: Vec<usize> = out.iter().map(|c| c.as_ref().unwrap().len()).collect();
        assert_eq!(sizes, vec![CHUNK + 7, CHUNK + 7]);
        assert_eq!(joined(&out), expected);

        let empty: Vec<_> = read_ahead(futures_util::stream::empty().boxed())
            .collect()
            .await;
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn an_error_comes_after_the_bytes_before_it_and_ends_the_stream() {
        let mut input = pieces(3, 1000);
        input.push(Err(std::io::Error::other("the connection broke")));
        input.extend(pieces(1, 1000)); // never reaches the reader
        let out: Vec<_> = read_ahead(futures_util::stream::iter(input).boxed())
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().unwrap().len(), 3000);
        let err = out[1].as_ref().unwrap_err();
        assert_eq!(err.to_string(), "the connection broke");
    }

    /// A stream that never ends and says when it is dropped.
    struct Endless {
        dropped: Arc<AtomicBool>,
    }

    impl Drop for Endless {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_upstream_is_dropped_when_the_client_goes() {
        let dropped = Arc::new(AtomicBool::new(false));
        let endless = Endless {
            dropped: dropped.clone(),
        };
        // One piece, then nothing for ever: the task waits on the upstream, not on the channel.
        let upstream = futures_util::stream::once(async { Ok(Bytes::from_static(b"abc")) })
            .chain(futures_util::stream::pending())
            .map(move |piece| {
                let _held = &endless;
                piece
            })
            .boxed();
        let stream = read_ahead(upstream);
        drop(stream);
        for _ in 0..100 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the read-ahead task kept its upstream after the client went");
    }
}
