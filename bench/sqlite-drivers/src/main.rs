// Per-upload cost of the statements of a 4 KiB upload's record on SQLite (WAL, synchronous=FULL),
// committed in groups of BATCH as Hangar's group writer does: sqlx (a worker thread per connection,
// a channel hop per statement) against rusqlite (prepared statements cached, on the caller's thread).
use std::time::Instant;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL, created_utc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pins (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, expires_utc INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS pins_sha ON pins(sha256);
CREATE TABLE IF NOT EXISTS attachments (id INTEGER PRIMARY KEY, uploader_id INTEGER NOT NULL, file_name TEXT NOT NULL, content_type TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, stores_blob INTEGER NOT NULL, state TEXT NOT NULL, media_context TEXT, created_utc INTEGER NOT NULL, modified_utc INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS att_up ON attachments(uploader_id);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, actor INTEGER, payload TEXT NOT NULL, created_utc INTEGER NOT NULL);
";

fn cpu_ns() -> u128 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<u128>().unwrap() + f[12].parse::<u128>().unwrap()) * 10_000_000
}

fn sha(i: u64) -> String {
    format!("{:064x}", i.wrapping_mul(0x9E3779B97F4A7C15))
}

fn run_rusqlite(path: &str, n: u64, batch: u64) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .unwrap();
    c.execute_batch(SCHEMA).unwrap();
    let (t0, c0) = (Instant::now(), cpu_ns());
    let mut i = 0;
    while i < n {
        // the pins of a batch: one transaction
        let tx = c.transaction().unwrap();
        for k in i..i + batch {
            tx.prepare_cached("INSERT INTO pins (id, sha256, expires_utc) VALUES (?1, ?2, ?3)")
                .unwrap()
                .execute(rusqlite::params![format!("p{k}"), sha(k), 1i64])
                .unwrap();
        }
        tx.commit().unwrap();
        // the records of a batch: one transaction
        let tx = c.transaction().unwrap();
        for k in i..i + batch {
            let h = sha(k);
            tx.prepare_cached("INSERT INTO blobs (sha256, size, refcount, created_utc) VALUES (?1, 4096, 1, 1) ON CONFLICT(sha256) DO UPDATE SET refcount = refcount + 1").unwrap()
                .execute(rusqlite::params![h]).unwrap();
            tx.prepare_cached("DELETE FROM pins WHERE id = ?1")
                .unwrap()
                .execute(rusqlite::params![format!("p{k}")])
                .unwrap();
            tx.prepare_cached("INSERT INTO attachments (id, uploader_id, file_name, content_type, size, sha256, stores_blob, state, media_context, created_utc, modified_utc) VALUES (?1, 7, 'small.bin', 'application/octet-stream', 4096, ?2, 1, 'Ready', NULL, 1, 1)").unwrap()
                .execute(rusqlite::params![k as i64, h]).unwrap();
            tx.prepare_cached("INSERT INTO events (kind, actor, payload, created_utc) VALUES ('Attachment.Created', 7, ?1, 1)").unwrap()
                .execute(rusqlite::params![format!("{{\"id\":{k}}}")]).unwrap();
            let _: (i64, String, i64) = tx
                .prepare_cached("SELECT id, file_name, size FROM attachments WHERE id = ?1")
                .unwrap()
                .query_row(rusqlite::params![k as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
        }
        tx.commit().unwrap();
        i += batch;
    }
    let (wall, cpu) = (t0.elapsed().as_nanos(), cpu_ns() - c0);
    println!(
        "rusqlite batch {batch}: {} µs CPU/upload, {} µs wall/upload",
        cpu / n as u128 / 1000,
        wall / n as u128 / 1000
    );
}

async fn run_sqlx(path: &str, n: u64, batch: u64) {
    use sqlx::{Connection, Executor};
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    c.execute(sqlx::raw_sql(SCHEMA)).await.unwrap();
    let (t0, c0) = (Instant::now(), cpu_ns());
    let mut i = 0;
    while i < n {
        let mut tx = c.begin().await.unwrap();
        for k in i..i + batch {
            sqlx::query("INSERT INTO pins (id, sha256, expires_utc) VALUES (?, ?, ?)")
                .bind(format!("p{k}"))
                .bind(sha(k))
                .bind(1i64)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let mut tx = c.begin().await.unwrap();
        for k in i..i + batch {
            let h = sha(k);
            sqlx::query("INSERT INTO blobs (sha256, size, refcount, created_utc) VALUES (?, 4096, 1, 1) ON CONFLICT(sha256) DO UPDATE SET refcount = refcount + 1").bind(&h).execute(&mut *tx).await.unwrap();
            sqlx::query("DELETE FROM pins WHERE id = ?")
                .bind(format!("p{k}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO attachments (id, uploader_id, file_name, content_type, size, sha256, stores_blob, state, media_context, created_utc, modified_utc) VALUES (?, 7, 'small.bin', 'application/octet-stream', 4096, ?, 1, 'Ready', NULL, 1, 1)").bind(k as i64).bind(&h).execute(&mut *tx).await.unwrap();
            sqlx::query("INSERT INTO events (kind, actor, payload, created_utc) VALUES ('Attachment.Created', 7, ?, 1)").bind(format!("{{\"id\":{k}}}")).execute(&mut *tx).await.unwrap();
            let _: (i64, String, i64) =
                sqlx::query_as("SELECT id, file_name, size FROM attachments WHERE id = ?")
                    .bind(k as i64)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
        }
        tx.commit().await.unwrap();
        i += batch;
    }
    let (wall, cpu) = (t0.elapsed().as_nanos(), cpu_ns() - c0);
    println!(
        "sqlx     batch {batch}: {} µs CPU/upload, {} µs wall/upload",
        cpu / n as u128 / 1000,
        wall / n as u128 / 1000
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, n, batch) = (
        args[1].as_str(),
        args[2].parse().unwrap(),
        args[3].parse().unwrap(),
    );
    let dir = std::env::var("DIR").unwrap_or("/var/tmp".into());
    let path = format!("{dir}/sqlbench-{which}-{}.db", std::process::id());
    match which {
        "rusqlite" => tokio::task::spawn_blocking(move || run_rusqlite(&path, n, batch))
            .await
            .unwrap(),
        _ => run_sqlx(&path, n, batch).await,
    }
}
