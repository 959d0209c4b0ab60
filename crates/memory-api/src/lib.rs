//! The HTTP contract of memory-service, as Rust types.
//!
//! Why a crate of its own: ChatDO's backend and web UI depend on the exact
//! field names of our JSON bodies (`shared/design/api.md`), and so do our own
//! CLI client, `status`, the integration tests and the bench. When each of
//! them built or read bodies by string key, a renamed field was a runtime bug
//! found (at best) by a test. Here every body is one type that the service
//! serialises and every reader deserialises, so a rename is a compile error
//! everywhere at once, and the OpenAPI document ([`openapi`]) is generated from
//! the same types, so it cannot drift from the wire either.
//!
//! The crate holds serde and utoipa derives only: no HTTP framework, no store
//! types, so a client can depend on it without pulling in the service.
//!
//! Wire rules the types keep (tests in the service pin them):
//! - a field documented "or null" is always present, with an explicit `null`;
//! - a field documented "omitted when ..." is left out of the body then
//!   (`skip_serializing_if`), and reads back as `None`;
//! - times are ISO-8601 strings (service-made ones are naive local time with
//!   microseconds, as the original's), sizes are bytes, counts are plain
//!   integers, durations say their unit in the field name or docstring.

pub mod chat;
pub mod error;
pub mod facts;
pub mod filetree;
pub mod health;
mod openapi_doc;
pub mod search;
pub mod sources;

pub use error::ErrorBody;
pub use health::HealthReport;
pub use openapi_doc::{ApiDoc, openapi, openapi_json};

/// The `{"status": "ok", "message": ...}` answer of a deletion
/// (`DELETE /sources/{id}`, `DELETE /facts/{id}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StatusMessage {
    /// Always `"ok"`.
    pub status: String,
    /// What was done, for people, e.g. `Source 'docs-dir' deleted successfully`.
    pub message: String,
}

impl StatusMessage {
    /// `{"status": "ok", "message": message}`.
    pub fn ok(message: impl Into<String>) -> StatusMessage {
        StatusMessage {
            status: "ok".into(),
            message: message.into(),
        }
    }
}
