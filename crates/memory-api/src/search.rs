//! `POST /search` (api.md A.2.9): ChatDO's librarian and discovery adapter
//! call it before answering the user, with a 2 to 3 second timeout; any error
//! there silently becomes "no memory", so the shapes must never drift.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The `POST /search` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchRequest {
    /// The ChatDO project whose chats (and attached sources) are searched;
    /// 400 when empty.
    pub project_id: String,
    /// The user's text; never query syntax.
    pub query: String,
    /// Results wanted: at least 1 (else 422), capped at the store's maximum; default 10.
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// File sources to search; null (or absent) means the project's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ids: Option<Vec<String>>,
    /// Accepted and ignored, as in the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Chats left out (ChatDO sends its trashed and archived chats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_chat_ids: Option<Vec<String>>,
}

fn default_limit() -> i64 {
    10
}

/// Where a result comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// A chat message (`chat_id` and `message_id` set).
    Chat,
    /// A file chunk (`file_path` set).
    File,
}

/// One search result; every field is always present, nulls explicit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    /// Relevance in [0, 1], higher is better; results come best first.
    pub score: f64,
    /// The project searched.
    pub project_id: String,
    /// The source: a file source's id, or `project-<project_id>` for chats.
    pub source_id: String,
    /// The file, absolute, or null for chat.
    #[schema(required = true)]
    pub file_path: Option<String>,
    /// The file's extension without the dot, or null.
    #[schema(required = true)]
    pub filetype: Option<String>,
    /// The chunk's position in its file or message, from 0.
    pub chunk_index: i64,
    /// The chunk's text.
    pub text: String,
    /// Where the chunk starts in its document, characters.
    pub start_char: i64,
    /// Where the chunk ends in its document (exclusive), characters.
    pub end_char: i64,
    /// `chat` or `file`.
    pub source_type: SourceType,
    /// The chat, or null for files.
    #[schema(required = true)]
    pub chat_id: Option<String>,
    /// The message, or null for files.
    #[schema(required = true)]
    pub message_id: Option<String>,
    /// The message's UUID, or null for files.
    #[schema(required = true)]
    pub message_uuid: Option<String>,
}

/// The `POST /search` body, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchResults {
    /// The results.
    pub results: Vec<SearchResult>,
}
