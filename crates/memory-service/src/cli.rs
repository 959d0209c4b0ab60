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

impl Cli {
    /// The settings for [`Config::load`](crate::config::Config::load): the
    /// global options, with the service's own options on the commands that
    /// run the service (or install its model). Flags and their environment
    /// variables are already merged by clap, flag first.
    pub fn config_args(&self) -> ConfigArgs {
        match &self.command {
            Command::Serve(service)
            | Command::Start { service, .. }
            | Command::Restart { service, .. }
            | Command::Model { service, .. } => self.config.with_service(service),
            _ => self.config.clone(),
        }
    }
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

/// The command line as [`parse_from`] reads `argv`: [`Cli`]'s, where a
/// flag's environment variable is not read when the flag itself is in `argv`
/// (flag > env, even for a value the flag would refuse: clap would check the
/// variable of a global flag given before the command) or when it is set but
/// empty (unset, as it always was here, not an empty value clap would refuse).
fn command(argv: &[std::ffi::OsString]) -> clap::Command {
    let cmd = <Cli as clap::CommandFactory>::command();
    let unread: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|a| {
            let empty = a
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| v.is_empty());
            empty || a.get_long().is_some_and(|l| given(argv, l))
        })
        .map(|a| a.get_id().clone())
        .collect();
    unread
        .into_iter()
        .fold(cmd, |cmd, id| cmd.mut_arg(id, |a| a.env(None::<&str>)))
}

/// Whether `--long` (or `--long=VALUE`) is among the arguments after the program's name.
fn given(argv: &[std::ffi::OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    argv.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    })
}

/// Why the command line could not be read.
#[derive(Debug)]
pub enum ParseError {
    /// A bad command line, `--help` or `--version`: clap's own report
    /// (printed by [`clap::Error::print`]; exit 2, or 0 for help).
    Clap(clap::Error),
    /// A flag's environment variable holds a value the flag would refuse.
    Env(BadEnvValue),
}

/// A flag's environment variable holds a value the flag would refuse (exit 1,
/// as before the variables were read by clap, and named, which clap's own
/// message would not do: it names only the flag).
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?} is not a valid {flag} value: {reason}\n  next: fix or unset {var}")]
pub struct BadEnvValue {
    /// The variable, e.g. `MEMORY_SERVICE_PORT`.
    pub var: String,
    /// Its value.
    pub value: String,
    /// The flag it stands for, e.g. `--port`.
    pub flag: String,
    /// What is wrong with the value, from the flag's parser.
    pub reason: String,
}

/// Parses `argv` (the program's name first): each setting
/// from its flag, else its environment variable (clap's `env`); the defaults
/// are added by [`Config::load`](crate::config::Config::load).
pub fn parse_from<I, T>(argv: I) -> Result<Cli, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    let cmd = command(&argv);
    match cmd.clone().try_get_matches_from(&argv) {
        Ok(m) => Cli::from_arg_matches(&m).map_err(ParseError::Clap),
        Err(e) => Err(bad_env_value(&cmd, &e).map_or(ParseError::Clap(e), ParseError::Env)),
    }
}

/// The variable behind a refused value (`cmd` reads a flag's variable only
/// when the flag itself was not given, see [`command`]).
fn bad_env_value(cmd: &clap::Command, e: &clap::Error) -> Option<BadEnvValue> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(invalid)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let arg = cmd.get_arguments().find(|a| {
        a.get_long()
            .is_some_and(|l| invalid.split(' ').next() == Some(format!("--{l}").as_str()))
    })?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    let value = std::env::var_os(&var)?.to_string_lossy().into_owned();
    let reason = std::error::Error::source(e).map_or_else(|| "not accepted".to_string(), |s| s.to_string());
    Some(BadEnvValue {
        var,
        value,
        flag: format!("--{}", arg.get_long()?),
        reason,
    })
}

/// [`parse_from`] on this process's arguments.
pub fn parse() -> Result<Cli, ParseError> {
    parse_from(std::env::args_os())
}

/// The manual page, `memory-service(1)`, as roff.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
    Ok(out)
}
