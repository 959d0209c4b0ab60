//! The library's one error type. Every variant names the path (and, where it
//! helps, the action) so a caller can print it as one line and the user knows
//! what to fix without reading code. Each cause is printed once: a variant
//! that wraps an OS error embeds it in its message and does not also expose
//! it as `source()`, so `anyhow`'s `{:#}` never repeats it.

use std::io;
use std::path::PathBuf;

use crate::file::Kind;

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
    /// One of our files (the PID file, the lock file) is a FIFO, a socket, a
    /// device or a directory. We never open, follow or block on it.
    #[error("{what} {path} is {kind}, not a regular file; remove it and start again")]
    NotARegularFile {
        /// Which file, e.g. "PID file".
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is there instead.
        kind: Kind,
    },
    /// An I/O error, with what we were doing and on which path.
    #[error("{action} {path}: {cause}")]
    Io {
        /// What we were doing, e.g. "opening lock file".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error, embedded in the message (not a `source()`).
        cause: io::Error,
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
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, cause: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            cause,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::assert_each_cause_once;

    /// Every variant, so the check below covers each message shape.
    fn every_variant() -> Vec<Error> {
        let all = vec![
            Error::HomeUnusable {
                path: "/h".into(),
                reason: "it is not a directory; choose another".into(),
            },
            Error::LockIsSymlink {
                path: "/h/x.lock".into(),
            },
            Error::io(
                "opening lock file",
                "/h/x.lock",
                io::Error::from_raw_os_error(nix::libc::EISDIR),
            ),
            Error::LockRace {
                path: "/h/x.lock".into(),
            },
            Error::NotARegularFile {
                what: "PID file",
                path: "/h/x.pid".into(),
                kind: Kind::Fifo,
            },
        ];
        // A new variant fails to compile here until it is added above.
        for e in &all {
            match e {
                Error::HomeUnusable { .. }
                | Error::LockIsSymlink { .. }
                | Error::Io { .. }
                | Error::LockRace { .. }
                | Error::NotARegularFile { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_variant_prints_each_cause_once() {
        for e in every_variant() {
            assert_each_cause_once(anyhow::Error::new(e).context("claiming the home directory"));
        }
    }
}
