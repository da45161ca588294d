//! The metadata store on SQLite: one `SqliteStore` implementing each concern's trait of
//! `hangar_core::store`. Everything SQLite-specific (pools, pragmas, `BEGIN IMMEDIATE`, error codes)
//! stays in this module; the SQL sticks to what SQLite and PostgreSQL share where it can.

mod apps;
mod attachments;
mod blobs;
mod chat;
mod epoch;
mod group;
mod grouped;
mod identity;
mod jobs;
mod log_room;
mod migrate;
mod previews;
mod projects;
mod scans;
mod share_links;
mod spaces;
mod storage;
mod tus;

use crate::{OpenError, DEFAULT_BLOB_GRACE};
use hangar_core::read_cache::{CacheLimits, Invalidation, ReadCache};
use hangar_core::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// WAL pages after which a committing connection copies the log back into the database file
/// (SQLite's default is 1,000). Each checkpoint writes every page that changed since the last one
/// once, and small uploads' commits change the same pages again and again (the last pages of the
/// attachments', blobs' and events' B-trees, the interior pages above the random leaves of the
/// hash and id indexes), so fewer checkpoints write fewer pages in all; but the commit that runs
/// one waits for it (the copy and the database file's `fsync`), with every upload queued behind.
/// Measured with 32 clients of 4 KiB uploads, three rounds of 10 s on one database
/// (docs/performance.md, "Fewer checkpoints"): 4,000 pages 11,167, 9,760 and 9,399 uploads/s, p99
/// latency 14–22 ms; 32,000: 11,230, 10,850 and 10,211/s, 23–64 ms; 64,000: 11,984, 11,288 and
/// 11,073/s, 26–76 ms. The log reaches about 250 MiB before it is reused; a crash's recovery reads
/// it once.
pub(crate) const WAL_AUTOCHECKPOINT: u32 = 64_000;

/// How long a connection waits for another's lock before its statement fails with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the checkpoint that gives a nearly full volume its log's room back waits for readers.
const ROOM_CHECKPOINT_WAIT: Duration = Duration::from_millis(200);

/// What is at a database URL, found without creating or changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No database yet: starting creates one at this path (`:memory:` for an in-memory one).
    Missing { path: std::path::PathBuf },
    /// A database that opens; `holds_data` as `BlobLifecycleStore::holds_data` (false for an
    /// empty file or a database without Hangar's tables).
    Found { holds_data: bool },
}

/// The driver's cause in words, without sqlx's own prefixes.
fn cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// A write transaction of this store.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

pub(crate) use group::Conn;

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
    /// Commits uploads' records (and their pins) in groups: see `group`.
    writer: group::GroupWriter,
    blob_grace_ms: i64,
    /// Whether new files are scanned for malware (`--clamd`, SPEC §9.6): their blobs start
    /// `pending` and their scans are queued with them.
    scanning: bool,
    /// Counts commits that queued jobs, so that this process's job runners start at once instead of
    /// at their next poll (each runner watches it; none misses a change). Other processes find the
    /// jobs by polling.
    jobs_enqueued: Arc<watch::Sender<u64>>,
    /// Who tokens belong to and what attachments are, kept between requests. SQLite has one
    /// process serving it (several nodes need PostgreSQL), so every change that makes an entry
    /// stale is made here and invalidates it here, after its commit.
    cache: Arc<ReadCache>,
    /// The file through which another process's changes reach this one's caches: see `epoch`.
    /// None for an in-memory database (no other process can open it).
    epoch: Option<Arc<epoch::Epoch>>,
    /// Whether this store announces its changes through `epoch` (administration commands beside a
    /// serving process).
    announce: bool,
    /// Whether the volume needs the log's space back before the next write: see `log_room`.
    log_room: Arc<log_room::LogRoom>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and runs the embedded migrations. WAL journal
    /// and `synchronous=FULL`: a committed upload survives a power cut.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, true).await
    }

    /// Opens the database at `url` if it exists (administration commands, which must not create an
    /// empty installation where a mistyped URL points).
    pub async fn open_existing(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, false).await
    }

    async fn open_with(url: &str, create: bool) -> Result<Self, OpenError> {
        let options = connect_options(url)?;
        let path = options.get_filename().display().to_string();
        let is_memory = in_memory(options.get_filename());
        if !create && !is_memory && !options.get_filename().exists() {
            return Err(OpenError::Missing { path });
        }
        if !is_memory {
            make_private(options.get_filename(), create).map_err(|e| OpenError::Open {
                path: path.clone(),
                cause: e.to_string(),
            })?;
        }
        let options = options
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT.to_string());
        let open_error = |e: sqlx::Error| OpenError::Open {
            path: path.clone(),
            cause: cause(&e),
        };
        let pool = open_pool(8, options.clone()).await.map_err(open_error)?;
        migrate::run(&pool, options.get_filename())
            .await
            .map_err(|cause| OpenError::Migrate {
                path: path.clone(),
                cause,
            })?;
        if create && !is_memory {
            checkpoint(&pool, "start-up", BUSY_TIMEOUT).await;
        }
        // Without the epoch file this process could not hear another's changes: no caches then.
        let (epoch, cache) = if is_memory {
            (None, ReadCache::new(CacheLimits::default()))
        } else {
            match epoch::Epoch::open(options.get_filename()) {
                Ok(epoch) => (
                    Some(Arc::new(epoch)),
                    ReadCache::new(CacheLimits::default()),
                ),
                Err(e) => {
                    tracing::warn!(
                        "read caches off: cannot open {}: {e}",
                        epoch::path_beside(options.get_filename()).display()
                    );
                    (None, ReadCache::disabled(CacheLimits::default()))
                }
            }
        };
        let cache = Arc::new(cache);
        let jobs_enqueued = Arc::new(watch::Sender::new(0u64));
        let signal = jobs_enqueued.clone();
        let writer = group::GroupWriter::start(options.get_filename(), move || {
            signal.send_modify(|n| *n = n.wrapping_add(1))
        })
        .map_err(|cause| OpenError::Open {
            path: path.clone(),
            cause,
        })?;
        let log_room = Arc::new(log_room::LogRoom::new(
            (!is_memory).then(|| options.get_filename().to_path_buf()),
        ));
        let queue_pool = open_pool(2, options.synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(open_error)?;
        Ok(Self {
            pool,
            queue_pool,
            writer,
            blob_grace_ms: DEFAULT_BLOB_GRACE.as_millis() as i64,
            scanning: false,
            jobs_enqueued,
            cache,
            epoch,
            announce: false,
            log_room,
        })
    }

    /// This store's read caches (tests look at them).
    pub fn read_cache(&self) -> Arc<ReadCache> {
        self.cache.clone()
    }

    /// Makes this store announce each committed change to a process serving the same file, whose
    /// caches then forget everything before their next answer (administration commands).
    pub fn announcing_changes(mut self) -> Self {
        self.announce = true;
        self
    }

    /// Forgets what committed changes made stale, here and, when announcing, in the serving process.
    pub(crate) fn invalidate(&self, changes: &[Invalidation]) {
        for change in changes {
            self.cache.invalidate(*change);
        }
        if self.announce && !changes.is_empty() {
            if let Some(epoch) = &self.epoch {
                if let Err(e) = epoch.announce() {
                    tracing::warn!("cannot tell a running server of this change: {e}");
                }
            }
        }
    }

    /// The read caches, emptied first when another process announced a change.
    pub(crate) fn fresh_cache(&self) -> &ReadCache {
        if let Some(epoch) = &self.epoch {
            if epoch.changed() {
                self.cache.clear();
            }
        }
        &self.cache
    }

    /// What is at `url`: no database yet, or one that opens and holds data or not. Creates nothing
    /// and changes nothing (no migration, no journal mode), so that start-up can check every
    /// setting before it touches the disk.
    pub async fn probe(url: &str) -> Result<Probe, OpenError> {
        use sqlx::{ConnectOptions, Connection};
        let options = connect_options(url)?;
        let path = options.get_filename().to_path_buf();
        if in_memory(&path) {
            return Ok(Probe::Missing {
                path: ":memory:".into(),
            });
        }
        if !path.exists() {
            return Ok(Probe::Missing { path });
        }
        let open_error = |e: sqlx::Error| OpenError::Open {
            path: path.display().to_string(),
            cause: cause(&e),
        };
        let mut conn = options
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT)
            .connect()
            .await
            .map_err(open_error)?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name IN ('members', 'blobs', 'spaces')",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(open_error)?;
        let mut holds_data = false;
        for table in &tables {
            let any: i64 = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
                .fetch_one(&mut conn)
                .await
                .map_err(open_error)?;
            holds_data |= any != 0;
        }
        conn.close().await.map_err(open_error)?;
        Ok(Probe::Found { holds_data })
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

    /// Whether the SQLite database at `url` exists already (false for a new installation, and for a
    /// mistyped `--database-url`). Creates nothing.
    pub fn database_exists(url: &str) -> Result<bool, OpenError> {
        let options = connect_options(url)?;
        let path = options.get_filename();
        Ok(in_memory(path) || path.exists())
    }

    /// Writes a consistent copy of the whole database to `path` (a new file), while other
    /// connections and processes keep reading and writing: `VACUUM INTO` reads one snapshot.
    pub async fn snapshot_into(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let target = path.to_str().ok_or_else(|| {
            StoreError::Backend(format!("{} is not a UTF-8 path", path.display()))
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Closes every connection (the WAL is checkpointed and its files removed when this was the
    /// last connection to the database).
    pub async fn close(&self) {
        self.pool.close().await;
        self.queue_pool.close().await;
        self.writer.close().await;
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
        self.make_room().await;
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// A write transaction for background bookkeeping (see `queue_pool`).
    async fn queue_write(&self) -> Result<Tx, StoreError> {
        self.make_room().await;
        self.queue_pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// On a volume under its reserve, copies the log back into the database and truncates it, so
    /// that the write about to start finds room (see `log_room`). Waits for the readers of older
    /// pages to finish for `ROOM_CHECKPOINT_WAIT` at most; when they do not, the log stays as it is
    /// until a later write tries again.
    async fn make_room(&self) {
        let Some(available) = self.log_room.short() else {
            return;
        };
        let size = sqlx::query_as::<_, (i64,)>("PRAGMA page_count")
            .fetch_one(&self.pool)
            .await
            .map(|(pages,)| pages);
        let page_size = sqlx::query_as::<_, (i64,)>("PRAGMA page_size")
            .fetch_one(&self.pool)
            .await
            .map(|(size,)| size);
        let (Ok(pages), Ok(page_size)) = (size, page_size) else {
            return;
        };
        let growth = self.log_room.growth(pages as u64, page_size as u64);
        // A block of slack for the filesystem's own rounding.
        if growth.is_none_or(|g| g.saturating_add(64 << 10) > available) {
            tracing::debug!(
                "the database's volume is nearly full ({available} bytes free): its log stays, \
                 copying it back would need more"
            );
            return;
        }
        checkpoint(&self.pool, "a nearly full volume", ROOM_CHECKPOINT_WAIT).await;
    }

    /// Commits a transaction that may have queued jobs, and wakes this process's job runner.
    async fn commit_queued(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await.map_err(backend)?;
        self.signal_jobs();
        Ok(())
    }
}

/// Copies the log back into the database file and truncates it (`why` says when, for the log),
/// waiting at most `wait` for the readers of older pages: such a checkpoint holds the write lock
/// while it waits, so on a busy server it gives up soon and is tried again at a later write.
async fn checkpoint(pool: &SqlitePool, why: &str, wait: Duration) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!("{why}: no connection to copy the log back: {}", cause(&e));
            return;
        }
    };
    let busy_timeout = |wait: Duration| format!("PRAGMA busy_timeout = {}", wait.as_millis());
    let done = async {
        sqlx::query(&busy_timeout(wait)).execute(&mut *conn).await?;
        sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await
    }
    .await;
    // The pool's own wait again; a connection that cannot have it back is closed, not lent.
    if sqlx::query(&busy_timeout(BUSY_TIMEOUT))
        .execute(&mut *conn)
        .await
        .is_err()
    {
        drop(conn.detach());
    }
    match done {
        Ok((0, pages, _)) => {
            tracing::debug!("{why}: the database's log of {pages} pages copied back")
        }
        Ok(_) => tracing::debug!("{why}: the database's log is being read, kept"),
        Err(e) => tracing::warn!(
            "{why}: the database's log cannot be copied back: {}",
            cause(&e)
        ),
    }
}

/// Whether sqlx opens `path` (its options' file name) as an in-memory database: its URL parser names
/// the database of `sqlite::memory:` `file:sqlx-in-memory-N`, which is no file to create, protect
/// or watch.
pub(crate) fn in_memory(path: &std::path::Path) -> bool {
    path.as_os_str() == ":memory:"
        || path
            .to_str()
            .is_some_and(|name| name.starts_with("file:sqlx-in-memory-"))
}

/// The database file, and its `-wal` and `-shm` files when present, readable by the server only
/// (SPEC §1). A new database file is created empty with mode 0600 before SQLite opens it: SQLite
/// gives its `-wal` and `-shm` files the mode of the database file.
fn make_private(db: &std::path::Path, create: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if create && !db.exists() {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
        {
            Ok(_) => {}
            // Another process made it in between: fine, it is chmod-ed below.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let name = db.as_os_str().to_os_string();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = name.clone();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, OpenError> {
    if !url.starts_with("sqlite:") {
        return Err(OpenError::Unsupported(url.to_string()));
    }
    SqliteConnectOptions::from_str(url).map_err(|e| OpenError::BadUrl {
        url: url.to_string(),
        cause: cause(&e),
    })
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

/// `backend` for the group writer's driver.
fn driver_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error() {
        Some(f) if f.code == rusqlite::ErrorCode::DiskFull => StoreError::Full,
        Some(f) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::Refused {
                code: "gone",
                reason: "something this change refers to was deleted meanwhile".into(),
            }
        }
        _ => StoreError::Backend(e.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The steps of SQLite's plan for `sql` (its parameters unbound).
    async fn query_plan(store: &SqliteStore, sql: &str) -> Vec<String> {
        sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
            .collect()
    }

    /// A tmpfs of `size` mounted in a temporary directory, unmounted on drop (root only).
    struct Tmpfs {
        dir: tempfile::TempDir,
    }

    impl Tmpfs {
        fn mount(size: &str) -> Result<Tmpfs, String> {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let out = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir.path())
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            Ok(Tmpfs { dir })
        }

        fn available(&self) -> u64 {
            let stats = rustix::fs::statvfs(self.dir.path()).unwrap();
            stats.f_bavail * stats.f_frsize
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }

    /// On a volume under its reserve, a write first copies the log back and truncates it, unless
    /// copying it back would take more room than is left.
    #[tokio::test]
    async fn a_write_on_a_volume_under_its_reserve_gets_the_logs_room_back_when_it_can() {
        let volume = match Tmpfs::mount("4M") {
            Ok(v) => v,
            Err(why) => {
                println!("SKIPPED: this test needs a tmpfs it can mount: {why}");
                return;
            }
        };
        let db = volume.dir.path().join("t.db");
        let store = SqliteStore::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let wal_file = std::path::PathBuf::from(format!("{}-wal", db.display()));
        let wal = || std::fs::metadata(&wal_file).map(|m| m.len()).unwrap_or(0);
        let file = || std::fs::metadata(&db).unwrap().len();
        // 40 new pages for the file, in a log that holds each several times.
        let mut tx = store.write().await.unwrap();
        sqlx::query("CREATE TABLE scratch (x BLOB)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        for _ in 0..40 {
            let mut tx = store.write().await.unwrap();
            sqlx::query("INSERT INTO scratch (x) VALUES (zeroblob(3000))")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let (log, before) = (wal(), file());
        assert!(log > 100 << 10, "the log holds {log} bytes");

        // Less room than copying the log back needs: the log stays as it is.
        let reserve = hangar_core::volume::free_space_reserve(4 << 20);
        let filler = volume.dir.path().join("filler");
        let fill = |left: u64| {
            let now = volume.available() + std::fs::metadata(&filler).map_or(0, |m| m.len());
            std::fs::write(&filler, vec![1u8; (now - left) as usize]).unwrap();
        };
        fill(32 << 10);
        tokio::time::sleep(Duration::from_millis(150)).await; // the last reading grows old
        let tx = store.write().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!((wal(), file()), (log, before));

        // Room for it, though under the reserve, but a reader holds the log: the checkpoint waits
        // for it only briefly (the write lock is held meanwhile), and the log stays.
        fill(reserve - (32 << 10));
        let mut reader = store.pool.begin().await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM scratch")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        assert_eq!(rows, 40);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let asked = std::time::Instant::now();
        let tx = store.write().await.unwrap();
        tx.rollback().await.unwrap();
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
        assert_eq!(wal(), log);
        reader.rollback().await.unwrap();

        // No reader now: the log is copied back and truncated.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let tx = store.write().await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(wal(), 0);
        assert!(file() > before + (100 << 10), "the file grew to {}", file());
        store.close().await;
    }

    /// The pool's connections and the group writer's own copy the log back at the same size, so
    /// that no connection checkpoints far more often than the rest.
    #[tokio::test]
    async fn every_connection_checkpoints_the_log_at_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let pooled: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        let writer: i64 = store
            .writer
            .write(false, |conn: &Conn| {
                conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                    .map_err(driver_error)
            })
            .await
            .unwrap();
        let expected = i64::from(WAL_AUTOCHECKPOINT);
        assert_eq!((pooled, writer), (expected, expected));
    }

    /// The group writer commits without syncing the WAL and answers a durable write only once a
    /// sync of the WAL has followed its commit; a write that need not be durable is answered
    /// without one. Both are visible to the pool when answered.
    #[tokio::test]
    async fn durable_writes_are_answered_after_a_sync_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqliteStore::open(&url).await.unwrap();
        let insert = |x: i64| {
            move |conn: &Conn| {
                conn.execute("INSERT INTO scratch (x) VALUES (?)", [x])
                    .map(|_| ())
                    .map_err(driver_error)
            }
        };
        store
            .writer
            .write(true, |conn: &Conn| {
                conn.execute_batch("CREATE TABLE scratch (x INTEGER)")
                    .map_err(driver_error)
            })
            .await
            .unwrap();
        let before = store.writer.syncs();
        store.writer.write(false, insert(1)).await.unwrap();
        assert_eq!(
            store.writer.syncs(),
            before,
            "a write that need not be durable waited for a sync"
        );
        store.writer.write(true, insert(2)).await.unwrap();
        assert_eq!(store.writer.syncs(), before + 1);
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM scratch ORDER BY x")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(rows, [1, 2]);
        let level: i64 = store
            .writer
            .write(false, |conn: &Conn| {
                conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
                    .map_err(driver_error)
            })
            .await
            .unwrap();
        assert_eq!(level, 1, "the writer's commits should not sync (NORMAL)");
        store.close().await;
    }

    /// Attachments by uploader are indexed in creation order within each uploader (so that an
    /// uploader's new rows share the index's last page instead of each landing on a random one,
    /// attachment ids being random), and the owner quota's sum still finds them through it.
    #[tokio::test]
    async fn the_uploader_index_is_in_creation_order_and_serves_the_quota_sum() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM pragma_index_info('attachments_uploader') ORDER BY seqno",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(columns, ["uploader_id", "created_utc"]);
        let plan = query_plan(&store, &attachments::member_usage_sql()).await;
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX attachments_uploader (uploader_id=?)")),
            "the quota sum does not use the uploader index: {plan:?}"
        );
        store.close().await;
    }

    /// The attachments holding a blob are indexed by the blob's number, given in creation order,
    /// not by its hash (a random key: a page of its own for each upload's commit). A new blob's
    /// number is above every number before it, its attachments carry it, the look-up goes through
    /// that index, and two blobs with the same number are still told apart by their hash.
    #[tokio::test]
    async fn attachments_are_found_by_their_blobs_number_given_in_creation_order() {
        use hangar_core::model::{NewAttachment, Role};
        use hangar_core::store::{AttachmentStore, IdentityStore};
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'attachments' \
             AND sql IS NOT NULL ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(indexes, ["attachments_blob", "attachments_uploader"]);
        let plan = query_plan(&store, blobs::ATTACHMENTS_OF_BLOB).await;
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX attachments_blob (blob_seq=?)")),
            "the look-up does not use the blob's number: {plan:?}"
        );

        let me = store
            .create_member("m", "h", "M", Role::Member)
            .await
            .unwrap();
        let attachment = |sha: char, stores_blob: bool| NewAttachment {
            id: hangar_core::ids::random_id(),
            uploader_id: me.id,
            file_name: format!("{sha}.txt"),
            content_type: "text/plain".into(),
            size: 4,
            sha256: sha.to_string().repeat(64),
            state: hangar_core::AttachmentState::ReadyForDownloadFromServerToClient,
            media_context: None,
            stores_blob,
            hold: None,
        };
        let new = [
            attachment('a', true),
            attachment('b', true),
            attachment('a', true),
            attachment('c', false),
        ];
        store.create_attachments(&new, None, None).await.unwrap();
        let numbers: Vec<(String, i64)> =
            sqlx::query_as("SELECT sha256, seq FROM blobs ORDER BY sha256")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(numbers.len(), 2, "{numbers:?}");
        assert!(numbers[0].1 < numbers[1].1, "{numbers:?}");
        let carried: Vec<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, blob_seq FROM attachments")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        for a in &new {
            let expected = numbers
                .iter()
                .find(|(sha, _)| *sha == a.sha256)
                .map(|(_, seq)| *seq)
                .filter(|_| a.stores_blob);
            assert!(carried.contains(&(a.id, expected)), "{carried:?}");
        }
        let of_blob = |sha: char| {
            let pool = store.pool.clone();
            async move {
                let found: Vec<(i64, String, i64)> = sqlx::query_as(blobs::ATTACHMENTS_OF_BLOB)
                    .bind(sha.to_string().repeat(64))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                found.into_iter().map(|(id, ..)| id).collect::<Vec<i64>>()
            }
        };
        let mut holding_a = vec![new[0].id, new[2].id];
        holding_a.sort();
        assert_eq!(of_blob('a').await, holding_a);
        assert_eq!(of_blob('b').await, [new[1].id]);
        assert!(of_blob('c').await.is_empty());

        // The same number on two blobs (row ids renumbered by a VACUUM): the hash tells them apart.
        sqlx::query("UPDATE blobs SET seq = ? WHERE sha256 = ?")
            .bind(numbers[0].1)
            .bind(&numbers[1].0)
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE attachments SET blob_seq = ? WHERE id = ?")
            .bind(numbers[0].1)
            .bind(new[1].id)
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(of_blob('a').await, holding_a);
        assert_eq!(of_blob('b').await, [new[1].id]);

        // A row made without a number gets one at its next reference.
        sqlx::query("UPDATE blobs SET seq = NULL WHERE sha256 = ?")
            .bind(&numbers[1].0)
            .execute(&store.pool)
            .await
            .unwrap();
        let again = attachment('b', true);
        store
            .create_attachments(std::slice::from_ref(&again), None, None)
            .await
            .unwrap();
        let renumbered: i64 = sqlx::query_scalar("SELECT seq FROM blobs WHERE sha256 = ?")
            .bind(&numbers[1].0)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(renumbered > numbers[1].1, "{renumbered}");
        assert_eq!(of_blob('b').await, [again.id]);
        store.close().await;
    }

    /// A new database at `url` with the migrations before `version` only, on a pool without
    /// foreign keys (so that rows can be made without their parents).
    async fn migrated_before(url: &str, version: i64) -> SqlitePool {
        let all = sqlx::migrate!("migrations/sqlite");
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                all.migrations
                    .iter()
                    .filter(|m| m.version < version)
                    .cloned()
                    .collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        let options = connect_options(url)
            .unwrap()
            .create_if_missing(true)
            .foreign_keys(false);
        let pool = open_pool(1, options).await.unwrap();
        before.run(&pool).await.unwrap();
        pool
    }

    /// Inserts an attachment as the tables before migration 19 take it.
    async fn old_attachment(pool: &SqlitePool, id: i64, created_utc: i64) {
        sqlx::query(
            "INSERT INTO attachments (id, uploader_id, file_name, content_type, size, state, \
             created_utc, modified_utc) VALUES (?, 1, 'f', 't', 4, 's', ?, ?)",
        )
        .bind(id)
        .bind(created_utc)
        .bind(created_utc)
        .execute(pool)
        .await
        .unwrap();
    }

    /// Each attachment's `seq` and id, in `seq` order.
    async fn seq_and_id(store: &SqliteStore) -> Vec<(i64, i64)> {
        sqlx::query_as("SELECT seq, id FROM attachments ORDER BY seq")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    }

    /// A database from before migration 19 gets its attachments rebuilt in insertion order at its
    /// migration, keyed by `seq` in creation order, with the public id unique; every link, share
    /// link and tus upload that referred to an attachment still does, and deleting an attachment
    /// still deletes them. Opening it again changes nothing.
    #[tokio::test]
    async fn the_migration_keeps_attachments_in_insert_order_and_every_link() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let pool = migrated_before(&url, 19).await;
        for (id, created_utc) in [(900_i64, 1_i64), (5, 2), (77, 3), (6, 3)] {
            old_attachment(&pool, id, created_utc).await;
        }
        for sql in [
            "INSERT INTO members (id, username, password_hash, display_name, role, created_utc) \
             VALUES (1, 'u', 'x', 'U', 'member', 0)",
            "INSERT INTO message_attachments VALUES (1, 5, 0, 'c', '{}')",
            "INSERT INTO message_attachments VALUES (1, 900, 1, 'c', '{}')",
            "INSERT INTO issue_attachments VALUES (1, 900, 0, 'c', '{}')",
            "INSERT INTO tus_uploads (id, owner_id, length, metadata, file_name, content_type, \
             attachment_id, state, expires_utc, created_utc) VALUES ('u', 1, 4, '', 'f', 't', 77, \
             'receiving', 9, 0)",
            "INSERT INTO share_links (token_hash, creator_id, attachment_id, created_utc) \
             VALUES ('h', 1, 5, 0)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        assert_eq!(
            seq_and_id(&store).await,
            [(1, 900), (2, 5), (3, 6), (4, 77)],
            "creation order, then id"
        );
        let links = |sql: &'static str| {
            let pool = store.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        let all_links = || async {
            [
                links("SELECT attachment_id FROM message_attachments ORDER BY attachment_id").await,
                links("SELECT attachment_id FROM issue_attachments").await,
                links("SELECT attachment_id FROM tus_uploads").await,
                links("SELECT attachment_id FROM share_links").await,
            ]
        };
        assert_eq!(
            all_links().await,
            [vec![5, 900], vec![900], vec![77], vec![5]]
        );
        for child in [
            "message_attachments",
            "issue_attachments",
            "tus_uploads",
            "share_links",
        ] {
            let parents: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT \"table\" FROM pragma_foreign_key_list('{child}') WHERE \"from\" = 'attachment_id'"
            ))
            .fetch_all(&store.pool)
            .await
            .unwrap();
            assert_eq!(parents, ["attachments"], "{child}");
        }
        let indexes: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, \"unique\" FROM pragma_index_list('attachments') ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        let names: Vec<&str> = indexes.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "attachments_blob",
                "attachments_uploader",
                "sqlite_autoindex_attachments_1"
            ]
        );
        assert_eq!(indexes[2].1, 1, "the public id is unique");
        let again = sqlx::query(
            "INSERT INTO attachments (id, uploader_id, file_name, content_type, size, state, \
             created_utc, modified_utc) VALUES (5, 1, 'f', 't', 4, 's', 9, 9)",
        )
        .execute(&store.pool)
        .await
        .unwrap_err();
        assert!(
            again.as_database_error().unwrap().is_unique_violation(),
            "{again}"
        );
        let version: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert!(version >= 19, "{version}");

        sqlx::query("DELETE FROM attachments WHERE id = 5")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(all_links().await, [vec![900], vec![900], vec![77], vec![]]);
        old_attachment(&store.pool, 41, 10).await;
        store.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        assert_eq!(
            seq_and_id(&store).await,
            [(1, 900), (3, 6), (4, 77), (5, 41)],
            "not rebuilt again"
        );
        store.close().await;
    }

    /// A rebuild that would leave a link without its attachment (a database whose links were
    /// made with foreign keys off) is rolled back: the database does not open, and nothing in it
    /// changed.
    #[tokio::test]
    async fn a_rebuild_that_would_lose_a_link_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let pool = migrated_before(&url, 19).await;
        old_attachment(&pool, 900, 1).await;
        sqlx::query("INSERT INTO share_links (token_hash, creator_id, attachment_id, created_utc) VALUES ('h', 1, 404, 0)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let Err(OpenError::Migrate { cause, .. }) = SqliteStore::open(&url).await else {
            panic!("opened");
        };
        assert!(cause.contains("share_links lost its attachment"), "{cause}");
        let pool = open_pool(1, connect_options(&url).unwrap()).await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('attachments')")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(!columns.iter().any(|c| c == "seq"), "{columns:?}");
        let kept: Vec<i64> = sqlx::query_scalar("SELECT id FROM attachments")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(kept, [900]);
        pool.close().await;
    }

    /// A database from before the blobs' numbers gets them at its migration: each blob numbered by
    /// its row id, each attachment holding a blob given its number, the others none.
    #[tokio::test]
    async fn the_migration_numbers_the_blobs_and_their_attachments() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let pool = migrated_before(&url, 18).await;
        let (x, y) = ("1".repeat(64), "2".repeat(64));
        for (sha, refcount) in [(&y, 1), (&x, 1)] {
            sqlx::query("INSERT INTO blobs (sha256, size, refcount) VALUES (?, 4, ?)")
                .bind(sha)
                .bind(refcount)
                .execute(&pool)
                .await
                .unwrap();
        }
        for (id, sha, stores_blob) in [(11_i64, &x, 1), (12, &y, 1), (13, &x, 0)] {
            sqlx::query(
                "INSERT INTO attachments (id, uploader_id, file_name, content_type, size, sha256, \
                 stores_blob, state, created_utc, modified_utc) VALUES (?, 1, 'f', 't', 4, ?, ?, 's', 0, 0)",
            )
            .bind(id)
            .bind(sha)
            .bind(stores_blob)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let numbers: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT sha256, seq, rowid FROM blobs ORDER BY rowid")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            numbers,
            [(y.clone(), 1, 1), (x.clone(), 2, 2)],
            "each blob is numbered by its row id"
        );
        let carried: Vec<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, blob_seq FROM attachments ORDER BY id")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(carried, [(11, Some(2)), (12, Some(1)), (13, None)]);
        let found: Vec<(i64, String, i64)> = sqlx::query_as(blobs::ATTACHMENTS_OF_BLOB)
            .bind(&x)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(found.iter().map(|f| f.0).collect::<Vec<_>>(), [11]);
        store.close().await;
    }

    /// A database from before migration 20 keeps its events, numbers and all, once its events no
    /// longer count with AUTOINCREMENT (no row in `sqlite_sequence` to read and rewrite at each
    /// insert); the next event is numbered after the highest, and the recent ones list in order.
    #[tokio::test]
    async fn the_migration_keeps_the_events_and_their_order_without_autoincrement() {
        use hangar_core::model::{NewAttachment, Role};
        use hangar_core::store::{AttachmentStore, IdentityStore, StorageStore};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        // (Before 19: a database from before 20 needs the rebuild of 19, which opening makes.)
        let pool = migrated_before(&url, 19).await;
        for (seq, id, dispatched) in [(3_i64, "e-3", 1_i64), (8, "e-8", 0)] {
            sqlx::query(
                "INSERT INTO events (seq, id, event_type, payload, created_utc, dispatched) \
                 VALUES (?, ?, 'Attachment.Created', '{}', 5, ?)",
            )
            .bind(seq)
            .bind(id)
            .bind(dispatched)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let table: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'events'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert!(!table.to_uppercase().contains("AUTOINCREMENT"), "{table}");
        let counters: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_sequence WHERE name = 'events'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(counters, 0);
        let kept: Vec<(i64, String, bool)> =
            sqlx::query_as("SELECT seq, id, dispatched FROM events ORDER BY seq")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            kept,
            [(3, "e-3".to_string(), true), (8, "e-8".to_string(), false)]
        );

        let me = store
            .create_member("m", "h", "M", Role::Member)
            .await
            .unwrap();
        let new = NewAttachment {
            id: hangar_core::ids::random_id(),
            uploader_id: me.id,
            file_name: "f.txt".into(),
            content_type: "text/plain".into(),
            size: 4,
            sha256: "d".repeat(64),
            state: hangar_core::AttachmentState::ReadyForDownloadFromServerToClient,
            media_context: None,
            stores_blob: true,
            hold: None,
        };
        store
            .create_attachments(std::slice::from_ref(&new), None, None)
            .await
            .unwrap();
        let numbered: Vec<(i64, bool)> = sqlx::query_as(
            "SELECT seq, dispatched FROM events WHERE event_type = 'Attachment.Created' \
             AND id NOT LIKE 'e-%'",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        // No application subscribes: the new event counts as dispatched at once.
        assert_eq!(numbered, [(9, true)]);
        let recent = store.recent_events(2).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].id, "e-8");
        assert_eq!(recent[1].payload["attachmentId"], new.id);
        store.close().await;
    }

    /// The pins are one B-tree keyed by their (time-ordered) id, plus one index by hash that holds
    /// the expiry, so that a small upload's pin and its removal each write two pages, not four, and
    /// the collector's "pinned now?" reads the index alone.
    #[tokio::test]
    async fn pins_are_one_tree_and_one_index_that_answers_the_collector() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let table: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'blob_pins'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert!(table.ends_with("WITHOUT ROWID"), "{table}");
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'blob_pins' ORDER BY name",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(indexes, ["blob_pins_sha256"]);
        let plan = query_plan(
            &store,
            "SELECT COUNT(*) FROM blob_pins WHERE sha256 = ? AND expires_utc > ?",
        )
        .await;
        assert!(
            plan.iter()
                .any(|step| step.contains("COVERING INDEX blob_pins_sha256")),
            "the pinned check reads the table: {plan:?}"
        );
        store.close().await;
    }
}
