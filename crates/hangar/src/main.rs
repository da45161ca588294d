//! `hangar`: the server (`hangar serve`), the operator's commands (`hangar admin`), the
//! readiness probe (`hangar probe`) and the command-line client (`hangar login`, `upload`,
//! `download`, `ls`, `share`). Parses the command line and hands over to the library half.

use clap::{Parser, Subcommand};
use hangar::config::LogFormat;
use hangar::{admin, client, config, log_output, probe, serve};
use std::io::IsTerminal;

/// mimalloc instead of glibc's malloc. A request's many small, short-lived allocations (hyper's
/// buffers, header maps, futures, the record's strings) went through glibc's arenas, whose bin
/// consolidation and locking took about a fifth of the runtime workers' samples on the 4 KiB upload
/// path (docs/performance.md, "The server's allocator"). Built without transparent huge pages on
/// its regions (the crate's `no_thp`): with them, what each thread touches is rounded up to 2 MiB,
/// and a server after the bench's small-file rounds held 17–18 MiB more (69 against 52 MiB) for no
/// measurable gain in requests per second now (docs/performance.md, "Memory: the allocator without
/// huge pages"). `main` also turns them off for the process, so that a kernel that gives them to
/// every large enough region (`transparent_hugepage=always`) does not either.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hangar",
    version,
    about = "Hangar: a self-hosted file and attachment server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start and taken apart at once: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(config::ServeArgs),
    /// Administer an installation directly (database and blob store), with the same settings as
    /// `serve`; the server may be running. Exit codes: 0 done, 1 failed or found problems, 2 bad usage.
    Admin(admin::AdminArgs),
    /// Ask a node on this machine whether it is ready (GET /readyz on its --listen address), for
    /// container health checks. Exit codes: 0 ready, 1 not ready or not answering.
    Probe(probe::ProbeArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// A command with its settings resolved.
enum Resolved {
    Serve(Box<config::Config>),
    Admin(Box<admin::AdminArgs>),
    Probe(probe::ProbeArgs),
    Client(client::ClientCommand),
}

fn main() -> std::process::ExitCode {
    // See `ALLOCATOR`. A kernel without the setting changes nothing: no reason to stop.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    // The server's settings are resolved (and checked) first: they say how to log.
    let (command, format) = match cli.command {
        Command::Serve(args) => match config::Config::resolve(args) {
            Ok(config) => {
                let format = config.log_format;
                (Resolved::Serve(Box::new(config)), format)
            }
            Err(e) => {
                eprintln!("hangar: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        Command::Admin(args) => (Resolved::Admin(Box::new(args)), LogFormat::Text),
        Command::Probe(args) => (Resolved::Probe(args), LogFormat::Text),
        Command::Client(command) => (Resolved::Client(command), LogFormat::Text),
    };
    // The server logs to stdout at `info`; the operator's commands print their results on stdout
    // and log only warnings, on stderr.
    let (default_filter, to_stderr) = match command {
        Resolved::Serve(_) => ("info,sqlx=warn,tower_http=warn", false),
        Resolved::Admin(_) | Resolved::Probe(_) | Resolved::Client(_) => ("warn", true),
    };
    // Held to the end of `main`: dropping it writes out the log lines still buffered.
    let _logs = init_logs(default_filter, to_stderr, format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hangar: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match command {
        Resolved::Serve(config) => runtime.block_on(serve::run(*config)),
        Resolved::Probe(args) => runtime.block_on(probe::run(args)),
        Resolved::Client(command) => runtime.block_on(client::run(command)),
        Resolved::Admin(args) => match runtime.block_on(admin::run(*args)) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, once, on stderr (the log goes to stdout).
            eprintln!("hangar: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs at `HANGAR_LOG` (else `default_filter`), as `key=value` text or one JSON object per line
/// whose keys are the event's fields (`flatten_event`), with `timestamp`, `level` and `target`.
/// Logs on stdout (the server's) go through `log_output`'s buffer; the returned guard writes it out.
fn init_logs(
    default_filter: &str,
    to_stderr: bool,
    format: LogFormat,
) -> Option<log_output::FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANGAR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if to_stderr {
        match format {
            LogFormat::Json => logs
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .init(),
            LogFormat::Text => logs
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init(),
        }
        return None;
    }
    let (stdout, guard) = match log_output::init() {
        Ok(batched) => batched,
        Err(e) => {
            // No thread for the buffer: every line is written at once, as before.
            eprintln!("hangar: logging unbuffered ({e})");
            match format {
                LogFormat::Json => logs
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .init(),
                LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
            }
            return None;
        }
    };
    // Access-log lines are formatted by `hangar_api::access_log` into the same buffer (in the same
    // format, and only where `HANGAR_LOG` lets them through), unless colours are wanted.
    let ansi = std::io::stdout().is_terminal();
    if !ansi {
        let direct = match format {
            LogFormat::Json => hangar_api::access_log::Format::Json,
            LogFormat::Text => hangar_api::access_log::Format::Text,
        };
        let lines = stdout.clone();
        hangar_api::access_log::write_directly(direct, move |line| lines.append(line));
    }
    match format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(stdout)
            .init(),
        LogFormat::Text => logs.with_writer(stdout).with_ansi(ansi).init(),
    }
    Some(guard)
}
