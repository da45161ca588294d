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

/// The test S3 server: endpoint, bucket, access key id, secret key.
fn s3_server() -> &'static (String, String, String, String) {
    static S3: OnceLock<(String, String, String, String)> = OnceLock::new();
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
    })
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

impl Cluster {
    pub async fn new() -> Cluster {
        use sqlx::{Connection, Executor};
        let server = pg_server();
        let name = format!("c_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = sqlx::PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL {server}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (endpoint, bucket, key_id, secret) = s3_server().clone();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret.key");
        std::fs::write(&key, rand::random::<[u8; 32]>()).unwrap();
        Cluster {
            database_url: with_database(server, &name),
            storage_url: format!("s3://{bucket}/{name}"),
            env: vec![
                ("HANGAR_S3_ENDPOINT".into(), endpoint),
                ("AWS_ACCESS_KEY_ID".into(), key_id),
                ("AWS_SECRET_ACCESS_KEY".into(), secret),
            ],
            key,
            dir,
            nodes: 0,
        }
    }

    /// Starts one more node of the installation.
    pub fn node(&mut self) -> Server {
        self.node_with(&[])
    }

    /// Starts one more node of the installation with more `hangar serve` arguments.
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
}
