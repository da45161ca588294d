//! `hangar`: the server (`hangar serve`), the operator's commands (`hangar admin`) and the
//! readiness probe (`hangar probe`). Parses the command line and hands over to the library half.

use clap::{Parser, Subcommand};
use hangar::{admin, config, probe, serve};
use std::io::IsTerminal;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The server logs to stdout at `info`; the operator's commands print their results on stdout
    // and log only warnings, on stderr.
    let (default_filter, to_stderr) = match cli.command {
        Command::Serve(_) => ("info,sqlx=warn,tower_http=warn", false),
        Command::Admin(_) | Command::Probe(_) => ("warn", true),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANGAR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if to_stderr {
        logs.with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    } else {
        logs.with_ansi(std::io::stdout().is_terminal()).init();
    }
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
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(async {
            let config = config::Config::resolve(args)?;
            serve::run(config).await
        }),
        Command::Probe(args) => runtime.block_on(probe::run(args)),
        Command::Admin(args) => match runtime.block_on(admin::run(args)) {
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
