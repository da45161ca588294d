//! Group commit on SQLite: one thread runs the writes of many requests (uploads' records and pins)
//! in one transaction and answers each once that transaction is committed, so that one WAL `fsync`
//! serves all of them instead of one each. An answer is never given before the commit it depends
//! on, so the durability of each request is what it was alone.
//!
//! The writer commits without waiting for the disk (`synchronous=NORMAL`, so SQLite does not sync
//! the WAL at each commit) and hands the committed batch to a second thread, which syncs the WAL
//! once for every batch committed since its last sync and only then answers their durable
//! requests. So the writer runs the next batch while the disk flushes the last one, instead of
//! waiting for it. The WAL is written in commit order, so one sync covers every batch before it;
//! a crash before the sync loses only batches nobody was told about. (SQLite in WAL mode with
//! `synchronous=NORMAL` stays consistent after a crash and syncs the WAL before each checkpoint.)
//!
//! The writer owns a connection of its own, opened with rusqlite rather than sqlx, and runs every
//! statement of a batch on its own thread from cached prepared statements. Through sqlx each
//! statement is a round trip to the connection's worker thread with a wake-up on each side; for the
//! statements of a small upload's record that cost about five times the CPU of SQLite's own work
//! (`bench/sqlite-drivers`, docs/performance.md). Both drivers link the same SQLite library.

use super::driver_error;
use hangar_core::store::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most requests in one transaction (the rest wait for the next one, which starts at once).
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before senders wait too.
const QUEUE: usize = 4096;
/// Prepared statements kept by the writer's connection (a few per kind of request).
const STATEMENTS: usize = 64;

/// The writer's connection, as the requests' writes see it inside their batch's transaction.
pub(crate) struct Conn {
    conn: Connection,
    /// Whether a write of the current batch queued a job (the job runners are woken after its
    /// commit, and only then).
    queued_jobs: Cell<bool>,
}

impl Conn {
    /// Notes that this batch queued a job.
    pub(crate) fn queued_job(&self) {
        self.queued_jobs.set(true);
    }
}

impl Deref for Conn {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// A request's writes, run inside the batch's transaction on the writer's thread. It may run more
/// than once: when another request of its batch fails, the transaction is rolled back and the
/// others run again (so each must do the same again: it only writes to the database).
pub(crate) trait Work<T>: FnMut(&Conn) -> StoreResult<T> + Send {}
impl<T, F> Work<T> for F where F: FnMut(&Conn) -> StoreResult<T> + Send {}

trait Request: Send {
    fn durable(&self) -> bool;
    /// Runs the writes and keeps their outcome; false when they failed.
    fn run(&mut self, conn: &Conn) -> bool;
    /// Answers the caller: its own failure, else the batch's commit.
    fn answer(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct Pending<T, F> {
    work: F,
    durable: bool,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send, F: Work<T>> Request for Pending<T, F> {
    fn durable(&self) -> bool {
        self.durable
    }

    fn run(&mut self, conn: &Conn) -> bool {
        let outcome = (self.work)(conn);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, committed: Result<(), &StoreError>) {
        let answer = match (self.outcome, committed) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(done)), Ok(())) => Ok(done),
            (_, Err(e)) => Err(copy_error(e)),
            (None, Ok(())) => Err(StoreError::Backend("the write did not run".into())),
        };
        // A caller that went away (its client hung up) needs no answer.
        let _ = self.reply.send(answer);
    }
}

enum Message {
    Write(Box<dyn Request>),
    /// Finish what was received before, close the connection, then answer.
    Close(oneshot::Sender<()>),
}

/// The same failure for every request of a batch.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Conflict(what) => StoreError::Conflict(what),
        StoreError::NotFound(what) => StoreError::NotFound(what),
        StoreError::Refused { code, reason } => StoreError::Refused {
            code,
            reason: reason.clone(),
        },
        StoreError::Full => StoreError::Full,
        StoreError::Unavailable(cause) => StoreError::Unavailable(cause.clone()),
        StoreError::Backend(cause) => StoreError::Backend(cause.clone()),
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

/// The handle to the writer thread. Cheap to clone; the thread ends at `close`, or when the last
/// handle goes.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    requests: mpsc::Sender<Message>,
    /// How many times the WAL was synced for durable requests (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    syncs: Arc<AtomicU64>,
}

impl GroupWriter {
    /// Opens the writer's own connection to the database sqlx opens as `filename` (which exists:
    /// the pool created it and ran the migrations) and starts its thread. `on_jobs_queued` runs
    /// after each commit of a batch that queued jobs.
    pub(crate) fn start(
        filename: &Path,
        on_jobs_queued: impl Fn() + Send + 'static,
    ) -> Result<GroupWriter, String> {
        let conn = Conn {
            conn: open(filename).map_err(|e| e.to_string())?,
            queued_jobs: Cell::new(false),
        };
        // The WAL to sync, when there is one: an in-memory database has none (nothing to make
        // durable), and a database not in WAL mode keeps SQLite's own sync at each commit.
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .map_err(|e| e.to_string())?;
        let wal = (journal.eq_ignore_ascii_case("wal") && !super::in_memory(filename))
            .then(|| wal_path(filename));
        let level = if wal.is_some() || super::in_memory(filename) {
            "NORMAL"
        } else {
            "FULL"
        };
        conn.pragma_update(None, "synchronous", level)
            .map_err(|e| e.to_string())?;
        let syncs = Arc::new(AtomicU64::new(0));
        let (committed, to_sync) = mpsc::unbounded_channel();
        let syncer = Syncer {
            wal,
            file: None,
            failed: None,
            syncs: syncs.clone(),
        };
        std::thread::Builder::new()
            .name("hangar-db-sync".into())
            .spawn(move || syncer.run(to_sync))
            .map_err(|e| format!("cannot start the database writer's sync: {e}"))?;
        let (requests, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("hangar-db-writer".into())
            .spawn(move || run(conn, queue, committed, on_jobs_queued))
            .map_err(|e| format!("cannot start the database writer: {e}"))?;
        Ok(GroupWriter { requests, syncs })
    }

    /// How many times the WAL has been synced for durable requests so far.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Runs `work` in the next batch and answers once that batch is committed: on the disk
    /// (`durable`: the WAL synced after the commit, as `synchronous=FULL` would sync it in the
    /// commit), or only visible to every connection (bookkeeping that a power cut may lose: WAL
    /// keeps commits in order, so it is durable by the time anything committed after it is).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        work: impl Work<T> + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        let request = Box::new(Pending {
            work,
            durable,
            outcome: None,
            reply,
        });
        self.requests
            .send(Message::Write(request))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commits what was sent before, then closes the connection; later writes fail.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.requests.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

/// The connection as sqlx opens its own (`sqlx-sqlite`'s `establish`): a URI file name, and the
/// shared cache of a `sqlite::memory:` database, which sqlx names `file:sqlx-in-memory-N`.
pub(super) fn open(filename: &Path) -> Result<Connection, rusqlite::Error> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if super::in_memory(filename) {
        flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
    }
    let conn = Connection::open_with_flags(filename, flags)?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", super::WAL_AUTOCHECKPOINT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(conn)
}

fn run(
    conn: Conn,
    mut queue: mpsc::Receiver<Message>,
    committed: mpsc::UnboundedSender<Vec<Box<dyn Request>>>,
    on_jobs_queued: impl Fn(),
) {
    let mut closing = None;
    while closing.is_none() {
        let mut batch = Vec::new();
        match queue.blocking_recv() {
            Some(Message::Write(request)) => batch.push(request),
            Some(Message::Close(done)) => closing = Some(done),
            None => break,
        }
        while closing.is_none() && batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Message::Write(request)) => batch.push(request),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        // Committed: the others are answered now (visible to every connection), the durable
        // ones once the sync thread has synced the WAL behind them.
        let (durable, visible): (Vec<_>, Vec<_>) = commit(&conn, batch, &on_jobs_queued)
            .into_iter()
            .partition(|r| r.durable());
        visible.into_iter().for_each(|r| r.answer(Ok(())));
        if !durable.is_empty() {
            if let Err(unsent) = committed.send(durable) {
                let e = stopped();
                unsent.0.into_iter().for_each(|r| r.answer(Err(&e)));
            }
        }
    }
    // Requests still queued are answered "stopped" as their replies drop with the queue; those
    // committed are answered by the sync thread, which ends once it has synced them.
    drop(queue);
    drop(committed);
    if let Err((_, e)) = conn.conn.close() {
        tracing::warn!("closing the database writer's connection: {e}");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs the batch in one transaction and returns the requests it committed, for the caller to
/// answer; those that failed, or all when the transaction did, are answered here. Runs
/// optimistically without a savepoint per request: when one fails, everything is rolled back, that
/// one is answered with its failure, and the others run again without it. After a commit that
/// queued jobs, `on_jobs_queued` runs before any answer, so that a caller finds the job runners
/// woken when its answer arrives.
fn commit(
    conn: &Conn,
    mut batch: Vec<Box<dyn Request>>,
    on_jobs_queued: &impl Fn(),
) -> Vec<Box<dyn Request>> {
    loop {
        conn.queued_jobs.set(false);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = driver_error(e);
            batch.into_iter().for_each(|r| r.answer(Err(&e)));
            return Vec::new();
        }
        let Some(i) = batch.iter_mut().position(|request| !request.run(conn)) else {
            if let Err(e) = conn.execute_batch("COMMIT").map_err(driver_error) {
                // Every request is answered with the commit's failure; the rollback only makes
                // the connection usable for the next batch (the next BEGIN reports it if not).
                let _ = rollback(conn);
                batch.into_iter().for_each(|r| r.answer(Err(&e)));
                return Vec::new();
            }
            if conn.queued_jobs.get() {
                on_jobs_queued();
            }
            return batch;
        };
        if let Err(e) = rollback(conn) {
            batch.into_iter().for_each(|r| r.answer(Err(&e)));
            return Vec::new();
        }
        batch.remove(i).answer(Ok(()));
        if batch.is_empty() {
            return Vec::new();
        }
    }
}

/// The WAL of the database at `filename`.
fn wal_path(filename: &Path) -> PathBuf {
    let mut name = filename.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The thread that makes committed batches durable (see the module's comment).
struct Syncer {
    /// The WAL to sync; None: nothing to sync (an in-memory database, or SQLite syncs itself).
    wal: Option<PathBuf>,
    /// The WAL, opened at the first sync and kept: SQLite keeps the file while the writer's
    /// connection is open (it removes it only when the last connection closes), so this is the
    /// file that every commit writes.
    file: Option<File>,
    /// The first failed sync: every later durable request fails (as after a failed `fsync` the
    /// kernel may have dropped the pages it could not write, no later sync can be trusted).
    failed: Option<String>,
    syncs: Arc<AtomicU64>,
}

impl Syncer {
    fn run(mut self, mut committed: mpsc::UnboundedReceiver<Vec<Box<dyn Request>>>) {
        while let Some(mut batch) = committed.blocking_recv() {
            while let Ok(more) = committed.try_recv() {
                batch.extend(more);
            }
            let synced = self.sync();
            batch
                .into_iter()
                .for_each(|r| r.answer(synced.as_ref().map(|_| ())));
        }
    }

    /// Makes every commit so far durable.
    fn sync(&mut self) -> Result<(), StoreError> {
        if let Some(why) = &self.failed {
            return Err(StoreError::Unavailable(format!(
                "an earlier sync of the database's log failed ({why}); restart the server once the disk is checked"
            )));
        }
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        let synced = match &self.file {
            Some(file) => file.sync_data(),
            None => File::open(wal).and_then(|file| {
                let synced = file.sync_data();
                self.file = Some(file);
                synced
            }),
        };
        match synced {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                tracing::error!("syncing the database's log {} failed: {e}", wal.display());
                self.failed = Some(e.to_string());
                Err(StoreError::Unavailable(format!(
                    "syncing the database's log failed: {e}"
                )))
            }
        }
    }
}

/// Ends the open transaction, if any: some failures (a full disk, an I/O error) roll it back
/// themselves.
fn rollback(conn: &Connection) -> Result<(), StoreError> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.execute_batch("ROLLBACK").map_err(driver_error)
}
