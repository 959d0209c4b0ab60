//! The command line. Doc comments here are the `--help` text.

use clap::{Parser, Subcommand};

use crate::client::search::SearchArgs;
use crate::client::sources::SourcesCommand;
use crate::config::{ConfigArgs, ServiceArgs};
use crate::lifecycle::logs::LogsArgs;
use crate::lifecycle::service::{InstallArgs, KindArgs};
use crate::lifecycle::start::StartArgs;
use crate::lifecycle::status::StatusArgs;
use crate::lifecycle::stop::StopArgs;
use crate::models::ModelCommand;

/// ChatDO's Memory Service: a local-only daemon that indexes files and chat
/// messages and answers searches. Never more than one per home directory.
#[derive(Debug, Parser)]
#[command(
    name = "memory-service",
    version,
    propagate_version = true,
    after_help = "\
Quick start:
  memory-service start                       # run in the background; prints the page's address
  memory-service sources add ~/notes --wait  # index a folder
  memory-service search single instance lock # search every project
  memory-service install-service             # run at login (systemd or launchd)
  memory-service stop

Shell completions: memory-service completions bash > ~/.local/share/bash-completion/completions/memory-service
Manual: memory-service man | man -l -"
)]
pub struct Cli {
    /// Home, host and port (shared by every command).
    #[command(flatten, next_help_heading = "Global options")]
    pub config: ConfigArgs,
    /// Show more on errors: the request that failed and the HTTP status.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service in the foreground (for launchd, systemd and manual use).
    /// Refuses to start when an instance already holds the home.
    #[command(after_help = "Examples:\n  memory-service serve\n  \
        memory-service --home /tmp/demo --port 5960 serve --embedding-model ~/models/all-MiniLM-L6-v2")]
    Serve(ServiceArgs),
    /// Start a detached instance unless our healthy one already runs; replace
    /// a stuck one. Waits until /health answers with the new PID.
    #[command(after_help = "Examples:\n  memory-service start\n  memory-service start --force --timeout 30")]
    Start {
        /// How to start.
        #[command(flatten)]
        args: StartArgs,
        /// Passed on to the `serve` it spawns.
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Stop the running instance (SIGTERM to the verified lock holder; wait
    /// until the lock is released).
    Stop(StopArgs),
    /// Show what runs for this home. Exit codes follow LSB: 0 running,
    /// 1 dead with a PID file, 3 not running, 4 unknown, 150 unresponsive,
    /// 151 starting; and, like every command, 15 for an unusable home and 20
    /// for a lock held by another program.
    Status(StatusArgs),
    /// Stop (if running), then start.
    Restart {
        /// How to stop.
        #[command(flatten)]
        stop: StopArgs,
        /// Seconds to wait for the new instance to answer /health.
        #[arg(long = "start-timeout", default_value_t = 15.0, value_name = "SECS")]
        start_timeout: f64,
        /// Passed on to the `serve` it spawns.
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Show the home's log: the instance's, whether `start`, systemd or launchd ran it.
    Logs(LogsArgs),
    /// Install a launchd agent (macOS) or systemd user unit (Linux) running `serve`.
    InstallService(InstallArgs),
    /// Remove the service installed by install-service.
    UninstallService(KindArgs),
    /// The indexed folders of the running instance.
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Rebuild a source's index (the old one is searchable until the new one is ready).
    #[command(after_help = "Example:\n  memory-service reindex notes-dir --wait")]
    Reindex {
        /// The source id.
        id: String,
        /// Wait for the job, with progress.
        #[arg(long)]
        wait: bool,
        /// Print the API's JSON (with --wait, the finished job's too).
        #[arg(long)]
        json: bool,
    },
    /// Search chats and files: every project, one (--project) or one source (--source).
    Search(SearchArgs),
    /// The embedding model behind semantic search: install it, or see what is there.
    #[command(after_help = "Examples:\n  memory-service model status\n  \
        memory-service model install --from ~/Downloads/all-MiniLM-L6-v2.zip")]
    Model {
        /// The model directory and the service's other settings.
        #[command(flatten)]
        service: ServiceArgs,
        /// What to do with it.
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Bring an existing ChatDO install's memory across (chat messages, facts,
    /// sources), through the running instance; ChatDO's own service must be
    /// stopped. Idempotent.
    ImportChatdo(crate::import::ImportArgs),
    /// Check the database for damage (every page and the FTS index) and, when
    /// there is some, rebuild it from what can still be read: messages, facts
    /// and sources are copied, everything derived is indexed again at the next
    /// start. The service must be stopped. Says what was kept and what was lost.
    #[command(
        after_help = "Examples:\n  memory-service stop && memory-service doctor && memory-service start\n  \
        memory-service doctor --check-only"
    )]
    Doctor(crate::lifecycle::doctor::DoctorArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
        memory-service completions bash > ~/.local/share/bash-completion/completions/memory-service\n  \
        memory-service completions zsh > ~/.zfunc/_memory-service\n  \
        memory-service completions fish > ~/.config/fish/completions/memory-service.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from this command line.
    #[command(after_help = "Examples:\n  memory-service man | man -l -\n  \
        memory-service man > ~/.local/share/man/man1/memory-service.1")]
    Man,
}

/// The manual page, `memory-service(1)`, as roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
    Ok(out)
}
