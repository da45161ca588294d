//! `hangar admin`: the operator's commands (SPEC §9.8). They read the same configuration as
//! `hangar serve` and work on the database and blob store directly, beside a running server or
//! without one, on SQLite and local disk or on PostgreSQL and S3 (`backup` only on the first: the
//! second has its own tools). Exit codes: 0 done, 1 failed or found problems, 2 bad usage.

use crate::config::{Config, StoreArgs};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use hangar_blob::{BlobStore, LocalBlobStore};
use hangar_core::ids::valid_username;
use hangar_core::jobs::JobStore;
use hangar_core::model::Role;
use hangar_core::scan::ScanStore;
use hangar_core::store::{
    BlobLifecycleStore, Delivery, IdentityStore, MemberControlStore, OutboxStore, StoreError,
};
use hangar_db::{DatabaseKind, PgStore, SqliteStore};
use hangar_jobs::maintenance::{Maintenance, MaintenanceError};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create members, reset their passwords, disable them.
    #[command(subcommand)]
    User(UserCommand),
    /// Check that every blob something refers to is stored; prints one line per problem and exits
    /// 1 when there is any.
    Check {
        /// Also re-hash every referenced blob (reads every stored byte).
        #[arg(long)]
        scrub: bool,
    },
    /// Delete now the bytes the background collector would delete: unreferenced blobs past the
    /// grace period, stored blobs the database does not know (older than the grace period), and
    /// abandoned temporaries.
    Gc {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the database, the blobs it refers to and the secret key into DIR (which must not exist
    /// or be empty), consistently, while the server runs. `hangar serve --data-dir DIR` starts
    /// from it.
    Backup {
        /// Where the backup goes.
        dir: PathBuf,
    },
    /// List webhook and application deliveries, and send failed ones again.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Scan again every file whose malware scan failed (for example after raising clamd's
    /// StreamMaxLength); a running `hangar serve --clamd` does the scans. Prints one SHA-256 per
    /// line.
    Rescan,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a member. The password is read from the terminal, or from the first line of
    /// standard input when that is not a terminal.
    Create {
        name: String,
        /// Make the member an administrator.
        #[arg(long)]
        admin: bool,
        /// The name shown to others [default: NAME].
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
    },
    /// Set a member's password (read as for `create`), ending every session and revoking every
    /// token it holds or approved.
    ResetPassword { name: String },
    /// Disable a member: its logins fail, and every session and token it holds or approved ends.
    Disable { name: String },
}

#[derive(Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// Deliveries of every application, newest first, one per line.
    List {
        /// Which deliveries.
        #[arg(long, value_enum, default_value_t = StatusFilter::Failed)]
        status: StatusFilter,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Send failed deliveries again (with a fresh count of attempts); a running server sends them
    /// within a second, a stopped one at its next start.
    Retry {
        /// Delivery ids (as listed).
        #[arg(required_unless_present = "all_failed")]
        ids: Vec<String>,
        /// Every failed delivery.
        #[arg(long, conflicts_with = "ids")]
        all_failed: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Failed,
    Pending,
    Delivered,
    All,
}

/// What the commands need of a metadata store; both backends have it.
pub trait AdminStore:
    IdentityStore
    + MemberControlStore
    + OutboxStore
    + BlobLifecycleStore
    + JobStore
    + ScanStore
    + Clone
    + 'static
{
}

impl<S> AdminStore for S where
    S: IdentityStore
        + MemberControlStore
        + OutboxStore
        + BlobLifecycleStore
        + JobStore
        + ScanStore
        + Clone
        + 'static
{
}

/// Runs one command; an error is printed by `main` (exit 1).
pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let config = Config::resolve_store(args.store)?;
    let url = config.database_url.clone();
    match DatabaseKind::of(&url).map_err(|e| anyhow!("--database-url: {e}"))? {
        DatabaseKind::Sqlite => {
            let store = SqliteStore::open_existing(&url)
                .await
                .map_err(|e| anyhow!("--database-url: {e}"))?
                .with_blob_grace(config.blob_grace)
                .announcing_changes();
            let result = match args.command {
                AdminCommand::Backup { dir } => backup(&config, &store, &dir).await,
                command => run_on(&config, &store, command).await,
            };
            store.close().await;
            result
        }
        DatabaseKind::Postgres => {
            // Like SQLite's open_existing: a command never makes a schema in an empty database.
            let exists = PgStore::database_exists(&url)
                .await
                .map_err(|e| anyhow!("--database-url: {e}"))?;
            if !exists {
                bail!("--database-url: the database holds no Hangar installation");
            }
            let store = PgStore::open(&url)
                .await
                .map_err(|e| anyhow!("--database-url: {e}"))?
                .with_blob_grace(config.blob_grace);
            let result = run_on(&config, &store, args.command).await;
            store.close().await;
            result
        }
    }
}

/// The commands that work the same on every backend.
async fn run_on<S: AdminStore>(
    config: &Config,
    store: &S,
    command: AdminCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::User(command) => user(store, command).await,
        AdminCommand::Check { scrub } => check(config, store, scrub).await,
        AdminCommand::Gc { dry_run } => gc(config, store, dry_run).await,
        AdminCommand::Deliveries(command) => deliveries(store, command).await,
        AdminCommand::Rescan => {
            let queued = store.retry_failed_scans().await?;
            for sha256 in &queued {
                println!("{sha256}");
            }
            eprintln!(
                "queued {} failed scan(s) again: a server with --clamd scans them now",
                queued.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Backup { .. } => bail!(
            "--database-url: `hangar admin backup` copies a SQLite installation; on PostgreSQL, back \
             up the database with pg_dump, the bucket with its provider's versioning or replication, \
             and the secret key (docs/operations.md)"
        ),
    }
}

/// The blob store of the settings; a local one must exist (a command never creates one).
fn blob_store(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    if let Some(root) = config.blob_dir()? {
        if !root.is_dir() {
            bail!(
                "--storage-url: there is no blob store at {}",
                root.display()
            );
        }
    }
    config.open_blobs()
}

fn maintenance<S: AdminStore>(config: &Config, store: &S) -> anyhow::Result<Maintenance> {
    let blobs = blob_store(config)?;
    // Objects are found by the keys the database records, as the server does.
    blobs.use_object_keys(Arc::new(store.clone()));
    Ok(Maintenance {
        jobs: Arc::new(store.clone()),
        blob_life: Arc::new(store.clone()),
        blobs,
        blob_grace: config.blob_grace,
    })
}

async fn user<S: AdminStore>(store: &S, command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Create {
            name,
            admin,
            display_name,
        } => {
            if !valid_username(&name) {
                bail!("{name:?} is not a username: 1 to 64 letters, digits, '.', '_' or '-'");
            }
            let hash = new_password_hash(&format!("Password for {name}"))?;
            let role = if admin { Role::Admin } else { Role::Member };
            let display = display_name.unwrap_or_else(|| name.clone());
            let member = match store
                .create_member(&name, &hash.await?, &display, role)
                .await
            {
                Err(StoreError::Conflict(_)) => bail!("the username {name:?} is taken"),
                other => other?,
            };
            println!("created {} {name} (id {})", role.as_str(), member.id);
        }
        UserCommand::ResetPassword { name } => {
            let member = member(store, &name).await?;
            let hash = new_password_hash(&format!("New password for {name}"))?;
            store.reset_password(member.id, &hash.await?).await?;
            println!("set the password of {name}; its sessions and tokens are revoked");
        }
        UserCommand::Disable { name } => {
            let member = member(store, &name).await?;
            store.disable_member(member.id).await?;
            println!("disabled {name}; its sessions and tokens are revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn member<S: AdminStore>(
    store: &S,
    name: &str,
) -> anyhow::Result<hangar_core::model::Member> {
    store
        .member_by_username(name)
        .await?
        .ok_or_else(|| anyhow!("there is no member named {name:?}"))
}

/// Reads a password (checked against the rules) and answers the work of hashing it.
fn new_password_hash(
    prompt: &str,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<String>>> {
    let password = read_password(prompt)?;
    hangar_api::auth::validate_password(&password).map_err(|e| anyhow!("{}", e.text))?;
    Ok(async move {
        hangar_api::auth::hash_password(password)
            .await
            .map_err(|e| anyhow!("{}", e.text))
    })
}

/// From the terminal without echo (asked twice), or the first line of standard input.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_string();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(password);
    }
    let first = read_hidden(&format!("{prompt}: "))?;
    let again = read_hidden("Again: ")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn off echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

async fn check<S: AdminStore>(config: &Config, store: &S, scrub: bool) -> anyhow::Result<ExitCode> {
    let report = maintenance(config, store)?
        .check(scrub, |problem| println!("{problem}"))
        .await?;
    let what = if scrub {
        "checked and re-hashed"
    } else {
        "checked"
    };
    eprintln!(
        "{what} {} referenced blobs: {} problems",
        report.checked,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn gc<S: AdminStore>(config: &Config, store: &S, dry_run: bool) -> anyhow::Result<ExitCode> {
    let report = maintenance(config, store)?.gc(dry_run).await?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for sha256 in &report.unreferenced {
        println!("{verb} {sha256} (unreferenced, past the grace period)");
    }
    for sha256 in &report.unknown {
        println!("{verb} {sha256} (unknown to the database, older than the grace period)");
    }
    eprintln!(
        "{verb} {} unreferenced and {} unknown blobs{}",
        report.unreferenced.len(),
        report.unknown.len(),
        if dry_run {
            String::new()
        } else {
            format!(", and {} abandoned temporaries", report.temporaries)
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn backup(config: &Config, store: &SqliteStore, dir: &Path) -> anyhow::Result<ExitCode> {
    let key = std::fs::read(&config.secret_key_file).map_err(|e| {
        anyhow!(
            "--secret-key-file: cannot read {}: {e}",
            config.secret_key_file.display()
        )
    })?;
    prepare_backup_dir(dir)?;
    let blobs = maintenance(config, store)?;
    let target = LocalBlobStore::open(dir.join("blobs"))
        .map_err(|e| anyhow!("cannot create {}: {e}", dir.join("blobs").display()))?;
    let db = dir.join("hangar.db");
    let url = format!("sqlite://{}", db.display());
    let copies: std::sync::Mutex<Vec<SqliteStore>> = Default::default();
    let report = blobs
        .backup(&target, || async {
            for copy in copies
                .lock()
                .map(|mut c| c.split_off(0))
                .unwrap_or_default()
            {
                copy.close().await;
            }
            remove_database_files(&db)?;
            store.snapshot_into(&db).await?;
            // VACUUM INTO writes without flushing: the copy is on disk before the backup says so.
            std::fs::File::open(&db)
                .and_then(|f| f.sync_all())
                .map_err(|e| {
                    MaintenanceError::Failed(format!("cannot flush {}: {e}", db.display()))
                })?;
            let copy = SqliteStore::open_existing(&url)
                .await
                .map_err(|e| MaintenanceError::Failed(e.to_string()))?;
            if let Ok(mut c) = copies.lock() {
                c.push(copy.clone());
            }
            Ok(Arc::new(copy) as Arc<dyn BlobLifecycleStore>)
        })
        .await?;
    for copy in copies
        .lock()
        .map(|mut c| c.split_off(0))
        .unwrap_or_default()
    {
        copy.close().await;
    }
    write_private(&dir.join("secret.key"), &key)?;
    // The target's staging directory stays (a server makes it anyway); nothing is left in it.
    println!(
        "backed up the database, {} blobs ({} copied) and the secret key to {}",
        report.blobs,
        report.copied,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// DIR must not exist or be empty; it is made with mode 0700.
fn prepare_backup_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the backup directory {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "the backup directory {} is not empty: give a new or empty one",
                dir.display()
            );
        }
        return Ok(());
    }
    crate::startup::create_data_dir(dir)
        .map_err(|_| anyhow!("cannot create the backup directory {}", dir.display()))
}

fn remove_database_files(db: &Path) -> Result<(), MaintenanceError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(MaintenanceError::Failed(format!(
                    "cannot remove {path:?}: {e}"
                )))
            }
        }
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

async fn deliveries<S: AdminStore>(
    store: &S,
    command: DeliveriesCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        DeliveriesCommand::List { status, limit } => {
            let status = match status {
                StatusFilter::Failed => Some("failed"),
                StatusFilter::Pending => Some("pending"),
                StatusFilter::Delivered => Some("delivered"),
                StatusFilter::All => None,
            };
            for d in store.recent_deliveries(status, limit.max(0)).await? {
                println!("{}", delivery_line(&d));
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Retry { ids, all_failed } => {
            let ids = if all_failed {
                store
                    .recent_deliveries(Some("failed"), i64::MAX)
                    .await?
                    .into_iter()
                    .map(|d| d.id)
                    .collect()
            } else {
                ids
            };
            let mut missing = 0;
            for id in &ids {
                if store.retry_delivery(id).await? {
                    println!("queued {id} again");
                } else {
                    eprintln!("hangar: there is no failed delivery {id}");
                    missing += 1;
                }
            }
            Ok(if missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn delivery_line(d: &Delivery) -> String {
    let created =
        time::OffsetDateTime::from_unix_timestamp_nanos(d.created_utc as i128 * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| d.created_utc.to_string());
    format!(
        "{} {created} app={} webhook={} kind={} status={} attempts={} last_status={} error={}",
        d.id,
        d.app_id,
        d.webhook_id.as_deref().unwrap_or("-"),
        d.kind,
        d.status,
        d.attempts,
        d.last_status.map_or("-".to_string(), |s| s.to_string()),
        d.last_error
            .as_deref()
            .map_or("-".to_string(), |e| format!("{e:?}")),
    )
}
