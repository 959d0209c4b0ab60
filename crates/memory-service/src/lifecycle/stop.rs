//! `stop` and `restart`. `stop` signals only the verified lock holder and
//! waits on the lock (not on a PID, not on the port): the lock is released
//! exactly when the instance is gone.

use std::time::Duration;

use single_instance::pidfile::{self, PidFile};

use super::{Stopped, stop_holder};
use crate::config::Config;
use crate::exit_code::ExitCode;

/// Options of `stop`.
#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait for a graceful stop after SIGTERM.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Send SIGKILL if the instance has not stopped after --timeout.
    #[arg(long)]
    pub force: bool,
}

/// Runs `stop`.
pub fn run(config: &Config, args: &StopArgs) -> anyhow::Result<ExitCode> {
    let grace = Duration::from_secs_f64(args.timeout.max(0.0));
    let outcome = stop_holder(config, grace, args.force)?;
    Ok(report(config, &outcome))
}

/// Prints what a stop did and returns the exit code.
pub fn report(config: &Config, outcome: &Stopped) -> ExitCode {
    let home = config.home.display();
    match outcome {
        Stopped::NotRunning => {
            let files = config.paths().guarded();
            if let PidFile::Pid(pid) = pidfile::read(&files.pid)
                && single_instance::inspect(&files).is_ok_and(|h| h.is_none())
                && pidfile::remove_if_ours(&files.pid, pid).unwrap_or(false)
            {
                // Nobody holds the lock, so this PID file is stale by definition.
                println!("Removed a stale PID file naming PID {pid} (not our instance; not signalled).");
            }
            for odd in super::status::odd_files(config) {
                println!("Note: {odd}.");
            }
            println!("Memory Service is not running (home {home}).");
            ExitCode::Ok
        }
        Stopped::Graceful(pid) => {
            println!("Stopped Memory Service (PID {pid}, home {home}).");
            ExitCode::Ok
        }
        Stopped::Killed(pid) => {
            println!("Killed Memory Service (PID {pid}, home {home}) after it ignored SIGTERM.");
            ExitCode::Ok
        }
        Stopped::StillRunning(pid) => {
            eprintln!("memory-service: PID {pid} is still running after SIGTERM (home {home}).");
            eprintln!("  next: wait, or run `memory-service stop --force` to send SIGKILL");
            ExitCode::StillRunning
        }
        Stopped::Stranger { pid, program, path } => super::report_stranger(*pid, program, path),
        Stopped::Unverified { pid, reason } => {
            let who = pid.map_or_else(|| "a process".to_string(), |p| format!("PID {p}"));
            eprintln!(
                "memory-service: {who} holds the lock of home {home}, but it cannot be verified as our \
                 instance ({reason}); nothing was signalled."
            );
            eprintln!(
                "  next: inspect it yourself (ps -p {}), and stop it by hand if it is ours",
                pid.unwrap_or(0)
            );
            ExitCode::Unverified
        }
    }
}
