//! One error type for every handler, rendered as `{"detail": "..."}` (the
//! shape ChatDO's backend reads and shows to users). 4xx are the caller's
//! mistake and are not logged; 5xx are logged in full and sent generically.

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
        (self.status, Json(serde_json::json!({ "detail": self.detail }))).into_response()
    }
}
