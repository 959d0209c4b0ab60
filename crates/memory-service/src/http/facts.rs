//! Project facts (api.md A.2.13 and issue 10): `POST /facts`, `GET /facts`,
//! `DELETE /facts/{id}`, `POST /search-facts`. The original had only the search
//! on its wire (ChatDO's backend wrote facts straight into the service's SQLite
//! files); here facts come in through `POST /facts`, so the database has one
//! writer. `/search-facts` keeps the original's request and response exactly.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use memory_api::StatusMessage;
use memory_api::facts::{Fact, Facts, FactsQuery, NewFact, SearchFacts};

use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, AppState, blocking};

/// A stored fact on the wire.
fn fact(f: memory_store::Fact) -> Fact {
    Fact {
        fact_id: f.fact_id,
        project_id: f.project_id,
        fact_key: f.fact_key,
        value_text: f.value_text,
        value_type: f.value_type,
        confidence: f.confidence,
        source_message_uuid: f.source_message_uuid,
        created_at: f.created_at,
        effective_at: f.effective_at,
        supersedes_fact_id: f.supersedes_fact_id,
        is_current: f.is_current,
    }
}

fn facts(v: Vec<memory_store::Fact>) -> Json<Facts> {
    Json(Facts {
        facts: v.into_iter().map(fact).collect(),
    })
}

/// `POST /facts`: answers after the commit with the stored fact.
pub async fn add(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<NewFact>,
) -> Result<Json<Fact>, ApiError> {
    let store = state.store()?.clone();
    let stored = blocking(move || {
        store.add_fact(memory_store::FactIn {
            project_id: b.project_id,
            fact_key: b.fact_key,
            value_text: b.value_text,
            value_type: b.value_type,
            confidence: b.confidence,
            source_message_uuid: b.source_message_uuid,
            effective_at: b.effective_at,
        })
    })
    .await?;
    Ok(Json(fact(stored)))
}

/// `GET /facts?project_id=&include_history=false`: current facts (or all).
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FactsQuery>,
) -> Result<Json<Facts>, ApiError> {
    let store = state.store()?.clone();
    Ok(facts(
        blocking(move || store.list_facts(&q.project_id, q.include_history)).await?,
    ))
}

/// `DELETE /facts/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StatusMessage>, ApiError> {
    let store = state.store()?.clone();
    let fid = id.clone();
    if !blocking(move || store.delete_fact(&fid)).await? {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            format!("Fact '{id}' not found"),
        ));
    }
    Ok(Json(StatusMessage::ok(format!(
        "Fact '{id}' deleted successfully"
    ))))
}

/// `POST /search-facts`: current facts matching the original's keyword rule,
/// best match first. An empty `project_id` is a 400 (the original: 500).
pub async fn search(
    State(state): State<AppState>,
    ApiJson(q): ApiJson<SearchFacts>,
) -> Result<Json<Facts>, ApiError> {
    if q.limit < 1 {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("limit must be at least 1 (got {})", q.limit),
        ));
    }
    let req = memory_store::FactQuery {
        project_id: q.project_id,
        query: q.query,
        limit: (q.limit as usize).min(memory_store::MAX_LIMIT),
        exclude_message_uuid: q.exclude_message_uuid,
    };
    let store = state.store()?.clone();
    let vector = state.semantic.begin_query_vector(&req.query);
    Ok(facts(
        blocking(move || store.search_facts_with(&req, vector.wait().as_deref())).await?,
    ))
}
