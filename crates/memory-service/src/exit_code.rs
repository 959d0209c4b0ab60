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
}

impl ExitCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ExitCode; 10] = [
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
        }
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
    }
}
