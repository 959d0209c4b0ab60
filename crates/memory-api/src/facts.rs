//! Project facts (api.md A.2.13): remembered key/value statements from chats.
//! `/search-facts` keeps the original's wire exactly; `POST /facts`,
//! `GET /facts` and `DELETE /facts/{id}` are ours (the original's backend
//! wrote the service's SQLite files directly; ours keeps one writer).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A fact, as the original's `project_facts` row (`is_current` a bool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Fact {
    /// Its id.
    pub fact_id: String,
    /// The ChatDO project (a UUID).
    pub project_id: String,
    /// What it is about, e.g. `favorite_color`.
    pub fact_key: String,
    /// Its value as text.
    pub value_text: String,
    /// The value's type, e.g. `string`.
    pub value_type: String,
    /// How sure the writer was, 0 to 1.
    pub confidence: f64,
    /// The chat message it came from, or null.
    #[schema(required = true)]
    pub source_message_uuid: Option<String>,
    /// When it was stored, ISO-8601.
    pub created_at: String,
    /// From when it holds, ISO-8601.
    pub effective_at: String,
    /// The fact with the same key it replaced, or null.
    #[schema(required = true)]
    pub supersedes_fact_id: Option<String>,
    /// Whether no later fact replaced it.
    pub is_current: bool,
}

/// `{"facts": [...]}`: the body of `GET /facts` and `POST /search-facts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Facts {
    /// The facts (best match first for a search).
    pub facts: Vec<Fact>,
}

/// The `POST /facts` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewFact {
    /// The ChatDO project (a UUID).
    pub project_id: String,
    /// What it is about.
    pub fact_key: String,
    /// Its value as text.
    pub value_text: String,
    /// The value's type; `string` when absent.
    #[serde(default = "default_type")]
    pub value_type: String,
    /// How sure the writer is, 0 to 1; the store's default when absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The chat message it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_message_uuid: Option<String>,
    /// From when it holds, ISO-8601; now when absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
}

fn default_type() -> String {
    "string".into()
}

/// The `GET /facts` query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FactsQuery {
    /// The ChatDO project.
    pub project_id: String,
    /// Also replaced facts; default false (current facts only).
    #[serde(default)]
    pub include_history: bool,
}

/// The `POST /search-facts` request, as the original's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchFacts {
    /// The ChatDO project; 400 when empty or not a UUID.
    pub project_id: String,
    /// The user's text.
    pub query: String,
    /// Facts wanted: at least 1 (else 422), capped at the store's maximum; default 10.
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// Leave out facts from this message (the one being answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_message_uuid: Option<String>,
}

fn default_limit() -> i64 {
    10
}
