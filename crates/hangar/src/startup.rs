//! Start-up that cannot hurt data (SPEC §1, §10): everything on disk and on the network is checked
//! (`preflight`) before anything is created or changed; then the data directory, its lock, the
//! secret key and the administrator are made.

use crate::config::{Config, Secret};
use anyhow::{anyhow, bail, Context};
use hangar_api::auth::hash_password;
use hangar_core::ids::random_alnum;
use hangar_core::model::Role;
use hangar_core::store::BlobLifecycleStore;
use hangar_core::store::{IdentityStore, MemberControlStore};
use hangar_db::{DatabaseKind, PgStore, Probe, SqliteStore};
use std::path::Path;

/// What the checks found, for the creating half of the start.
pub struct Checked {
    /// Bound, not yet accepting.
    pub listener: std::net::TcpListener,
    /// The metrics listener (`--metrics-listen`), bound, not yet accepting.
    pub metrics_listener: Option<std::net::TcpListener>,
    /// The secret key when its file exists; None when it is to be made (a new installation).
    pub key: Option<[u8; 32]>,
}

/// Checks every setting against the disk and the network, creating and changing nothing: the
/// database opens (or its directory is there for a new one), a new database is not put beside
/// stored blobs, the secret key is there (and whole) when the database holds data, the address can
/// be bound. Every refusal names the flag.
pub async fn preflight(config: &Config) -> anyhow::Result<Checked> {
    let holds_data = match DatabaseKind::of(&config.database_url)? {
        DatabaseKind::Sqlite => {
            let probe = SqliteStore::probe(&config.database_url)
                .await
                .map_err(|e| anyhow!("--database-url: {e}"))?;
            match &probe {
                Probe::Found { holds_data } => *holds_data,
                Probe::Missing { path } => {
                    if path.as_os_str() != ":memory:" {
                        dir_will_exist(config, "--database-url", path)?;
                    }
                    false
                }
            }
        }
        // The database must exist (the operator creates it); a server that cannot be reached is
        // refused here, before anything is made. With Hangar's schema in it, it holds data when
        // anything was stored; opening it applies what migrations are missing.
        DatabaseKind::Postgres => {
            let url = &config.database_url;
            let exists = PgStore::database_exists(url)
                .await
                .map_err(|e| anyhow!("--database-url: {e}"))?;
            exists
                && PgStore::open(url)
                    .await
                    .map_err(|e| anyhow!("--database-url: {e}"))?
                    .holds_data()
                    .await?
        }
    };
    if !holds_data {
        refuse_new_database_beside_old_blobs(config).await?;
    }
    let key = check_key(config, holds_data)?;
    let listener = bind("--listen", &config.listen)?;
    let metrics_listener = match &config.metrics_listen {
        Some(addr) => Some(bind("--metrics-listen", addr)?),
        None => None,
    };
    let addr = listener.local_addr()?;
    if addr.ip().is_unspecified() && config.public_url.is_none() {
        tracing::warn!(
            "listening on every interface ({addr}) without --public-url: links, upload URLs and \
             the CSRF origin check use http://{addr}; set --public-url to the URL clients use"
        );
    }
    Ok(Checked {
        listener,
        metrics_listener,
        key,
    })
}

/// A listener on `addr`, non-blocking, not yet accepting.
fn bind(flag: &str, addr: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow!("{flag}: cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .context("cannot set up the listener")?;
    Ok(listener)
}

/// The directory that will hold `path` exists, or is the data directory (made at start).
fn dir_will_exist(config: &Config, flag: &str, path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() || dir == config.data_dir {
        return Ok(());
    }
    bail!(
        "{flag}: cannot create {}: the directory {} does not exist",
        path.display(),
        dir.display()
    )
}

/// The secret key, read and checked; a missing key is made only for a database without data: with
/// data, a new key would silently break every public link, sealed secret and signing key.
fn check_key(config: &Config, holds_data: bool) -> anyhow::Result<Option<[u8; 32]>> {
    let path = &config.secret_key_file;
    match std::fs::read(path) {
        Ok(bytes) => {
            let key: [u8; 32] = bytes.try_into().map_err(|_| {
                anyhow!(
                    "--secret-key-file: {} is damaged: it must hold exactly 32 bytes",
                    path.display()
                )
            })?;
            Ok(Some(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if holds_data {
                bail!(
                    "--secret-key-file: the secret key {} is missing, but the database {} holds \
                     data: refusing to start with a new key (every public link, sealed secret and \
                     signing key would change). Restore the key from a backup, or give its place \
                     with --secret-key-file.",
                    path.display(),
                    config.database_url
                );
            }
            dir_will_exist(config, "--secret-key-file", path)?;
            Ok(None)
        }
        Err(e) => bail!("--secret-key-file: cannot read {}: {e}", path.display()),
    }
}

/// A database without data beside a blob store that holds files is almost always a mistyped
/// `--database-url`: starting would show an empty installation and, worse, its clean-ups would
/// treat every stored file as garbage.
async fn refuse_new_database_beside_old_blobs(config: &Config) -> anyhow::Result<()> {
    if let Some(root) = config.blob_dir()? {
        if !root.is_dir() {
            return Ok(());
        }
    }
    let blobs = config.open_blobs()?;
    if blobs
        .holds_blobs()
        .await
        .map_err(|e| anyhow!("--storage-url: {e}"))?
    {
        bail!(
            "the database {} (--database-url) holds no data, but the blob store {} (--storage-url) \
             holds files: refusing to start. Give the --database-url that belongs to these files, \
             or an empty --storage-url for a new installation.",
            config.database_url,
            config.storage_url
        );
    }
    Ok(())
}

/// Creates the data directory (mode 0700) if it is missing.
pub fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("--data-dir: cannot create {}", dir.display()))?;
    // Said again after creation: the mode given to mkdir is narrowed by the umask, never widened,
    // and this states the result whatever the umask was.
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("--data-dir: cannot set the mode of {}", dir.display()))?;
    Ok(())
}

/// Takes the data directory's lock file, or fails when another process holds it.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("hangar.lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            anyhow!(
                "another hangar process is using {} (it holds {})",
                dir.display(),
                path.display()
            )
        },
    )?;
    Ok(file)
}

/// The key `preflight` read, or a new one (32 random bytes, mode 0600) for a new installation.
pub fn load_or_create_key(path: &Path, checked: Option<[u8; 32]>) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = checked {
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("--secret-key-file: cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, &key)?;
    file.sync_all()?;
    Ok(key)
}

/// Creates the `admin` account on first start (printing a generated password once), and resets its
/// password whenever one is configured, so an operator can always get back in. A reset locks out
/// whoever had the old password or one of the admin's credentials: every session of the admin ends
/// and every token it holds or approved is revoked, in the same transaction (SPEC §3).
pub async fn bootstrap_admin<S: IdentityStore + MemberControlStore>(
    store: &S,
    password: Option<&Secret>,
) -> anyhow::Result<()> {
    match store.member_by_username("admin").await? {
        Some(admin) => {
            if let Some(pw) = password {
                let hash = hash_password(pw.expose().to_string())
                    .await
                    .map_err(|e| anyhow!(e.text))?;
                store.reset_password(admin.id, &hash).await?;
                tracing::info!(
                    "the admin password was set from the configuration; the admin's sessions and \
                     tokens were revoked"
                );
            }
        }
        None if store.member_count().await? == 0 => {
            let (pw, generated) = match password {
                Some(pw) => (pw.expose().to_string(), false),
                None => (random_alnum(24), true),
            };
            let hash = hash_password(pw.clone())
                .await
                .map_err(|e| anyhow!(e.text))?;
            store
                .create_member("admin", &hash, "Administrator", Role::Admin)
                .await?;
            if generated {
                // Printed once, on the console only: it is not stored anywhere in clear.
                println!("Created the administrator account. Username: admin  Password: {pw}");
                println!(
                    "(shown only now; set --admin-password-file or HANGAR_ADMIN_PASSWORD_FILE to change it)"
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
