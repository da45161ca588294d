//! The SQLite schema brought up to date: the embedded migrations, and between them the table
//! rebuilds that a migration file cannot make.
//!
//! sqlx runs each SQLite migration inside a transaction, where `PRAGMA foreign_keys` cannot be
//! changed; with foreign keys on, dropping a table that others refer to with ON DELETE CASCADE
//! deletes their rows, and renaming it away makes them refer to the new name. SQLite's own
//! procedure for such changes turns foreign keys off first, outside any transaction
//! (https://sqlite.org/lang_altertable.html#otheralter): that is done here, on a connection of its
//! own, closed afterwards, so that no connection with foreign keys off serves anything else.

use rusqlite::TransactionBehavior;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::SqlitePool;
use std::borrow::Cow;
use std::path::Path;
use std::sync::LazyLock;

/// The migration that records the rebuild of `attachments` in insertion order: the migrations
/// before it run first, then the rebuild, then the rest.
const ATTACHMENTS_IN_INSERT_ORDER: i64 = 19;

/// Runs the embedded migrations and the rebuilds between them. Idempotent, and safe with another
/// process opening the same file at once (each rebuild checks, inside its write transaction,
/// whether it is still needed).
pub(super) async fn run(pool: &SqlitePool, filename: &Path) -> Result<(), String> {
    let said = |e: MigrateError| match &e {
        MigrateError::Execute(inner) => super::cause(inner),
        other => other.to_string(),
    };
    let mut conn = pool.acquire().await.map_err(|e| super::cause(&e))?;
    BEFORE.run_direct(&mut *conn).await.map_err(said)?;
    let filename = filename.to_path_buf();
    tokio::task::spawn_blocking(move || attachments_in_insert_order(&filename))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("rebuilding attachments: {e}"))?;
    // `run_direct` rather than `run`: sqlx's own way around "implementation of `Acquire` is not
    // general enough", which `run` raises in the callers' `Send` futures here.
    ALL.run_direct(&mut *conn).await.map_err(said)
}

static ALL: Migrator = sqlx::migrate!("migrations/sqlite");

/// The migrations before the rebuild of `attachments`.
static BEFORE: LazyLock<Migrator> = LazyLock::new(|| Migrator {
    migrations: Cow::Owned(
        ALL.migrations
            .iter()
            .filter(|m| m.version < ATTACHMENTS_IN_INSERT_ORDER)
            .cloned()
            .collect(),
    ),
    // A database that had the later ones applied already.
    ignore_missing: true,
    ..Migrator::DEFAULT
});

/// Rebuilds `attachments` with its rows in insertion order under an integer key of their own
/// (`seq`) and the public id a unique index, unless it has that shape already.
///
/// The public id is random (SPEC §2: ids cannot be enumerated). As the table's key it sent each new
/// row to a random leaf of the table, a page of ~190-byte rows that each upload's commit wrote to
/// the log and the next checkpoint copied again, and that was seldom in the writer's cache once the
/// table outgrew it. In insertion order, new rows share the table's last page, and the random page
/// each upload writes is a leaf of the id's index, of ~18-byte entries: about a tenth as many
/// pages (docs/performance.md, "Attachments in insertion order"). PostgreSQL's tables are heaps in
/// insertion order already, with the id a separate index: nothing to change there.
///
/// On a connection of its own (rusqlite's, as the group writer's: a blocking one, closed at the
/// end), with foreign keys off as SQLite's procedure asks.
fn attachments_in_insert_order(
    filename: &Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = super::group::open(filename)?;
    if has_seq(&conn)? {
        return Ok(());
    }
    conn.pragma_update(None, "foreign_keys", false)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have rebuilt it since the look above.
    if has_seq(&tx)? {
        return Ok(());
    }
    tx.execute_batch(include_str!("attachments_in_insert_order.sql"))?;
    // Every link, share link and tus upload still finds its attachment.
    let broken: Vec<(String, Option<i64>)> = tx
        .prepare(
            "SELECT \"table\", rowid FROM pragma_foreign_key_check() WHERE parent = 'attachments'",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if let Some((table, rowid)) = broken.first() {
        return Err(format!(
            "row {rowid:?} of {table} lost its attachment ({} rows in all)",
            broken.len()
        )
        .into());
    }
    Ok(tx.commit()?)
}

/// Whether `attachments` has its `seq` column (the shape `attachments_in_insert_order` makes).
fn has_seq(conn: &rusqlite::Connection) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('attachments') WHERE name = 'seq'",
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|found| found > 0)
}
