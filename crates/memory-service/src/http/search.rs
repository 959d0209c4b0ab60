//! `POST /search`: the contract's request and result shapes over the store's
//! hybrid search (BM25 and word coverage, plus meaning once an embedding model is
//! loaded: the query is embedded on the model's own threads, never here, while the
//! store searches the words). User text
//! is never query syntax (the store quotes every term). `limit` defaults to 10 and
//! is capped at the store's maximum.
//!
//! A file chunk is returned at most once: two sources can cover the same file
//! (the same folder added twice with `--duplicate`, or one source nested in
//! another), and the same text twice in one list only crowds out other hits.
//! The store is asked for twice the limit so the list stays full after that.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use memory_api::search::{SearchRequest, SearchResult, SearchResults, SourceType};

use super::extract::ApiJson;
use super::{ApiError, AppState, blocking};

/// `POST /search`.
pub async fn search(
    State(state): State<AppState>,
    ApiJson(q): ApiJson<SearchRequest>,
) -> Result<Json<SearchResults>, ApiError> {
    if q.project_id.trim().is_empty() {
        return Err(ApiError::client(
            StatusCode::BAD_REQUEST,
            "project_id is required and cannot be empty",
        ));
    }
    if q.limit < 1 {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("limit must be at least 1 (got {})", q.limit),
        ));
    }
    let limit = (q.limit as usize).min(memory_store::MAX_LIMIT);
    let req = memory_store::SearchRequest {
        project_id: q.project_id,
        query: q.query,
        limit: (limit * 2).min(memory_store::MAX_LIMIT),
        source_ids: q.source_ids,
        exclude_chat_ids: q.exclude_chat_ids.unwrap_or_default(),
    };
    let store = state.store()?.clone();
    // The query is embedded while the store searches its words; the store asks for the
    // vector only then.
    let vector = state.semantic.begin_query_vector(&req.query);
    let mut hits = blocking(move || store.search_awaiting(&req, || vector.wait())).await?;
    // Best first already: keep each file chunk's first (best) hit.
    let mut seen = std::collections::HashSet::new();
    hits.retain(|h| {
        h.file_path
            .as_ref()
            .is_none_or(|path| seen.insert((path.clone(), h.chunk_index)))
    });
    hits.truncate(limit);
    Ok(Json(SearchResults {
        results: hits
            .into_iter()
            .map(|h| SearchResult {
                score: h.score,
                project_id: h.project_id,
                source_id: h.source_id,
                file_path: h.file_path,
                filetype: h.filetype,
                chunk_index: h.chunk_index,
                text: h.text,
                start_char: h.start_char,
                end_char: h.end_char,
                source_type: match h.source_type {
                    memory_store::SourceType::Chat => SourceType::Chat,
                    memory_store::SourceType::File => SourceType::File,
                },
                chat_id: h.chat_id,
                message_id: h.message_id,
                message_uuid: h.message_uuid,
            })
            .collect(),
    }))
}
