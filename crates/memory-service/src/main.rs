//! The binary's edge: parse the command line, set up logging, run the
//! command, and turn its outcome into an exit code. Errors print once, as one
//! line with their context chain.

use std::io::IsTerminal;

use clap::Parser;
use memory_service::cli::{Cli, Command};
use memory_service::config::Config;
use memory_service::exit_code::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            }
            .into();
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("memory-service: {e:#}");
            ExitCode::Error.into()
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::from_env(&cli.config)?;
    match cli.command {
        Command::Serve => memory_service::daemon::run(config),
    }
}
