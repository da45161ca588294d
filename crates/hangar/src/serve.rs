//! `hangar serve`: open the stores, bootstrap the administrator, listen, and stop cleanly on SIGTERM.

use crate::config::Config;
use crate::startup;
use anyhow::{anyhow, Context};
use axum::extract::ConnectInfo;
use axum::Extension;
use hangar_api::{observe, AppState, Settings};
use hangar_blob::BlobStore;
use hangar_core::jobs::{JobKind, JobStore, NewJob, ScanBacklog};
use hangar_core::net::AllowList;
use hangar_core::store::BlobLifecycleStore;
use hangar_db::{DatabaseKind, PgStore, SqliteStore};
use hangar_jobs::clamd::Clamd;
use hangar_jobs::{
    JobContext, Lane, Runner, RunnerSettings, DELIVERY_KINDS, NOT_GENERAL_KINDS, SCAN_KINDS,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;

/// How long in-flight requests may take to finish after SIGTERM before they are cut off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (HTTP/1 read buffer, HTTP/2 header list).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// One assembled node: its stores, state, job runners and bound listener, ready to serve. Built by
/// `assemble` for `hangar serve`, and by the tests, which serve it in their own process.
pub struct Node {
    pub store: Store,
    pub state: AppState,
    /// Not started: `run` spawns them, tests may instead run what is due on demand.
    pub runners: Vec<Runner>,
    /// Bound, not yet accepting (std, so that a test can serve a clone of it).
    pub listener: std::net::TcpListener,
    pub addr: std::net::SocketAddr,
    /// The metrics listener (`--metrics-listen`), bound, not yet accepting.
    pub metrics_listener: Option<std::net::TcpListener>,
    /// Held as long as the node lives: one process per data directory.
    _lock: std::fs::File,
}

/// The metadata store a node runs on, by the scheme of `--database-url`.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    async fn open(config: &Config) -> anyhow::Result<Store> {
        let url = &config.database_url;
        let failed = |e: hangar_db::OpenError| anyhow!("--database-url: {e}");
        Ok(match DatabaseKind::of(url).map_err(failed)? {
            DatabaseKind::Sqlite => Store::Sqlite(
                SqliteStore::open(url)
                    .await
                    .map_err(failed)?
                    .with_blob_grace(config.blob_grace)
                    .with_scanning(config.clamd.is_some()),
            ),
            DatabaseKind::Postgres => {
                let store = PgStore::open(url)
                    .await
                    .map_err(failed)?
                    .with_blob_grace(config.blob_grace)
                    .with_scanning(config.clamd.is_some());
                // The read caches are used while this node hears the other nodes' changes.
                store.listen_for_changes();
                Store::Postgres(store)
            }
        })
    }

    /// What a metrics scrape reads from the shared database: the job queue and the blob totals.
    fn scrape_sources(&self) -> (Arc<dyn JobStore>, Arc<dyn BlobLifecycleStore>) {
        match self {
            Store::Sqlite(s) => (Arc::new(s.clone()), Arc::new(s.clone())),
            Store::Postgres(s) => (Arc::new(s.clone()), Arc::new(s.clone())),
        }
    }

    /// The store's read caches (who tokens belong to, what attachments are).
    pub fn read_cache(&self) -> Arc<hangar_core::read_cache::ReadCache> {
        match self {
            Store::Sqlite(s) => s.read_cache(),
            Store::Postgres(s) => s.read_cache(),
        }
    }

    /// Closes the database (SQLite checkpoints its WAL; PostgreSQL ends its connections).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// Everything a node needs of its metadata store: every store trait, one signal for new jobs.
trait Backend:
    hangar_core::store::IdentityStore
    + hangar_core::store::MemberControlStore
    + hangar_core::store::AttemptStore
    + hangar_core::store::SpaceStore
    + hangar_core::store::ChatStore
    + hangar_core::store::ProjectStore
    + hangar_core::store::AttachmentStore
    + hangar_core::store::StorageStore
    + hangar_core::store::TusStore
    + hangar_core::store::ShareLinkStore
    + hangar_core::store::Applications
    + hangar_core::store::BlobLifecycleStore
    + hangar_core::store::PreviewStore
    + hangar_core::jobs::JobStore
    + hangar_core::scan::ScanStore
    + Clone
    + 'static
{
    fn job_signal(&self) -> tokio::sync::watch::Receiver<u64>;
}

impl Backend for SqliteStore {
    fn job_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        SqliteStore::job_signal(self)
    }
}

impl Backend for PgStore {
    fn job_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        PgStore::job_signal(self)
    }
}

impl Node {
    /// The whole HTTP API of this node.
    pub fn router(&self) -> axum::Router {
        hangar_api::router(self.state.clone())
    }
}

/// Checks the configuration against what is on disk and binds the listener (`startup::preflight`,
/// which creates nothing), then creates what is missing, opens the stores, bootstraps the
/// administrator, queues the chores, and builds the state and the job runners.
pub async fn assemble(config: &Config) -> anyhow::Result<Node> {
    let checked = startup::preflight(config).await?;
    tracing::info!("effective configuration: {}", config.summary());
    startup::create_data_dir(&config.data_dir)?;
    // One process per data directory: its temporaries are this process's to sweep at start. The
    // lock lives as long as the file handle.
    let lock = startup::lock_data_dir(&config.data_dir)?;
    let store = Store::open(config).await?;
    let blobs: Arc<dyn BlobStore> = config.open_blobs()?;
    // Object stores keep each blob under a key recorded in the database (no copy after upload).
    match &store {
        Store::Sqlite(s) => blobs.use_object_keys(Arc::new(s.clone())),
        Store::Postgres(s) => blobs.use_object_keys(Arc::new(s.clone())),
    }
    let link_key = startup::load_or_create_key(&config.secret_key_file, checked.key)?;
    // Only temporaries that no upload holds (of this process or another) are removed. An object
    // store's sweep looks at every object it holds (tens of thousands took a second node more than
    // 30 s to start in the bench): it is queued as a job instead (`start_on`), which one node runs
    // beside serving however many start together.
    if blobs.sweeps_quickly() {
        let swept = blobs.remove_temporaries(None).await?;
        if swept > 0 {
            tracing::info!("removed {swept} temporary files left by an earlier run");
        }
    }
    let addr = checked.listener.local_addr()?;
    let (state, runners) = match &store {
        Store::Sqlite(s) => start_on(s, config, blobs, link_key, &addr).await?,
        Store::Postgres(s) => start_on(s, config, blobs, link_key, &addr).await?,
    };
    Ok(Node {
        store,
        state,
        runners,
        addr,
        listener: checked.listener,
        metrics_listener: checked.metrics_listener,
        _lock: lock,
    })
}

/// The node's state and job runners on its metadata store: the administrator bootstrapped, the
/// chores queued (once per installation, whichever node starts first).
async fn start_on<S: Backend>(
    store: &S,
    config: &Config,
    blobs: Arc<dyn BlobStore>,
    link_key: [u8; 32],
    addr: &std::net::SocketAddr,
) -> anyhow::Result<(AppState, Vec<Runner>)> {
    startup::bootstrap_admin(store, config.admin_password.as_ref()).await?;
    // Background work is queued in the database: chores once per installation, blobs nobody
    // refers to by the collector (never at start, never younger than the grace period).
    hangar_jobs::schedule_chores(store, !blobs.sweeps_quickly()).await?;

    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let space_quota = config.space_quota.map(|q| q.min(i64::MAX as u64) as i64);
    let mut settings = Settings::new(&public_url, config.max_file_size, space_quota, link_key);
    settings.user_quota = config.user_quota.map(|q| q.min(i64::MAX as u64) as i64);
    settings.fetch_allow =
        AllowList::parse(&config.fetch_allow).map_err(|e| anyhow!("--fetch-allow: {e}"))?;
    settings.fetch_limits.first_byte = Duration::from_secs(config.fetch_timeout_secs);
    settings.trusted_proxies = config.trusted_proxies.clone();
    settings.metrics = config.metrics_listen.is_some();
    settings.session_idle_ms = config
        .session_idle_timeout
        .as_millis()
        .min(i64::MAX as u128) as i64;
    settings.login_limits.per_name.failures = i64::from(config.login_failures_per_user);
    settings.login_limits.per_address.failures = i64::from(config.login_failures_per_address);
    settings.token_lifetime_ms = config
        .token_lifetime
        .map(|d| d.as_millis().min(i64::MAX as u128 / 2) as i64);
    settings.tus_expiry = config.tus_expiry;
    if !config.cors_origins.is_empty() {
        let origins = config
            .cors_origins
            .iter()
            .map(|o| {
                axum::http::HeaderValue::from_str(o).map_err(|_| anyhow!("--cors-origins: {o:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        settings.cors = Some(hangar_api::cors::layer(&origins));
    }
    settings.scanning = config.clamd.is_some();
    let clamd = config.clamd.clone().map(|addr| Arc::new(Clamd::new(addr)));
    if let Some(clamd) = &clamd {
        start_scanning(store, clamd.clone()).await?;
    }
    if let Some(url) = &config.content_url {
        settings.content = Some(
            hangar_api::content_origin::ContentOrigin::parse(url)
                .ok_or_else(|| anyhow!("--content-url: {url:?} has no host"))?,
        );
        if config.public_url.is_none() && url.trim_end_matches('/') == public_url {
            anyhow::bail!("--content-url: {url:?} must be another origin than the server's URL");
        }
    }
    let state = AppState::new(store.clone(), blobs.clone(), settings);
    let runners = runners(store, &state, blobs, config, clamd);
    Ok((state, runners))
}

/// With `--clamd`: queues the scans of files stored while scanning was off, and says in the log
/// whether clamd answers, without waiting for it (an unreachable clamd never stops a start: scans
/// wait and retry, and unscanned files are not served meanwhile).
async fn start_scanning<S: Backend>(store: &S, clamd: Arc<Clamd>) -> anyhow::Result<()> {
    let backlog = NewJob::of(&ScanBacklog {}, hangar_core::now_ms()).unique(ScanBacklog::KIND);
    store.enqueue(&backlog).await?;
    tokio::spawn(async move {
        match clamd.ping().await {
            Ok(()) => tracing::info!("clamd at {} answers: new files are scanned", clamd.addr()),
            Err(e) => tracing::warn!(
                "--clamd: {e}; new files stay unserved (scan-pending) until it answers"
            ),
        }
    });
    Ok(())
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    // Handle SIGTERM from the moment the server says it is ready.
    let stop = shutdown_signal()?;
    let node = assemble(&config).await?;
    // Both listeners stop at the same signal.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stopping_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    if let Some(metrics_listener) = &node.metrics_listener {
        let (jobs, blobs) = node.store.scrape_sources();
        let handle = observe::install_recorder()?;
        let upkeep = handle.clone();
        tokio::spawn(async move {
            // Histogram samples are folded in at scrapes too; this bounds them between scrapes.
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        let app = observe::metrics_router(observe::Scrape {
            handle,
            jobs,
            blobs,
        });
        let listener = tokio::net::TcpListener::from_std(metrics_listener.try_clone()?)?;
        let (stopping_metrics, config_metrics) = (stopping.clone(), config.clone());
        // Never `listening on`: that line announces the API alone.
        tracing::info!("metrics on {} (GET /metrics)", listener.local_addr()?);
        tokio::spawn(async move {
            serve_connections(
                listener,
                app,
                stopped(stopping_metrics),
                false,
                ConnectionLimits::of(&config_metrics),
                None,
            )
            .await
        });
    }
    for runner in &node.runners {
        runner.clone().spawn();
    }
    let app = node.router();
    let listener = tokio::net::TcpListener::from_std(node.listener.try_clone()?)?;
    let public_url = node.state.settings.public_url.clone();
    let readiness = node.state.readiness.clone();
    readiness.set(true);
    tracing::info!("listening on {} (public URL {public_url})", node.addr);
    let stop = async move {
        stopped(stopping).await;
        readiness.set(false);
    };
    let runtimes = ConnectionRuntimes::start(connection_threads())
        .context("cannot start the connection threads")?;
    serve_connections(
        listener,
        app,
        stop,
        true,
        ConnectionLimits::of(&config),
        Some(&runtimes),
    )
    .await;
    runtimes.stop().await;
    // Closing the database checkpoints its WAL and removes the -wal and -shm files, so a stopped
    // server leaves the data directory as a backup or the next start expects it.
    if tokio::time::timeout(Duration::from_secs(5), node.store.close())
        .await
        .is_err()
    {
        tracing::warn!("the database was still busy after 5 s; stopping without closing it");
    }
    tracing::info!("stopped");
    Ok(())
}

/// This node's job runners: one for webhook deliveries (which may wait on slow endpoints), one for
/// malware scans (which may stream large files), one for everything else.
fn runners<S: Backend>(
    store: &S,
    state: &AppState,
    blobs: Arc<dyn BlobStore>,
    config: &Config,
    clamd: Option<Arc<Clamd>>,
) -> Vec<Runner> {
    let context = || JobContext {
        jobs: Arc::new(store.clone()),
        blob_life: Arc::new(store.clone()),
        blobs: blobs.clone(),
        storage: Arc::new(store.clone()),
        tus: Arc::new(store.clone()),
        attachments: Arc::new(store.clone()),
        unattached_ttl: config.unattached_ttl,
        identity: Arc::new(store.clone()),
        attempts: Arc::new(store.clone()),
        projects: Arc::new(store.clone()),
        apps: Arc::new(store.clone()),
        secrets: state.secrets.clone(),
        fetcher: state.fetcher.clone(),
        public_url: state.settings.public_url.clone(),
        blob_grace: config.blob_grace,
        scans: Arc::new(store.clone()),
        clamd: clamd.clone(),
        direct_uploads: Some(Arc::new(hangar_api::DirectFinisher::new(state.clone()))),
        previews: Some(state.previews.clone()),
    };
    let lanes = [
        (Lane::Except(NOT_GENERAL_KINDS), 8),
        (Lane::Only(DELIVERY_KINDS), 16),
        // Malware scans (`--clamd`): each holds a clamd connection while the file streams.
        (Lane::Only(SCAN_KINDS), 4),
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

/// What one listener allows its clients (SPEC §11).
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    /// Connections served at once; the next ones wait in the kernel's listen queue.
    max_connections: usize,
    /// A write that the client does not take for this long ends the connection.
    send_timeout: Duration,
    /// A connection that starts no request for this long is closed gracefully (HTTP/2 too).
    idle_timeout: Duration,
}

impl ConnectionLimits {
    fn of(config: &Config) -> Self {
        Self {
            max_connections: config.max_connections as usize,
            send_timeout: config.send_timeout,
            idle_timeout: config.idle_timeout,
        }
    }
}

/// Accepts connections until SIGTERM, then lets requests in flight finish for up to
/// `SHUTDOWN_GRACE`. Written on hyper-util rather than `axum::serve` because the latter sets no
/// header-read time-out, which lets slow clients hold connections open forever. A connection holds
/// one of `max_connections` places from its accept to its end: with none free, the loop stops
/// accepting (the kernel queues new connections, and refuses them once its queue is full) instead of
/// spending a descriptor on each. A connection whose writes wait longer than `send_timeout` is
/// ended (checked every quarter of it, see `send_watch`), so a client that stops reading a response
/// lets go of the connection and of whatever the response holds (a file, a database connection). A connection on which no request starts for `idle_timeout`
/// is shut down gracefully: an HTTP/2 client gets a GOAWAY (streams under way finish), an HTTP/1
/// keep-alive connection is closed. hyper has no idle time-out for HTTP/2 connections (its pings
/// only find dead peers), so each connection's task watches the time of its last request. With
/// `runtimes`, each connection is served on the one `ConnectionRuntimes::spawn` picks (the thread
/// of its packets' CPU, or the least busy); without, on the runtime that runs this loop.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()>,
    announce: bool,
    limits: ConnectionLimits,
    runtimes: Option<&ConnectionRuntimes>,
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
    // Told once the listener stops: every connection then finishes what it has under way and ends.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(stop);
    loop {
        let place = tokio::select! {
            // The semaphore is never closed, so acquiring can only wait.
            place = places.clone().acquire_owned() => place.expect("the semaphore stays open"),
            _ = &mut stop => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let connection = Connection {
                    peer,
                    app: app.clone(),
                    http: http.clone(),
                    stopped: stopped.clone(),
                    limits,
                    place,
                };
                match runtimes {
                    // Registered again with the chosen runtime's reactor, so that its readiness
                    // wakes that runtime's thread and no other.
                    Some(runtimes) => match socket.into_std() {
                        Ok(socket) => runtimes.spawn(incoming_cpu(&socket), async move {
                            match tokio::net::TcpStream::from_std(socket) {
                                Ok(socket) => connection.serve(socket).await,
                                Err(e) => tracing::warn!("cannot take a connection: {e}"),
                            }
                        }),
                        Err(e) => tracing::warn!("cannot take a connection: {e}"),
                    },
                    None => {
                        tokio::spawn(connection.serve(socket));
                    }
                }
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    if announce {
        tracing::info!("shutting down: finishing requests in flight");
    }
    let _ = stopping.send(true);
    // Every connection holds a place until it ends: all places back means all connections done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = places.acquire_many(all) => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}: aborting them");
        }
    }
}

/// One accepted connection, served on whichever runtime it is handed to.
struct Connection {
    peer: std::net::SocketAddr,
    app: axum::Router,
    http: auto::Builder<TokioExecutor>,
    /// Told when the listener stops: the connection finishes what it has under way and ends.
    stopped: tokio::sync::watch::Receiver<bool>,
    limits: ConnectionLimits,
    /// Its place among `max_connections`, held to its end.
    place: tokio::sync::OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, socket: tokio::net::TcpStream) {
        let Connection {
            peer,
            app,
            http,
            mut stopped,
            limits,
            place,
        } = self;
        let opened = std::time::Instant::now();
        let stall = crate::send_watch::Stall::new(opened);
        let socket = crate::send_watch::Watched::new(socket, stall.clone());
        // Milliseconds from `opened` to the connection's latest request.
        let last_request = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = last_request.clone();
        // The peer address, for `hangar_api::client::ClientAddr`.
        let service = tower::ServiceBuilder::new()
            .map_request(move |request: axum::http::Request<_>| {
                let at = opened.elapsed().as_millis() as u64;
                seen.store(at, std::sync::atomic::Ordering::Relaxed);
                request
            })
            .service(Extension(ConnectInfo(peer)).layer(app));
        let connection = http.serve_connection_with_upgrades(
            TokioIo::new(Box::pin(socket)),
            TowerToHyperService::new(service),
        );
        let (idle, send_timeout) = (limits.idle_timeout, limits.send_timeout);
        let mut connection = std::pin::pin!(connection);
        let period = (idle.min(send_timeout) / 4).max(Duration::from_millis(250));
        let mut tick = tokio::time::interval(period);
        let mut closing = false;
        loop {
            tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!("connection ended: {e}");
                    }
                    break;
                }
                _ = stopped.changed(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = tick.tick() => {
                    let waited = stall.waiting();
                    if !waited.is_zero() && waited >= send_timeout {
                        // Dropping the connection closes the socket, and lets go of whatever its
                        // responses hold.
                        tracing::debug!("connection ended: the client took no data for {send_timeout:?}");
                        break;
                    }
                    if closing {
                        continue;
                    }
                    let last = last_request.load(std::sync::atomic::Ordering::Relaxed);
                    let quiet = opened.elapsed().saturating_sub(Duration::from_millis(last));
                    if quiet >= idle {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
        drop(place);
    }
}

/// Blocking threads of all the connection runtimes together (tokio's default for one runtime).
const BLOCKING_THREADS: usize = 512;

/// The CPU on which a connection's packets arrive, where the system says.
fn incoming_cpu(socket: &std::net::TcpStream) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        rustix::net::sockopt::socket_incoming_cpu(socket).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        None
    }
}

/// How many threads serve the API's connections: one per CPU the process may use.
fn connection_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The runtimes that serve the API's connections: one thread each, with a runtime of its own (its
/// reactor, timers and task queue), each connection served on one of them from its first byte to its
/// last. On the runtime shared by every thread, a connection's task was woken and run by whichever
/// worker was free, so that most requests moved between the CPUs (a wake-up of another thread, in a
/// VM an interrupt between processors, per step); one runtime per thread keeps each connection's work
/// on one thread, as nginx keeps each on one worker. A connection goes to the thread of the CPU
/// where its packets arrive (`SO_INCOMING_CPU`: the network queue's CPU, or a local client's), so
/// that the kernel's wake-ups stay on that CPU too, unless that thread already serves `STEER_SLACK`
/// more connections than the least busy one (one network queue for every client must not load one
/// thread alone); then, and when the CPU is not known, to the least busy. Measured on the 4 KiB
/// authenticated download (docs/performance.md, "Connections served on runtimes of their own").
/// Everything else (job runners, the database's batches, the accept loop) stays on the shared
/// runtime.
struct ConnectionRuntimes {
    handles: Vec<tokio::runtime::Handle>,
    /// Connections being served on each runtime.
    serving: Arc<Vec<std::sync::atomic::AtomicUsize>>,
    /// Each thread runs its runtime until told to stop, then drops it (and the tasks left on it).
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How many more connections than the least busy thread the thread of a connection's CPU may
/// serve before the connection goes to the least busy one instead.
const STEER_SLACK: usize = 4;

/// A connection counted on its runtime until it ends (or its task is dropped).
struct Serving {
    serving: Arc<Vec<std::sync::atomic::AtomicUsize>>,
    at: usize,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.serving[self.at].fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ConnectionRuntimes {
    fn start(count: usize) -> std::io::Result<ConnectionRuntimes> {
        let count = count.max(1);
        let mut runtimes = ConnectionRuntimes {
            handles: Vec::with_capacity(count),
            serving: Arc::new((0..count).map(|_| Default::default()).collect()),
            stops: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // Each runtime has a pool of its own for blocking work (file reads and writes,
                // hashing): together as many threads as tokio's one pool allows by default.
                .max_blocking_threads((BLOCKING_THREADS / count).max(1))
                .thread_name(format!("hangar-conn-{i}-blocking"))
                .build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            runtimes.handles.push(runtime.handle().clone());
            runtimes.stops.push(stop);
            runtimes.threads.push(
                std::thread::Builder::new()
                    .name(format!("hangar-conn-{i}"))
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    })?,
            );
        }
        Ok(runtimes)
    }

    /// The runtime for a connection whose packets arrive on `cpu`.
    fn choose(&self, cpu: Option<u32>) -> usize {
        let load = |i: usize| self.serving[i].load(std::sync::atomic::Ordering::Relaxed);
        let least = (0..self.handles.len())
            .min_by_key(|&i| load(i))
            .unwrap_or(0);
        match cpu {
            Some(cpu) => {
                let own = cpu as usize % self.handles.len();
                if load(own) <= load(least) + STEER_SLACK {
                    own
                } else {
                    least
                }
            }
            None => least,
        }
    }

    /// Runs `connection`, whose packets arrive on `cpu`, on the runtime `choose` picks.
    fn spawn(
        &self,
        cpu: Option<u32>,
        connection: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let at = self.choose(cpu);
        self.serving[at].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let served = Serving {
            serving: self.serving.clone(),
            at,
        };
        self.handles[at].spawn(async move {
            let _served = served;
            connection.await;
        });
    }

    /// Stops the runtimes and waits for their threads.
    async fn stop(self) {
        drop(self.stops);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Says when it is dropped.
    struct Guard(Option<tokio::sync::oneshot::Sender<()>>);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(dropped) = self.0.take() {
                let _ = dropped.send(());
            }
        }
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("").to_string()
    }

    #[tokio::test]
    async fn connections_go_to_their_cpus_thread_unless_it_is_busier_and_stay_there() {
        let runtimes = ConnectionRuntimes::start(2).unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Connections held open until released, so that each thread's count stays.
        let hold = |i: usize, cpu: Option<u32>| {
            let (tx, mut released) = (tx.clone(), released.clone());
            runtimes.spawn(cpu, async move {
                let at = thread_name();
                // What a connection spawns (HTTP/2 streams, read-ahead) runs on its thread too,
                // and its blocking work goes to its runtime's own pool.
                let spawned = tokio::spawn(async { thread_name() }).await.unwrap();
                let blocking = tokio::task::spawn_blocking(thread_name).await.unwrap();
                assert!(
                    blocking.starts_with(&format!("{at}-b")),
                    "{blocking} for {at}"
                );
                let _ = tx.send((i, at, spawned));
                let _ = released.wait_for(|r| *r).await;
            });
        };
        // CPU unknown: the least busy thread.
        (0..4).for_each(|i| hold(i, None));
        // CPU 3 is thread 1's (3 mod 2), until thread 1 serves more than `STEER_SLACK` beyond
        // thread 0's 2: five more there, then the least busy.
        (4..11).for_each(|i| hold(i, Some(3)));
        let mut seen = Vec::new();
        while seen.len() < 11 {
            seen.push(rx.recv().await.expect("every connection runs"));
        }
        seen.sort();
        let on = |i: usize, n: usize| (i, format!("hangar-conn-{n}"), format!("hangar-conn-{n}"));
        let expected: Vec<_> = [0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| on(i, n))
            .collect();
        assert_eq!(seen, expected);
        let loads = |r: &ConnectionRuntimes| {
            r.serving
                .iter()
                .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
                .collect::<Vec<_>>()
        };
        assert_eq!(loads(&runtimes), vec![3, 8]);
        // Ended connections are no longer counted.
        release.send(true).unwrap();
        for _ in 0..100 {
            if loads(&runtimes) == vec![0, 0] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(loads(&runtimes), vec![0, 0]);

        // Stopping ends the threads and drops the tasks still there (a connection past the
        // shutdown's grace).
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
        let guard = Guard(Some(dropped_tx));
        runtimes.spawn(None, async move {
            let _held = guard;
            std::future::pending::<()>().await;
        });
        tokio::time::timeout(Duration::from_secs(10), runtimes.stop())
            .await
            .expect("the connection threads stop");
        tokio::time::timeout(Duration::from_secs(1), dropped)
            .await
            .expect("the task left on a stopped runtime is dropped")
            .unwrap();
    }
}
