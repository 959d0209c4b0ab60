//! The home directory and the two files in it. Everything an instance writes
//! lives under one home, so "one home = one instance" covers all of it. The
//! home is private: one we create gets mode 0700, a looser one we find is
//! tightened to 0700 (the caller logs it), and it must be a directory we own
//! and can write, or we stop with a message that names the path and what to do.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Uid, access};

use crate::app::AppIdentity;
use crate::error::{Error, Result};

/// The guarded files of one home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeFiles {
    /// The home directory.
    pub home: PathBuf,
    /// `<home>/<stem>.lock`: the lock and the holder record.
    pub lock: PathBuf,
    /// `<home>/<stem>.pid`: the bare PID, for people and supervisors.
    pub pid: PathBuf,
}

impl HomeFiles {
    /// The files for `home`, named `<stem>.lock` and `<stem>.pid`.
    pub fn new(home: impl Into<PathBuf>, stem: &str) -> HomeFiles {
        let home = home.into();
        HomeFiles {
            lock: home.join(format!("{stem}.lock")),
            pid: home.join(format!("{stem}.pid")),
            home,
        }
    }
}

fn unusable(path: &Path, reason: impl Into<String>) -> Error {
    Error::HomeUnusable {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `" (name)"` for a user id the system knows, else nothing.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => format!(" ({})", user.name),
        _ => String::new(),
    }
}

/// What [`prepare`] did to the home, for the caller's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The home did not exist; it was created with mode 0700.
    pub created: bool,
    /// The home let others in with this mode (e.g. `0o755`); it is now 0700.
    pub tightened_from: Option<u32>,
}

/// Creates `home` (mode 0700, parents too) if missing, then checks it is a
/// directory owned by the effective user (root is refused another user's
/// home too: files it left there would be root's), tightens a looser mode
/// to 0700 (everything under it is private), and checks it is writable.
/// Hints in messages name `app.home_option`.
pub fn prepare(home: &Path, app: &AppIdentity) -> Result<Prepared> {
    let option = &app.home_option;
    let mut prepared = Prepared {
        created: create_if_missing(home, option)?,
        tightened_from: None,
    };
    let meta = std::fs::metadata(home).map_err(|e| unusable(home, format!("cannot read it ({e})")))?;
    if !meta.is_dir() {
        return Err(unusable(
            home,
            format!("it is not a directory; move the file away or choose another home with {option}"),
        ));
    }
    let me = Uid::effective();
    if meta.uid() != me.as_raw() {
        return Err(unusable(
            home,
            format!(
                "it is owned by user id {}{}, not by you (user id {}); use your own home with {option}, \
                 or run as its owner",
                meta.uid(),
                user_name(meta.uid()),
                me.as_raw()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            unusable(
                home,
                format!("it is mode {mode:04o} and cannot be made private ({e}); run chmod 700 on it"),
            )
        })?;
        prepared.tightened_from = Some(mode);
    }
    access(home, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        unusable(
            home,
            format!(
                "it is not writable ({e}); fix its permissions (chmod u+rwx) or choose another with {option}"
            ),
        )
    })?;
    Ok(prepared)
}

/// Creates `home` (mode 0700, parents too) when it does not exist; true when
/// it did not. `option` (e.g. `--home`) is named in the hint.
fn create_if_missing(home: &Path, option: &str) -> Result<bool> {
    match std::fs::metadata(home) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(home)
                .map_err(|e| {
                    unusable(
                        home,
                        format!("cannot create it ({e}); create it or choose another with {option}"),
                    )
                })?;
            Ok(true)
        }
        Err(e) => Err(unusable(
            home,
            format!("cannot read it ({e}); check its permissions"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppIdentity {
        AppIdentity::new("svc", "Svc", "--home")
    }

    #[test]
    fn creates_with_0700() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("a/b");
        assert!(prepare(&home, &app()).unwrap().created);
        let mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(prepare(&home, &app()).unwrap(), Prepared::default()); // idempotent
    }

    #[test]
    fn a_file_is_not_a_home() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let err = prepare(&f, &app()).unwrap_err().to_string();
        assert!(
            err.contains("not a directory") && err.contains(&f.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_loose_home_is_tightened_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("h");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(prepare(&home, &app()).unwrap().tightened_from, Some(0o755));
        let mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn another_users_home_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        // As root: a home given to nobody (65534). Otherwise "/", which is
        // root's and not ours. Root is refused too.
        let home = if Uid::effective().is_root() {
            let h = d.path().join("h");
            std::fs::create_dir(&h).unwrap();
            std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o755)).unwrap();
            nix::unistd::chown(&h, Some(Uid::from_raw(65534)), None).unwrap();
            h
        } else {
            PathBuf::from("/")
        };
        let before = std::fs::metadata(&home).unwrap().permissions().mode();
        let err = prepare(&home, &app()).unwrap_err().to_string();
        let owner = if Uid::effective().is_root() {
            "user id 65534"
        } else {
            "user id 0 (root)"
        };
        assert!(
            err.contains(&format!("owned by {owner}"))
                && err.contains("--home")
                && err.contains(&home.display().to_string()),
            "{err}"
        );
        assert_eq!(
            std::fs::metadata(&home).unwrap().permissions().mode(),
            before,
            "untouched"
        );
    }

    #[test]
    fn names() {
        let h = HomeFiles::new("/x", "my_daemon");
        assert_eq!(h.lock, PathBuf::from("/x/my_daemon.lock"));
        assert_eq!(h.pid, PathBuf::from("/x/my_daemon.pid"));
    }
}
