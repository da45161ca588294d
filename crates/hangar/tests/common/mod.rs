//! The test harness: the real `hangar` binary on 127.0.0.1 port 0 with a temporary data directory
//! (`Server`), the same node assembled in the test's own process (`TestApp`), and small helpers to act
//! as the administrator or as a member over real HTTP.
#![allow(dead_code)] // each test binary uses a different part of the harness

mod app;
mod apps;
mod cluster;
#[allow(unused_imports)] // the tests of the binary itself use only `Server`
pub use app::{Backend, TestApp};
#[allow(unused_imports)] // only the tests of applications act as one
pub use apps::*;
#[allow(unused_imports)] // only the tests of several nodes
pub use cluster::{Cluster, OwnPostgres, OwnS3};

use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub addr: String,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    /// Everything the server printed, for assertions on logs.
    pub output: Arc<Mutex<Vec<String>>>,
    /// Environment given to the process (the harness clears every other `HANGAR_*`).
    pub env: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts the server on a data directory of the caller's (a tmpfs, …), with extra arguments.
    pub fn start_in(data_dir: PathBuf, args: &[&str]) -> Server {
        Self::start_node(data_dir, args, &[])
    }

    /// `start_in` with environment variables for the process (S3 endpoint and credentials, …).
    pub fn start_node(data_dir: PathBuf, args: &[&str], env: &[(String, String)]) -> Server {
        let mut server = Server {
            child: None,
            base: String::new(),
            addr: String::new(),
            data_dir,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            output: Arc::new(Mutex::new(Vec::new())),
            env: env.to_vec(),
            _dir: None,
        };
        server.spawn();
        server
    }

    /// Starts the server with extra `hangar serve` arguments, on a temporary data directory.
    pub fn start_with(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(dir.path().join("data"), args);
        server._dir = Some(dir);
        server
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hangar"));
        // Unreferenced bytes are collected at once unless a test says otherwise.
        // Defaults that a test may give otherwise.
        let given = |flag: &str| self.extra_args.iter().any(|a| a == flag);
        let mut defaults: Vec<&str> = Vec::new();
        if !given("--blob-grace") {
            defaults.extend(["--blob-grace", "0s"]);
        }
        if !given("--listen") {
            defaults.extend(["--listen", "127.0.0.1:0"]);
        }
        if !given("--admin-password-file") {
            defaults.extend(["--admin-password", ADMIN_PASSWORD]);
        }
        cmd.arg("serve")
            .args(defaults)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            .env("HANGAR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars() {
            if key.starts_with("HANGAR_") && key != "HANGAR_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("the hangar binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let output = self.output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "the server did not report `listening on`; output: {:?}",
                    self.output.lock().unwrap()
                )
            });
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        self.base = format!("http://{addr}");
        self.addr = addr;
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the same server again on the same data directory (on a new port).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn output_text(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    pub fn blob_root(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Files in the blob store's temporary directory.
    pub fn temporaries(&self) -> usize {
        std::fs::read_dir(self.blob_root().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Stored blob files (outside the temporary directory), once the running server's collector
    /// has done the work that is due (blob bytes are deleted in the background, SPEC §10).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        if self.child.is_some() {
            self.wait_for_collector();
        }
        self.blob_files_now()
    }

    /// Waits (at most 10 s) until the server's collector has done the work that is due.
    pub fn wait_for_collector(&self) {
        wait_for_collector(&self.data_dir);
    }

    /// Stored blob files right now.
    pub fn blob_files_now(&self) -> Vec<PathBuf> {
        blob_files_in(&self.blob_root())
    }

    /// Logs in as the administrator and returns a client with a personal token.
    pub async fn admin(&self) -> User {
        let token = login_token(&self.base, "admin", ADMIN_PASSWORD).await;
        User {
            base: self.base.clone(),
            http: Client::new(),
            token,
            username: "admin".into(),
        }
    }

    /// Creates a member (as the administrator) and returns a client acting as them.
    pub async fn member(&self, username: &str) -> User {
        create_member(&self.base, &self.admin().await, username).await
    }
}

/// A server under test, spawned or in-process: where it answers.
pub trait Base {
    fn base(&self) -> &str;
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }
}

impl Base for Server {
    fn base(&self) -> &str {
        &self.base
    }
}

impl Base for TestApp {
    fn base(&self) -> &str {
        &self.base
    }
}

/// Creates a member as `admin` (password `{username}-password`) and returns a client acting as them.
pub async fn create_member(base: &str, admin: &User, username: &str) -> User {
    let password = format!("{username}-password");
    let r = admin
        .post("/api/v1/members")
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "creating member {username}");
    let token = login_token(base, username, &password).await;
    User {
        base: base.to_string(),
        http: Client::new(),
        token,
        username: username.into(),
    }
}

/// The blobs stored under a blob store's root: its blob files (outside its temporary directory,
/// and not the mark of its layout, `layout-flat`), and each packed body whose slot holds data, as
/// `packs/<pack>/<sha256>` (a path to no file: its name is the blob's, as a blob file's is).
pub fn blob_files_in(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                if p.file_name().unwrap() != "tmp" && p.file_name().unwrap() != "packs" {
                    walk(&p, out);
                }
            } else if p.file_name().unwrap() != "layout-flat" {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    // Packs vanish while they are listed when their last slot is freed: look again then.
    let packed = (0..10)
        .find_map(|_| hangar_blob::LocalBlobStore::packed_blobs(root).ok())
        .unwrap_or_default();
    for (pack, entry, holds_data) in packed {
        if holds_data {
            out.push(pack.join(entry.sha256));
        }
    }
    out
}

/// Where the local blob store of `data_dir` keeps a blob: its file, or the pack that holds it, and
/// where its bytes start there (a packed body's slot is the object key its SQLite row records).
pub async fn blob_location(data_dir: &Path, sha256: &str) -> (PathBuf, u64) {
    use sqlx::ConnectOptions;
    let file = data_dir.join("blobs").join(&sha256[..2]).join(sha256);
    if file.exists() {
        return (file, 0);
    }
    let mut db = format!("sqlite://{}/hangar.db", data_dir.display())
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .unwrap()
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let key: String = sqlx::query_scalar("SELECT object_key FROM blobs WHERE sha256 = ?")
        .bind(sha256)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let slot = hangar_blob::PackSlot::parse(&key).expect("a packed body's key");
    (slot.path(&data_dir.join("blobs")), slot.offset)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Logs in with a password (session cookie) and creates a personal token with it.
pub async fn login_token(base: &str, username: &str, password: &str) -> String {
    let http = Client::builder().cookie_store(true).build().unwrap();
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login as {username}");
    let r = http
        .post(format!("{base}/api/v1/me/tokens"))
        .json(&json!({"name": "tests"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// A caller with a bearer token.
#[derive(Clone)]
pub struct User {
    pub base: String,
    pub http: Client,
    pub token: String,
    pub username: String,
}

impl User {
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }
    pub fn head(&self, path: &str) -> RequestBuilder {
        self.http
            .head(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.http
            .put(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.http
            .patch(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http
            .delete(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    /// `POST /uploads`: answers the new attachment id.
    pub async fn upload(&self, name: &str, content_type: &str, bytes: &[u8]) -> i64 {
        let r = self
            .post("/uploads")
            .query(&[("name", name)])
            .header("content-type", content_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "upload {name}");
        r.text()
            .await
            .unwrap()
            .parse()
            .expect("the answer is the attachment id")
    }

    /// Creates a channel with these other members; answers its id.
    pub async fn channel(&self, name: &str, members: &[&str]) -> i64 {
        let r = self
            .post("/api/v1/channels")
            .json(&json!({"name": name, "members": members}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// Posts a message to a channel; answers its id.
    pub async fn message(&self, channel: i64, text: &str) -> i64 {
        let r = self
            .post(&format!("/api/v1/channels/{channel}/messages"))
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["messageId"]
            .as_i64()
            .unwrap()
    }
}

/// Asserts an error answer: status, JSON body with the same `httpStatusCode`, the machine code, and a
/// non-empty `errorText`. Answers the body for further checks.
pub async fn expect_error(r: Response, status: u16, code: &str) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "status; body: {text}");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body, got {text:?}"));
    assert_eq!(body["httpStatusCode"], status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["errorText"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    body
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Waits (at most 10 s) until no blob collection or orphan sweep is due or running, reading the job
/// queue from the database in `data_dir`.
pub fn wait_for_collector(data_dir: &Path) {
    let db = data_dir.join("hangar.db");
    if !db.exists() {
        return;
    }
    let url = format!("sqlite://{}", db.display());
    on_a_runtime_of_its_own(async move {
        use hangar_core::jobs::JobStore;
        let store = hangar_db::SqliteStore::open(&url).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let now = hangar_core::now_ms();
            let mut due = 0;
            for kind in ["collect-blob", "sweep-orphan-blobs"] {
                due += store.due_jobs(kind, now).await.unwrap();
            }
            if due == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// Runs `work` to its end on a thread and runtime of its own: tests call the helpers that read
/// the server's database from inside their own runtime, which may not block on another future.
fn on_a_runtime_of_its_own<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap()
}

/// Waits (at most 20 s) until `count_sql`, a query of one number run on the SQLite database of the
/// server in `data_dir`, answers more than zero: for a test that must know a background step of
/// the server has been recorded (a delivery's failed attempt written back) before it goes on.
pub fn wait_for_record(data_dir: &Path, count_sql: &'static str) {
    let url = format!("sqlite://{}", data_dir.join("hangar.db").display());
    on_a_runtime_of_its_own(async move {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let n: i64 = sqlx::query_scalar(count_sql)
                .fetch_one(&pool)
                .await
                .unwrap();
            if n > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "never recorded: {count_sql}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// A small xorshift generator: reproducible "random" sizes, contents and kill moments.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Distinct contents for distinct seeds.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x5DEE_CE66_D1CE_4E5B);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}
