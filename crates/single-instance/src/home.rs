//! The home directory and the two files in it. Everything an instance writes
//! lives under one home, so "one home = one instance" covers all of it. A home
//! we create gets mode 0700; one we find must be a directory we own and can
//! write, or we stop with a message that names the path and what to do.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Uid, access};

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

/// Creates `home` (mode 0700, parents too) if missing, then checks it is a
/// directory, owned by us, and writable.
pub fn prepare(home: &Path) -> Result<()> {
    match std::fs::metadata(home) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(home)
                .map_err(|e| {
                    unusable(
                        home,
                        format!("cannot create it ({e}); create it or choose another with --home"),
                    )
                })?;
        }
        Err(e) => {
            return Err(unusable(
                home,
                format!("cannot read it ({e}); check its permissions"),
            ));
        }
        Ok(_) => {}
    }
    let meta = std::fs::metadata(home).map_err(|e| unusable(home, format!("cannot read it ({e})")))?;
    if !meta.is_dir() {
        return Err(unusable(
            home,
            "it is not a directory; move the file away or choose another home with --home",
        ));
    }
    let me = Uid::effective();
    if !me.is_root() && meta.uid() != me.as_raw() {
        return Err(unusable(
            home,
            format!(
                "it is owned by user id {}, not by you (user id {}); use your own home with --home",
                meta.uid(),
                me.as_raw()
            ),
        ));
    }
    access(home, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        unusable(
            home,
            format!(
                "it is not writable ({e}); fix its permissions (chmod u+rwx) or choose another with --home"
            ),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_with_0700() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("a/b");
        prepare(&home).unwrap();
        let mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        prepare(&home).unwrap(); // idempotent
    }

    #[test]
    fn a_file_is_not_a_home() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let err = prepare(&f).unwrap_err().to_string();
        assert!(
            err.contains("not a directory") && err.contains(&f.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn names() {
        let h = HomeFiles::new("/x", "memory_service");
        assert_eq!(h.lock, PathBuf::from("/x/memory_service.lock"));
        assert_eq!(h.pid, PathBuf::from("/x/memory_service.pid"));
    }
}
