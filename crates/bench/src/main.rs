//! `memory-service-bench`: benchmarks of the real `memory-service` binary that
//! print numbers; timing goals live here, never in tests. One subcommand per
//! benchmark (`startup`, `load`), each in its own module, sharing `proc`
//! (children, ports, /health), `stats` (summaries) and, for `load`, `client`,
//! `corpus` and `baseline`.
//! `main` parses, runs, and prints an error once as `memory-service-bench: <chain>`.

mod baseline;
mod client;
mod corpus;
mod load;
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
    /// Chat fill vs a bare FTS5 table, mixed writes and searches with /health
    /// latency, file-source indexing under load, and memory.
    Load(load::LoadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = proc::clean_up_on_signals().and_then(|()| match &cli.command {
        Command::Startup(args) => startup::run(args),
        Command::Load(args) => load::run(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory-service-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
