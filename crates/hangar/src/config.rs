//! The configuration contract of SPEC §1: every setting as a flag, a `HANGAR_*` environment variable,
//! or a key of the TOML file given by `--config`; flags win over the environment, the environment over
//! the file, the file over the defaults.

use anyhow::{anyhow, bail, Context};
use clap::Args;
use hangar_api::client::TrustedProxies;
use hangar_core::net::AllowList;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where an installation keeps its data: what `hangar serve` and every `hangar admin` command
/// share.
#[derive(Args, Debug, Default, Clone)]
pub struct StoreArgs {
    /// TOML file with any of the settings (keys are the flag names with `_` for `-`).
    #[arg(long, env = "HANGAR_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the database, blobs and keys [default: ./hangar-data].
    #[arg(long, env = "HANGAR_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Metadata database [default: sqlite://<data-dir>/hangar.db].
    #[arg(
        long,
        env = "HANGAR_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// File whose first line is the database URL (keeps a password in it out of `ps`).
    #[arg(
        long,
        env = "HANGAR_DATABASE_URL_FILE",
        value_name = "FILE",
        global = true
    )]
    pub database_url_file: Option<PathBuf>,
    /// Blob storage [default: file://<data-dir>/blobs].
    #[arg(long, env = "HANGAR_STORAGE_URL", value_name = "URL", global = true)]
    pub storage_url: Option<String>,
    /// The server's secret key (32 bytes; created on the first start only)
    /// [default: <data-dir>/secret.key].
    #[arg(
        long,
        env = "HANGAR_SECRET_KEY_FILE",
        value_name = "FILE",
        global = true
    )]
    pub secret_key_file: Option<PathBuf>,
    /// How long the bytes of a file nothing refers to any more are kept before they are deleted
    /// (`30s`, `1h`, `7d`) [default: 1h].
    #[arg(
        long,
        env = "HANGAR_BLOB_GRACE",
        value_name = "DURATION",
        global = true
    )]
    pub blob_grace: Option<String>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "HANGAR_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// The server's URL as clients see it [default: http://<bound address>].
    #[arg(long, env = "HANGAR_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// A second origin that serves user content (downloads, public and share links) [default: none].
    #[arg(long, env = "HANGAR_CONTENT_URL", value_name = "URL")]
    pub content_url: Option<String>,
    /// Password of the `admin` account, set at every start [default: generated once, printed].
    /// Visible to other users in `ps`: prefer --admin-password-file.
    #[arg(
        long,
        env = "HANGAR_ADMIN_PASSWORD",
        value_name = "PW",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// File whose first line is the password of the `admin` account (as --admin-password).
    #[arg(long, env = "HANGAR_ADMIN_PASSWORD_FILE", value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// Comma-separated hosts (`host` or `host:port`) that URL fetching and webhooks may reach.
    #[arg(long, env = "HANGAR_FETCH_ALLOW", value_name = "HOSTS")]
    pub fetch_allow: Option<String>,
    /// Largest accepted file, in bytes (suffixes K, M, G, T and KiB, MiB, GiB, TiB) [default: 10 GiB].
    #[arg(long, env = "HANGAR_MAX_FILE_SIZE", value_name = "BYTES")]
    pub max_file_size: Option<String>,
    /// Default quota of a new space, in bytes [default: unlimited].
    #[arg(long, env = "HANGAR_SPACE_QUOTA", value_name = "BYTES")]
    pub space_quota: Option<String>,
    /// The most bytes of attachments one member (or one application's bot member) may own,
    /// counted at their logical sizes [default: unlimited].
    #[arg(long, env = "HANGAR_USER_QUOTA", value_name = "BYTES")]
    pub user_quota: Option<String>,
    /// An attachment attached to no message or issue for this long (since its upload, or since its
    /// last message or issue was deleted) is deleted (`30s`, `24h`, `7d`) [default: never].
    #[arg(long, env = "HANGAR_UNATTACHED_TTL", value_name = "DURATION")]
    pub unattached_ttl: Option<String>,
    /// Seconds a remote server has to connect and answer when fetching a URL [default: 30].
    #[arg(long, env = "HANGAR_FETCH_TIMEOUT", value_name = "SECS")]
    pub fetch_timeout: Option<u64>,
    /// Comma-separated proxies (addresses or CIDR networks such as 10.0.0.0/8) whose
    /// X-Forwarded-For / Forwarded headers name the client [default: none].
    #[arg(long, env = "HANGAR_TRUSTED_PROXIES", value_name = "CIDRS")]
    pub trusted_proxies: Option<String>,
    /// Address of a second listener that serves only `GET /metrics` (Prometheus) [default: off].
    #[arg(long, env = "HANGAR_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Log format: `text` (key=value) or `json` (one object per line) [default: text].
    #[arg(long, env = "HANGAR_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// A login session unused for this long ends (`30m`, `24h`) [default: 24h].
    #[arg(long, env = "HANGAR_SESSION_IDLE_TIMEOUT", value_name = "DURATION")]
    pub session_idle_timeout: Option<String>,
    /// Lifetime of a personal token created without `expires` (`30d`, or `never`) [default: 90d].
    #[arg(long, env = "HANGAR_TOKEN_LIFETIME", value_name = "DURATION")]
    pub token_lifetime: Option<String>,
    /// Failed logins (or client authentications) allowed per username (or client id) in 15
    /// minutes before further attempts answer 429 [default: 5].
    #[arg(long, env = "HANGAR_LOGIN_FAILURES_PER_USER", value_name = "N")]
    pub login_failures_per_user: Option<u32>,
    /// Failed logins and client authentications allowed per client address in a minute
    /// [default: 30].
    #[arg(long, env = "HANGAR_LOGIN_FAILURES_PER_ADDRESS", value_name = "N")]
    pub login_failures_per_address: Option<u32>,
    /// How long a resumable (tus) upload waits for its next byte before it fails and its bytes are
    /// freed (`Upload-Expires`; `30s`, `24h`, `7d`) [default: 24h].
    #[arg(long, env = "HANGAR_TUS_EXPIRY", value_name = "DURATION")]
    pub tus_expiry: Option<String>,
    /// Open connections served at once; past it, new connections wait in the listen queue
    /// [default: 4096].
    #[arg(long, env = "HANGAR_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// A client that takes none of a response's bytes for this long is disconnected (`60s`)
    /// [default: 60s].
    #[arg(long, env = "HANGAR_SEND_TIMEOUT", value_name = "DURATION")]
    pub send_timeout: Option<String>,
    /// Comma-separated origins (`https://app.example.com`, or `*`) whose pages may call the API
    /// with bearer tokens (CORS; cookies are never accepted cross-origin) [default: none].
    #[arg(long, env = "HANGAR_CORS_ORIGINS", value_name = "ORIGINS")]
    pub cors_origins: Option<String>,
    /// clamd that scans every new file for malware (`host:port`, `tcp://host:port` or
    /// `unix:/path/to/clamd.sock`); files are served only once clean [default: off].
    #[arg(long, env = "HANGAR_CLAMD", value_name = "ADDR")]
    pub clamd: Option<String>,
    /// A connection (HTTP/1 keep-alive or HTTP/2) on which no request starts for this long is
    /// closed gracefully [default: 5m].
    #[arg(long, env = "HANGAR_IDLE_TIMEOUT", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
}

impl ServeArgs {
    /// The settings given as `hangar serve` flags (for tests that assemble a node in-process; the
    /// `HANGAR_*` environment still applies, as for the binary).
    pub fn from_flags(flags: &[&str]) -> Result<ServeArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            args: ServeArgs,
        }
        let argv = std::iter::once("hangar-serve").chain(flags.iter().copied());
        <Flags as clap::Parser>::try_parse_from(argv).map(|f| f.args)
    }
}

/// A size in the TOML file: a number of bytes or a string with a unit.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn into_text(self) -> String {
        match self {
            Size::Bytes(n) => n.to_string(),
            Size::Text(s) => s,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_url_file: Option<PathBuf>,
    storage_url: Option<String>,
    secret_key_file: Option<PathBuf>,
    public_url: Option<String>,
    content_url: Option<String>,
    admin_password: Option<String>,
    admin_password_file: Option<PathBuf>,
    fetch_allow: Option<String>,
    max_file_size: Option<Size>,
    space_quota: Option<Size>,
    user_quota: Option<Size>,
    unattached_ttl: Option<String>,
    fetch_timeout: Option<u64>,
    blob_grace: Option<String>,
    trusted_proxies: Option<String>,
    metrics_listen: Option<String>,
    log_format: Option<String>,
    session_idle_timeout: Option<String>,
    token_lifetime: Option<String>,
    login_failures_per_user: Option<u32>,
    login_failures_per_address: Option<u32>,
    tus_expiry: Option<String>,
    max_connections: Option<u32>,
    send_timeout: Option<String>,
    cors_origins: Option<String>,
    clamd: Option<String>,
    idle_timeout: Option<String>,
}

/// A secret setting: it never prints (`Debug` and the configuration summary show `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Settings after merging flags, environment, file and defaults, each checked (SPEC §1: a bad
/// value is refused before anything is created).
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub storage_url: String,
    pub secret_key_file: PathBuf,
    /// Without a trailing `/`.
    pub public_url: Option<String>,
    /// The separate content origin, without a trailing `/`.
    pub content_url: Option<String>,
    pub admin_password: Option<Secret>,
    pub fetch_allow: Vec<String>,
    pub fetch_timeout_secs: u64,
    pub max_file_size: u64,
    pub space_quota: Option<u64>,
    /// The most bytes of attachments a member may own; None: no limit.
    pub user_quota: Option<u64>,
    /// How long an attachment attached to nothing is kept; None: for ever.
    pub unattached_ttl: Option<Duration>,
    pub blob_grace: Duration,
    pub trusted_proxies: TrustedProxies,
    /// The metrics listener's address; None: no metrics.
    pub metrics_listen: Option<String>,
    pub log_format: LogFormat,
    /// A session unused this long ends.
    pub session_idle_timeout: Duration,
    /// The lifetime of a personal token created without an expiry; None: none.
    pub token_lifetime: Option<Duration>,
    /// Failed attempts allowed per name in 15 minutes, and per address in a minute (SPEC §3).
    pub login_failures_per_user: u32,
    pub login_failures_per_address: u32,
    /// How long an idle resumable upload lives (SPEC §9.1: 24 h).
    pub tus_expiry: Duration,
    /// Connections served at once (SPEC §11: 4096).
    pub max_connections: u32,
    /// How long a response may wait for its client to take bytes (SPEC §11: 60 s).
    pub send_timeout: Duration,
    /// Origins allowed to call the API cross-origin (`*` for any); empty: no CORS.
    pub cors_origins: Vec<String>,
    /// A connection that starts no request for this long is closed.
    pub idle_timeout: Duration,
    /// The clamd that scans new files (SPEC §9.6); None: no scanning.
    pub clamd: Option<hangar_jobs::clamd::ClamdAddr>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` fields after the level and target.
    #[default]
    Text,
    /// One JSON object per line, the event's fields as top-level keys.
    Json,
}

pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 << 30;
/// `--session-idle-timeout` when not given.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(24 * 3600);
/// `--token-lifetime` when not given.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// A secret given directly or as a file (`--x` / `--x-file`), from one source (the flags and
/// environment, or the TOML file): both at once is a mistake.
fn secret_from(
    flag: &str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    match (value, file) {
        (Some(_), Some(_)) => bail!("--{flag} and --{flag}-file are both given: give one"),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => read_secret_file(&format!("--{flag}-file"), &path).map(Some),
        (None, None) => Ok(None),
    }
}

/// The first line of a secret file, without its line ending.
fn read_secret_file(flag: &str, path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{flag}: cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        bail!("{flag}: {} is empty", path.display());
    }
    Ok(line.to_string())
}

impl Config {
    /// The configuration of `hangar admin` commands: the same file, environment and defaults as
    /// `hangar serve`, with the data settings from their flags.
    pub fn resolve_store(store: StoreArgs) -> anyhow::Result<Config> {
        Self::resolve(ServeArgs {
            store,
            ..ServeArgs::default()
        })
    }

    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let store = args.store;
        let file = match &store.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow!("--config: cannot read {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    anyhow!(
                        "--config: invalid configuration file {}: {}",
                        path.display(),
                        e.message()
                    )
                })?
            }
            None => FileConfig::default(),
        };
        let data_dir = store
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./hangar-data"));
        let database_url =
            match secret_from("database-url", store.database_url, store.database_url_file)? {
                Some(url) => Some(url),
                None => secret_from("database-url", file.database_url, file.database_url_file)?,
            }
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("hangar.db").display()));
        if hangar_db::DatabaseKind::of(&database_url).is_err() {
            bail!(
                "--database-url: unsupported database URL {}: give a sqlite:// or postgres:// URL",
                redact_url(&database_url)
            );
        }
        let storage_url = store
            .storage_url
            .or(file.storage_url)
            .unwrap_or_else(|| format!("file://{}", data_dir.join("blobs").display()));
        let secret_key_file = store
            .secret_key_file
            .or(file.secret_key_file)
            .unwrap_or_else(|| data_dir.join("secret.key"));
        let max_file_size = match args
            .max_file_size
            .or(file.max_file_size.map(Size::into_text))
        {
            // Sizes are stored as signed 64-bit numbers: larger means unlimited anyway.
            Some(s) => parse_size(&s)
                .map_err(|e| anyhow!("--max-file-size: {s:?} is not a size: {e}"))?
                .min(i64::MAX as u64),
            None => DEFAULT_MAX_FILE_SIZE,
        };
        let space_quota = match args.space_quota.or(file.space_quota.map(Size::into_text)) {
            Some(s) => Some(
                parse_size(&s).map_err(|e| anyhow!("--space-quota: {s:?} is not a size: {e}"))?,
            ),
            None => None,
        };
        let user_quota = match args.user_quota.or(file.user_quota.map(Size::into_text)) {
            Some(s) => Some(
                parse_size(&s).map_err(|e| anyhow!("--user-quota: {s:?} is not a size: {e}"))?,
            ),
            None => None,
        };
        let unattached_ttl = match args.unattached_ttl.or(file.unattached_ttl) {
            Some(s) => match parse_duration(&s) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => bail!("--unattached-ttl: {s:?} must be longer than 0s"),
                Err(e) => bail!("--unattached-ttl: {s:?} is not a duration: {e}"),
            },
            None => None,
        };
        let blob_grace = match store.blob_grace.or(file.blob_grace) {
            Some(s) => parse_duration(&s)
                .map_err(|e| anyhow!("--blob-grace: {s:?} is not a duration: {e}"))?,
            None => hangar_db::DEFAULT_BLOB_GRACE,
        };
        let session_idle_timeout = match args.session_idle_timeout.or(file.session_idle_timeout) {
            Some(s) => parse_duration(&s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    anyhow!(
                        "--session-idle-timeout: {s:?} is not a duration above zero (`30m`, `24h`)"
                    )
                })?,
            None => DEFAULT_SESSION_IDLE,
        };
        let token_lifetime = match args.token_lifetime.or(file.token_lifetime) {
            Some(s) if s.trim() == "never" => None,
            Some(s) => Some(
                parse_duration(&s)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        anyhow!("--token-lifetime: {s:?} is not a duration above zero (`30d`) or `never`")
                    })?,
            ),
            None => Some(DEFAULT_TOKEN_LIFETIME),
        };
        let login_failures_per_user = args
            .login_failures_per_user
            .or(file.login_failures_per_user)
            .unwrap_or(5);
        if login_failures_per_user == 0 {
            bail!("--login-failures-per-user: give at least 1");
        }
        let login_failures_per_address = args
            .login_failures_per_address
            .or(file.login_failures_per_address)
            .unwrap_or(30);
        if login_failures_per_address == 0 {
            bail!("--login-failures-per-address: give at least 1");
        }
        let tus_expiry = match args.tus_expiry.or(file.tus_expiry) {
            Some(s) => match parse_duration(&s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => bail!("--tus-expiry: {s:?} must be longer than 0s"),
                Err(e) => bail!("--tus-expiry: {s:?} is not a duration: {e}"),
            },
            None => Duration::from_secs(24 * 3600),
        };
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(4096);
        if max_connections == 0 {
            bail!("--max-connections: give at least 1");
        }
        let send_timeout = match args.send_timeout.or(file.send_timeout) {
            Some(s) => match parse_duration(&s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => bail!("--send-timeout: {s:?} must be longer than 0s"),
                Err(e) => bail!("--send-timeout: {s:?} is not a duration: {e}"),
            },
            None => Duration::from_secs(60),
        };
        let idle_timeout = match args.idle_timeout.or(file.idle_timeout) {
            Some(s) => match parse_duration(&s) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => bail!("--idle-timeout: {s:?} must be longer than 0s"),
                Err(e) => bail!("--idle-timeout: {s:?} is not a duration: {e}"),
            },
            None => Duration::from_secs(300),
        };
        let cors_origins = match args.cors_origins.or(file.cors_origins) {
            Some(s) => parse_origins(&s).map_err(|e| anyhow!("--cors-origins: {e}"))?,
            None => Vec::new(),
        };
        let clamd = match args.clamd.or(file.clamd).filter(|a| !a.trim().is_empty()) {
            Some(addr) => Some(
                hangar_jobs::clamd::ClamdAddr::parse(&addr).map_err(|e| anyhow!("--clamd: {e}"))?,
            ),
            None => None,
        };
        let fetch_allow: Vec<String> = args
            .fetch_allow
            .or(file.fetch_allow)
            .map(|s| {
                s.split(',')
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        AllowList::parse(&fetch_allow).map_err(|e| anyhow!("--fetch-allow: {e}"))?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        check_listen("--listen", &listen)?;
        let trusted_proxies = match args.trusted_proxies.or(file.trusted_proxies) {
            Some(list) => {
                TrustedProxies::parse(&list).map_err(|e| anyhow!("--trusted-proxies: {e}"))?
            }
            None => TrustedProxies::default(),
        };
        let metrics_listen = args
            .metrics_listen
            .or(file.metrics_listen)
            .filter(|a| !a.trim().is_empty());
        if let Some(addr) = &metrics_listen {
            check_listen("--metrics-listen", addr)?;
        }
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("--log-format: {other:?} is not a log format: give text or json"),
        };
        let public_url = match args.public_url.or(file.public_url) {
            Some(url) => Some(check_public_url("--public-url", &url)?),
            None => None,
        };
        let content_url = match args.content_url.or(file.content_url) {
            Some(url) if !url.trim().is_empty() => {
                let url = check_public_url("--content-url", &url)?;
                if url::Url::parse(&url)?.path() != "/" {
                    bail!("--content-url: {url:?} must be an origin (no path): downloads keep their paths");
                }
                if public_url.as_deref().is_some_and(|p| same_origin(p, &url)) {
                    bail!("--content-url: {url:?} must be another origin than --public-url");
                }
                Some(url)
            }
            _ => None,
        };
        let admin_password = match secret_from(
            "admin-password",
            args.admin_password,
            args.admin_password_file,
        )? {
            Some(pw) => Some(pw),
            None => secret_from(
                "admin-password",
                file.admin_password,
                file.admin_password_file,
            )?,
        };
        if let Some(pw) = &admin_password {
            hangar_api::auth::validate_password(pw)
                .map_err(|e| anyhow!("--admin-password: {}", e.text))?;
        }
        let config = Config {
            listen,
            data_dir,
            database_url,
            storage_url,
            secret_key_file,
            public_url,
            content_url,
            admin_password: admin_password.map(Secret),
            fetch_allow,
            fetch_timeout_secs: args
                .fetch_timeout
                .or(file.fetch_timeout)
                .unwrap_or(30)
                .max(1),
            max_file_size,
            space_quota,
            user_quota,
            unattached_ttl,
            blob_grace,
            trusted_proxies,
            metrics_listen,
            log_format,
            session_idle_timeout,
            token_lifetime,
            login_failures_per_user,
            login_failures_per_address,
            tus_expiry,
            max_connections,
            send_timeout,
            cors_origins,
            idle_timeout,
            clamd,
        };
        config.blob_dir()?;
        Ok(config)
    }

    /// The local directory named by a `file://` storage URL; None for an `s3://` one.
    pub fn blob_dir(&self) -> anyhow::Result<Option<PathBuf>> {
        match self.storage_url.strip_prefix("file://") {
            Some(path) if !path.is_empty() => Ok(Some(Path::new(path).to_path_buf())),
            _ if self.storage_url.starts_with("s3://") => {
                hangar_blob::S3Config::new(&self.storage_url)
                    .map_err(|e| anyhow!("--storage-url: {e}"))?;
                Ok(None)
            }
            _ => bail!(
                "--storage-url: unsupported storage URL {:?}: use file:///path or s3://BUCKET/PREFIX",
                self.storage_url
            ),
        }
    }

    /// The blob store the storage URL names: a local directory, or an S3 bucket (with
    /// `HANGAR_S3_ENDPOINT`, `HANGAR_S3_REGION` and the `AWS_*` credentials from the environment).
    pub fn open_blobs(&self) -> anyhow::Result<std::sync::Arc<dyn hangar_blob::BlobStore>> {
        Ok(match self.blob_dir()? {
            Some(root) => std::sync::Arc::new(
                hangar_blob::LocalBlobStore::open(root)
                    .map_err(|e| anyhow!("--storage-url: {e}"))?
                    .keeping_unrecorded(self.blob_grace),
            ),
            None => std::sync::Arc::new(
                hangar_blob::S3BlobStore::from_env(&self.storage_url)
                    .map_err(|e| anyhow!("--storage-url: {e}"))?,
            ),
        })
    }

    /// One line with every effective setting, secrets redacted, for the log at start.
    pub fn summary(&self) -> String {
        let or_dash = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(",")
            }
        };
        format!(
            "listen={} public_url={} content_url={} data_dir={} database_url={} storage_url={} secret_key_file={} \
             admin_password={} fetch_allow={} fetch_timeout={}s max_file_size={} space_quota={} \
             user_quota={} unattached_ttl={} blob_grace={}s trusted_proxies={} metrics_listen={} log_format={} \
             session_idle_timeout={}s token_lifetime={} login_failures_per_user={} \
             login_failures_per_address={} tus_expiry={}s max_connections={} send_timeout={}s idle_timeout={}s cors_origins={} clamd={}",
            self.listen,
            self.public_url.as_deref().unwrap_or("<the bound address>"),
            self.content_url.as_deref().unwrap_or("-"),
            self.data_dir.display(),
            redact_url(&self.database_url),
            redact_url(&self.storage_url),
            self.secret_key_file.display(),
            match self.admin_password {
                Some(_) => "<redacted>",
                None => "<unset>",
            },
            or_dash(&self.fetch_allow),
            self.fetch_timeout_secs,
            self.max_file_size,
            self.space_quota
                .map_or("unlimited".to_string(), |q| q.to_string()),
            self.user_quota
                .map_or("unlimited".to_string(), |q| q.to_string()),
            self.unattached_ttl
                .map_or("never".to_string(), |d| format!("{}s", d.as_secs())),
            self.blob_grace.as_secs(),
            self.trusted_proxies,
            self.metrics_listen.as_deref().unwrap_or("off"),
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
            self.session_idle_timeout.as_secs(),
            self.token_lifetime
                .map_or("never".to_string(), |d| format!("{}s", d.as_secs())),
            self.login_failures_per_user,
            self.login_failures_per_address,
            self.tus_expiry.as_secs(),
            self.max_connections,
            self.send_timeout.as_secs(),
            self.idle_timeout.as_secs(),
            or_dash(&self.cors_origins),
            self.clamd
                .as_ref()
                .map_or("off".to_string(), |a| a.to_string()),
        )
    }
}

/// A comma-separated list of origins: each `*`, or `http(s)://host[:port]` with nothing after it.
fn parse_origins(text: &str) -> anyhow::Result<Vec<String>> {
    let mut origins = Vec::new();
    for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if origin == "*" {
            origins.push(origin.to_string());
            continue;
        }
        let url = url::Url::parse(origin)
            .map_err(|e| anyhow!("{origin:?} is not an origin (scheme://host[:port]): {e}"))?;
        let bare = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.path() == "/"
            && !origin.ends_with('/')
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty();
        if !bare {
            bail!("{origin:?} is not an origin: give http(s)://host[:port], with no path");
        }
        origins.push(url.origin().ascii_serialization());
    }
    if origins.is_empty() {
        bail!("give at least one origin, or leave the setting out");
    }
    Ok(origins)
}

/// An address to bind: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` (resolved when binding).
fn check_listen(flag: &str, listen: &str) -> anyhow::Result<()> {
    if listen.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        anyhow!(
            "{flag}: {listen:?} is not an address to listen on (HOST:PORT, e.g. 127.0.0.1:8080)"
        )
    };
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !host_ok || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

/// An absolute `http` or `https` URL with a host; answered without a trailing `/`.
fn check_public_url(flag: &str, value: &str) -> anyhow::Result<String> {
    let bad = |why: &str| anyhow!("{flag}: {value:?} {why}");
    let url = url::Url::parse(value).map_err(|_| bad("is not an absolute http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// Whether two URLs have the same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// A URL with its password (if any) replaced, for logs.
pub fn redact_url(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("<redacted>"));
            url.to_string()
        }
        _ => value.to_string(),
    }
}

/// A duration: a whole number with `s`, `m`, `h` or `d` (`30s`, `24h`, `7d`).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let Some(unit) = s.chars().last() else {
        bail!("no duration");
    };
    let seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => bail!("a duration ends with s, m, h or d"),
    };
    let number: u64 = s[..s.len() - 1]
        .trim()
        .parse()
        .context("a duration is a whole number and a unit")?;
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .context("duration too long")
}

/// `1048576`, `10G`, `10GiB`, `512 MiB`, `1.5G` are all sizes in bytes.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (s[..split].trim(), s[split..].trim());
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => bail!("unknown unit {other:?}"),
    };
    if number.is_empty() {
        bail!("no number");
    }
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(factor).context("size too large");
    }
    let f: f64 = number.parse().context("not a number")?;
    let bytes = f * factor as f64;
    if !(0.0..1.8e19).contains(&bytes) {
        bail!("size out of range");
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("2 MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1500);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn observability_settings_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hangar.toml");
        std::fs::write(
            &path,
            "trusted_proxies = \"10.0.0.0/8, ::1\"\nmetrics_listen = \"127.0.0.1:9100\"\n\
             log_format = \"json\"\n",
        )
        .unwrap();
        let args = |path: &Path| ServeArgs {
            store: StoreArgs {
                config: Some(path.to_path_buf()),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = Config::resolve(args(&path)).unwrap();
        assert!(c.trusted_proxies.trusts("10.2.3.4".parse().unwrap()));
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.summary().contains("trusted_proxies=10.0.0.0/8,::1/128"));
        let defaults = Config::resolve(ServeArgs::default()).unwrap();
        assert_eq!(defaults.metrics_listen, None);
        assert_eq!(defaults.log_format, LogFormat::Text);
        assert!(defaults.trusted_proxies.is_empty());
        for (text, flag) in [
            ("trusted_proxies = \"10.0.0.0/40\"", "--trusted-proxies"),
            ("metrics_listen = \"nowhere\"", "--metrics-listen"),
            ("log_format = \"yaml\"", "--log-format"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = Config::resolve(args(&path)).unwrap_err().to_string();
            assert!(e.starts_with(flag), "{e}");
        }
    }

    #[test]
    fn clamd_is_off_by_default_and_checked_from_flag_or_file() {
        use hangar_jobs::clamd::ClamdAddr;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hangar.toml");
        let from_file = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::resolve(ServeArgs {
                store: StoreArgs {
                    config: Some(path.clone()),
                    ..Default::default()
                },
                ..Default::default()
            })
        };
        assert_eq!(from_file("").unwrap().clamd, None);
        assert!(from_file("").unwrap().summary().contains("clamd=off"));
        let c = from_file("clamd = \"unix:/run/clamav/clamd.ctl\"").unwrap();
        assert_eq!(
            c.clamd,
            Some(ClamdAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert!(c.summary().contains("clamd=unix:/run/clamav/clamd.ctl"));
        // The flag wins over the file.
        let flagged = Config::resolve(ServeArgs {
            store: StoreArgs {
                config: Some(path.clone()),
                ..Default::default()
            },
            clamd: Some("tcp://127.0.0.1:3310".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(flagged.clamd, Some(ClamdAddr::Tcp("127.0.0.1:3310".into())));
        let e = from_file("clamd = \"clamd\"").unwrap_err().to_string();
        assert!(e.starts_with("--clamd"), "{e}");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hangar.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nmax_file_size = 1024\ndata_dir = \"/tmp/x\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            store: StoreArgs {
                config: Some(path.clone()),
                ..Default::default()
            },
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        };
        let c = Config::resolve(args).unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.max_file_size, 1024);
        assert_eq!(c.database_url, "sqlite:///tmp/x/hangar.db");
        assert_eq!(c.storage_url, "file:///tmp/x/blobs");
        std::fs::write(&path, "no_such_key = 1\n").unwrap();
        assert!(Config::resolve_store(StoreArgs {
            config: Some(path),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn cors_origins_are_bare_origins() {
        assert_eq!(
            parse_origins("https://app.example, http://localhost:3000").unwrap(),
            ["https://app.example", "http://localhost:3000"]
        );
        assert_eq!(parse_origins("*").unwrap(), ["*"]);
        for bad in [
            "https://app.example/",
            "https://app.example/ui",
            "ftp://x",
            "app.example",
            " , ",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
