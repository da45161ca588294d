//! Hangar's metadata store: the implementations of `hangar_core::store`'s traits, one module per
//! backend (`sqlite/`, `postgres/`), what they share (`rows`, `rules`), and the conformance suite
//! that every backend must pass.

mod kind;
mod postgres;
mod rows;
mod rules;
mod sqlite;

pub use kind::{database_exists, DatabaseKind};
pub use postgres::PgStore;
pub use sqlite::{Probe, SqliteStore};

use std::time::Duration;

/// How long an unreferenced blob's bytes are kept before the collector may delete them, unless set.
pub const DEFAULT_BLOB_GRACE: Duration = Duration::from_secs(3600);

/// Why a database could not be opened. Each message names the database and says why in one line
/// (the driver's cause is part of the message, not a source, so that it is not printed twice).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL {0:?}: give a sqlite:// or postgres:// URL")]
    Unsupported(String),
    #[error("invalid database URL {url:?}: {cause}")]
    BadUrl { url: String, cause: String },
    #[error("there is no database at {path}")]
    Missing { path: String },
    #[error("cannot open the SQLite database {path}: {cause}")]
    Open { path: String, cause: String },
    #[error("cannot migrate the SQLite database {path}: {cause}")]
    Migrate { path: String, cause: String },
    #[error("cannot open the PostgreSQL database: {0}")]
    Postgres(String),
    #[error("cannot migrate the PostgreSQL database: {0}")]
    PostgresMigrate(String),
}

impl From<sqlx::Error> for OpenError {
    fn from(e: sqlx::Error) -> Self {
        OpenError::Postgres(sqlite_cause(&e))
    }
}

impl From<sqlx::migrate::MigrateError> for OpenError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        OpenError::PostgresMigrate(e.to_string())
    }
}

/// The driver's cause in words, without sqlx's own prefixes.
fn sqlite_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod preview_tests;
#[cfg(test)]
mod scan_tests;
#[cfg(test)]
mod share_link_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod testdb;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tus_tests;
