//! Chat memory endpoints: `POST /index-chat-message`,
//! `GET /index-job-status/{job_id}`, `DELETE /chats/{project_id}/{chat_id}`.
//! Wire shapes follow ChatDO's contract (api.md A.2.10-A.2.12); the work is
//! the store's, run off the async workers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use memory_api::chat::{ChatDeleted, ChatJobState, ChatJobStatus, IndexChatMessage, Queued};

use super::extract::ApiJson;
use super::{ApiError, AppState, blocking};

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
        status: "queued".into(),
        message: "Indexing job enqueued successfully".into(),
        job_id: ack.job_id,
        message_uuid: ack.message_uuid,
    }))
}

/// `GET /index-job-status/{job_id}`.
pub async fn job_status(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
) -> Result<Json<ChatJobStatus>, ApiError> {
    let store = state.store()?.clone();
    let id = job_id.clone();
    let job = blocking(move || store.job_status(&id)).await?;
    let j = job.ok_or_else(|| ApiError::client(StatusCode::NOT_FOUND, format!("Job {job_id} not found")))?;
    use memory_store::ChatJobState as S;
    Ok(Json(ChatJobStatus {
        job_id: j.job_id,
        state: match j.state {
            S::Queued => ChatJobState::Queued,
            S::Running => ChatJobState::Running,
            S::Success => ChatJobState::Success,
            S::Timeout => ChatJobState::Timeout,
            S::Error => ChatJobState::Error,
        },
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

/// `DELETE /chats/{project_id}/{chat_id}`: the chat's messages, their index
/// and the facts stored from them, in one transaction; a failure is a 5xx,
/// never a silent 0.
pub async fn delete_chat(
    State(state): State<AppState>,
    Path((project_id, chat_id)): Path<(String, String)>,
) -> Result<Json<ChatDeleted>, ApiError> {
    let store = state.store()?.clone();
    let chat = chat_id.clone();
    let (n, facts) = blocking(move || store.delete_chat_counts(&project_id, &chat)).await?;
    Ok(Json(ChatDeleted {
        status: "ok".into(),
        message: format!("Deleted {n} chat messages for chat_id={chat_id}"),
        deleted_count: n,
        deleted_facts_count: facts,
    }))
}
