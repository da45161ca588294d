//! `hangar serve`: open the stores, bootstrap the administrator, listen, and stop cleanly on SIGTERM.

use crate::config::Config;
use anyhow::Context;
use hangar_api::{auth::hash_password, AppState, Settings};
use hangar_blob::{BlobStore, LocalBlobStore};
use hangar_core::ids::random_alnum;
use hangar_core::model::Role;
use hangar_core::net::AllowList;
use hangar_core::store::{BlobLifecycleStore, IdentityStore};
use hangar_db::SqliteStore;
use hangar_jobs::{JobContext, Lane, Runner, RunnerSettings, DELIVERY_KINDS};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long in-flight requests may take to finish after SIGTERM before they are cut off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (HTTP/1 read buffer, HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// One assembled node: its stores, state, job runners and bound listener, ready to serve. Built by
/// `assemble` for `hangar serve`, and by the tests, which serve it in their own process.
pub struct Node {
    pub store: SqliteStore,
    pub state: AppState,
    /// Not started: `run` spawns them, tests may instead run what is due on demand.
    pub runners: Vec<Runner>,
    /// Bound, not yet accepting (std, so that a test can serve a clone of it).
    pub listener: std::net::TcpListener,
    pub addr: std::net::SocketAddr,
    /// Held as long as the node lives: one process per data directory.
    _lock: std::fs::File,
}

impl Node {
    /// The whole HTTP API of this node.
    pub fn router(&self) -> axum::Router {
        hangar_api::router(self.state.clone())
    }
}

/// Checks the configuration against what is on disk, opens the stores, bootstraps the
/// administrator, queues the chores, binds the listener, and builds the state and the job runners.
pub async fn assemble(config: &Config) -> anyhow::Result<Node> {
    refuse_new_database_beside_old_blobs(config).await?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    // One process per data directory: its temporaries are this process's to sweep at start. The
    // lock lives as long as the file handle.
    let lock = lock_data_dir(&config.data_dir)?;
    let store = SqliteStore::open(&config.database_url)
        .await?
        .with_blob_grace(config.blob_grace);
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::open(config.blob_root()?)?);
    if !store.holds_data().await? && blobs.holds_blobs().await? {
        bail_new_database(config)?;
    }
    // Only temporaries that no upload holds (of this process or another) are removed.
    let swept = blobs.remove_temporaries(None).await?;
    if swept > 0 {
        tracing::info!("removed {swept} temporary files left by an earlier run");
    }
    bootstrap_admin(&store, config.admin_password.clone()).await?;
    // Background work is queued in the database: chores once per installation, blobs nobody
    // refers to by the collector (never at start, never younger than the grace period).
    hangar_jobs::schedule_chores(&store).await?;
    let link_key = load_or_create_key(&config.data_dir.join("secret.key"))?;

    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?
        .into_std()?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let space_quota = config.space_quota.map(|q| q.min(i64::MAX as u64) as i64);
    let mut settings = Settings::new(&public_url, config.max_file_size, space_quota, link_key);
    settings.fetch_allow =
        AllowList::parse(&config.fetch_allow).map_err(|e| anyhow::anyhow!("fetch-allow: {e}"))?;
    settings.fetch_limits.first_byte = Duration::from_secs(config.fetch_timeout_secs);
    let state = AppState::new(store.clone(), blobs.clone(), settings);
    let runners = runners(&store, &state, blobs, config.blob_grace);
    Ok(Node {
        store,
        state,
        runners,
        listener,
        addr,
        _lock: lock,
    })
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    // Handle SIGTERM from the moment the server says it is ready.
    let stop = shutdown_signal()?;
    let node = assemble(&config).await?;
    for runner in &node.runners {
        runner.clone().spawn();
    }
    let app = node.router();
    let listener = tokio::net::TcpListener::from_std(node.listener.try_clone()?)?;
    let public_url = node.state.settings.public_url.clone();
    tracing::info!("listening on {} (public URL {public_url})", node.addr);
    serve_connections(listener, app, stop).await;
    tracing::info!("stopped");
    Ok(())
}

/// This node's job runners: one for webhook deliveries (which may wait on slow endpoints), one for
/// everything else.
fn runners(
    store: &SqliteStore,
    state: &AppState,
    blobs: Arc<dyn BlobStore>,
    grace: Duration,
) -> Vec<Runner> {
    let context = || JobContext {
        jobs: Arc::new(store.clone()),
        blob_life: Arc::new(store.clone()),
        blobs: blobs.clone(),
        storage: Arc::new(store.clone()),
        identity: Arc::new(store.clone()),
        projects: Arc::new(store.clone()),
        apps: Arc::new(store.clone()),
        secrets: state.secrets.clone(),
        fetcher: state.fetcher.clone(),
        public_url: state.settings.public_url.clone(),
        blob_grace: grace,
    };
    let lanes = [
        (Lane::Except(DELIVERY_KINDS), 8),
        (Lane::Only(DELIVERY_KINDS), 16),
    ];
    lanes
        .into_iter()
        .map(|(lane, concurrency)| {
            let settings = RunnerSettings {
                lane,
                concurrency,
                ..RunnerSettings::default()
            };
            Runner::new(context(), store.job_signal(), settings)
        })
        .collect()
}

/// Accepts connections until SIGTERM, then lets requests in flight finish for up to
/// `SHUTDOWN_GRACE`. Written on hyper-util rather than `axum::serve` because the latter sets no
/// header-read time-out, which lets slow clients hold connections open forever.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    http.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let socket = match accepted {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = http
                    .serve_connection_with_upgrades(TokioIo::new(socket), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}: aborting them");
        }
    }
}

/// A future that ends at SIGTERM or Ctrl-C. The handlers are installed now, not when it is first
/// polled, so a signal sent right after the ready line is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    Ok(async move {
        #[cfg(unix)]
        let term = term.recv();
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
    })
}

/// Takes the data directory's lock file, or fails when another process holds it.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("hangar.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            anyhow::anyhow!(
                "another hangar process is using {} (it holds {})",
                dir.display(),
                path.display()
            )
        },
    )?;
    Ok(file)
}

/// A database that does not exist yet beside a blob store that holds files is almost always a
/// mistyped `--database-url`: starting would show an empty installation and, worse, its clean-ups
/// would treat every stored file as garbage. Refused before anything is created.
async fn refuse_new_database_beside_old_blobs(config: &Config) -> anyhow::Result<()> {
    let exists = SqliteStore::database_exists(&config.database_url)
        .map_err(|e| anyhow::anyhow!("--database-url: {e}"))?;
    let root = config.blob_root()?;
    if exists || !root.is_dir() {
        return Ok(());
    }
    if LocalBlobStore::open(&root)?.holds_blobs().await? {
        bail_new_database(config)?;
    }
    Ok(())
}

fn bail_new_database(config: &Config) -> anyhow::Result<()> {
    anyhow::bail!(
        "the database {} (--database-url) holds no data, but the blob store {} (--storage-url) holds \
         files: refusing to start. Give the --database-url that belongs to these files, or an empty \
         --storage-url for a new installation.",
        config.database_url,
        config.storage_url
    )
}

/// Creates the `admin` account on first start (printing a generated password once), and resets its
/// password whenever one is configured, so an operator can always get back in.
async fn bootstrap_admin(store: &SqliteStore, password: Option<String>) -> anyhow::Result<()> {
    if let Some(pw) = &password {
        hangar_api::auth::validate_password(pw)
            .map_err(|e| anyhow::anyhow!("admin password: {}", e.text))?;
    }
    match store.member_by_username("admin").await? {
        Some(admin) => {
            if let Some(pw) = password {
                let hash = hash_password(pw)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.text))?;
                store.set_password(admin.id, &hash).await?;
                // A reset password is meant to lock out whoever had the old one.
                store.end_sessions(admin.id).await?;
                tracing::info!("the admin password was set from the configuration");
            }
        }
        None if store.member_count().await? == 0 => {
            let (pw, generated) = match password {
                Some(pw) => (pw, false),
                None => (random_alnum(24), true),
            };
            let hash = hash_password(pw.clone())
                .await
                .map_err(|e| anyhow::anyhow!(e.text))?;
            store
                .create_member("admin", &hash, "Administrator", Role::Admin)
                .await?;
            if generated {
                // Printed once, on the console only: it is not stored anywhere in clear.
                println!("Created the administrator account. Username: admin  Password: {pw}");
                println!(
                    "(shown only now; set --admin-password or HANGAR_ADMIN_PASSWORD to change it)"
                );
            } else {
                tracing::info!(
                    "created the administrator account `admin` with the configured password"
                );
            }
        }
        None => {
            tracing::warn!("no member is named admin; not creating one in a non-empty installation")
        }
    }
    Ok(())
}

/// 32 random bytes kept in the data directory (mode 0600), created on first start.
fn load_or_create_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path) {
        return bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "{} is damaged: it must hold exactly 32 bytes",
                path.display()
            )
        });
    }
    let key: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, &key)?;
    file.sync_all()?;
    Ok(key)
}
