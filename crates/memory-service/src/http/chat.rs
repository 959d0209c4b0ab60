//! Chat memory endpoints: `POST /index-chat-message`,
//! `GET /index-job-status/{job_id}`, `DELETE /chats/{project_id}/{chat_id}`.
//! Wire shapes follow ChatDO's contract (api.md A.2.10-A.2.12); the work is
//! the store's, run off the async workers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::ApiJson;
use super::{ApiError, AppState, blocking};

/// The `/index-chat-message` body: every field required but `message_uuid`.
#[derive(Debug, Deserialize)]
pub struct IndexChatMessage {
    project_id: String,
    chat_id: String,
    message_id: String,
    role: String,
    content: String,
    timestamp: String,
    message_index: i64,
    #[serde(default)]
    message_uuid: Option<String>,
}

/// The acknowledgement, sent only after the message and its job committed.
#[derive(Debug, Serialize)]
pub struct Queued {
    status: &'static str,
    message: &'static str,
    job_id: String,
    message_uuid: String,
}

/// `POST /index-chat-message`.
pub async fn index_chat_message(
    State(state): State<AppState>,
    ApiJson(m): ApiJson<IndexChatMessage>,
) -> Result<Json<Queued>, ApiError> {
    let store = state.store()?.clone();
    let ack = blocking(move || {
        store.index_chat_message(memory_store::ChatMessageIn {
            project_id: m.project_id,
            chat_id: m.chat_id,
            message_id: m.message_id,
            role: m.role,
            content: m.content,
            timestamp: m.timestamp,
            message_index: m.message_index,
            message_uuid: m.message_uuid,
        })
    })
    .await?;
    Ok(Json(Queued {
        status: "queued",
        message: "Indexing job enqueued successfully",
        job_id: ack.job_id,
        message_uuid: ack.message_uuid,
    }))
}

/// One job's status, as the contract names its fields.
#[derive(Debug, Serialize)]
pub struct JobStatusBody {
    job_id: String,
    state: &'static str,
    enqueue_time: String,
    start_time: Option<String>,
    end_time: Option<String>,
    duration: Option<f64>,
    estimated_chunks: i64,
    computed_timeout: f64,
    error_message: Option<String>,
    message_uuid: Option<String>,
}

/// `GET /index-job-status/{job_id}`.
pub async fn job_status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<JobStatusBody>, ApiError> {
    let store = state.store()?.clone();
    let id = job_id.clone();
    let job = blocking(move || store.job_status(&id)).await?;
    let j = job.ok_or_else(|| ApiError::client(StatusCode::NOT_FOUND, format!("Job {job_id} not found")))?;
    Ok(Json(JobStatusBody {
        job_id: j.job_id,
        state: j.state.as_str(),
        enqueue_time: j.enqueue_time,
        start_time: j.start_time,
        end_time: j.end_time,
        duration: j.duration,
        estimated_chunks: j.estimated_chunks,
        computed_timeout: j.computed_timeout,
        error_message: j.error_message,
        message_uuid: j.message_uuid,
    }))
}

/// The answer to a chat deletion: the original's fields, plus
/// `deleted_facts_count` (ours).
#[derive(Debug, Serialize)]
pub struct Deleted {
    status: &'static str,
    message: String,
    deleted_count: u64,
    deleted_facts_count: u64,
}

/// `DELETE /chats/{project_id}/{chat_id}`: the chat's messages, their index
/// and the facts stored from them, in one transaction; a failure is a 5xx,
/// never a silent 0.
pub async fn delete_chat(
    State(state): State<AppState>,
    Path((project_id, chat_id)): Path<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    let store = state.store()?.clone();
    let chat = chat_id.clone();
    let (n, facts) = blocking(move || store.delete_chat_counts(&project_id, &chat)).await?;
    Ok(Json(Deleted {
        status: "ok",
        message: format!("Deleted {n} chat messages for chat_id={chat_id}"),
        deleted_count: n,
        deleted_facts_count: facts,
    }))
}
