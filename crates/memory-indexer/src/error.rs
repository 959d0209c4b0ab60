//! The crate's error type, [`IndexerError`]. It owns "what went wrong" -> variant and
//! carries the path and the action; it must not know HTTP, but each variant documents
//! the status the HTTP layer should map it to. Each cause is printed once: a variant
//! wrapping an OS error embeds it in its message (job errors store that one line) and
//! does not also expose it as `source()`; `Store` is transparent, so it prints and
//! chains exactly as the store's error does.

use std::path::PathBuf;

use memory_store::StoreError;

/// Everything that can go wrong in the indexer's public operations.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// The caller sent something unacceptable, e.g. "Path does not exist: ~/x" (HTTP 400).
    #[error("{0}")]
    InvalidInput(String),
    /// The named source or job does not exist, e.g. "Source not found: x" (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The store failed (its own variant says which HTTP class).
    #[error(transparent)]
    Store(StoreError),
    /// A file-system operation failed.
    #[error("while {action} {}: {cause}", path.display())]
    Io {
        /// What we were doing, e.g. "reading".
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error, embedded in the message (not a `source()`).
        cause: std::io::Error,
    },
    /// A glob in a source's include or exclude list is invalid.
    #[error("invalid glob {glob:?} for source root {}: {message}", root.display())]
    Glob {
        /// The glob.
        glob: String,
        /// The source root.
        root: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// The file watcher could not be set up.
    #[error("while watching {}: {message}", path.display())]
    Watch {
        /// The watched root.
        path: PathBuf,
        /// The watcher's complaint.
        message: String,
    },
    /// The indexer is shut down or its worker could not start (HTTP 503).
    #[error("indexer unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for IndexerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => IndexerError::NotFound(m),
            StoreError::InvalidInput(m) => IndexerError::InvalidInput(m),
            other => IndexerError::Store(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filetree::TreeError;

    fn os_error() -> std::io::Error {
        std::io::Error::from_raw_os_error(nix::libc::EIO)
    }

    /// Every variant of this crate's two error types, with real causes.
    fn every_variant() -> Vec<anyhow::Error> {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = rusqlite::Connection::open(dir.path()).unwrap_err();
        let store = memory_store::StoreError::Sqlite {
            context: format!("while opening database {}", dir.path().display()),
            cause: sqlite,
        };
        let indexer = vec![
            IndexerError::InvalidInput("Path does not exist: ~/x".into()),
            IndexerError::NotFound("Source not found: x".into()),
            IndexerError::Store(store),
            IndexerError::Io {
                action: "resolving",
                path: dir.path().into(),
                cause: os_error(),
            },
            IndexerError::Glob {
                glob: "a[".into(),
                root: "/r".into(),
                message: "unclosed character class".into(),
            },
            IndexerError::Watch {
                path: "/r".into(),
                message: "too many watches".into(),
            },
            IndexerError::Unavailable("shut down".into()),
        ];
        for e in &indexer {
            // A new variant fails to compile here until it is added above.
            match e {
                IndexerError::InvalidInput(_)
                | IndexerError::NotFound(_)
                | IndexerError::Store(_)
                | IndexerError::Io { .. }
                | IndexerError::Glob { .. }
                | IndexerError::Watch { .. }
                | IndexerError::Unavailable(_) => {}
            }
        }
        let tree = vec![
            TreeError::RootMissing("/r".into()),
            TreeError::PathNotFound("a".into()),
            TreeError::FileNotFound("a".into()),
            TreeError::Escape("../a".into()),
            TreeError::IsADirectory("a".into()),
            TreeError::PermissionDenied("a".into()),
            TreeError::InvalidPath("a".into()),
            TreeError::NotARegularFile("a".into()),
            TreeError::Io {
                action: "reading",
                path: "a".into(),
                cause: os_error(),
            },
        ];
        for e in &tree {
            // A new variant fails to compile here until it is added above.
            match e {
                TreeError::RootMissing(_)
                | TreeError::PathNotFound(_)
                | TreeError::FileNotFound(_)
                | TreeError::Escape(_)
                | TreeError::IsADirectory(_)
                | TreeError::PermissionDenied(_)
                | TreeError::InvalidPath(_)
                | TreeError::NotARegularFile(_)
                | TreeError::Io { .. } => {}
            }
        }
        let mut all: Vec<anyhow::Error> = indexer.into_iter().map(anyhow::Error::new).collect();
        all.extend(tree.into_iter().map(anyhow::Error::new));
        all
    }

    #[test]
    fn every_variant_prints_each_cause_once() {
        for e in every_variant() {
            let e = e.context("handling a request");
            testkit::assert_each_cause_once(e);
        }
    }
}
