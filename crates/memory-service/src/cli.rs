//! The command line. Doc comments here are the `--help` text.

use clap::{Parser, Subcommand};

use crate::config::ConfigArgs;

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
}
