//! What only PostgreSQL has to show: several nodes starting on one database, and a database that
//! cannot be reached.

use crate::testdb::TestDb;
use crate::PgStore;
use hangar_core::store::{AttachmentStore, IdentityStore, StoreError};
use sqlx::{Connection, Executor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_together_migrates_once() {
    let db = TestDb::postgres().await;
    assert!(
        !crate::database_exists(&db.url).await.unwrap(),
        "an empty database"
    );
    let nodes = futures_join_all((0..4).map(|_| {
        let url = db.url.clone();
        async move { PgStore::open(&url).await }
    }))
    .await;
    for node in &nodes {
        assert!(node.is_ok(), "{:?}", node.as_ref().err());
    }
    assert!(crate::database_exists(&db.url).await.unwrap());
    let node = nodes.into_iter().next().unwrap().unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&node.pool)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(applied, files, "each migration applied once");
    // And a node that starts later finds nothing to do.
    PgStore::open(&db.url).await.unwrap();
    node.create_member("alice", "h", "Alice", hangar_core::model::Role::Member)
        .await
        .unwrap();
}

/// Runs the futures side by side, each on a task of its own.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// A database that refuses connections is `Unavailable` (503 at the HTTP edge), and the store works
/// again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_reached_is_unavailable() {
    let db = TestDb::postgres().await;
    let store = PgStore::open(&db.url).await.unwrap();
    store.ping().await.unwrap();
    let mut admin = db.admin().await;
    let name = &db.name;
    admin
        .execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false").as_str())
        .await
        .unwrap();
    close_connections(&mut admin, name).await;
    let err = store.member_count().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    admin
        .execute(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true").as_str())
        .await
        .unwrap();
    assert_eq!(store.member_count().await.unwrap(), 0);
}

/// The pool lends a connection given back less than `PING_IDLE` ago without asking PostgreSQL
/// whether it still stands (a round trip per query saved); one idle for longer is pinged first. So
/// connections the server closed while they sat idle (a restart, an administrator's
/// `pg_terminate_backend`) are replaced before a query gets one: no request fails for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_while_idle_are_replaced_before_they_are_lent() {
    let db = TestDb::postgres().await;
    let store = PgStore::open(&db.url).await.unwrap();
    fill_pool(&store).await;
    let open = || async {
        let mut admin = db.admin().await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&db.name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        n
    };
    assert!(open().await >= 2, "the pool holds connections");
    let mut admin = db.admin().await;
    let name = &db.name;
    close_connections(&mut admin, name).await;
    tokio::time::sleep(super::PING_IDLE + std::time::Duration::from_millis(200)).await;
    for _ in 0..12 {
        assert_eq!(store.member_count().await.unwrap(), 0);
    }
}

/// Connections given back a moment before PostgreSQL closed them (too recently to be pinged when
/// lent) fail one statement at most: once one is found broken, every connection is checked before
/// it is lent for a while, so the others are replaced instead of failing a request each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_closed_connection_is_found_the_others_are_checked_before_they_are_lent() {
    let db = TestDb::postgres().await;
    let store = PgStore::open(&db.url).await.unwrap();
    fill_pool(&store).await;
    let mut admin = db.admin().await;
    close_connections(&mut admin, &db.name).await;
    // The first statement gets a closed connection (given back less than a second ago).
    let first = store.member_count().await;
    let mut failures = usize::from(first.is_err());
    for _ in 0..12 {
        failures += usize::from(store.member_count().await.is_err());
    }
    assert!(
        failures <= 1,
        "{failures} statements failed on closed connections"
    );
}

/// Puts several connections in the pool, each used and given back.
async fn fill_pool(store: &PgStore) {
    let counts = futures_join_all((0..6).map(|_| {
        let store = store.clone();
        async move { store.member_count().await }
    }))
    .await;
    assert!(counts.iter().all(|n| matches!(n, Ok(0))), "{counts:?}");
}

/// Closes every connection to the database `name` but `admin`'s, as an administrator would.
async fn close_connections(admin: &mut sqlx::PgConnection, name: &str) {
    admin
        .execute(
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            .as_str(),
        )
        .await
        .unwrap();
}

/// Two nodes replacing files with each other's bytes lock the two blob rows in opposite orders;
/// PostgreSQL aborts one of them for the deadlock, and the store runs it again: no write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_deadlock_are_run_again() {
    use hangar_core::model::{NewStorageFile, Role};
    use hangar_core::storage_path::StoragePath;
    use hangar_core::store::{BlobLifecycleStore, SpaceStore, StorageStore};
    let db = TestDb::postgres().await;
    let (a, b) = (
        PgStore::open(&db.url).await.unwrap(),
        PgStore::open(&db.url).await.unwrap(),
    );
    let me = a.create_member("m", "h", "M", Role::Admin).await.unwrap();
    let file = |sha: char| NewStorageFile {
        size: 1,
        content_type: "text/plain".into(),
        sha256: sha.to_string().repeat(64),
        meta: None,
        hold: None,
    };
    let f = StoragePath::parse("f").unwrap();
    for space in ["s1", "s2"] {
        a.create_space(space, space, None).await.unwrap();
    }
    a.put_file("s1", &f, &file('a'), None, None, me.id)
        .await
        .unwrap();
    a.put_file("s2", &f, &file('b'), None, None, me.id)
        .await
        .unwrap();
    for round in 0..30 {
        let (x, y) = if round % 2 == 0 {
            ('b', 'a')
        } else {
            ('a', 'b')
        };
        let (x, y) = (file(x), file(y));
        let (one, two) = tokio::join!(
            a.put_file("s1", &f, &x, None, None, me.id),
            b.put_file("s2", &f, &y, None, None, me.id),
        );
        assert!(one.is_ok() && two.is_ok(), "round {round}: {one:?} {two:?}");
    }
    for sha in ['a', 'b'] {
        let record = a.blob_record(&sha.to_string().repeat(64)).await.unwrap();
        assert_eq!(record.refcount, Some(1), "{sha}: one file each");
    }
}

/// The read caches are used only while the change listener is connected: when its connection is
/// killed they are emptied and unused at once, and used again (empty) once it listens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_turns_the_read_caches_off_until_it_is_back() {
    let db = TestDb::postgres().await;
    let store = PgStore::open(&db.url).await.unwrap();
    let cache = store.read_cache();
    assert!(!cache.is_enabled(), "unused before anyone listens");
    store.listen_for_changes();
    let until = |want: bool| {
        let cache = cache.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while cache.is_enabled() != want {
                assert!(std::time::Instant::now() < deadline, "caches never {want}");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    until(true).await;
    let member = store
        .create_member("alice", "h", "Alice", hangar_core::model::Role::Member)
        .await
        .unwrap();
    let token = hangar_core::model::PersonalToken {
        id: 1,
        member_id: member.id,
        name: "t".into(),
        scope: hangar_core::access::Scope::parse("**"),
        expires_utc: None,
        created_utc: 0,
        last_used_utc: None,
        made_with: None,
    };
    store.create_token(&token, "hash-1").await.unwrap();
    assert!(store.token_member("hash-1", 1).await.unwrap().is_some());
    assert_eq!(cache.sizes().0, 1, "cached");
    let name = db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let mut admin = db.admin().await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE 'LISTEN %hangar_read_cache%'",
    )
    .bind(name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, [true], "one listener, killed");
    until(false).await;
    assert_eq!(cache.sizes(), (0, 0, 0), "emptied");
    until(true).await;
    assert_eq!(cache.sizes(), (0, 0, 0), "empty when back");
    store.close().await;
}

/// Transactions whose callers are dropped while they begin or commit (a request whose client hung
/// up) leave no pooled connection inside a transaction: sqlx's own `begin` would, and the next
/// `BEGIN` on that connection drew "there is already a transaction in progress" (and a dropped
/// `COMMIT`, "there is no transaction in progress").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_dropped_mid_begin_or_commit_leave_no_transaction_open() {
    use std::future::Future;
    use std::pin::Pin;
    /// Polls `work` `times` times (fewer if it is done first), yielding in between, then drops it.
    async fn cut_short<T>(mut work: Pin<Box<dyn Future<Output = T> + Send + '_>>, times: usize) {
        for _ in 0..times {
            let done = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(work.as_mut().poll(cx).is_ready())
            })
            .await;
            if done {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    let db = TestDb::postgres().await;
    let store = PgStore::open(&db.url).await.unwrap();
    for round in 0..80 {
        cut_short(Box::pin(store.write()), round % 16).await;
        cut_short(Box::pin(store.queue_write()), round % 16).await;
        let tx = store.write().await.unwrap();
        cut_short(Box::pin(super::commit(tx)), round / 16).await;
    }
    // Every transaction ends (the dropped ones roll back as their connections go back to the pool):
    // none stays open on any connection.
    let mut watcher = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let open_transactions = "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND state LIKE 'idle in transaction%'";
    let mut open: i64 = -1;
    for _ in 0..200 {
        open = sqlx::query_scalar(open_transactions)
            .fetch_one(&mut watcher)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(open, 0, "connections left inside a transaction");
    // And the pool still works, in transactions of its own.
    for _ in 0..16 {
        let mut tx = store.write().await.unwrap();
        let depth: i64 = sqlx::query_scalar("SELECT 1::BIGINT")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(depth, 1);
        super::commit(tx).await.unwrap();
    }
}

/// The batch pin makes each pin as `hangar_pin_blob` makes it alone: refused for bytes being
/// deleted, the object's row made for a new key, the stored key answered for a known blob; the
/// pins written with one index besides the key (by hash, which the collector reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_pins_is_answered_as_each_pin_alone() {
    let db = TestDb::postgres().await;
    let store = PgStore::open(&db.url).await.unwrap();
    let pool = &store.pool;
    for (sha, deleting, key) in [("gone", true, None), ("keyed", false, Some("k-old"))] {
        sqlx::query(
            "INSERT INTO blobs (sha256, size, refcount, deleting, object_key) VALUES ($1, 1, 0, $2, $3)",
        )
        .bind(sha)
        .bind(deleting)
        .bind(key)
        .execute(pool)
        .await
        .unwrap();
    }
    let pins = ["p1", "p2", "p3", "p4"];
    let shas = ["gone", "keyed", "new-keyed", "addressed"];
    let keys = [None, Some("k-mine"), Some("k-new"), None];
    let answers: Vec<(i32, bool, Option<String>)> = sqlx::query_as(
        "SELECT ord, busy, object_key FROM hangar_pin_blobs($1, $2, $3, $4, $5) ORDER BY ord",
    )
    .bind(&pins[..])
    .bind(&shas[..])
    .bind(&[1_i64, 1, 7, 1][..])
    .bind(&[i64::MAX; 4][..])
    .bind(&keys[..])
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        answers,
        [
            (1, true, None),
            (2, false, Some("k-old".to_string())),
            (3, false, Some("k-new".to_string())),
            (4, false, None),
        ]
    );
    let pinned: Vec<(String, String)> =
        sqlx::query_as("SELECT id, sha256 FROM blob_pins ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let expected = [("p2", "keyed"), ("p3", "new-keyed"), ("p4", "addressed")];
    assert_eq!(
        pinned,
        expected.map(|(p, s)| (p.to_string(), s.to_string()))
    );
    let made: (i64, i64, Option<String>) =
        sqlx::query_as("SELECT size, refcount, object_key FROM blobs WHERE sha256 = 'new-keyed'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(made, (7, 0, Some("k-new".to_string())));
    let addressed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM blobs WHERE sha256 = 'addressed'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        addressed, 0,
        "a blob stored by its hash gets its row from its first reference"
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::TEXT FROM pg_indexes WHERE tablename = 'blob_pins' ORDER BY indexname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(indexes, ["blob_pins_pkey", "blob_pins_sha256"]);
}
