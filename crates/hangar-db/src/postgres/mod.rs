//! The metadata store on PostgreSQL: one `PgStore` implementing each concern's trait of
//! `hangar_core::store`, for several nodes on one database (SPEC §13). SQLite serializes every
//! write transaction (`BEGIN IMMEDIATE`); here transactions run side by side (READ COMMITTED), so each
//! check-then-act takes a row lock on the parent it checks (the space for quota and the tree, the
//! application for item limits, the channel for message order), claims skip locked rows, and
//! idempotent inserts are `ON CONFLICT`. Each place says which rule it keeps.

mod apps;
mod attachments;
mod batch;
mod blobs;
mod cache_listener;
mod chat;
mod identity;
mod jobs;
mod outbox;
mod previews;
mod projects;
mod scans;
mod share_links;
mod spaces;
mod storage;
mod tus;

use crate::{DatabaseKind, OpenError};
use batch::{in_rounds, or_one_by_one, Batcher};
use hangar_core::read_cache::{CacheLimits, Invalidation, ReadCache};
use hangar_core::{now_ms, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection as _, PgPool};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A write transaction of this store.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// The metadata store. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections for background bookkeeping (job claims, lease renewals and completions, webhook
    /// dispatch records and delivery outcomes, pins) with `synchronous_commit = off`: such a commit
    /// does not wait for the WAL flush. The WAL keeps commits in order and the next ordinary commit
    /// flushes it, so a crash can only lose the newest of them, and that makes a job run again,
    /// which every such job allows (the same reasoning as SQLite's `synchronous=NORMAL` pool).
    queue_pool: PgPool,
    blob_grace_ms: i64,
    /// Whether new files are scanned for malware (`--clamd`, SPEC §9.6): their blobs start
    /// `pending` and their scans are queued with them.
    scanning: bool,
    /// Counts commits that queued jobs, so that this process's job runners start at once; other
    /// nodes find the jobs at their next poll.
    jobs_enqueued: Arc<watch::Sender<u64>>,
    /// Who tokens belong to and what attachments are, kept between requests. Unused until
    /// `listen_for_changes` hears other nodes' changes (see `cache_listener`).
    cache: Arc<ReadCache>,
    /// How to connect again (the change listener's own connection).
    options: Arc<PgConnectOptions>,
    /// The change listener, stopped by `close`.
    listener: Arc<std::sync::Mutex<Option<tokio::task::AbortHandle>>>,
    /// This process's announcements that its listener has not heard back yet.
    echoes: Arc<cache_listener::Echoes>,
    /// Uploads' pins, made in batches (`blobs::pin_batch`) on the bookkeeping pool.
    pins: Arc<Batcher<blobs::Pin, blobs::Pinned>>,
    /// Plain uploads' records, made in batches (`attachments::record_plain_uploads`).
    plain_uploads: Arc<Batcher<attachments::PlainUpload, (hangar_core::model::Attachment, bool)>>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://…`, which must exist) and runs the embedded
    /// migrations.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let options = connect_options(url)?;
        let pool = open_pool(16, options.clone()).await?;
        // sqlx's migrator holds a session-level advisory lock (`pg_advisory_lock`, keyed by the
        // database name) from before it creates its table until it has applied what is missing, so
        // several nodes starting together migrate once: the others wait, then find nothing to do.
        // (`opening_together_migrates_once` in the tests.)
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let queue_pool =
            open_pool(4, options.clone().options([("synchronous_commit", "off")])).await?;
        let jobs_enqueued = Arc::new(watch::Sender::new(0));
        Ok(Self {
            pins: Arc::new(pin_batcher(queue_pool.clone())),
            plain_uploads: Arc::new(plain_upload_batcher(pool.clone(), jobs_enqueued.clone())),
            pool,
            queue_pool,
            blob_grace_ms: crate::DEFAULT_BLOB_GRACE.as_millis() as i64,
            scanning: false,
            jobs_enqueued,
            cache: Arc::new(ReadCache::disabled(CacheLimits::default())),
            options: Arc::new(options),
            listener: Arc::default(),
            echoes: Arc::new(cache_listener::Echoes::new()),
        })
    }

    /// This store's read caches (tests look at them).
    pub fn read_cache(&self) -> Arc<ReadCache> {
        self.cache.clone()
    }

    /// Starts listening for the changes every node announces, and uses the read caches while the
    /// listener is connected (a node serving requests calls this; commands that run once do not).
    pub fn listen_for_changes(&self) {
        let task = tokio::spawn(cache_listener::run(
            (*self.options).clone(),
            self.cache.clone(),
            self.echoes.clone(),
        ));
        let previous = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// Forgets here, at once, what committed changes made stale (other nodes hear of them through
    /// `announce`).
    pub(crate) fn invalidate(&self, changes: &[Invalidation]) {
        for change in changes {
            self.cache.invalidate(*change);
        }
    }

    /// Commits a transaction whose changes `changes` describes: the other nodes are told in the
    /// same transaction, this one after its commit.
    pub(crate) async fn commit_announced(
        &self,
        mut tx: Tx,
        changes: &[Invalidation],
    ) -> Result<(), StoreError> {
        let echo = self.announce(&mut tx, changes).await?;
        commit(tx).await?;
        self.invalidate(changes);
        self.echoes.wait(echo, &self.cache).await;
        Ok(())
    }

    /// Tells every node listening what `changes` make stale, when (and only if) `tx` commits
    /// (PostgreSQL delivers notifications at commit, in commit order). Answers what to wait for:
    /// every listener connected now (this node's included) having applied it, so that a client's
    /// next request, to whichever node, finds no entry it made stale.
    async fn announce(
        &self,
        tx: &mut Tx,
        changes: &[Invalidation],
    ) -> Result<cache_listener::Echo, StoreError> {
        // A listener that connects later starts with empty caches: it need not be waited for.
        let listeners: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind(cache_listener::LISTENER_NAME)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
        let echo = self.echoes.expect(usize::try_from(listeners).unwrap_or(1));
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(cache_listener::CHANNEL)
            .bind(cache_listener::payload(changes, &echo))
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
        Ok(echo)
    }

    /// Turns malware scanning of new files on (`--clamd`).
    pub fn with_scanning(mut self, scanning: bool) -> Self {
        self.scanning = scanning;
        self
    }

    /// The file to name in `add_ref` when scanning is on.
    pub(crate) fn scanned<'a>(
        &self,
        file: crate::rules::FileRef<'a>,
    ) -> Option<crate::rules::FileRef<'a>> {
        self.scanning.then_some(file)
    }

    /// Sets how long unreferenced bytes are kept before they may be collected.
    pub fn with_blob_grace(mut self, grace: Duration) -> Self {
        self.blob_grace_ms = grace.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Whether the database at `url` holds Hangar's schema already (false for a new installation,
    /// and for a mistyped `--database-url` naming an empty database). Creates nothing; a server that
    /// cannot be reached, or a database that does not exist, is an error.
    pub async fn database_exists(url: &str) -> Result<bool, OpenError> {
        use sqlx::Connection;
        let mut conn = connect_options(url)?.connect().await?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations')",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        Ok(exists)
    }

    /// Closes both pools: connections end at once instead of at the server's time-out.
    pub async fn close(&self) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(listener) = listener {
            listener.abort();
            self.cache.disable();
        }
        self.pool.close().await;
        self.queue_pool.close().await;
    }

    /// Changes when this store queued jobs (see the field).
    pub fn job_signal(&self) -> watch::Receiver<u64> {
        self.jobs_enqueued.subscribe()
    }

    fn signal_jobs(&self) {
        self.jobs_enqueued.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn write(&self) -> Result<Tx, StoreError> {
        begin(&self.pool).await
    }

    /// A write transaction for background bookkeeping (see `queue_pool`).
    async fn queue_write(&self) -> Result<Tx, StoreError> {
        begin(&self.queue_pool).await
    }

    /// Commits a transaction that may have queued jobs, and wakes this process's job runner.
    async fn commit_queued(&self, tx: Tx) -> Result<(), StoreError> {
        commit(tx).await?;
        self.signal_jobs();
        Ok(())
    }

    /// `commit_queued` of a transaction whose changes `changes` describes (see `commit_announced`).
    async fn commit_queued_announced(
        &self,
        mut tx: Tx,
        changes: &[Invalidation],
    ) -> Result<(), StoreError> {
        let echo = self.announce(&mut tx, changes).await?;
        self.commit_queued(tx).await?;
        self.invalidate(changes);
        self.echoes.wait(echo, &self.cache).await;
        Ok(())
    }
}

/// Requests gathered into one statement at most (see `batch`).
const BATCH_MAX: usize = 64;
/// Batches' statements running at once per batcher: while it runs, the next batch gathers. With two
/// at once the batches were half as large and each upload cost PostgreSQL more (255–311 µs of its
/// CPU against 171–184 µs, 4 KiB uploads from 32 clients, docs/performance.md).
const BATCH_STATEMENTS: usize = 1;

/// The pins' batcher. Two pins of one blob may share a batch: `hangar_pin_blobs` makes them one
/// after the other.
fn pin_batcher(pool: PgPool) -> Batcher<blobs::Pin, blobs::Pinned> {
    Batcher::start(BATCH_MAX, BATCH_STATEMENTS, move |batch| {
        let pool = pool.clone();
        async move {
            or_one_by_one(batch, |pins| {
                let pool = &pool;
                retrying(move || blobs::pin_batch(pool, pins.clone()))
            })
            .await
        }
    })
}

/// The plain uploads' batcher: uploads of the same bytes go in separate statements, one after the
/// other. Wakes this process's job runners when a statement queued a job.
fn plain_upload_batcher(
    pool: PgPool,
    jobs_enqueued: Arc<watch::Sender<u64>>,
) -> Batcher<attachments::PlainUpload, (hangar_core::model::Attachment, bool)> {
    Batcher::start(BATCH_MAX, BATCH_STATEMENTS, move |batch| {
        let (pool, jobs_enqueued) = (pool.clone(), jobs_enqueued.clone());
        async move {
            let results = in_rounds(batch, attachments::PlainUpload::sha256, |uploads| {
                let pool = &pool;
                retrying(move || attachments::record_plain_uploads(pool, uploads.clone()))
            })
            .await;
            if results.iter().any(|r| matches!(r, Ok((_, true)))) {
                jobs_enqueued.send_modify(|n| *n = n.wrapping_add(1));
            }
            results
        }
    })
}

/// Begins a transaction on `pool` in a task of its own. sqlx 0.8's `begin` is not cancel-safe on
/// PostgreSQL (transact-rs/sqlx#4393): a caller dropped while `BEGIN` is on its way (a request
/// whose client hung up, as the benchmark's do when it stops) leaves the pooled connection inside a
/// transaction that nothing ends; the next borrower's `BEGIN` then draws "there is already a
/// transaction in progress" and its statements run in that stale transaction. In a task the
/// `BEGIN` always completes, and a transaction that no one takes is dropped there, which rolls it
/// back.
async fn begin(pool: &PgPool) -> Result<Tx, StoreError> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| StoreError::Backend(format!("beginning a transaction: {e}")))?
        .map_err(backend)
}

/// Commits `tx` in a task of its own, for the same reason as `begin`: a caller dropped while
/// `COMMIT` is on its way would leave sqlx believing the transaction open, and its drop would send
/// a `ROLLBACK` after the `COMMIT` ("there is no transaction in progress").
pub(crate) async fn commit(tx: Tx) -> Result<(), StoreError> {
    tokio::spawn(tx.commit())
        .await
        .map_err(|e| StoreError::Backend(format!("committing a transaction: {e}")))?
        .map_err(backend)
}

fn connect_options(url: &str) -> Result<PgConnectOptions, OpenError> {
    if DatabaseKind::of(url)? != DatabaseKind::Postgres {
        return Err(OpenError::Unsupported(url.to_string()));
    }
    Ok(PgConnectOptions::from_str(url)?.application_name("hangar"))
}

async fn open_pool(connections: u32, options: PgConnectOptions) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(connections)
        // A database that cannot be reached answers 503 within this time instead of holding the
        // request.
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection it lends (a round trip to PostgreSQL: a `Sync` and its
        // `ReadyForQuery`) unless told otherwise. A connection given back less than a second ago
        // is lent as it is; one idle for longer is pinged first, so that a restarted server's
        // closed connections are found and replaced before a request gets one. So is every
        // connection for a while after any statement found PostgreSQL unreachable: one given back
        // by a request that failed as PostgreSQL went down may be broken, however recently.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE || troubled_lately() {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
}

/// How long a pooled connection may stay idle before it is pinged again when lent (`open_pool`).
const PING_IDLE: Duration = Duration::from_secs(1);

/// How long after PostgreSQL was last found unreachable every connection is pinged when lent.
const PING_AFTER_TROUBLE_MS: i64 = 10_000;

/// When a statement last found PostgreSQL unreachable (epoch ms; 0: never). One clock for every
/// pool of the process: a restart breaks the connections of all of them.
static LAST_TROUBLE_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn troubled_lately() -> bool {
    let last = LAST_TROUBLE_MS.load(std::sync::atomic::Ordering::Relaxed);
    last != 0 && now_ms().saturating_sub(last) < PING_AFTER_TROUBLE_MS
}

fn unavailable(why: String) -> StoreError {
    LAST_TROUBLE_MS.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    StoreError::Unavailable(why)
}

/// Runs a transaction again when PostgreSQL aborted it for a deadlock or a serialization failure:
/// transactions that touch several blob rows (a replaced file's old and new bytes) can lock them in
/// opposite orders, which SQLite's single writer never does. Each attempt is a whole transaction.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(StoreError::Backend(e)) if tries < 5 && is_transient(&e) => {
                tries += 1;
                let jitter = u64::from(rand::random::<u8>() % 20);
                tokio::time::sleep(Duration::from_millis(5 * tries + jitter)).await;
            }
            other => return other,
        }
    }
}

/// The prefix of a backend error that names PostgreSQL's error code.
const CODE_PREFIX: &str = "postgres error ";

fn is_transient(message: &str) -> bool {
    ["40001", "40P01"]
        .iter()
        .any(|code| message.starts_with(&format!("{CODE_PREFIX}{code}")))
}

/// Maps a driver error to the store's error: uniqueness violations become `Conflict(what)`.
fn map_err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => backend(e),
    }
}

/// Every other driver error. A server that cannot be reached (I/O, TLS, pool time-out, a closed
/// pool, a connection ended by a server shutting down or not yet accepting) is `Unavailable`, which
/// the HTTP edge answers with 503; anything else is a `Backend` failure.
fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => unavailable(e.to_string()),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // connection_exception (class 08); admin_shutdown, crash_shutdown, cannot_connect_now;
            // object_not_in_prerequisite_state, which is what a connection to a database that
            // accepts none (`ALLOW_CONNECTIONS false`) gets, and nothing Hangar runs raises otherwise.
            Some(code)
                if code.starts_with("08")
                    || ["57P01", "57P02", "57P03", "55000"].contains(&code) =>
            {
                unavailable(format!("{CODE_PREFIX}{code}: {}", db.message()))
            }
            // disk_full, insufficient_resources: the disk, not the request, is the problem.
            Some("53100") => StoreError::Full,
            // foreign_key_violation: what the change refers to was deleted meanwhile.
            Some("23503") => StoreError::Refused {
                code: "gone",
                reason: "something this change refers to was deleted meanwhile".into(),
            },
            Some(code) => StoreError::Backend(format!("{CODE_PREFIX}{code}: {}", db.message())),
            None => StoreError::Backend(e.to_string()),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
