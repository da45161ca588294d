//! Hangar's metadata store: the implementations of `hangar_core::store`'s traits, one module per
//! backend (SQLite now; PostgreSQL next, in a module of its own), and the conformance suite that
//! every backend must pass.

mod sqlite;

pub use sqlite::{OpenError, Probe, SqliteStore, DEFAULT_BLOB_GRACE};

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;
