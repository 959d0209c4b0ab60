//! The library's one error type. Every variant names the path (and, where it
//! helps, the action) so a caller can print it as one line and the user knows
//! what to fix without reading code.

use std::io;
use std::path::PathBuf;

/// What can go wrong while guarding a home directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The home directory cannot hold our files: it is a file, unwritable,
    /// owned by another user, or cannot be created.
    #[error("home directory {path} is unusable: {reason}")]
    HomeUnusable {
        /// The home directory.
        path: PathBuf,
        /// Why, in words a user can act on.
        reason: String,
    },
    /// The lock path is a symbolic link. We never follow it: a link could
    /// point the lock (and our writes) anywhere.
    #[error("lock file {path} is a symbolic link; remove it and start again")]
    LockIsSymlink {
        /// The lock file path.
        path: PathBuf,
    },
    /// An I/O error, with what we were doing and on which path.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing, e.g. "opening lock file".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The lock file kept being replaced under us while we tried to take it.
    #[error(
        "lock file {path} kept changing while we tried to lock it (another starter is racing); try again"
    )]
    LockRace {
        /// The lock file path.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
