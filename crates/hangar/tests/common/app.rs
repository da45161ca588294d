//! The in-process test app: a node assembled exactly as `hangar serve` assembles it (same
//! configuration contract, same stores, same start-up checks), served on 127.0.0.1 port 0 inside the
//! test process. Its job runners do not run by themselves: `run_jobs` runs what is due, so a test
//! that needs background work done (blob collection, webhook dispatch) asks for it instead of
//! sleeping. Tests whose subject is the process itself (signals, kill -9, logs, configuration) use
//! `Server`, which spawns the binary.
//!
//! `HANGAR_TEST_BACKEND` chooses what the app runs on, so that the same HTTP tests prove every
//! backend (SPEC §13): `sqlite` (the default: SQLite and the local disk), `postgres-s3` (a fresh
//! database on the test PostgreSQL and a fresh prefix on the test S3 server), or `two-nodes` (two
//! nodes on one such installation behind nginx, which sends requests to them in turn).

use super::cluster::{new_database, s3_storage};
use super::{login_token, User, ADMIN_PASSWORD};
use futures_util::StreamExt;
use hangar::config::{Config, ServeArgs};
use hangar::serve::{assemble, Node};
use reqwest::Client;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    PostgresS3,
    TwoNodes,
}

impl Backend {
    /// The backend `HANGAR_TEST_BACKEND` names.
    pub fn of_env() -> Backend {
        match std::env::var("HANGAR_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres-s3") => Backend::PostgresS3,
            Ok("two-nodes") => Backend::TwoNodes,
            Ok(other) => {
                panic!("HANGAR_TEST_BACKEND={other}: expected sqlite, postgres-s3 or two-nodes")
            }
        }
    }
}

pub struct TestApp {
    /// Where clients go: the node, or the balancer in front of both nodes.
    pub base: String,
    pub addr: String,
    /// The (first) node's data directory.
    pub data_dir: PathBuf,
    pub backend: Backend,
    /// `--storage-url` of the S3 backends.
    storage_url: Option<String>,
    nodes: Vec<(Node, tokio::task::JoinHandle<()>)>,
    balancer: Option<Balancer>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(&[]).await
    }

    /// With extra `hangar serve` flags.
    pub async fn start_with(flags: &[&str]) -> TestApp {
        let backend = Backend::of_env();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut shared: Vec<String> = Vec::new();
        let mut balancer_port = None;
        let mut storage = None;
        if backend != Backend::Sqlite {
            let (database_url, name) = new_database().await;
            let (storage_url, env) = s3_storage(&name);
            use_process_env(&env);
            storage = Some(storage_url.clone());
            let key = dir.path().join("secret.key");
            std::fs::write(&key, rand::random::<[u8; 32]>()).unwrap();
            shared.extend([
                "--database-url".into(),
                database_url,
                "--storage-url".into(),
                storage_url,
                "--secret-key-file".into(),
                key.to_str().unwrap().into(),
            ]);
        }
        if backend == Backend::TwoNodes {
            let port = free_balancer_port();
            balancer_port = Some(port);
            if !flags.contains(&"--public-url") {
                shared.extend(["--public-url".into(), format!("http://127.0.0.1:{port}")]);
            }
        }
        let count = if backend == Backend::TwoNodes { 2 } else { 1 };
        let mut nodes = Vec::new();
        for n in 0..count {
            let data = dir.path().join(if n == 0 {
                "data".into()
            } else {
                format!("data{n}")
            });
            let data = data.to_str().expect("temp paths are UTF-8").to_string();
            let mut all: Vec<&str> = vec![
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &data,
                "--admin-password",
                ADMIN_PASSWORD,
                "--blob-grace",
                "0s",
            ];
            all.extend(shared.iter().map(String::as_str));
            all.extend_from_slice(flags);
            let args = ServeArgs::from_flags(&all).expect("valid flags");
            let config = Config::resolve(args).expect("valid configuration");
            let node = assemble(&config).await.expect("the node assembles");
            let listener = tokio::net::TcpListener::from_std(node.listener.try_clone().unwrap())
                .expect("a tokio listener");
            let router = node.router();
            let server = tokio::spawn(async move {
                // With the peer address, as `hangar serve` gives it (`hangar_api::client::ClientAddr`).
                let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
                let _ = axum::serve(listener, service).await;
            });
            nodes.push((node, server));
        }
        let balancer = balancer_port.map(|port| {
            let upstreams: Vec<String> = nodes.iter().map(|(n, _)| n.addr.to_string()).collect();
            Balancer::start(port, &upstreams)
        });
        let addr = match &balancer {
            Some(b) => b.addr.clone(),
            None => nodes[0].0.addr.to_string(),
        };
        TestApp {
            base: format!("http://{addr}"),
            addr,
            data_dir: dir.path().join("data"),
            backend,
            storage_url: storage,
            nodes,
            balancer,
            _dir: dir,
        }
    }

    /// The (first) node's own address, for tests of its connection handling (with `two-nodes`,
    /// `addr` is the balancer's).
    pub fn node_addr(&self) -> String {
        self.nodes[0].0.addr.to_string()
    }

    /// Every node's own address (one, but with `two-nodes`).
    pub fn node_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|(n, _)| n.addr.to_string()).collect()
    }

    /// Every node's read caches (token and attachment entries), in the order of `node_addrs`.
    pub fn read_caches(&self) -> Vec<std::sync::Arc<hangar_core::read_cache::ReadCache>> {
        self.nodes
            .iter()
            .map(|(n, _)| n.store.read_cache())
            .collect()
    }

    /// The (first) node's state: its stores, as its handlers see them.
    pub fn state(&self) -> &hangar_api::AppState {
        &self.nodes[0].0.state
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs every background job that is due now (on every node's runners), until none is left;
    /// answers how many ran.
    pub async fn run_jobs(&self) -> usize {
        let mut total = 0;
        loop {
            let mut ran = 0;
            for (node, _) in &self.nodes {
                for runner in &node.runners {
                    ran += runner.run_pending().await.expect("the job queue answers");
                }
            }
            if ran == 0 {
                return total;
            }
            total += ran;
        }
    }

    /// The local blob directory (SQLite backend only: the others keep bytes in S3).
    pub fn blob_root(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Stored blobs (named by their SHA-256), after the background work that is due (collection)
    /// has run.
    pub async fn blob_files(&self) -> Vec<PathBuf> {
        self.run_jobs().await;
        if self.backend == Backend::Sqlite {
            return super::blob_files_in(&self.blob_root());
        }
        let mut listed = self.nodes[0].0.state.blobs.clone().list();
        let mut names = Vec::new();
        while let Some(blob) = listed.next().await {
            names.push(PathBuf::from(blob.expect("the blob store lists").sha256));
        }
        names.sort();
        names
    }

    /// The stored bytes of a blob.
    pub async fn blob_bytes(&self, sha256: &str) -> Vec<u8> {
        let mut stream = self.nodes[0]
            .0
            .state
            .blobs
            .read(sha256, 0, u64::MAX)
            .await
            .expect("the blob is stored");
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.expect("the blob reads"));
        }
        bytes
    }

    /// Uploads in progress in the blob store (temporary files or objects), counted once.
    pub fn temporaries(&self) -> usize {
        if self.backend == Backend::Sqlite {
            return std::fs::read_dir(self.blob_root().join("tmp"))
                .map(|d| d.count())
                .unwrap_or(0);
        }
        // Synchronous for `settle(|| …)`: the listing runs on a runtime of its own, with a client
        // of its own (an S3 client's connections belong to the runtime that made them).
        let storage_url = self.storage_url.clone().expect("S3 storage");
        std::thread::spawn(move || {
            use hangar_blob::BlobStore;
            let blobs = hangar_blob::S3BlobStore::from_env(&storage_url).expect("S3 settings");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                blobs
                    .count_temporaries()
                    .await
                    .expect("the blob store lists")
            })
        })
        .join()
        .unwrap()
    }

    /// `temporaries`, once the store had up to five seconds to remove those of uploads that
    /// ended: on S3 a dropped upload's temporary is deleted by a task of the server's, which runs
    /// on the test's runtime, so the wait yields to it between counts.
    pub async fn temporaries_settled(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let count = self.temporaries();
            if count == 0 || std::time::Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
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
        super::create_member(&self.base, &self.admin().await, username).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for (_, server) in &self.nodes {
            server.abort();
        }
        drop(self.balancer.take());
    }
}

/// The S3 endpoint and credentials in this process's environment, where an in-process node reads
/// them (as `hangar serve` does). The values are the same for the whole process (one test S3
/// server); they are set once, before the first node opens its store.
fn use_process_env(env: &[(String, String)]) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (key, value) in env {
            if std::env::var(key).as_deref() != Ok(value.as_str()) {
                std::env::set_var(key, value);
            }
        }
    });
}

/// A free port for the balancer, which nginx binds only after the nodes have started. Taken below
/// the kernel's ephemeral range (`ip_local_port_range`) where there is room: a port handed out by
/// `bind(…:0)` and closed again could go to the next `bind(…:0)`, here or in a test running beside
/// this one (a node's listener, another balancer), and nginx would then fail to bind while the
/// test talked to that other server (seen once in CI: 409 on creating a space that another test's
/// database held). Below the range only another test picking the same random port can collide,
/// and `Balancer::start` stops the test then.
fn free_balancer_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOWEST: u16 = 10_000;
    if ephemeral_low > LOWEST + 1_000 {
        for _ in 0..100 {
            let port = LOWEST + rand::random::<u16>() % (ephemeral_low - LOWEST);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// nginx in front of the nodes, round robin, streaming both ways, passing requests as they come
/// (no retries on another node, no header or body limits of its own): the load balancer of
/// docs/operations.md.
struct Balancer {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(port: u16, upstreams: &[String]) -> Balancer {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("server {u} max_fails=0;\n"))
            .collect();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/tmp/body;\n\
             proxy_temp_path {d}/tmp/proxy;\n fastcgi_temp_path {d}/tmp/fastcgi;\n\
             uwsgi_temp_path {d}/tmp/uwsgi;\n scgi_temp_path {d}/tmp/scgi;\n\
             upstream nodes {{\n{servers} }}\n\
             server {{\n listen 127.0.0.1:{port};\n client_max_body_size 0;\n\
             large_client_header_buffers 8 128k;\n underscores_in_headers on;\n\
             proxy_request_buffering off;\n proxy_buffering off;\n proxy_http_version 1.1;\n\
             proxy_next_upstream off;\n proxy_read_timeout 300s;\n proxy_send_timeout 300s;\n\
             client_body_timeout 300s;\n send_timeout 300s;\n\
             location / {{ proxy_pass http://nodes; proxy_set_header Host $http_host;\n\
             proxy_set_header Connection \"\"; }}\n }}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nginx is installed (scripts/test.sh installs it)");
        let mut child = Command::new(nginx)
            .args(["-c", path.to_str().unwrap(), "-p", &d.to_string()])
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let addr = format!("127.0.0.1:{port}");
        // Ours is listening once its pid file names it (nginx writes the file after binding its
        // ports); a connection alone could reach another server on that port.
        let pid_file = dir.path().join("nginx.pid");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nginx could not listen on {addr} ({status}; its error is above)");
            }
            let ours = std::fs::read_to_string(&pid_file)
                .is_ok_and(|pid| pid.trim() == child.id().to_string());
            if ours && std::net::TcpStream::connect(&addr).is_ok() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not listen on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Balancer {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown, in which the master ends its workers too (a SIGKILL would
        // leave them running, holding the port).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
