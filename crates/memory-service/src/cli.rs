//! The command line. Doc comments here are the `--help` text.

use clap::{Parser, Subcommand};

use crate::client::search::SearchArgs;
use crate::client::sources::SourcesCommand;
use crate::config::ConfigArgs;
use crate::lifecycle::logs::LogsArgs;
use crate::lifecycle::service::{InstallArgs, KindArgs};
use crate::lifecycle::start::StartArgs;
use crate::lifecycle::status::StatusArgs;
use crate::lifecycle::stop::StopArgs;
use crate::models::ModelCommand;

/// ChatDO's Memory Service: a local-only daemon that indexes files and chat
/// messages and answers searches. Never more than one per home directory.
#[derive(Debug, Parser)]
#[command(name = "memory-service", version, propagate_version = true)]
pub struct Cli {
    /// Home, host and port (shared by every command).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service in the foreground (for launchd, systemd and manual use).
    /// Refuses to start when an instance already holds the home.
    Serve,
    /// Start a detached instance unless our healthy one already runs; replace
    /// a stuck one. Waits until /health answers with the new PID.
    Start(StartArgs),
    /// Stop the running instance (SIGTERM to the verified lock holder; wait
    /// until the lock is released).
    Stop(StopArgs),
    /// Show what runs for this home. Exit codes follow LSB: 0 running,
    /// 1 dead with a PID file, 3 not running, 4 unknown, 150 unresponsive,
    /// 151 starting.
    Status(StatusArgs),
    /// Stop (if running), then start.
    Restart {
        /// How to stop.
        #[command(flatten)]
        stop: StopArgs,
        /// Seconds to wait for the new instance to answer /health.
        #[arg(long = "start-timeout", default_value_t = 15.0, value_name = "SECS")]
        start_timeout: f64,
    },
    /// Show the log of the instance started by `start`.
    Logs(LogsArgs),
    /// Install a launchd agent (macOS) or systemd user unit (Linux) running `serve`.
    InstallService(InstallArgs),
    /// Remove the service installed by install-service.
    UninstallService(KindArgs),
    /// The indexed folders of the running instance.
    #[command(subcommand)]
    Sources(SourcesCommand),
    /// Rebuild a source's index (the old one is searchable until the new one is ready).
    Reindex {
        /// The source id.
        id: String,
        /// Wait for the job, with progress.
        #[arg(long)]
        wait: bool,
    },
    /// Search a project's chats and files.
    Search(SearchArgs),
    /// The embedding model behind semantic search: install it, or see what is there.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Bring an existing ChatDO install's memory across (chat messages, facts,
    /// sources), through the running instance; ChatDO's own service must be
    /// stopped. Idempotent.
    ImportChatdo(crate::import::ImportArgs),
}
