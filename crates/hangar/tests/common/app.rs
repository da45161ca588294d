//! The in-process test app: a node assembled exactly as `hangar serve` assembles it (same
//! configuration contract, same stores, same start-up checks), served on 127.0.0.1 port 0 inside the
//! test process. Its job runners do not run by themselves: `run_jobs` runs what is due, so a test
//! that needs background work done (blob collection, webhook dispatch) asks for it instead of
//! sleeping. Tests whose subject is the process itself (signals, kill -9, logs, configuration) use
//! `Server`, which spawns the binary.

use super::{login_token, User, ADMIN_PASSWORD};
use hangar::config::{Config, ServeArgs};
use hangar::serve::{assemble, Node};
use reqwest::Client;
use std::path::PathBuf;

pub struct TestApp {
    pub base: String,
    pub addr: String,
    pub data_dir: PathBuf,
    node: Node,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(&[]).await
    }

    /// With extra `hangar serve` flags.
    pub async fn start_with(flags: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let data = data_dir.to_str().expect("temp paths are UTF-8").to_string();
        let mut all = vec![
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--admin-password",
            ADMIN_PASSWORD,
            "--blob-grace",
            "0s",
        ];
        all.extend_from_slice(flags);
        let args = ServeArgs::from_flags(&all).expect("valid flags");
        let config = Config::resolve(args).expect("valid configuration");
        let node = assemble(&config).await.expect("the node assembles");
        let listener = tokio::net::TcpListener::from_std(node.listener.try_clone().unwrap())
            .expect("a tokio listener");
        let router = node.router();
        let server = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let _ = axum::serve(listener, service).await;
        });
        let addr = node.addr.to_string();
        TestApp {
            base: format!("http://{addr}"),
            addr,
            data_dir,
            node,
            server,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs every background job that is due now (on this node's runners), until none is left;
    /// answers how many ran.
    pub async fn run_jobs(&self) -> usize {
        let mut total = 0;
        loop {
            let mut ran = 0;
            for runner in &self.node.runners {
                ran += runner.run_pending().await.expect("the job queue answers");
            }
            if ran == 0 {
                return total;
            }
            total += ran;
        }
    }

    pub fn blob_root(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Stored blob files, after the background work that is due (collection) has run.
    pub async fn blob_files(&self) -> Vec<PathBuf> {
        self.run_jobs().await;
        super::blob_files_in(&self.blob_root())
    }

    /// Files in the blob store's temporary directory.
    pub fn temporaries(&self) -> usize {
        std::fs::read_dir(self.blob_root().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
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
        self.server.abort();
    }
}
