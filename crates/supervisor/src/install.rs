//! Writing and removing definition files, and the `launchctl`/`systemctl`
//! commands that activate or deactivate them. Commands are returned, never
//! run: the binary decides whether to run them, and tests never touch the
//! real supervisors. Files are written atomically (temp file, fsync, rename)
//! so a supervisor never reads a half-written unit.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Kind, Paths, ServiceSpec, render, spec::check_label, systemd_unit_name, unit_path};

/// The result of [`install`]: what was written and what to run next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The definition file written.
    pub path: PathBuf,
    /// Whether a previous file at `path` was replaced.
    pub replaced: bool,
    /// Run first, ignoring failures: unload a previously loaded version or
    /// clear a failed state. They fail harmlessly when there is none.
    pub prepare: Vec<Vec<String>>,
    /// Run next, in order, stopping at the first failure: load, enable and
    /// start the service.
    pub commands: Vec<Vec<String>>,
}

/// The result of [`uninstall`]: what was removed and what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uninstalled {
    /// The definition file's path.
    pub path: PathBuf,
    /// `false` when there was no file to remove (reported, not an error).
    pub removed: bool,
    /// [`deactivation_commands`]: stop and unload the service. They belong
    /// *before* the file is removed; call [`deactivation_commands`] first
    /// and run them, then [`uninstall`]. Failures mean it was not loaded.
    pub deactivate: Vec<Vec<String>>,
    /// Run after the removal so the supervisor forgets the unit
    /// (`systemctl --user daemon-reload`); empty for launchd.
    pub after: Vec<Vec<String>>,
}

/// Validates and renders `spec`, creates the definition directory and
/// `spec.log_dir`, and writes [`unit_path`] atomically, replacing any
/// previous version. Runs nothing: see [`Installed`].
pub fn install(kind: Kind, spec: &ServiceSpec, paths: &Paths) -> Result<Installed, Error> {
    let text = render(kind, spec)?;
    let path = unit_path(kind, &spec.label, paths);
    let dir = path.parent().expect("a unit path has a parent directory");
    create_dir(dir)?;
    create_private_dir(&spec.log_dir)?;
    let replaced = fs::symlink_metadata(&path).is_ok();
    write_atomically(&path, text.as_bytes())?;

    let (prepare, commands) = match kind {
        Kind::Launchd => {
            let target = launchd_target(&spec.label);
            (
                vec![argv(["launchctl", "bootout", &target])],
                vec![
                    argv(["launchctl", "enable", &target]),
                    argv([
                        "launchctl",
                        "bootstrap",
                        &launchd_domain(),
                        &path.to_string_lossy(),
                    ]),
                ],
            )
        }
        Kind::Systemd => {
            let unit = systemd_unit_name(&spec.label);
            (
                vec![systemctl("reset-failed", &unit)],
                vec![
                    argv(["systemctl", "--user", "daemon-reload"]),
                    systemctl("enable", &unit),
                    // `restart`, not `enable --now`: a reinstall with new
                    // arguments must replace the running process.
                    systemctl("restart", &unit),
                ],
            )
        }
    };
    Ok(Installed {
        path,
        replaced,
        prepare,
        commands,
    })
}

/// The commands that stop and unload the service `label`; run them before
/// [`uninstall`] removes its file, ignoring failures (not loaded).
/// launchd: `launchctl bootout gui/<uid>/<label>`; systemd: `systemctl
/// --user disable --now <unit>`.
pub fn deactivation_commands(kind: Kind, label: &str) -> Vec<Vec<String>> {
    match kind {
        Kind::Launchd => vec![argv(["launchctl", "bootout", &launchd_target(label)])],
        Kind::Systemd => vec![argv([
            "systemctl",
            "--user",
            "disable",
            "--now",
            &systemd_unit_name(label),
        ])],
    }
}

/// Removes the definition file of `label`. A missing file is reported
/// (`removed: false`), not an error. Runs nothing: see [`Uninstalled`].
pub fn uninstall(kind: Kind, label: &str, paths: &Paths) -> Result<Uninstalled, Error> {
    check_label(label)?;
    let path = unit_path(kind, label, paths);
    let removed = match fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io("removing unit file", path, e)),
    };
    let after = match kind {
        Kind::Launchd => Vec::new(),
        Kind::Systemd => vec![argv(["systemctl", "--user", "daemon-reload"])],
    };
    Ok(Uninstalled {
        path,
        removed,
        deactivate: deactivation_commands(kind, label),
        after,
    })
}

/// Creates the log directory (the service's home) if missing, mode 0700 like
/// the home `serve` creates; an existing one is left as it is.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating directory", dir, e))
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))
}

/// Temp file in the same directory (so `rename` is atomic), mode 0644
/// (launchd refuses group- or world-writable plists), fsync, rename, then
/// fsync the directory so the rename itself survives a crash. The temp name
/// starts with `.` and ends in `.tmp`: neither supervisor loads it.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let dir = path.parent().expect("a unit path has a parent directory");
    let mut tmp = tempfile::Builder::new()
        .prefix(".memory-service-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    let written = tmp.write_all(contents).and_then(|()| {
        set_mode_0644(tmp.as_file())?;
        tmp.as_file().sync_all()
    });
    written.map_err(|e| Error::io("writing unit file", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("writing unit file", path, e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

fn set_mode_0644(file: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
}

/// The launchd domain of the current user's GUI session, `gui/<uid>`.
fn launchd_domain() -> String {
    format!("gui/{}", nix::unistd::getuid().as_raw())
}

/// The launchd service target `gui/<uid>/<label>`.
fn launchd_target(label: &str) -> String {
    format!("{}/{label}", launchd_domain())
}

fn systemctl(verb: &str, unit: &str) -> Vec<String> {
    argv(["systemctl", "--user", verb, unit])
}

fn argv<const N: usize>(words: [&str; N]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}
