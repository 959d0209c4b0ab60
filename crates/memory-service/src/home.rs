//! Every path the service uses under its home, in one place. The home is the unit
//! of the one-instance promise (one instance per home), so everything an instance
//! owns lives inside it; naming each file once here keeps `serve`, the lifecycle
//! commands, `doctor`, `model install` and `import-chatdo` from spelling a path
//! two ways.

use std::path::{Path, PathBuf};

use single_instance::HomeFiles;

/// The stem of the guarded files: `memory_service.lock`, `memory_service.pid`
/// (the original's names, which ChatDO's scripts look for).
pub const FILE_STEM: &str = "memory_service";

/// The paths under one home directory. Building one touches nothing on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The paths under `root` (absolute, as the configuration resolves it).
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// The home directory itself (mode 0700).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The files the single-instance guard keeps: `memory_service.lock` (the
    /// `flock` and the holder record) and `memory_service.pid`.
    pub fn guarded(&self) -> HomeFiles {
        HomeFiles::new(&self.root, FILE_STEM)
    }

    /// `memory.sqlite`: the one database (with its `-wal` and `-shm` beside it).
    pub fn database(&self) -> PathBuf {
        self.root.join("memory.sqlite")
    }

    /// `memory_service.log`: where a `start`ed, systemd or launchd instance logs.
    pub fn log(&self) -> PathBuf {
        self.root.join("memory_service.log")
    }

    /// `auth_token`: the bearer token `--allow-remote` requires (0600).
    pub fn auth_token(&self) -> PathBuf {
        self.root.join("auth_token")
    }

    /// `models/`: where `model install` puts embedding models.
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    /// `import-chatdo.json`: the messages `import-chatdo` brought across before.
    pub fn import_ledger(&self) -> PathBuf {
        self.root.join("import-chatdo.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_inside_the_home() {
        let h = Home::new("/h");
        let guarded = h.guarded();
        for p in [
            guarded.lock,
            guarded.pid,
            h.database(),
            h.log(),
            h.auth_token(),
            h.models(),
            h.import_ledger(),
        ] {
            assert_eq!(p.parent(), Some(Path::new("/h")), "{}", p.display());
        }
        assert_eq!(h.guarded().lock, Path::new("/h/memory_service.lock"));
        assert_eq!(h.database(), Path::new("/h/memory.sqlite"));
    }
}
