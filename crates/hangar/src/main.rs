//! `hangar`: the server (`hangar serve`). Parses the configuration, builds the state, serves.

use clap::{Parser, Subcommand};
use hangar::{config, serve};
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HANGAR_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn")
            }),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
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
