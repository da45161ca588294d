//! Group commit on SQLite: one thread runs the writes of many requests (uploads' records and pins)
//! in one transaction and answers each once that transaction is committed, so that one WAL `fsync`
//! serves all of them instead of one each. An answer is never given before the commit it depends
//! on, so the durability of each request is what it was alone.
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
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;
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
        let (requests, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("hangar-db-writer".into())
            .spawn(move || run(conn, queue, on_jobs_queued))
            .map_err(|e| format!("cannot start the database writer: {e}"))?;
        Ok(GroupWriter { requests })
    }

    /// Runs `work` in the next batch and answers once that batch is committed: on the disk
    /// (`durable`, `synchronous=FULL`), or only visible to every connection (bookkeeping that a
    /// power cut may lose, `synchronous=NORMAL`: WAL keeps commits in order, so it is durable by
    /// the time anything committed after it is).
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
fn open(filename: &Path) -> Result<Connection, rusqlite::Error> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if super::in_memory(filename) {
        flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
    }
    let conn = Connection::open_with_flags(filename, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", super::WAL_AUTOCHECKPOINT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(conn)
}

fn run(conn: Conn, mut queue: mpsc::Receiver<Message>, on_jobs_queued: impl Fn()) {
    // What the connection's `synchronous` is known to be (None after a failure: set it again).
    let mut full = Some(true);
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
        let durable = batch.iter().any(|r| r.durable());
        if full != Some(durable) {
            let level = if durable { "FULL" } else { "NORMAL" };
            if let Err(e) = conn.pragma_update(None, "synchronous", level) {
                let e = driver_error(e);
                batch.into_iter().for_each(|r| r.answer(Err(&e)));
                full = None;
                continue;
            }
            full = Some(durable);
        }
        if commit(&conn, batch, &on_jobs_queued).is_err() {
            full = None;
        }
    }
    // Requests still queued are answered "stopped" as their replies drop with the queue.
    drop(queue);
    if let Err((_, e)) = conn.conn.close() {
        tracing::warn!("closing the database writer's connection: {e}");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs the batch in one transaction and answers every request. Runs optimistically without a
/// savepoint per request: when one fails, everything is rolled back, that one is answered with its
/// failure, and the others run again without it. After a commit that queued jobs,
/// `on_jobs_queued` runs before the answers, so that a caller finds the job runners woken when its
/// answer arrives.
fn commit(
    conn: &Conn,
    mut batch: Vec<Box<dyn Request>>,
    on_jobs_queued: &impl Fn(),
) -> Result<(), ()> {
    loop {
        conn.queued_jobs.set(false);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = driver_error(e);
            batch.into_iter().for_each(|r| r.answer(Err(&e)));
            return Err(());
        }
        let Some(i) = batch.iter_mut().position(|request| !request.run(conn)) else {
            let committed = conn.execute_batch("COMMIT").map_err(driver_error);
            if committed.is_err() {
                // Every request is answered with the commit's failure; the rollback only makes
                // the connection usable for the next batch (the next BEGIN reports it if not).
                let _ = rollback(conn);
            }
            let ok = committed.is_ok();
            if ok && conn.queued_jobs.get() {
                on_jobs_queued();
            }
            let committed = committed.as_ref().map(|_| ());
            batch.into_iter().for_each(|r| r.answer(committed));
            return if ok { Ok(()) } else { Err(()) };
        };
        if let Err(e) = rollback(conn) {
            batch.into_iter().for_each(|r| r.answer(Err(&e)));
            return Err(());
        }
        batch.remove(i).answer(Ok(()));
        if batch.is_empty() {
            return Ok(());
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
