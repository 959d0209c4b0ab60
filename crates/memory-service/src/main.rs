//! The binary's edge: parse the command line, set up logging, run the
//! command, and turn its outcome into an exit code. Errors print once, as one
//! line with their context chain.

use std::io::IsTerminal;
use std::process::ExitCode as ProcessExit;

use memory_service::cli::{Cli, Command};
use memory_service::config::Config;
use memory_service::exit_code::ExitCode;
use memory_service::lifecycle;
use tracing_subscriber::EnvFilter;

fn main() -> ProcessExit {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { memory_embedding::one_thread_per_matmul() };
    let cli = match memory_service::cli::parse() {
        Ok(cli) => cli,
        Err(memory_service::cli::ParseError::Env(e)) => {
            eprintln!("memory-service: {e}");
            return ExitCode::Error.into();
        }
        Err(memory_service::cli::ParseError::Clap(e)) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            }
            .into();
        }
    };
    let serving = matches!(cli.command, Command::Serve(_));
    set_up_process(serving);
    let verbose = cli.verbose;
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A refused request reads as the service's sentence and a hint;
            // `-v` adds which request it was.
            let request = e
                .downcast_ref::<memory_service::client::ClientError>()
                .and_then(memory_service::client::ClientError::request);
            if let (true, Some(req)) = (verbose, request) {
                eprintln!("memory-service: {req}");
            }
            eprintln!("memory-service: {e:#}");
            ExitCode::Error.into()
        }
    }
}

/// Process-wide settings before any thread exists: SIGPIPE, the umask and
/// logging (`serving`: the daemon, else a client command).
fn set_up_process(serving: bool) {
    if !serving {
        // A command whose output is piped into `head` or `grep -q` should end
        // quietly when the reader goes, like any Unix tool, not panic on
        // EPIPE. (`serve` keeps Rust's default: a closed log pipe must never
        // kill the daemon.)
        // SAFETY: called before any thread exists; SIG_DFL is always valid.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    // Everything any command creates (the log `start` opens, the database,
    // WAL, PID and lock files `serve` writes) is private to the user, whatever
    // umask we were started with (issue 13: chat history was world-readable).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // `serve` logs at info; the client commands only show warnings.
    let default = if serving { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ProcessExit> {
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "memory-service", &mut std::io::stdout());
            return Ok(ExitCode::Ok.into());
        }
        Command::Man => {
            use std::io::Write;
            std::io::stdout().write_all(&memory_service::cli::man_page()?)?;
            return Ok(ExitCode::Ok.into());
        }
        _ => {}
    }
    // The service's own options, on the commands that run it (or install its model).
    let config = match Config::from_env(&cli.config_args()) {
        Ok(c) => c,
        Err(e)
            if e.downcast_ref::<memory_service::config::RemoteNotAllowed>()
                .is_some() =>
        {
            eprintln!("memory-service: {e:#}");
            return Ok(ExitCode::Usage.into());
        }
        Err(e) => return Err(e),
    };
    let code = match cli.command {
        Command::Serve(_) => {
            if lifecycle::logs::rotate_inherited(&config) {
                tracing::info!(log = %config.paths().log().display(), "rotated the log (kept one old generation)");
            }
            memory_service::daemon::run(config)?
        }
        Command::Start { args, .. } => {
            lifecycle::home_result(&config, lifecycle::start::run(&config, &args))?
        }
        Command::Stop(args) => lifecycle::home_result(&config, lifecycle::stop::run(&config, &args))?,
        Command::Status(args) => return Ok(lifecycle::status::run(&config, &args).into()),
        Command::Restart {
            stop, start_timeout, ..
        } => restart(&config, &stop, start_timeout)?,
        Command::Logs(args) => lifecycle::logs::run(&config, &args)?,
        Command::InstallService(args) => lifecycle::service::install(&config, &args)?,
        Command::UninstallService(args) => lifecycle::service::uninstall(&config, &args)?,
        Command::Sources(cmd) => client_result(&config, memory_service::client::sources::run(&config, &cmd))?,
        Command::Reindex { id, wait, json } => client_result(
            &config,
            memory_service::client::sources::reindex(&config, &id, wait, json),
        )?,
        Command::Search(args) => client_result(&config, memory_service::client::search::run(&config, &args))?,
        Command::Model { command, .. } => memory_service::models::run(&config, &command)?,
        Command::Doctor(args) => lifecycle::home_result(&config, lifecycle::doctor::run(&config, &args))?,
        Command::ImportChatdo(args) => client_result(&config, memory_service::import::run(&config, &args))?,
        Command::Completions { .. } | Command::Man => unreachable!("handled before the configuration"),
    };
    Ok(code.into())
}

/// Client commands: "not running" gets its own exit code and a hint, not a
/// generic error; a program that is not ours holding the home's lock is
/// named instead, with its own code.
fn client_result(config: &Config, r: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match r {
        Err(e) => match e.downcast_ref::<memory_service::client::ClientError>() {
            Some(ce @ memory_service::client::ClientError::NotRunning { .. }) => {
                if let Some(code) = lifecycle::stranger_instead_of_instance(config) {
                    return Ok(code);
                }
                eprintln!("memory-service: {ce}");
                Ok(ExitCode::NotRunning)
            }
            _ => Err(e),
        },
        ok => ok,
    }
}

/// `restart`: `stop`, then (only when it ended with exit 0) `start`, with
/// `start_timeout` for the start and the stop's timeout for killing a stuck one.
fn restart(
    config: &Config,
    stop: &lifecycle::stop::StopArgs,
    start_timeout: f64,
) -> anyhow::Result<ExitCode> {
    let code = lifecycle::home_result(config, lifecycle::stop::run(config, stop))?;
    if code != ExitCode::Ok {
        return Ok(code);
    }
    let start = lifecycle::start::StartArgs {
        timeout: start_timeout,
        kill_timeout: stop.timeout,
        force: false,
    };
    lifecycle::home_result(config, lifecycle::start::run(config, &start))
}
