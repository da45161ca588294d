//! The server's log on stdout, written in batches: every request writes an access-log line, and one
//! `write(2)` per line (what `std::io::Stdout` does) costs the server more CPU than formatting it
//! (a system call, and on a file an inode update each time). Lines are appended to a buffer that a
//! thread writes out every `FLUSH_EVERY`; a warning or an error, and a full buffer, are written at
//! once, with everything before them, so the order of the lines is kept and what matters most is not
//! left waiting. The buffer is written out when the guard from `init` is dropped, at the end of
//! `main`.
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
/// A buffer this full is written out at once, by the thread that fills it.
const FLUSH_AT: usize = 64 * 1024;

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread early, when the guard asks for a last flush.
    wake: Condvar,
}

struct Pending {
    bytes: Vec<u8>,
    closed: bool,
    /// Where the lines go: stdout (a test's buffer in the tests).
    sink: Box<dyn Write + Send>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves at worst a partial line behind: keep logging.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes `pending` out to its sink (called with the lock held, so lines keep their order).
fn write_out(pending: &mut Pending) {
    if pending.bytes.is_empty() {
        return;
    }
    let Pending { bytes, sink, .. } = pending;
    // Nowhere to report a failure to write the log: the lines are dropped, as `Stdout` would.
    let _ = sink.write_all(bytes).and_then(|()| sink.flush());
    bytes.clear();
    if pending.bytes.capacity() > 4 * FLUSH_AT {
        pending.bytes.shrink_to(FLUSH_AT);
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
        let mut w = LineWriter {
            shared: &self.shared,
            urgent: false,
        };
        // Appending to the buffer cannot fail.
        let _ = w.write_all(lines);
    }
}

/// Writes what is still buffered when dropped, and stops the writer thread.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        {
            let mut pending = self.shared.lock();
            pending.closed = true;
            write_out(&mut pending);
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer to stdout and its guard; keep the guard until the process ends.
pub fn init() -> std::io::Result<(BatchedStdout, FlushGuard)> {
    batched(Box::new(std::io::stdout()))
}

fn batched(sink: Box<dyn Write + Send>) -> std::io::Result<(BatchedStdout, FlushGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            bytes: Vec::new(),
            closed: false,
            sink,
        }),
        wake: Condvar::new(),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("hangar-log".into())
            .spawn(move || {
                let mut pending = shared.lock();
                while !pending.closed {
                    write_out(&mut pending);
                    pending = match shared.wake.wait_timeout(pending, FLUSH_EVERY) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
                write_out(&mut pending);
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
        let mut pending = self.shared.lock();
        pending.bytes.extend_from_slice(buf);
        if pending.bytes.len() >= FLUSH_AT {
            write_out(&mut pending);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if self.urgent {
            write_out(&mut self.shared.lock());
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
        let (out, _guard) = batched(Box::new(seen.clone())).unwrap();
        line(&out, "one\n", false);
        line(&out, "two\n", false);
        line(&out, "warn\n", true);
        assert_eq!(&*seen.0.lock().unwrap(), b"one\ntwo\nwarn\n");
    }

    #[test]
    fn the_guard_writes_out_what_is_left() {
        let seen = Seen::default();
        let (out, guard) = batched(Box::new(seen.clone())).unwrap();
        line(&out, "last\n", false);
        drop(guard);
        assert_eq!(&*seen.0.lock().unwrap(), b"last\n");
    }

    #[test]
    fn a_full_buffer_is_written_out_by_its_writer() {
        let seen = Seen::default();
        let (out, _guard) = batched(Box::new(seen.clone())).unwrap();
        let long = "x".repeat(FLUSH_AT);
        line(&out, &long, false);
        assert_eq!(seen.0.lock().unwrap().len(), FLUSH_AT);
    }
}
