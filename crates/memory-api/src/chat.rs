//! Chat memory (api.md A.2.10-A.2.12): ChatDO posts every message, asks
//! for a job's state for its tooltip, and purges a chat when the user
//! deletes it. The acknowledgement's `status == "queued"` is what ChatDO's
//! client treats as success.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The `POST /index-chat-message` request: every field required but
/// `message_uuid`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndexChatMessage {
    /// The ChatDO project.
    pub project_id: String,
    /// The chat.
    pub chat_id: String,
    /// The message's id in the chat; `(chat_id, message_id)` is the upsert key.
    pub message_id: String,
    /// `user`, `assistant`, ...
    pub role: String,
    /// The text.
    pub content: String,
    /// When it was written, ISO-8601 (any offset, `Z` accepted).
    pub timestamp: String,
    /// Its position in the chat.
    pub message_index: i64,
    /// A client-chosen UUID, honoured (the original ignored it); a fresh
    /// UUIDv4 when absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_uuid: Option<String>,
}

/// The `POST /index-chat-message` answer, sent only after the message and
/// its indexing job are committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Queued {
    /// Always `"queued"`.
    pub status: String,
    /// Always `"Indexing job enqueued successfully"`.
    pub message: String,
    /// `<chat_id>:<message_id>:<epoch_ms>`, for `/index-job-status/{job_id}`.
    pub job_id: String,
    /// The message's UUID (the one sent, or the stored one).
    pub message_uuid: String,
}

/// Where a chat message's indexing job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatJobState {
    /// Committed, waiting for the indexer.
    Queued,
    /// Being indexed.
    Running,
    /// Indexed: searchable.
    Success,
    /// Kept for wire compatibility; not produced today.
    Timeout,
    /// Failed; see `error_message`.
    Error,
}

/// The `GET /index-job-status/{job_id}` body (404 for an unknown id; ours
/// survive a restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatJobStatus {
    /// The job id.
    pub job_id: String,
    /// Queued, running, success, timeout or error.
    pub state: ChatJobState,
    /// When it was committed, ISO-8601.
    pub enqueue_time: String,
    /// When indexing started, ISO-8601, or null.
    #[schema(required = true)]
    pub start_time: Option<String>,
    /// When indexing ended, ISO-8601, or null.
    #[schema(required = true)]
    pub end_time: Option<String>,
    /// `end_time - start_time` in seconds (fractional), or null.
    #[schema(required = true)]
    pub duration: Option<f64>,
    /// Chunks the message is expected to make.
    pub estimated_chunks: i64,
    /// The timeout the original would have given it, seconds.
    pub computed_timeout: f64,
    /// Why it failed, or null.
    #[schema(required = true)]
    pub error_message: Option<String>,
    /// The message's UUID, or null.
    #[schema(required = true)]
    pub message_uuid: Option<String>,
}

/// The `DELETE /chats/{project_id}/{chat_id}` answer: ChatDO treats exactly a
/// 200 as success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatDeleted {
    /// Always `"ok"`.
    pub status: String,
    /// `Deleted N chat messages for chat_id=<id>`.
    pub message: String,
    /// Messages deleted (with their index entries).
    pub deleted_count: u64,
    /// Ours: facts deleted because they came from those messages.
    pub deleted_facts_count: u64,
}
