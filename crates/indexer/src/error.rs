//! The crate's error type, [`IndexerError`]. It owns "what went wrong" -> variant and
//! carries the path and the action; it must not know HTTP, but each variant documents
//! the status the HTTP layer should map it to.

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
    #[error("while {action} {}: {source}", path.display())]
    Io {
        /// What we were doing, e.g. "reading".
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
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
