//! Several `hangar serve` processes on one real PostgreSQL database and one real S3 bucket (SPEC §13).
//! The servers are `HANGAR_TEST_PG_URL` and `HANGAR_TEST_S3_*` when set (`scripts/test.sh` starts one
//! of each for the whole run), else started by `scripts/postgres.sh` and `scripts/s3.sh` for this test
//! binary and stopped when it exits. A test that needs them fails, never skips, when there are none.

use super::Server;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The variables a script printed as `export NAME=value` lines.
fn run_script(args: &[&str]) -> HashMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/");
    let out = std::process::Command::new("bash")
        .arg(format!("{script}{}", args[0]))
        .args(&args[1..])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{}: {e}", args[0]));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "scripts/{} failed: {stdout}{}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The test PostgreSQL server's URL.
fn pg_server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("HANGAR_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let pid = std::process::id().to_string();
            run_script(&["postgres.sh", "start", "--watch", &pid])
                .remove("HANGAR_TEST_PG_URL")
                .expect("scripts/postgres.sh prints HANGAR_TEST_PG_URL")
        }
    })
}

/// An S3 server: endpoint, bucket, access key id, secret key.
pub type S3Server = (String, String, String, String);

/// The S3 server's settings among a script's `export` lines.
fn s3_from_vars(vars: &HashMap<String, String>) -> S3Server {
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("no {k} for the test S3 server"))
    };
    (
        get("HANGAR_TEST_S3_ENDPOINT"),
        get("HANGAR_TEST_S3_BUCKET"),
        get("HANGAR_TEST_S3_ACCESS_KEY_ID"),
        get("HANGAR_TEST_S3_SECRET_ACCESS_KEY"),
    )
}

/// The test S3 server: endpoint, bucket, access key id, secret key.
fn s3_server() -> &'static S3Server {
    static S3: OnceLock<S3Server> = OnceLock::new();
    S3.get_or_init(|| {
        let mut vars: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("HANGAR_TEST_S3_"))
            .collect();
        if !vars.contains_key("HANGAR_TEST_S3_ENDPOINT") {
            // Kept after the binary: the script's watcher removes it with the server.
            let dir = std::env::temp_dir().join(format!("hangar-s3-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let pid = std::process::id().to_string();
            vars = run_script(&["s3.sh", "start", dir.to_str().unwrap(), "--watch", &pid]);
        }
        s3_from_vars(&vars)
    })
}

/// A PostgreSQL server of one test's own, which the test may stop and start again (the one that
/// `scripts/test.sh` shares among all tests must stay up). Stopped and removed when dropped.
pub struct OwnPostgres {
    pub url: String,
    dir: String,
    port: String,
}

impl OwnPostgres {
    pub fn start() -> OwnPostgres {
        let pid = std::process::id().to_string();
        let mut vars = run_script(&["postgres.sh", "start", "--watch", &pid]);
        let url = vars
            .remove("HANGAR_TEST_PG_URL")
            .expect("scripts/postgres.sh prints HANGAR_TEST_PG_URL");
        let dir = vars
            .remove("HANGAR_TEST_PG_DIR")
            .expect("scripts/postgres.sh prints HANGAR_TEST_PG_DIR");
        let port = url
            .rsplit(':')
            .next()
            .and_then(|rest| rest.split('/').next())
            .expect("the URL names a port")
            .to_string();
        OwnPostgres { url, dir, port }
    }

    /// Stops the server (a clean, fast shutdown: sessions are ended), keeping its data.
    pub fn pause(&self) {
        run_script(&["postgres.sh", "pause", &self.dir]);
    }

    /// Starts the server again, on the same port.
    pub fn resume(&self) {
        run_script(&["postgres.sh", "resume", &self.dir, &self.port]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../scripts/postgres.sh"
            ))
            .args(["stop", &self.dir])
            .status();
    }
}

/// An S3 server (s3s-fs) of one test's own, which the test may stop and start again on the same
/// directory and port. Stopped and removed when dropped.
pub struct OwnS3 {
    pub server: S3Server,
    state: PathBuf,
}

impl OwnS3 {
    pub fn start() -> OwnS3 {
        let state = std::env::temp_dir().join(format!(
            "hangar-s3-own-{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 4]>())
        ));
        std::fs::create_dir_all(&state).unwrap();
        let pid = std::process::id().to_string();
        let vars = run_script(&["s3.sh", "start", state.to_str().unwrap(), "--watch", &pid]);
        OwnS3 {
            server: s3_from_vars(&vars),
            state,
        }
    }

    /// Stops the server, keeping its data.
    pub fn pause(&self) {
        run_script(&["s3.sh", "pause", self.state.to_str().unwrap()]);
    }

    /// Starts the server again on the same directory and port.
    pub fn resume(&self) {
        run_script(&["s3.sh", "resume", self.state.to_str().unwrap()]);
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/s3.sh"))
            .args(["stop", self.state.to_str().unwrap()])
            .status();
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |i| start + i);
    format!("{}/{name}{query}", &base[..end])
}

/// One installation: a fresh PostgreSQL database, a fresh prefix in the S3 bucket, one secret key;
/// nodes started on it share nothing else (each its own data directory).
pub struct Cluster {
    pub database_url: String,
    pub storage_url: String,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    key: PathBuf,
    nodes: usize,
}

/// A fresh PostgreSQL database on the test server with Hangar's schema and nothing else (as a node
/// that starts on an empty database makes it): its URL and its name. Copied from a template
/// migrated once per test binary: a copy takes a fraction of the time of running every migration.
pub async fn new_database() -> (String, String) {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let template = TEMPLATE
        .get_or_init(|| async {
            let name = create_database(None).await;
            let store = hangar_db::PgStore::open(&with_database(pg_server(), &name))
                .await
                .expect("the template database migrates");
            store.close().await;
            name
        })
        .await;
    let name = create_database(Some(template)).await;
    (with_database(pg_server(), &name), name)
}

/// A fresh, empty PostgreSQL database on the test server, for nodes that make the schema
/// themselves: its URL and its name.
pub async fn new_empty_database() -> (String, String) {
    new_empty_database_on(pg_server()).await
}

/// A fresh, empty database on the PostgreSQL server at `server`: its URL and its name.
pub async fn new_empty_database_on(server: &str) -> (String, String) {
    let name = create_database_on(server, None).await;
    (with_database(server, &name), name)
}

/// Creates a database on the test server (a copy of `template` if given): its name.
async fn create_database(template: Option<&str>) -> String {
    create_database_on(pg_server(), template).await
}

/// Creates a database on the server at `server` (a copy of `template` if given): its name.
async fn create_database_on(server: &str, template: Option<&str>) -> String {
    use sqlx::{Connection, Executor};
    let name = format!("c_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL {server}: {e}"));
    let sql = match template {
        Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
        None => format!("CREATE DATABASE {name}"),
    };
    admin.execute(sql.as_str()).await.unwrap();
    admin.close().await.unwrap();
    name
}

/// The test S3 server as `--storage-url s3://BUCKET/{prefix}` and the environment a node needs to
/// reach it (endpoint and credentials).
pub fn s3_storage(prefix: &str) -> (String, Vec<(String, String)>) {
    s3_storage_on(s3_server(), prefix)
}

/// `s3_storage` on another S3 server (endpoint, bucket, access key id, secret key).
pub fn s3_storage_on(server: &S3Server, prefix: &str) -> (String, Vec<(String, String)>) {
    let (endpoint, bucket, key_id, secret) = server.clone();
    (
        format!("s3://{bucket}/{prefix}"),
        vec![
            ("HANGAR_S3_ENDPOINT".into(), endpoint),
            ("AWS_ACCESS_KEY_ID".into(), key_id),
            ("AWS_SECRET_ACCESS_KEY".into(), secret),
        ],
    )
}

impl Cluster {
    /// On an empty database: the first node makes the schema.
    pub async fn new() -> Cluster {
        Cluster::on(None, None).await
    }

    /// `new`, on another PostgreSQL server and another S3 server than the shared test ones when
    /// given (URL of the server; endpoint, bucket and credentials).
    pub async fn on(postgres: Option<&str>, s3: Option<&S3Server>) -> Cluster {
        let (database_url, name) = new_empty_database_on(postgres.unwrap_or(pg_server())).await;
        let (storage_url, env) = s3_storage_on(s3.unwrap_or(s3_server()), &name);
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret.key");
        std::fs::write(&key, rand::random::<[u8; 32]>()).unwrap();
        Cluster {
            database_url,
            storage_url,
            env,
            key,
            dir,
            nodes: 0,
        }
    }

    /// Starts one more node of the installation.
    pub fn node(&mut self) -> Server {
        self.node_with(&[])
    }

    /// Starts one more node of the installation, with extra `hangar serve` arguments.
    pub fn node_with(&mut self, extra: &[&str]) -> Server {
        self.nodes += 1;
        let data_dir = self.dir.path().join(format!("node{}", self.nodes));
        let key = self.key.to_str().unwrap().to_string();
        let mut args = vec![
            "--database-url",
            &self.database_url,
            "--storage-url",
            &self.storage_url,
            "--secret-key-file",
            &key,
        ];
        args.extend_from_slice(extra);
        Server::start_node(data_dir, &args, &self.env)
    }

    /// `hangar admin ARGS` on this installation (its database, bucket prefix and key, and the S3
    /// credentials; no other `HANGAR_*` from the test's environment), with `input` on stdin.
    pub fn admin(&self, args: &[&str], input: &str) -> std::process::Output {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hangar"));
        cmd.arg("admin")
            .args(args)
            .args([
                "--data-dir",
                self.dir.path().join("admin").to_str().unwrap(),
            ])
            .args(["--database-url", &self.database_url])
            .args(["--storage-url", &self.storage_url])
            .args(["--secret-key-file", self.key.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars() {
            if key.starts_with("HANGAR_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().cloned());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}
