//! The one error body. ChatDO's backend reads `detail` from any non-2xx answer
//! and shows it to the user (api.md A.0), so every error of ours, the
//! framework's own (404, 405, 408, 413, 415, 422) included, has this shape
//! with a string `detail` (never FastAPI's list form).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"detail": "..."}`: the body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong and what to do next, for people. A 5xx says only
    /// "internal error; see the service log" (the cause is in the log).
    pub detail: String,
}
