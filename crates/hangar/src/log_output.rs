//! The server's log on stdout, written in batches: every request writes an access-log line, and one
//! `write(2)` per line (what `std::io::Stdout` does) costs the server more CPU than formatting it
//! (a system call, and on a file an inode update each time). Lines are appended to a buffer that a
//! thread of its own writes out every `FLUSH_EVERY`, or as soon as it holds `FLUSH_AT` bytes; a
//! warning or an error is written at once by the thread that logs it, with everything before it, so
//! the order of the lines is kept and what matters most is not left waiting. The buffer is written
//! out when the guard from `init` is dropped, at the end of `main`.
//!
//! The request threads only copy their lines into the buffer: the writer thread swaps it for an
//! empty one and writes it without holding the buffer's lock, so a request never waits for the
//! disk or for another request's write. Only a buffer `HOLD_AT` full (the writer stuck on a slow
//! pipe) is written by the thread that fills it, which holds the server back rather than its
//! memory growing without bound.
//!
//! Written here rather than taken from `tracing-appender`: its non-blocking writer hands each line to
//! the writer on its own (one `write(2)` per line again, or with a `BufWriter` a flush whenever its
//! queue runs dry, which under steady load is still about once per line), and it has no notion of
//! writing warnings at once while holding access lines back.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// A buffer this full wakes the writer thread.
const FLUSH_AT: usize = 64 * 1024;
/// A buffer this full is written out by the thread that fills it.
const HOLD_AT: usize = 4 * 1024 * 1024;

struct Shared {
    pending: Mutex<Pending>,
    /// Where the lines go. Taken while `pending` is held, before the bytes are swapped out of it,
    /// so that buffers reach the sink in the order they were filled.
    sink: Mutex<Sink>,
    /// Wakes the writer thread early: a full buffer, or the guard's last flush.
    wake: Condvar,
}

struct Pending {
    bytes: Vec<u8>,
    closed: bool,
    /// The writer thread was woken for this buffer already (a wake-up is a system call).
    woken: bool,
}

struct Sink {
    /// stdout (a test's buffer in the tests).
    out: Box<dyn Write + Send>,
    /// The buffer being written; swapped with `Pending::bytes`, so neither is reallocated.
    writing: Vec<u8>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves at worst a partial line behind: keep logging.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Writes out what `pending` holds, after releasing it; the lines keep their order (see `sink`).
    fn write_out(&self, mut pending: MutexGuard<'_, Pending>) {
        if pending.bytes.is_empty() {
            return;
        }
        let mut sink = lock(&self.sink);
        std::mem::swap(&mut pending.bytes, &mut sink.writing);
        pending.woken = false;
        drop(pending);
        let Sink { out, writing } = &mut *sink;
        // Nowhere to report a failure to write the log: the lines are dropped, as `Stdout` would.
        let _ = out.write_all(writing).and_then(|()| out.flush());
        writing.clear();
        if writing.capacity() > 4 * FLUSH_AT {
            writing.shrink_to(FLUSH_AT);
        }
    }

    fn append(&self, lines: &[u8]) {
        let mut pending = lock(&self.pending);
        pending.bytes.extend_from_slice(lines);
        let len = pending.bytes.len();
        if len >= HOLD_AT {
            self.write_out(pending);
        } else if len >= FLUSH_AT && !pending.woken {
            pending.woken = true;
            drop(pending);
            self.wake.notify_one();
        }
    }
}

/// The `MakeWriter` of the batched stdout.
#[derive(Clone)]
pub struct BatchedStdout {
    shared: Arc<Shared>,
}

impl BatchedStdout {
    /// Appends whole lines that are in no hurry (access-log lines, which are formatted elsewhere).
    pub fn append(&self, lines: &[u8]) {
        self.shared.append(lines);
    }
}

/// Writes what is still buffered when dropped, and stops the writer thread.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        lock(&self.shared.pending).closed = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The thread wrote everything before `closed`; this writes what came after.
        self.shared.write_out(lock(&self.shared.pending));
    }
}

/// The writer to stdout and its guard; keep the guard until the process ends.
pub fn init() -> std::io::Result<(BatchedStdout, FlushGuard)> {
    batched(Box::new(std::io::stdout()), FLUSH_EVERY)
}

fn batched(
    out: Box<dyn Write + Send>,
    every: Duration,
) -> std::io::Result<(BatchedStdout, FlushGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            bytes: Vec::new(),
            closed: false,
            woken: false,
        }),
        sink: Mutex::new(Sink {
            out,
            writing: Vec::new(),
        }),
        wake: Condvar::new(),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("hangar-log".into())
            .spawn(move || loop {
                let pending = lock(&shared.pending);
                let pending = if pending.closed || pending.woken {
                    pending
                } else {
                    match shared.wake.wait_timeout(pending, every) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                };
                let closed = pending.closed;
                shared.write_out(pending);
                if closed {
                    break;
                }
            })?
    };
    Ok((
        BatchedStdout {
            shared: shared.clone(),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// One event's writer: appends to the buffer, and writes it all out when dropped if it was urgent.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.shared.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.shared.write_out(lock(&self.shared.pending));
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
            // More verbose levels compare greater: WARN and ERROR are at most WARN.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// A sink the test can read.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<u8>>>);

    impl Write for Seen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn line(out: &BatchedStdout, text: &str, urgent: bool) {
        let mut w = LineWriter {
            shared: &out.shared,
            urgent,
        };
        w.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn an_urgent_line_writes_out_every_line_before_it_in_order() {
        let seen = Seen::default();
        let (out, _guard) = batched(Box::new(seen.clone()), HOUR).unwrap();
        line(&out, "one\n", false);
        line(&out, "two\n", false);
        line(&out, "warn\n", true);
        assert_eq!(&*seen.0.lock().unwrap(), b"one\ntwo\nwarn\n");
    }

    #[test]
    fn the_guard_writes_out_what_is_left() {
        let seen = Seen::default();
        let (out, guard) = batched(Box::new(seen.clone()), HOUR).unwrap();
        line(&out, "last\n", false);
        drop(guard);
        assert_eq!(&*seen.0.lock().unwrap(), b"last\n");
    }

    #[test]
    fn a_full_buffer_is_written_out_by_the_writer_thread_without_waiting_for_its_time() {
        let seen = Seen::default();
        let (out, _guard) = batched(Box::new(seen.clone()), HOUR).unwrap();
        line(&out, "short\n", false);
        std::thread::sleep(Duration::from_millis(50));
        assert!(seen.0.lock().unwrap().is_empty(), "written before its time");
        let long = "x".repeat(FLUSH_AT);
        line(&out, &long, false);
        // The thread was woken: nothing else writes before an hour has passed.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen.0.lock().unwrap().len() < FLUSH_AT + 6 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), FLUSH_AT + 6);
        assert!(seen.starts_with(b"short\nxxx"));
    }

    #[test]
    fn lines_logged_from_many_threads_all_arrive_whole() {
        let seen = Seen::default();
        let (out, guard) = batched(Box::new(seen.clone()), Duration::from_millis(1)).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let out = out.clone();
                s.spawn(move || {
                    for i in 0..5000 {
                        line(&out, &format!("thread {t} line {i}\n"), i % 1000 == 0);
                    }
                });
            }
        });
        drop(guard);
        let seen = String::from_utf8(seen.0.lock().unwrap().clone()).unwrap();
        assert_eq!(seen.lines().count(), 20_000);
        for t in 0..4 {
            // Each thread's lines in the order it wrote them.
            let mine: Vec<&str> = seen
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..5000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expected);
        }
    }
}
