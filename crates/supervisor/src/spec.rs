//! What the supervisor should run: [`ServiceSpec`], its validation, and the
//! names derived from the label. Validation lives here, once, so neither
//! renderer can emit a definition that the supervisor would misparse (a
//! relative path, a newline in a value, a label with a slash).

use std::path::{Path, PathBuf};

use crate::Error;

/// The launchd label used when the caller does not choose one; it also
/// selects the plain systemd unit name `memory-service.service`.
pub const DEFAULT_LABEL: &str = "com.chatdo.memoryservice";

/// The systemd unit name used for [`DEFAULT_LABEL`].
pub const SYSTEMD_UNIT_NAME: &str = "memory-service.service";

/// The file name, inside [`ServiceSpec::log_dir`], that the supervisor
/// appends the service's stdout and stderr to: the same file `memory-service
/// start` writes in the home, so `memory-service logs` shows the instance's
/// log however it was started.
pub const LOG_FILE_NAME: &str = "memory_service.log";

/// Everything a service definition needs to run `exe serve --home .. --host
/// .. --port ..` under a supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Absolute path of the `memory-service` binary; supervisors do not search
    /// `PATH` reliably (launchd has a minimal one), so it must be absolute.
    pub exe: PathBuf,
    /// The home directory the instance serves (`--home`); the single-instance
    /// lock lives there, so it must be the same one a manual `serve` uses.
    pub home: PathBuf,
    /// Address to bind (`--host`), e.g. `127.0.0.1`.
    pub host: String,
    /// Port to bind (`--port`).
    pub port: u16,
    /// Directory of [`LOG_FILE_NAME`], where the supervisor sends stdout
    /// and stderr: the home, so everything the service writes lives there;
    /// created (mode 0700) by [`install`](crate::install) if missing.
    pub log_dir: PathBuf,
    /// launchd label (reverse-DNS); see [`DEFAULT_LABEL`] and
    /// [`systemd_unit_name`] for how it names the systemd unit.
    pub label: String,
}

impl ServiceSpec {
    /// A spec with the default label.
    pub fn new(
        exe: impl Into<PathBuf>,
        home: impl Into<PathBuf>,
        host: impl Into<String>,
        port: u16,
        log_dir: impl Into<PathBuf>,
    ) -> Self {
        ServiceSpec {
            exe: exe.into(),
            home: home.into(),
            host: host.into(),
            port,
            log_dir: log_dir.into(),
            label: DEFAULT_LABEL.to_owned(),
        }
    }

    /// The log file both supervisors append to: `<log_dir>/memory_service.log`.
    pub fn log_file(&self) -> PathBuf {
        self.log_dir.join(LOG_FILE_NAME)
    }

    /// Checks that every field can be written into a plist and a unit file
    /// as-is: absolute UTF-8 paths without control characters, a plain host,
    /// and a valid label.
    pub fn validate(&self) -> Result<(), Error> {
        check_path("exe", &self.exe)?;
        check_path("home", &self.home)?;
        check_path("log_dir", &self.log_dir)?;
        check_host(&self.host)?;
        check_label(&self.label)
    }
}

/// The systemd unit file name for `label`: `memory-service.service` for
/// [`DEFAULT_LABEL`], `<label>.service` otherwise (so a second home, or a
/// test, can install a unit that does not replace the default one).
pub fn systemd_unit_name(label: &str) -> String {
    if label == DEFAULT_LABEL {
        SYSTEMD_UNIT_NAME.to_owned()
    } else {
        format!("{label}.service")
    }
}

fn invalid(field: &'static str, value: &str, reason: &'static str) -> Error {
    Error::InvalidSpec {
        field,
        value: value.to_owned(),
        reason,
    }
}

fn check_path(field: &'static str, path: &Path) -> Result<(), Error> {
    let Some(text) = path.to_str() else {
        return Err(invalid(
            field,
            &path.to_string_lossy(),
            "is not valid UTF-8 (plists and unit files are UTF-8 text)",
        ));
    };
    if !path.is_absolute() {
        return Err(invalid(
            field,
            text,
            "must be an absolute path (supervisors start services from another directory)",
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, text, "contains a control character"));
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), Error> {
    // Host names and IP literals, including `[::1]` and zone ids (`fe80::1%eth0`).
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".:-_%[]".contains(c);
    if host.is_empty() || !host.chars().all(allowed) {
        return Err(invalid(
            "host",
            host,
            "must be a host name or IP address (letters, digits and . : - _ % [ ])",
        ));
    }
    Ok(())
}

/// Checks a label for use as a launchd label, a file name and (with
/// `.service`) a systemd unit name.
pub(crate) fn check_label(label: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if label.is_empty() || label.len() > 200 || label.starts_with('.') {
        return Err(invalid(
            "label",
            label,
            "must be 1-200 characters and not start with '.'",
        ));
    }
    if !label.chars().all(allowed) {
        return Err(invalid(
            "label",
            label,
            "may only contain ASCII letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec::new(
            "/usr/bin/memory-service",
            "/home/u/.chatdo",
            "127.0.0.1",
            5858,
            "/home/u/.chatdo",
        )
    }

    #[test]
    fn a_plain_spec_is_valid() {
        spec().validate().unwrap();
    }

    #[test]
    fn relative_paths_control_characters_and_odd_hosts_are_refused() {
        let cases: Vec<(&str, ServiceSpec)> = vec![
            (
                "exe",
                ServiceSpec {
                    exe: "memory-service".into(),
                    ..spec()
                },
            ),
            (
                "home",
                ServiceSpec {
                    home: "rel/home".into(),
                    ..spec()
                },
            ),
            (
                "log_dir",
                ServiceSpec {
                    log_dir: "/a\nb".into(),
                    ..spec()
                },
            ),
            (
                "host",
                ServiceSpec {
                    host: "".into(),
                    ..spec()
                },
            ),
            (
                "host",
                ServiceSpec {
                    host: "a b".into(),
                    ..spec()
                },
            ),
            (
                "host",
                ServiceSpec {
                    host: ";".into(),
                    ..spec()
                },
            ),
            (
                "label",
                ServiceSpec {
                    label: "a/b".into(),
                    ..spec()
                },
            ),
            (
                "label",
                ServiceSpec {
                    label: ".hidden".into(),
                    ..spec()
                },
            ),
            (
                "label",
                ServiceSpec {
                    label: "".into(),
                    ..spec()
                },
            ),
        ];
        for (want, s) in cases {
            match s.validate() {
                Err(Error::InvalidSpec { field, .. }) => assert_eq!(field, want, "{s:?}"),
                other => panic!("{s:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_default_label_names_the_plain_unit() {
        assert_eq!(systemd_unit_name(DEFAULT_LABEL), "memory-service.service");
        assert_eq!(systemd_unit_name("test.ms"), "test.ms.service");
    }
}
