//! `memory-service-bench`: benchmarks of the real `memory-service` binary that
//! print numbers; timing goals live here, never in tests. One subcommand per
//! benchmark (`startup` today; `load` of the data API next), each in its own
//! module, sharing `proc` (children, ports, /health) and `stats` (summaries).
//! `main` parses, runs, and prints an error once as `memory-service-bench: <chain>`.

mod proc;
mod startup;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks of the memory-service binary. Each spawns real instances in a
/// temp directory, on free ports, with a clean environment, and kills them
/// all before exiting (even on error or Ctrl-C).
#[derive(Debug, Parser)]
#[command(name = "memory-service-bench", version)]
struct Cli {
    /// The benchmark to run.
    #[command(subcommand)]
    command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Start-up to healthy, duplicate refusal, start races, idle memory and
    /// /health latency.
    Startup(startup::StartupArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = proc::clean_up_on_signals().and_then(|()| match &cli.command {
        Command::Startup(args) => startup::run(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory-service-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
