//! Every exit code the binary can return, in one place. The README's table is
//! written from this enum; supervisors depend on the numbers (systemd's
//! `RestartPreventExitStatus=`, launchd's throttle), so they never change.

/// How `memory-service` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An error not covered below (I/O, database, unexpected).
    Error = 1,
    /// Bad command line (clap's code).
    Usage = 2,
    /// Our healthy instance already holds this home.
    AlreadyRunning = 10,
    /// Another instance holds this home and is still starting.
    Starting = 11,
    /// Another instance holds this home's lock but does not answer.
    Unresponsive = 12,
    /// The port is held by a program that is not Memory Service.
    PortInUse = 13,
    /// The port is held by another Memory Service instance (another home).
    PortHeldByOtherInstance = 14,
    /// The home directory cannot be used (a file, unwritable, another user's).
    HomeUnusable = 15,
    /// The lock file was replaced while we ran and another process holds it.
    LockLost = 16,
    /// `stop` sent SIGTERM but the instance still runs after the timeout.
    StillRunning = 17,
    /// A process holds the home's lock but cannot be verified as our instance,
    /// so nothing was signalled.
    Unverified = 18,
    /// A client command (`sources`, `search`, ...) found no instance of ours
    /// for this home.
    NotRunning = 19,
    /// A program that is not Memory Service (e.g. `flock(1)`) holds the
    /// home's lock; it was named, never signalled. `status` uses the same code.
    ForeignLockHolder = 20,
    /// `doctor` found damage it did not fully repair: `--check-only`, rows
    /// that could not be read (listed; the damaged file is kept), or a file
    /// that cannot be read at all.
    Damaged = 21,
}

impl ExitCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ExitCode; 15] = [
        ExitCode::Ok,
        ExitCode::Error,
        ExitCode::Usage,
        ExitCode::AlreadyRunning,
        ExitCode::Starting,
        ExitCode::Unresponsive,
        ExitCode::PortInUse,
        ExitCode::PortHeldByOtherInstance,
        ExitCode::HomeUnusable,
        ExitCode::LockLost,
        ExitCode::StillRunning,
        ExitCode::Unverified,
        ExitCode::NotRunning,
        ExitCode::ForeignLockHolder,
        ExitCode::Damaged,
    ];

    /// The process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit code for a refusal verdict of the guard.
    pub fn for_verdict(v: &single_instance::Verdict) -> ExitCode {
        use single_instance::Verdict as V;
        match v {
            V::Start { .. } => ExitCode::Ok,
            V::AlreadyRunning { .. } => ExitCode::AlreadyRunning,
            V::Starting { .. } | V::Retry => ExitCode::Starting,
            V::Unresponsive { .. } => ExitCode::Unresponsive,
            V::PortHeldByOtherInstance { .. } => ExitCode::PortHeldByOtherInstance,
            V::PortHeldByStranger { .. } => ExitCode::PortInUse,
            V::HeldByStranger { .. } => ExitCode::ForeignLockHolder,
        }
    }
}

/// `status`'s exit codes, as LSB init scripts define them (so scripts and
/// monitors can use `memory-service status` like `service foo status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StatusExit {
    /// Running and healthy.
    Running = 0,
    /// Not running, but a PID file exists (a crash or `kill -9`).
    DeadWithPidFile = 1,
    /// Not running.
    NotRunning = 3,
    /// Unknown: the state could not be determined.
    Unknown = 4,
    /// Holds the lock but does not answer (stuck, stopped).
    Unresponsive = 150,
    /// Holds the lock and is still starting.
    Starting = 151,
    /// A program that is not Memory Service holds the home's lock (the same
    /// code as every other command gives for it).
    ForeignLockHolder = 20,
    /// The home cannot be used (a file, unreadable, another user's): the
    /// same code as every other command gives for it.
    HomeUnusable = 15,
}

impl StatusExit {
    /// Every status code, for documentation and tests.
    pub const ALL: [StatusExit; 8] = [
        StatusExit::Running,
        StatusExit::DeadWithPidFile,
        StatusExit::NotRunning,
        StatusExit::Unknown,
        StatusExit::Unresponsive,
        StatusExit::Starting,
        StatusExit::ForeignLockHolder,
        StatusExit::HomeUnusable,
    ];
}

impl From<StatusExit> for std::process::ExitCode {
    fn from(c: StatusExit) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ExitCode::ALL {
            assert!(seen.insert(c.code()), "duplicate code {c:?}");
        }
        let readme = include_str!("../../../README.md");
        for c in ExitCode::ALL {
            assert!(
                readme.contains(&format!("| {} | `{c:?}`", c.code())),
                "README's exit-code table lacks {} {c:?}",
                c.code()
            );
        }
        for c in StatusExit::ALL {
            assert!(
                readme.contains(&format!("| {} | `{c:?}`", c as u8)),
                "README's status table lacks {} {c:?}",
                c as u8
            );
        }
    }
}
