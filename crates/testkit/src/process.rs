//! Our children. A test or benchmark that fails must not leave a service
//! running, and a signal to a reaped pid could hit a stranger that reused it;
//! so every child is killed and reaped on drop, and a process-wide registry
//! holds exactly the spawned, unreaped pids, which [`kill_all_children`] (the
//! bench's Ctrl-C handler) may signal without that risk.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::poll::{DEADLINE, Pause, try_poll};

/// Pids of children spawned and not yet reaped. Reaping and removal happen
/// under this lock, and [`kill_all_children`] kills under it too.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Spawners hold it shared from `spawn` until the pid is in [`LIVE`];
/// [`kill_all_children`] takes it exclusively, so it never misses a child in
/// flight. (Shared, not a mutex: racing starters must not queue.)
static SPAWNING: RwLock<()> = RwLock::new(());

fn live() -> MutexGuard<'static, BTreeSet<i32>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGKILLs and reaps every live child, then blocks further spawns and reaps
/// for good (the caller is about to exit). Returns how many it killed.
pub fn kill_all_children() -> usize {
    let spawning = SPAWNING.write().unwrap_or_else(|e| e.into_inner());
    let pids = live();
    for &pid in pids.iter() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
    }
    let n = pids.len();
    std::mem::forget(pids);
    std::mem::forget(spawning);
    n
}

/// A spawned child of ours, its output captured to files. Dropping it
/// SIGKILLs and reaps it if it is still unreaped.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// The file holding its stdout.
    pub stdout: PathBuf,
    /// The file holding its stderr.
    pub stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` (its stdout and stderr already pointed at the files
    /// named) and registers the pid.
    pub fn spawn(mut cmd: Command, stdout: PathBuf, stderr: PathBuf) -> Result<Proc> {
        let _spawning = SPAWNING.read().unwrap_or_else(|e| e.into_inner());
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
        live().insert(child.id() as i32);
        Ok(Proc {
            child,
            stdout,
            stderr,
            status: None,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig`; panics if it cannot (the tests' form of [`Proc::try_signal`]).
    pub fn signal(&self, sig: Signal) {
        self.try_signal(sig).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Sends `sig`, unless the child was already reaped.
    pub fn try_signal(&self, sig: Signal) -> Result<()> {
        if self.status.is_none() {
            kill(Pid::from_raw(self.pid() as i32), sig)
                .with_context(|| format!("sending {sig} to pid {}", self.pid()))?;
        }
        Ok(())
    }

    /// The exit status if the child has exited (reaping it), else `None`.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            let mut pids = live();
            self.status = self.child.try_wait().expect("try_wait on our own child");
            if self.status.is_some() {
                pids.remove(&(self.child.id() as i32));
            }
        }
        self.status
    }

    /// Waits up to `deadline` for the exit, re-checking after each `pause`.
    pub fn wait_for_exit(&mut self, deadline: Duration, pause: Pause) -> Result<ExitStatus> {
        let pid = self.pid();
        try_poll(&format!("pid {pid} to exit"), deadline, pause, || {
            Ok(self.try_status())
        })
        .map_err(|e| e.context(self.stderr_tail()))
    }

    /// Waits for exit by any means (a signal included); panics after [`DEADLINE`].
    pub fn wait_code_or_signal(&mut self) -> ExitStatus {
        self.wait_for_exit(DEADLINE, Pause::BACKOFF)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Waits for exit and returns the exit code; panics after [`DEADLINE`]
    /// or if a signal ended it.
    pub fn wait_code(&mut self) -> i32 {
        let status = self.wait_code_or_signal();
        status
            .code()
            .unwrap_or_else(|| panic!("pid {} died by a signal: {status:?}", self.pid()))
    }

    /// Stops the child as a supervisor would: SIGTERM, then waits for the
    /// exit (up to [`DEADLINE`]); returns the exit status.
    pub fn try_stop(&mut self) -> Result<ExitStatus> {
        self.try_signal(Signal::SIGTERM)?;
        self.wait_for_exit(DEADLINE, Pause::BACKOFF)
    }

    /// [`Proc::try_stop`] returning the exit code; panics if the child does
    /// not exit in time or a signal ended it.
    pub fn stop(&mut self) -> i32 {
        self.signal(Signal::SIGTERM);
        self.wait_code()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The last ten lines of stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = self.stderr_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        format!("stderr of pid {} (last lines):\n{tail}", self.pid())
    }

    /// Fails, with the stderr tail, if the child has exited.
    pub fn check_running(&mut self, doing: &str) -> Result<()> {
        if let Some(st) = self.try_status() {
            bail!(
                "pid {} exited ({st}) before {doing}\n{}",
                self.pid(),
                self.stderr_tail()
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let mut pids = live();
        let _ = self.child.kill();
        let _ = self.child.wait();
        pids.remove(&(self.child.id() as i32));
    }
}

/// The exit code, or an error naming the signal that ended the process.
pub fn exit_code(status: ExitStatus) -> Result<i32> {
    match status.code() {
        Some(c) => Ok(c),
        None => bail!("killed by a signal: {status}"),
    }
}

/// Whether a process exists (a zombie not yet reaped counts).
pub fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}
