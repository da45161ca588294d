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
pub use sqlite::SqliteStore;

use std::time::Duration;

/// How long an unreferenced blob's bytes are kept before the collector may delete them, unless set.
pub const DEFAULT_BLOB_GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL {0:?}: give a sqlite:// or postgres:// URL")]
    Unsupported(String),
    #[error("cannot open the database: {0}")]
    Open(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod testdb;
#[cfg(test)]
mod tests;
