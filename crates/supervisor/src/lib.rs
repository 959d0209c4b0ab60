//! Service definitions for the OS supervisors: a launchd LaunchAgent (macOS)
//! and a systemd user unit (elsewhere) that run `memory-service serve` in the
//! foreground, restart it after real failures, and never crash-loop when
//! another instance already holds the home (exit codes 10-15). Renders,
//! writes and removes files only; it never runs `launchctl` or `systemctl`,
//! it returns the commands for the binary to run.
//!
//! # Layout
//! - [`spec`](ServiceSpec): what to run, its validation, the derived names.
//! - `launchd` / `systemd`: the two renderers, each documenting why every
//!   key is there.
//! - `paths` ([`Paths`], [`unit_path`]): where definitions and logs go.
//! - `install` ([`install`], [`uninstall`]): atomic writes and the
//!   activation commands.
//! - `error` ([`Error`]): one error type with the action and path.
#![deny(missing_docs)]

mod error;
mod install;
mod launchd;
mod paths;
mod spec;
mod systemd;

pub use error::Error;
pub use install::{Installed, Uninstalled, deactivation_commands, install, uninstall};
pub use launchd::{EXIT_TIMEOUT_SECS, THROTTLE_INTERVAL_SECS, launchd_plist};
pub use paths::{Paths, unit_path};
pub use spec::{DEFAULT_LABEL, LOG_FILE_NAME, SYSTEMD_UNIT_NAME, ServiceSpec, systemd_unit_name};
pub use systemd::{RESTART_PREVENT_EXIT_STATUS, WATCHDOG_SECS, systemd_unit};

/// Which supervisor a definition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A launchd LaunchAgent in `~/Library/LaunchAgents` (macOS).
    Launchd,
    /// A systemd user unit in `~/.config/systemd/user` (Linux).
    Systemd,
}

impl Kind {
    /// The supervisor of the platform this binary was built for: launchd on
    /// macOS, systemd everywhere else.
    pub fn for_this_platform() -> Kind {
        if cfg!(target_os = "macos") {
            Kind::Launchd
        } else {
            Kind::Systemd
        }
    }

    /// `"launchd"` or `"systemd"`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Launchd => "launchd",
            Kind::Systemd => "systemd",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The definition text for `kind` (what `install-service --print` shows),
/// after validating `spec`.
pub fn render(kind: Kind, spec: &ServiceSpec) -> Result<String, Error> {
    match kind {
        Kind::Launchd => launchd_plist(spec),
        Kind::Systemd => {
            spec.validate()?;
            Ok(systemd_unit(spec))
        }
    }
}
