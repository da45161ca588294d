//! The metadata store on SQLite: one `SqliteStore` implementing each concern's trait of
//! `hangar_core::store`. Everything SQLite-specific (pools, pragmas, `BEGIN IMMEDIATE`, error codes)
//! stays in this module; the SQL sticks to what SQLite and PostgreSQL share where it can.

mod apps;
mod attachments;
mod blobs;
mod chat;
mod identity;
mod jobs;
mod projects;
mod spaces;
mod storage;

use crate::{OpenError, DEFAULT_BLOB_GRACE};
use hangar_core::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A write transaction of this store.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// The metadata store. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Connections for background bookkeeping (job claims, lease renewals and completions, webhook
    /// dispatch records and delivery outcomes) with `synchronous=NORMAL`: such a commit does not wait
    /// for the disk. WAL keeps commits in order, so a power cut can only lose the newest of them, and
    /// that makes a job run again (its completion was later still), which every such job allows: each
    /// is idempotent, and deliveries are at-least-once. Changes people make, and the jobs they cause,
    /// are committed with `synchronous=FULL`.
    queue_pool: SqlitePool,
    blob_grace_ms: i64,
    /// Counts commits that queued jobs, so that this process's job runners start at once instead of
    /// at their next poll (each runner watches it; none misses a change). Other processes find the
    /// jobs by polling.
    jobs_enqueued: Arc<watch::Sender<u64>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and runs the embedded migrations. WAL journal
    /// and `synchronous=FULL`: a committed upload survives a power cut.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        if !url.starts_with("sqlite:") {
            return Err(OpenError::Unsupported(url.to_string()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = open_pool(8, options.clone()).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let queue_pool = open_pool(2, options.synchronous(SqliteSynchronous::Normal)).await?;
        Ok(Self {
            pool,
            queue_pool,
            blob_grace_ms: DEFAULT_BLOB_GRACE.as_millis() as i64,
            jobs_enqueued: Arc::new(watch::Sender::new(0)),
        })
    }

    /// Sets how long unreferenced bytes are kept before they may be collected.
    pub fn with_blob_grace(mut self, grace: Duration) -> Self {
        self.blob_grace_ms = grace.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Whether the SQLite database at `url` exists already (false for a new installation, and for a
    /// mistyped `--database-url`). Creates nothing.
    pub fn database_exists(url: &str) -> Result<bool, OpenError> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename();
        Ok(path.as_os_str() == ":memory:" || path.exists())
    }

    /// Changes when this store queued jobs (see the field).
    pub fn job_signal(&self) -> watch::Receiver<u64> {
        self.jobs_enqueued.subscribe()
    }

    fn signal_jobs(&self) {
        self.jobs_enqueued.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A write transaction: `BEGIN IMMEDIATE` takes SQLite's write lock at once, so the reads inside
    /// it see what the writes will be checked against (no other process writes in between).
    async fn write(&self) -> Result<Tx, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// A write transaction for background bookkeeping (see `queue_pool`).
    async fn queue_write(&self) -> Result<Tx, StoreError> {
        self.queue_pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// Commits a transaction that may have queued jobs, and wakes this process's job runner.
    async fn commit_queued(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await.map_err(backend)?;
        self.signal_jobs();
        Ok(())
    }
}

async fn open_pool(
    connections: u32,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(connections)
        // A COMMIT that fails (a full disk) can leave sqlx's transaction count on the connection
        // stuck, and every later transaction on it failing: such a connection is closed instead of
        // going back to the pool. The ping lets a queued rollback finish first.
        .after_release(|conn, _| {
            Box::pin(async move {
                use sqlx::Connection;
                conn.ping().await?;
                Ok(!conn.is_in_transaction())
            })
        })
        .connect_with(options)
        .await
}

/// Maps a driver error to the store's error: uniqueness violations become `Conflict(what)`.
fn map_err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => backend(e),
    }
}

fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        // SQLITE_FULL: the disk, not the request, is the problem.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("13") => StoreError::Full,
        // SQLITE_CONSTRAINT_FOREIGNKEY: what the change refers to was deleted meanwhile.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("787") => StoreError::Refused {
            code: "gone",
            reason: "something this change refers to was deleted meanwhile".into(),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}
