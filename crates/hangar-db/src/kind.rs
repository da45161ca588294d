//! Choosing the backend by the database URL's scheme, for the binary: `sqlite:` for one node,
//! `postgres://` for one or several.

use crate::{OpenError, PgStore, SqliteStore};

/// Which store a `--database-url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    pub fn of(url: &str) -> Result<DatabaseKind, OpenError> {
        if url.starts_with("sqlite:") {
            Ok(DatabaseKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseKind::Postgres)
        } else {
            Err(OpenError::Unsupported(url.to_string()))
        }
    }
}

/// Whether the database at `url` exists with Hangar's schema (false for a new installation, and for
/// a mistyped `--database-url`). Creates nothing.
pub async fn database_exists(url: &str) -> Result<bool, OpenError> {
    match DatabaseKind::of(url)? {
        DatabaseKind::Sqlite => SqliteStore::database_exists(url),
        DatabaseKind::Postgres => PgStore::database_exists(url).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_names_the_backend() {
        assert_eq!(
            DatabaseKind::of("sqlite:///tmp/h.db").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::of("postgres://h@db/hangar").unwrap(),
            DatabaseKind::Postgres
        );
        assert_eq!(
            DatabaseKind::of("postgresql://db/hangar").unwrap(),
            DatabaseKind::Postgres
        );
        assert!(matches!(
            DatabaseKind::of("mysql://db/hangar"),
            Err(OpenError::Unsupported(_))
        ));
    }
}
