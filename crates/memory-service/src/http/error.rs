//! One error type for every handler, rendered as `{"detail": "..."}`
//! ([`memory_api::ErrorBody`], the
//! shape ChatDO's backend reads and shows to users). 4xx are the caller's
//! mistake and are not logged; 5xx are logged in full and sent generically,
//! except the two a user can act on: a full disk (507, "disk full: ...") and a
//! damaged database (500 naming `doctor`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What the caller sees in `detail`.
    pub detail: String,
}

impl ApiError {
    /// A 4xx with a message for the caller.
    pub fn client(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// A 500: `err` is logged with its chain, the caller gets a generic text.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "internal error while handling a request");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: "internal error; see the service log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(memory_api::ErrorBody { detail: self.detail })).into_response()
    }
}

impl From<memory_store::StoreError> for ApiError {
    fn from(e: memory_store::StoreError) -> ApiError {
        use memory_store::StoreError as E;
        match e {
            E::InvalidInput(m) => ApiError::client(StatusCode::BAD_REQUEST, m),
            E::NotFound(m) => ApiError::client(StatusCode::NOT_FOUND, m),
            E::Conflict(m) => ApiError::client(StatusCode::CONFLICT, m),
            E::Unavailable(m) => {
                tracing::warn!(reason = %m, "store unavailable");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    detail: format!("temporarily unavailable: {m}; retry shortly"),
                }
            }
            e if e.is_disk_full() => {
                tracing::error!(error = %e, "disk full: a write failed");
                ApiError {
                    status: StatusCode::INSUFFICIENT_STORAGE,
                    detail: format!(
                        "disk full: {e}; free space on the disk holding the service's home; \
                         writes resume by themselves, nothing acknowledged was lost"
                    ),
                }
            }
            e if e.is_damage() => {
                tracing::error!(error = %e, "the database is damaged");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    detail: "the database is damaged; run `memory-service stop` then \
                             `memory-service doctor` (see the service log)"
                        .into(),
                }
            }
            e if e.is_busy() => {
                tracing::warn!(error = %e, "database busy");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    detail: "database busy; retry shortly".into(),
                }
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<memory_indexer::IndexerError> for ApiError {
    fn from(e: memory_indexer::IndexerError) -> ApiError {
        use memory_indexer::IndexerError as E;
        match e {
            E::InvalidInput(m) => ApiError::client(StatusCode::BAD_REQUEST, m),
            E::NotFound(m) => ApiError::client(StatusCode::NOT_FOUND, m),
            E::Store(s) => s.into(),
            E::Unavailable(m) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: format!("temporarily unavailable: {m}; retry shortly"),
            },
            other => ApiError::internal(other),
        }
    }
}

impl From<memory_indexer::filetree::TreeError> for ApiError {
    fn from(e: memory_indexer::filetree::TreeError) -> ApiError {
        use memory_indexer::filetree::TreeError as E;
        let status = match &e {
            E::Escape(_) | E::IsADirectory(_) | E::InvalidPath(_) | E::NotARegularFile(_) => {
                StatusCode::BAD_REQUEST
            }
            E::RootMissing(_) | E::PathNotFound(_) | E::FileNotFound(_) => StatusCode::NOT_FOUND,
            E::PermissionDenied(_) => StatusCode::FORBIDDEN,
            _ => return ApiError::internal(e),
        };
        ApiError::client(status, e.to_string())
    }
}
