//! Group commit on SQLite: one task runs the writes of many requests (uploads' records and pins) in
//! one transaction and answers each once that transaction is committed, so that one WAL `fsync`
//! serves all of them instead of one each. An answer is never given before the commit it depends
//! on, so the durability of each request is what it was alone.

use super::{backend, Tx};
use hangar_core::store::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot};

/// Most requests in one transaction (the rest wait for the next one, which starts at once).
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before senders wait too.
const QUEUE: usize = 4096;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request's writes, run inside the batch's transaction. It may run more than once: when
/// another request of its batch fails, the transaction is rolled back and the others run again
/// (so each must do the same again: it only writes to the database).
pub(crate) trait Work<T>:
    for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, StoreResult<T>> + Send
{
}
impl<T, F> Work<T> for F where F: for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, StoreResult<T>> + Send {}

trait Request: Send {
    fn durable(&self) -> bool;
    /// Runs the writes and keeps their outcome; false when they failed.
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, bool>;
    /// Answers the caller: its own failure, else the batch's commit.
    fn answer(self: Box<Self>, committed: Result<(), &StoreError>);
}

struct Pending<T, F> {
    work: F,
    durable: bool,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send + 'static, F: Work<T> + 'static> Request for Pending<T, F> {
    fn durable(&self) -> bool {
        self.durable
    }

    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let outcome = (self.work)(tx).await;
            let ok = outcome.is_ok();
            self.outcome = Some(outcome);
            ok
        })
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

/// The handle to the writer task. Cheap to clone; the task ends when the last handle goes.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    requests: mpsc::Sender<Box<dyn Request>>,
    pool: SqlitePool,
}

impl GroupWriter {
    /// Opens the writer's own connection and starts its task (on the current runtime).
    /// `on_durable_commit` runs after each commit of durable requests (they may have queued jobs).
    pub(crate) async fn start(
        options: SqliteConnectOptions,
        on_durable_commit: impl Fn() + Send + 'static,
    ) -> Result<GroupWriter, sqlx::Error> {
        // One connection that stays: its `synchronous` setting is switched per batch.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.synchronous(SqliteSynchronous::Full))
            .await?;
        let (requests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool.clone(), queue, on_durable_commit));
        Ok(GroupWriter { requests, pool })
    }

    /// Runs `work` in the next batch and answers once that batch is committed: on the disk
    /// (`durable`, `synchronous=FULL`), or only visible to every connection (bookkeeping that a
    /// power cut may lose, `synchronous=NORMAL`: WAL keeps commits in order, so it is durable by
    /// the time anything committed after it is).
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        durable: bool,
        work: impl for<'t> Fn(&'t mut Tx) -> BoxFuture<'t, StoreResult<T>> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        let request = Box::new(Pending {
            work,
            durable,
            outcome: None,
            reply,
        });
        self.requests.send(request).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

async fn run(
    pool: SqlitePool,
    mut queue: mpsc::Receiver<Box<dyn Request>>,
    on_durable_commit: impl Fn(),
) {
    // What the connection's `synchronous` is known to be (None after a failure: set it again).
    let mut full = Some(true);
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|r| r.durable());
        if full != Some(durable) {
            let pragma = if durable {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            if let Err(e) = sqlx::query(pragma).execute(&pool).await {
                let e = backend(e);
                batch.into_iter().for_each(|r| r.answer(Err(&e)));
                full = None;
                continue;
            }
            full = Some(durable);
        }
        match commit(&pool, batch).await {
            Ok(()) if durable => on_durable_commit(),
            Ok(()) => {}
            Err(()) => full = None,
        }
    }
    pool.close().await;
}

/// Runs the batch in one transaction and answers every request. Runs optimistically without a
/// savepoint per request: when one fails, everything is rolled back, that one is answered with its
/// failure, and the others run again without it.
async fn commit(pool: &SqlitePool, mut batch: Vec<Box<dyn Request>>) -> Result<(), ()> {
    loop {
        let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => tx,
            Err(e) => {
                let e = backend(e);
                batch.into_iter().for_each(|r| r.answer(Err(&e)));
                return Err(());
            }
        };
        let mut failed = None;
        for (i, request) in batch.iter_mut().enumerate() {
            if !request.run(&mut tx).await {
                failed = Some(i);
                break;
            }
        }
        let Some(i) = failed else {
            let committed = tx.commit().await.map_err(backend);
            let ok = committed.is_ok();
            let committed = committed.as_ref().map(|_| ());
            batch.into_iter().for_each(|r| r.answer(committed));
            return if ok { Ok(()) } else { Err(()) };
        };
        if let Err(e) = tx.rollback().await {
            let e = backend(e);
            batch.into_iter().for_each(|r| r.answer(Err(&e)));
            return Err(());
        }
        batch.remove(i).answer(Ok(()));
        if batch.is_empty() {
            return Ok(());
        }
    }
}
