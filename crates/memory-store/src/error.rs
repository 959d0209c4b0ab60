//! The crate's one error type, [`StoreError`], and helpers that attach context.
//! It owns the mapping "what went wrong" -> variant; it must not know HTTP status
//! codes (the HTTP layer maps variants), so each variant documents its intended class.
//! Each cause is printed once: the variants that wrap a SQLite or I/O error embed
//! its text in their message (job errors and logs store that one line) and do not
//! also expose it as `source()`, so `anyhow`'s `{:#}` never repeats it.

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
    #[error("{context}: {cause}")]
    Sqlite {
        /// What the store was doing, e.g. "while opening database /x/memory.sqlite".
        context: String,
        /// The underlying SQLite error, embedded in the message (not a `source()`).
        cause: rusqlite::Error,
    },
    /// A file-system operation failed.
    #[error("{context}: {cause}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying I/O error, embedded in the message (not a `source()`).
        cause: std::io::Error,
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
    pub(crate) fn sqlite(context: impl Into<String>, cause: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            context: context.into(),
            cause,
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
            StoreError::Sqlite { context, cause } => StoreError::Sqlite {
                context: context.clone(),
                cause: match cause {
                    rusqlite::Error::SqliteFailure(e, m) => rusqlite::Error::SqliteFailure(*e, m.clone()),
                    other => rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                        Some(other.to_string()),
                    ),
                },
            },
            StoreError::Io { context, cause } => StoreError::Io {
                context: context.clone(),
                cause: std::io::Error::new(cause.kind(), cause.to_string()),
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

    /// True when the disk (or the file system holding the database) is full:
    /// SQLite's `SQLITE_FULL`, or an I/O error `ENOSPC` / `EDQUOT`. SQLite's Unix
    /// layer maps only `ENOSPC` to `SQLITE_FULL`; a file-size limit (`EFBIG`)
    /// arrives as a generic `SQLITE_IOERR` and is not counted here.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sqlite {
                cause: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => e.code == rusqlite::ErrorCode::DiskFull,
            StoreError::Io { cause, .. } => matches!(
                cause.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// True when SQLite found the database file damaged (`SQLITE_CORRUPT`) or not a
    /// database at all (`SQLITE_NOTADB`): `memory-service doctor` is the way out.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite {
                cause: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(e.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    }

    /// True when SQLite reported the database busy or locked (worth a retry later).
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite {
                cause: rusqlite::Error::SqliteFailure(e, _),
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

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::assert_each_cause_once;

    /// Every variant, with real SQLite and OS errors where a variant wraps one.
    fn every_variant() -> Vec<StoreError> {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the database should be: SQLite cannot open it.
        let sqlite = rusqlite::Connection::open(dir.path()).unwrap_err();
        let io = std::fs::read(dir.path()).unwrap_err();
        let all = vec![
            StoreError::InvalidInput("query is empty".into()),
            StoreError::NotFound("Source not found: x".into()),
            StoreError::Conflict("source id docs-dir is taken".into()),
            StoreError::Unavailable("the store is shut down".into()),
            StoreError::sqlite(on_path("opening database", dir.path()), sqlite),
            StoreError::Io {
                context: on_path("creating the database directory", dir.path()),
                cause: io,
            },
            StoreError::SchemaTooNew {
                path: "/h/memory.sqlite".into(),
                found: 9,
                supported: 3,
            },
            StoreError::Internal("source vanished".into()),
        ];
        // A new variant fails to compile here until it is added above.
        for e in &all {
            match e {
                StoreError::InvalidInput(_)
                | StoreError::NotFound(_)
                | StoreError::Conflict(_)
                | StoreError::Unavailable(_)
                | StoreError::Sqlite { .. }
                | StoreError::Io { .. }
                | StoreError::SchemaTooNew { .. }
                | StoreError::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_variant_prints_each_cause_once() {
        for e in every_variant() {
            let dup = e.duplicate();
            assert_each_cause_once(anyhow::Error::new(e).context("opening the data"));
            assert_each_cause_once(anyhow::Error::new(dup).context("opening the data"));
        }
    }
}
