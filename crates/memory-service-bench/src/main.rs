//! `memory-service-bench`: benchmarks of the real `memory-service` binary that
//! print numbers; timing goals live here, never in tests. One subcommand per
//! benchmark (`startup`, `load`, `recall`, `search`), each in its own module,
//! sharing `proc` (children, ports, /health), `stats` (summaries), `client`,
//! `jobs` (acks, waiting for the index), `corpus`, `documents` (generated
//! office files, PDFs, mails) and `baseline`; `recall` and
//! `search` start their instances through `instance`, and `recall` reads its
//! data through `locomo`.
//! `main` parses, runs, and prints an error once as `memory-service-bench: <chain>`.

mod baseline;
mod client;
mod corpus;
mod documents;
mod fusion;
mod instance;
mod jobs;
mod load;
mod locomo;
mod proc;
mod recall;
mod search;
mod startup;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks of the memory-service binary. Each spawns real instances in a
/// temp directory, on ports they bind themselves (`--port 0`), with a clean
/// environment, and kills them all before exiting (even on error or Ctrl-C).
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
    /// LoCoMo retrieval recall@k per question category, BM25-only vs hybrid
    /// (with an embedding model), plus indexing and embedding times.
    Recall(recall::RecallArgs),
    /// /search latency per query kind (two rare words, one common word, a
    /// natural question) in one large project, vs bare FTS5, with RSS.
    Search(search::SearchArgs),
    /// Store search at scale with random vectors standing for embeddings: what the
    /// vector scan and fusion add, without embedding every chunk first.
    Fusion(fusion::FusionArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = proc::clean_up_on_signals().and_then(|()| match &cli.command {
        Command::Startup(args) => startup::run(args),
        Command::Load(args) => load::run(args),
        Command::Recall(args) => recall::run(args),
        Command::Search(args) => search::run(args),
        Command::Fusion(args) => fusion::run(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory-service-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
