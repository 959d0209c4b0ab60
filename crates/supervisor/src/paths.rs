//! Where service definitions go: [`Paths`], read from the
//! environment once by [`Paths::from_env`] or built explicitly (tests point it
//! at a tempdir), and [`unit_path`], the file a given kind and label use.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{Error, Kind, systemd_unit_name};

/// The directories the supervisors read definitions from. (Logs go to the
/// service's home: see [`ServiceSpec::log_dir`](crate::ServiceSpec::log_dir).)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `~/Library/LaunchAgents`: launchd loads per-user agents from here at
    /// login.
    pub launch_agents_dir: PathBuf,
    /// `$XDG_CONFIG_HOME/systemd/user`, or `~/.config/systemd/user`: the
    /// user manager's search path for units the user wrote.
    pub systemd_user_dir: PathBuf,
}

impl Paths {
    /// Reads `HOME` and `XDG_CONFIG_HOME`.
    pub fn from_env() -> Result<Paths, Error> {
        Paths::from_vars(std::env::var_os("HOME"), std::env::var_os("XDG_CONFIG_HOME"))
    }

    /// [`Paths::from_env`] with the variables passed in. `home` must be an
    /// absolute path; an `XDG_CONFIG_HOME` that is unset, empty or relative
    /// is ignored, as the XDG Base Directory specification requires.
    pub fn from_vars(home: Option<OsString>, xdg_config_home: Option<OsString>) -> Result<Paths, Error> {
        let home = home
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .ok_or(Error::NoHome)?;
        let xdg = |var: Option<OsString>, fallback: &str| {
            var.map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(fallback))
        };
        let config = xdg(xdg_config_home, ".config");
        Ok(Paths {
            launch_agents_dir: home.join("Library/LaunchAgents"),
            systemd_user_dir: config.join("systemd/user"),
        })
    }
}

/// The definition file for `label`: `<LaunchAgents>/<label>.plist` for
/// launchd, `<systemd user dir>/memory-service.service` for systemd (see
/// [`systemd_unit_name`] for labels other than the default).
pub fn unit_path(kind: Kind, label: &str, paths: &Paths) -> PathBuf {
    match kind {
        Kind::Launchd => paths.launch_agents_dir.join(format!("{label}.plist")),
        Kind::Systemd => paths.systemd_user_dir.join(systemd_unit_name(label)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_LABEL;

    #[test]
    fn defaults_follow_home_and_xdg_fallbacks() {
        let p = Paths::from_vars(Some("/home/u".into()), Some("".into())).unwrap();
        assert_eq!(p.launch_agents_dir, PathBuf::from("/home/u/Library/LaunchAgents"));
        assert_eq!(p.systemd_user_dir, PathBuf::from("/home/u/.config/systemd/user"));
    }

    #[test]
    fn absolute_xdg_variables_win_and_relative_ones_are_ignored() {
        let p = Paths::from_vars(Some("/h".into()), Some("/cfg".into())).unwrap();
        assert_eq!(p.systemd_user_dir, PathBuf::from("/cfg/systemd/user"));
        let p = Paths::from_vars(Some("/h".into()), Some("cfg".into())).unwrap();
        assert_eq!(p.systemd_user_dir, PathBuf::from("/h/.config/systemd/user"));
    }

    #[test]
    fn a_missing_or_relative_home_is_an_error() {
        assert!(matches!(Paths::from_vars(None, None), Err(Error::NoHome)));
        assert!(matches!(
            Paths::from_vars(Some("rel".into()), None),
            Err(Error::NoHome)
        ));
    }

    #[test]
    fn unit_paths_are_named_after_the_label() {
        let p = Paths::from_vars(Some("/h".into()), None).unwrap();
        assert_eq!(
            unit_path(Kind::Launchd, DEFAULT_LABEL, &p),
            PathBuf::from("/h/Library/LaunchAgents/com.chatdo.memoryservice.plist")
        );
        assert_eq!(
            unit_path(Kind::Systemd, DEFAULT_LABEL, &p),
            PathBuf::from("/h/.config/systemd/user/memory-service.service")
        );
    }
}
