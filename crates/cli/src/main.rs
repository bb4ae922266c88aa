//! `nudge`: wins back shoppers who stopped half-way, with timed, personal SMS and WhatsApp
//! nudges.

mod commands;
mod config;
mod replay;
mod serve;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nudge",
    version,
    about = "Recover abandoned carts and conversations with timed SMS and WhatsApp nudges"
)]
struct Cli {
    /// Configuration file (TOML); defaults to ./nudge.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server and the timer and send workers.
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate(commands::DatabaseArgs),
    /// Manage API keys.
    #[command(name = "api-key", subcommand)]
    ApiKey(commands::ApiKeyCommand),
    /// Check flow files.
    #[command(subcommand)]
    Flows(commands::FlowsCommand),
    /// Run flows over a historical event log on a virtual clock and print a JSON report.
    Replay(replay::ReplayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(cli.config.as_deref(), args).await,
            Command::Migrate(args) => commands::migrate(cli.config.as_deref(), args).await,
            Command::ApiKey(command) => commands::api_key(cli.config.as_deref(), command).await,
            Command::Flows(command) => commands::flows(cli.config.as_deref(), command),
            Command::Replay(args) => replay::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
