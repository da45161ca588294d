//! Transfer progress on stderr: an `indicatif` bar (bytes, rate, time left) when stderr is a
//! terminal; otherwise plain lines (no `\r`, no escape sequences) at every tenth of the file.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// Cheap to clone: every clone moves the same bar (a request body reports its bytes as they go).
#[derive(Clone)]
pub(crate) enum Progress {
    Bar(ProgressBar),
    Lines(Arc<Mutex<Lines>>),
}

pub(crate) struct Lines {
    name: String,
    total: u64,
    done: u64,
    /// The last tenth reported.
    tenth: u64,
}

impl Progress {
    /// `verb` says what happens (`uploading`, `downloading`); `start` is where a resumed transfer
    /// begins.
    pub fn new(verb: &str, name: &str, total: u64, start: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            // The template is a constant that is known to parse.
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(format!("{verb} {name}"));
            bar.set_position(start);
            bar.reset_eta();
            Progress::Bar(bar)
        } else {
            if start > 0 {
                eprintln!(
                    "{verb} {name}: resuming at {} of {}",
                    human(start),
                    human(total)
                );
            } else {
                eprintln!("{verb} {name}: {}", human(total));
            }
            Progress::Lines(Arc::new(Mutex::new(Lines {
                name: name.to_string(),
                total,
                done: start,
                tenth: tenths(start, total),
            })))
        }
    }

    pub fn inc(&self, n: u64) {
        match self {
            Progress::Bar(bar) => bar.inc(n),
            Progress::Lines(lines) => {
                let Ok(mut l) = lines.lock() else { return };
                let done = l.done + n;
                l.report(done);
            }
        }
    }

    /// Back (or forward) to where the server says the transfer stands.
    pub fn set(&self, position: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(position),
            Progress::Lines(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.report(position);
                }
            }
        }
    }

    /// The transfer is over (whether or not it succeeded: the caller says so).
    pub fn finish(self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines(_) => {}
        }
    }
}

impl Lines {
    /// A line each time a new tenth is reached (never for the whole: the caller says when done).
    fn report(&mut self, done: u64) {
        let now = tenths(done, self.total);
        if now > self.tenth && now < 10 {
            eprintln!(
                "{}: {}% ({} of {})",
                self.name,
                now * 10,
                human(done),
                human(self.total)
            );
        }
        self.done = done;
        self.tenth = self.tenth.max(now);
    }
}

fn tenths(done: u64, total: u64) -> u64 {
    if total == 0 {
        10
    } else {
        (done.min(total) as u128 * 10 / total as u128) as u64
    }
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}
