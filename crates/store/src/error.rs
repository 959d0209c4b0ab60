//! The crate's one error type, [`StoreError`], and helpers that attach context.
//! It owns the mapping "what went wrong" -> variant; it must not know HTTP status
//! codes (the HTTP layer maps variants), so each variant documents its intended class.

use std::path::Path;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller sent something unacceptable (HTTP 400/422).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The named thing does not exist (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The named thing already exists (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store is shut down or its writer is gone or overloaded (HTTP 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// SQLite failed; `context` says what we were doing.
    #[error("{context}: {source}")]
    Sqlite {
        /// What the store was doing, e.g. "while opening database /x/memory.sqlite".
        context: String,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer version of this program.
    #[error("database {path} has schema version {found}, newer than this program's {supported}")]
    SchemaTooNew {
        /// The database file.
        path: String,
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A bug or a broken invariant inside the store (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// Wraps a SQLite error with what we were doing.
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            context: context.into(),
            source,
        }
    }

    /// A copy of this error for the second and later callers of a failed group commit
    /// (rusqlite errors are not `Clone`; SQLite failures keep their codes).
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::InvalidInput(m) => StoreError::InvalidInput(m.clone()),
            StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::Internal(m) => StoreError::Internal(m.clone()),
            StoreError::Sqlite { context, source } => StoreError::Sqlite {
                context: context.clone(),
                source: match source {
                    rusqlite::Error::SqliteFailure(e, m) => rusqlite::Error::SqliteFailure(*e, m.clone()),
                    other => rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                        Some(other.to_string()),
                    ),
                },
            },
            StoreError::Io { context, source } => StoreError::Io {
                context: context.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::SchemaTooNew {
                path,
                found,
                supported,
            } => StoreError::SchemaTooNew {
                path: path.clone(),
                found: *found,
                supported: *supported,
            },
        }
    }

    /// True when SQLite reported the database busy or locked (worth a retry later).
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// Adds context to rusqlite results: `conn.execute(..).ctx("while deleting chat")?`.
pub(crate) trait SqlContext<T> {
    /// Maps the error to [`StoreError::Sqlite`] with `context`.
    fn ctx(self, context: &str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::sqlite(context, e))
    }
}

/// "while opening database <path>"-style context for a path.
pub(crate) fn on_path(what: &str, path: &Path) -> String {
    format!("while {what} {}", path.display())
}
