//! Hangar's metadata store on SQLite: one `SqliteStore` implementing each concern's trait of
//! `hangar_core::store`. The SQL sticks to what SQLite and PostgreSQL share where it can, so that a
//! PostgreSQL implementation can reuse it.

mod apps;
mod attachments;
mod blobs;
mod chat;
mod identity;
mod projects;
mod rows;
mod spaces;
mod storage;

use hangar_core::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL {0:?}: this build supports sqlite:// URLs")]
    Unsupported(String),
    #[error("cannot open the database: {0}")]
    Open(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The metadata store. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
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
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A COMMIT that fails (a full disk) can leave sqlx's transaction count on the connection
            // stuck, and every later transaction on it failing: such a connection is closed instead
            // of going back to the pool. The ping lets a queued rollback finish first.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
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

#[cfg(test)]
mod tests;
