//! `hangar serve`: open the stores, bootstrap the administrator, listen, and stop cleanly on SIGTERM.

use crate::config::Config;
use anyhow::Context;
use hangar_api::{auth::hash_password, AppState, Settings};
use hangar_blob::{BlobStore, LocalBlobStore};
use hangar_core::ids::random_alnum;
use hangar_core::model::Role;
use hangar_core::net::AllowList;
use hangar_core::store::{IdentityStore, StorageStore};
use hangar_db::SqliteStore;
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
/// Temporaries older than this are abandoned work, swept periodically.
const TEMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    // One process per data directory: a second one's start-up sweeps would delete the first one's
    // uploads in flight. The lock lives as long as the file handle.
    let _lock = lock_data_dir(&config.data_dir)?;
    // Handle SIGTERM from the moment the server says it is ready.
    let stop = shutdown_signal()?;
    let store = SqliteStore::open(&config.database_url).await?;
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::open(config.blob_root()?)?);
    let swept = blobs.remove_temporaries(None).await?;
    if swept > 0 {
        tracing::info!("removed {swept} temporary files left by an earlier run");
    }
    remove_orphan_blobs(&store, blobs.as_ref()).await?;
    bootstrap_admin(&store, config.admin_password.clone()).await?;
    // No request is in flight yet: quota reservations of requests are leftovers of an earlier run.
    store.clear_request_reservations().await?;
    let link_key = load_or_create_key(&config.data_dir.join("secret.key"))?;

    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
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
    let state = AppState::new(store, blobs.clone(), settings);
    tokio::spawn(sweep_temporaries(blobs));
    tokio::spawn(expire_uploads(
        state.storage.clone(),
        state.identity.clone(),
    ));

    hangar_api::delivery::spawn(state.clone());
    let app = hangar_api::router(state);
    tracing::info!("listening on {addr} (public URL {public_url})");
    serve_connections(listener, app, stop).await;
    tracing::info!("stopped");
    Ok(())
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

/// Removes blobs that no row refers to: a crash between making a blob durable and committing its
/// metadata leaves one. Runs before the server listens, so no upload can be about to refer to them.
async fn remove_orphan_blobs(store: &SqliteStore, blobs: &dyn BlobStore) -> anyhow::Result<()> {
    use hangar_core::store::AttachmentStore;
    let mut removed = 0;
    for sha in blobs.list().await? {
        if store.blob_refcount(&sha).await?.is_none() {
            blobs.delete(&sha).await?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!("removed {removed} stored blobs that nothing referred to (left by an interrupted upload)");
    }
    Ok(())
}

/// Drops two-stage uploads whose URL expired, returning their reserved quota.
async fn expire_uploads(storage: Arc<dyn StorageStore>, identity: Arc<dyn IdentityStore>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        if let Err(e) = storage.expire_uploads(hangar_core::now_ms()).await {
            tracing::warn!("cannot expire two-stage uploads: {e}");
        }
        if let Err(e) = identity.purge_sessions(hangar_core::now_ms()).await {
            tracing::warn!("cannot purge expired sessions: {e}");
        }
    }
}

async fn sweep_temporaries(blobs: Arc<dyn BlobStore>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.tick().await;
    loop {
        every.tick().await;
        match blobs.remove_temporaries(Some(TEMP_MAX_AGE)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} abandoned temporary files"),
            Err(e) => tracing::warn!("cannot sweep temporary files: {e}"),
        }
    }
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
