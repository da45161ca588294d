//! The send time-out of a connection without a timer per write.
//!
//! `tokio-io-timeout`, used before, arms a timer when a write starts and disarms it when the write
//! completes: a clock read and a re-registration in tokio's timer wheel per response, under 1% of
//! the CPU time of a 4 KiB download in `perf` (docs/performance.md). A client that stops reading
//! is rare, so here a write only notes, when the socket refuses it, since when it has been
//! refusing; the connection's task, which already wakes a few times per idle time-out, ends the
//! connection when that moment is older than the send time-out (so a stalled client is cut after
//! one to one and a quarter times the time-out). The cost on the common path is one relaxed load
//! of an atomic.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Since when a connection's writes have been waiting for the client, shared between its socket
/// and its task.
#[derive(Clone)]
pub struct Stall {
    opened: Instant,
    /// Milliseconds from `opened` to the first refused write, plus one; 0 while writes go through.
    since: Arc<AtomicU64>,
}

impl Stall {
    pub fn new(opened: Instant) -> Self {
        Self {
            opened,
            since: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How long writes have been waiting for the client (zero when they are not).
    pub fn waiting(&self) -> Duration {
        match self.since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            plus_one => self
                .opened
                .elapsed()
                .saturating_sub(Duration::from_millis(plus_one - 1)),
        }
    }

    fn note<T>(&self, poll: &Poll<T>) {
        let waiting = self.since.load(Ordering::Relaxed) != 0;
        match poll {
            Poll::Pending if !waiting => {
                let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
                self.since.store(ms + 1, Ordering::Relaxed);
            }
            Poll::Ready(_) if waiting => self.since.store(0, Ordering::Relaxed),
            _ => {}
        }
    }
}

/// A stream whose refused writes are noted in a `Stall`.
pub struct Watched<S> {
    inner: S,
    stall: Stall,
}

impl<S> Watched<S> {
    pub fn new(inner: S, stall: Stall) -> Self {
        Self { inner, stall }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stall.note(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stall.note(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.stall.note(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.stall.note(&poll);
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_refused_write_is_noted_until_one_goes_through() {
        // A pipe of 64 bytes that nobody reads: the second write of 64 bytes waits.
        let (client, mut server) = tokio::io::duplex(64);
        let stall = Stall::new(Instant::now() - Duration::from_secs(5));
        let mut watched = Watched::new(client, stall.clone());
        watched.write_all(&[1; 64]).await.unwrap();
        assert_eq!(stall.waiting(), Duration::ZERO);

        let refused = tokio::time::timeout(Duration::from_millis(50), watched.write_all(&[2; 64]));
        assert!(refused.await.is_err(), "the write went through");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let waiting = stall.waiting();
        assert!(
            waiting >= Duration::from_millis(25) && waiting < Duration::from_secs(5),
            "{waiting:?}"
        );

        // The client reads: the next write goes through and the stall is over.
        let mut first = [0u8; 64];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut first)
            .await
            .unwrap();
        watched.write_all(&[3; 8]).await.unwrap();
        assert_eq!(stall.waiting(), Duration::ZERO);
    }
}
