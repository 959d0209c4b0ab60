//! The lifecycle commands (`start`, `stop`, `status`, `restart`, `logs`,
//! `install-service`): the seed's "safe start script" done as commands of the
//! binary. They observe an instance only through the lock, its holder record
//! and `/health`; they signal only through `single_instance::signal_holder`,
//! which re-verifies the holder right before each signal. Never by name.

pub mod doctor;
pub mod logs;
pub mod service;
pub mod start;
pub mod status;
pub mod stop;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use single_instance::{Holder, Signal, SignalOutcome, Verdict};

use crate::config::Config;
use crate::daemon::policy;
use crate::exit_code::ExitCode;
use crate::probe;

/// Why the home cannot be used, when `e` (from `start`, `stop` or `restart`)
/// says so: the guard refused the home or one of its files, or an I/O error
/// on them where the home exists but is not a usable directory. The sentence
/// is the one `serve` prints, so every command says the same thing and exits
/// [`ExitCode::HomeUnusable`] for it.
pub fn unusable_home(config: &Config, e: &anyhow::Error) -> Option<String> {
    use single_instance::Error as E;
    let guard = e.chain().find_map(|c| c.downcast_ref::<E>())?;
    match guard {
        E::HomeUnusable { .. } | E::NotARegularFile { .. } | E::LockIsSymlink { .. } => {
            Some(guard.to_string())
        }
        // The home exists (so checking it creates nothing): let the guard's
        // own check name what is wrong with it.
        E::Io { .. } if std::fs::symlink_metadata(&config.home).is_ok() => {
            match single_instance::home::prepare(&config.home, &crate::daemon::app()) {
                Err(u @ E::HomeUnusable { .. }) => Some(u.to_string()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A lifecycle command's outcome, with an unusable home reported as `serve`
/// reports it (one sentence, [`ExitCode::HomeUnusable`]) instead of as a
/// generic error.
pub fn home_result(config: &Config, r: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match r {
        Err(e) => match unusable_home(config, &e) {
            Some(why) => {
                eprintln!("memory-service: {why}");
                Ok(ExitCode::HomeUnusable)
            }
            None => Err(e),
        },
        ok => ok,
    }
}

/// The holder's PID and the port it serves on, from the home's holder record
/// (read without locking; a special file there is never opened). `None`
/// without a whole record, and while a holder that claimed with `--port 0`
/// has not bound yet: it rewrites its record with the bound port.
pub fn recorded_port(config: &Config) -> Option<(u32, u16)> {
    let (record, _) = single_instance::lock::read_record(&config.paths().guarded().lock);
    record.filter(|r| r.port != 0).map(|r| (r.pid, r.port))
}

/// What is running for a home right now: the guard's own verdict, from the
/// same facts a `serve` would gather (so `start` and `serve` never disagree).
pub fn observe(config: &Config) -> anyhow::Result<Verdict> {
    let files = config.paths().guarded();
    let policy = policy(config);
    for _ in 0..8 {
        let Some(held) = single_instance::inspect(&files)? else {
            return Ok(Verdict::Start { stale: None });
        };
        let facts = single_instance::holder_facts(&held, &probe::guard_probe);
        let v = single_instance::decide(&single_instance::verdict::Facts::Held(facts), &policy);
        if v != Verdict::Retry {
            return Ok(v);
        }
    }
    Ok(Verdict::Start { stale: None })
}

/// Polls until nobody holds the home's lock, or `timeout` passes.
pub fn wait_lock_free(config: &Config, timeout: Duration) -> anyhow::Result<bool> {
    let files = config.paths().guarded();
    let end = Instant::now() + timeout;
    loop {
        if single_instance::inspect(&files)?.is_none() {
            return Ok(true);
        }
        if Instant::now() >= end {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reports a program that is not ours holding the home's lock (PID, program,
/// the locked path) on stderr, and returns its exit code. Nothing was
/// signalled.
pub fn report_stranger(pid: u32, program: &str, path: &std::path::Path) -> ExitCode {
    eprintln!(
        "memory-service: {} is locked by another program (not Memory Service): PID {pid} ({program}); \
         nothing was signalled.",
        path.display()
    );
    eprintln!("  next: stop that program yourself, or use another home with --home");
    ExitCode::ForeignLockHolder
}

/// When a client command finds no instance: the program that is not ours
/// holding the home's lock, if that is why (reported, with its exit code).
pub fn stranger_instead_of_instance(config: &Config) -> Option<ExitCode> {
    match single_instance::holder(&config.paths().guarded()) {
        Ok(Holder::Stranger { pid, program, path }) => Some(report_stranger(pid, &program, &path)),
        _ => None,
    }
}

/// How a stop attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing held the lock.
    NotRunning,
    /// It exited after SIGTERM.
    Graceful(u32),
    /// It exited after SIGKILL.
    Killed(u32),
    /// It still runs after the grace period (and no escalation was asked).
    StillRunning(u32),
    /// A program that is not ours holds the lock; nothing was signalled.
    Stranger {
        /// Its PID.
        pid: u32,
        /// Its executable, or its name.
        program: String,
        /// The path whose flock it holds.
        path: PathBuf,
    },
    /// The lock holder could not be verified; nothing was signalled.
    Unverified {
        /// The PID we believe holds the lock.
        pid: Option<u32>,
        /// Why it could not be verified.
        reason: String,
    },
}

/// Stops the verified holder: SIGTERM, wait up to `grace` for the lock to be
/// released, then (if `escalate`) SIGKILL and wait again.
pub fn stop_holder(config: &Config, grace: Duration, escalate: bool) -> anyhow::Result<Stopped> {
    let files = config.paths().guarded();
    let (pid, start_time) = match single_instance::holder(&files)? {
        Holder::Free => return Ok(Stopped::NotRunning),
        Holder::Unverified { pid, reason } => return Ok(Stopped::Unverified { pid, reason }),
        Holder::Stranger { pid, program, path } => return Ok(Stopped::Stranger { pid, program, path }),
        Holder::Verified { record, process } => (record.pid, process.start_time),
    };
    match single_instance::signal_holder(&files, pid, start_time, Signal::SIGTERM)? {
        SignalOutcome::Sent => {}
        SignalOutcome::Gone => return Ok(Stopped::Graceful(pid)),
        SignalOutcome::Refused(reason) => {
            return Ok(Stopped::Unverified {
                pid: Some(pid),
                reason,
            });
        }
    }
    if wait_lock_free(config, grace)? {
        return Ok(Stopped::Graceful(pid));
    }
    if !escalate {
        return Ok(Stopped::StillRunning(pid));
    }
    tracing::warn!(pid, "still running after SIGTERM and {grace:?}; sending SIGKILL");
    match single_instance::signal_holder(&files, pid, start_time, Signal::SIGKILL)? {
        SignalOutcome::Sent | SignalOutcome::Gone => {}
        SignalOutcome::Refused(reason) => {
            return Ok(Stopped::Unverified {
                pid: Some(pid),
                reason,
            });
        }
    }
    if wait_lock_free(config, Duration::from_secs(10))? {
        // A killed instance cannot remove its PID file; do it for it.
        let _ = single_instance::pidfile::remove_if_ours(&files.pid, pid);
        Ok(Stopped::Killed(pid))
    } else {
        Ok(Stopped::StillRunning(pid))
    }
}
