//! Databases for the store tests, one fresh database per test: a SQLite file in a temporary
//! directory, or a new database on a real PostgreSQL. The server is `HANGAR_TEST_PG_URL` when set
//! (`scripts/test.sh` starts one for the whole run), else one that `scripts/postgres.sh` starts for
//! this test binary (installing PostgreSQL if needed) and stops when the binary exits. A test that
//! needs PostgreSQL fails, never skips, when there is none.

use crate::{PgStore, SqliteStore};
use async_trait::async_trait;
use hangar_core::jobs::JobStore;
use hangar_core::store::{
    Applications, AttachmentStore, AttemptStore, BlobLifecycleStore, ChatStore, IdentityStore,
    MemberControlStore, PreviewStore, ProjectStore, ShareLinkStore, SpaceStore, StorageStore,
    TusStore,
};
use sqlx::{Connection, Executor, PgConnection};
use std::sync::OnceLock;
use std::time::Duration;

/// What a backend must implement to be checked by the conformance suite (`crate::conformance`).
pub trait Backend:
    IdentityStore + SpaceStore + StorageStore + Applications + JobStore + Clone + 'static
{
}

impl<T: IdentityStore + SpaceStore + StorageStore + Applications + JobStore + Clone + 'static>
    Backend for T
{
}

/// One fresh database; stores opened on it are handles on the same data (two nodes).
pub struct TestDb {
    pub url: String,
    /// Admin URL of the PostgreSQL server (None for SQLite).
    pub server: Option<String>,
    pub name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb {
            url: format!("sqlite://{}/t.db", dir.path().display()),
            server: None,
            name: "t.db".into(),
            _dir: Some(dir),
        }
    }

    /// A new, empty database on the test server.
    pub async fn postgres() -> TestDb {
        let server = pg_server();
        let name = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL {server}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        TestDb {
            url: with_database(&server, &name),
            server: Some(server),
            name,
            _dir: None,
        }
    }

    /// A connection to the server's administrative database (PostgreSQL only).
    pub async fn admin(&self) -> PgConnection {
        PgConnection::connect(self.server.as_deref().expect("a PostgreSQL database"))
            .await
            .unwrap()
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i))
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..authority_end])
}

/// The test server's URL, started once per test binary unless `HANGAR_TEST_PG_URL` names one.
fn pg_server() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var("HANGAR_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => start_server(),
        })
        .clone()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need PostgreSQL: set HANGAR_TEST_PG_URL to a server's URL, or let \
                 scripts/postgres.sh start one (it installs Debian's postgresql package as root). {e}"
            )
        })
}

fn start_server() -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
    let out = std::process::Command::new("bash")
        .args([script, "start", "--watch", &std::process::id().to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{script} failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("export HANGAR_TEST_PG_URL="))
        .map(str::to_string)
        .ok_or_else(|| format!("{script} printed no URL: {stdout}"))
}

/// A backend under test: how to make its fresh database and open a handle on it.
#[async_trait]
pub trait TestStore:
    Backend
    + ChatStore
    + ProjectStore
    + AttachmentStore
    + BlobLifecycleStore
    + MemberControlStore
    + AttemptStore
    + TusStore
    + ShareLinkStore
    + PreviewStore
    + hangar_core::scan::ScanStore
    + Sized
{
    async fn fresh() -> TestDb;
    async fn open(db: &TestDb) -> Self;
    fn with_grace(self, grace: Duration) -> Self;
    /// With malware scanning of new files on.
    fn scanning(self) -> Self;
    /// Changes each time this process's job runners are woken.
    fn job_signal(&self) -> tokio::sync::watch::Receiver<u64>;
}

#[async_trait]
impl TestStore for SqliteStore {
    async fn fresh() -> TestDb {
        TestDb::sqlite()
    }
    async fn open(db: &TestDb) -> Self {
        SqliteStore::open(&db.url).await.unwrap()
    }
    fn with_grace(self, grace: Duration) -> Self {
        self.with_blob_grace(grace)
    }
    fn scanning(self) -> Self {
        self.with_scanning(true)
    }
    fn job_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        SqliteStore::job_signal(self)
    }
}

#[async_trait]
impl TestStore for PgStore {
    async fn fresh() -> TestDb {
        TestDb::postgres().await
    }
    async fn open(db: &TestDb) -> Self {
        PgStore::open(&db.url).await.unwrap()
    }
    fn with_grace(self, grace: Duration) -> Self {
        self.with_blob_grace(grace)
    }
    fn scanning(self) -> Self {
        self.with_scanning(true)
    }
    fn job_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        PgStore::job_signal(self)
    }
}

/// Runs a generic test (`async fn name<S: TestStore>()`) on every backend: `name::sqlite` and
/// `name::postgres`.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test::<crate::SqliteStore>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test::<crate::PgStore>().await
            }
        }
    )*};
}
pub(crate) use on_every_backend;

#[test]
fn database_names_replace_the_path() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5/postgres", "t_1"),
        "postgres://u@127.0.0.1:5/t_1"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "t_2"),
        "postgres://u@h/t_2?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:5", "t_3"), "postgres://h:5/t_3");
}
