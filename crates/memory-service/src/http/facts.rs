//! Project facts (api.md A.2.13 and issue 10): `POST /facts`, `GET /facts`,
//! `DELETE /facts/{id}`, `POST /search-facts`. The original had only the search
//! on its wire (ChatDO's backend wrote facts straight into the service's SQLite
//! files); here facts come in through `POST /facts`, so the database has one
//! writer. `/search-facts` keeps the original's request and response exactly.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, AppState, blocking};

/// A fact on the wire: the original's `project_facts` row, `is_current` a bool.
#[derive(Debug, Serialize)]
pub struct FactBody {
    fact_id: String,
    project_id: String,
    fact_key: String,
    value_text: String,
    value_type: String,
    confidence: f64,
    source_message_uuid: Option<String>,
    created_at: String,
    effective_at: String,
    supersedes_fact_id: Option<String>,
    is_current: bool,
}

impl From<memory_store::Fact> for FactBody {
    fn from(f: memory_store::Fact) -> Self {
        FactBody {
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
}

/// `{"facts": [...]}`, the shape of both the list and the search.
#[derive(Debug, Serialize)]
pub struct Facts {
    facts: Vec<FactBody>,
}

fn facts(v: Vec<memory_store::Fact>) -> Json<Facts> {
    Json(Facts {
        facts: v.into_iter().map(FactBody::from).collect(),
    })
}

/// The `POST /facts` body; `value_type` defaults to `string`.
#[derive(Debug, Deserialize)]
pub struct NewFact {
    project_id: String,
    fact_key: String,
    value_text: String,
    #[serde(default = "default_type")]
    value_type: String,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    source_message_uuid: Option<String>,
    #[serde(default)]
    effective_at: Option<String>,
}

fn default_type() -> String {
    "string".into()
}

/// `POST /facts`: answers after the commit with the stored fact.
pub async fn add(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<NewFact>,
) -> Result<Json<FactBody>, ApiError> {
    let store = state.store()?.clone();
    let fact = blocking(move || {
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
    Ok(Json(fact.into()))
}

/// The `GET /facts` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    project_id: String,
    #[serde(default)]
    include_history: bool,
}

/// `GET /facts?project_id=&include_history=false`: current facts (or all).
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Facts>, ApiError> {
    let store = state.store()?.clone();
    Ok(facts(
        blocking(move || store.list_facts(&q.project_id, q.include_history)).await?,
    ))
}

/// `DELETE /facts/{id}`.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let store = state.store()?.clone();
    let fid = id.clone();
    if !blocking(move || store.delete_fact(&fid)).await? {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            format!("Fact '{id}' not found"),
        ));
    }
    Ok(Json(
        json!({"status": "ok", "message": format!("Fact '{id}' deleted successfully")}),
    ))
}

/// The `/search-facts` body, as the original's.
#[derive(Debug, Deserialize)]
pub struct SearchFacts {
    project_id: String,
    query: String,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    exclude_message_uuid: Option<String>,
}

fn default_limit() -> i64 {
    10
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
    let vector = state.semantic.query_vector(&req.query).await;
    Ok(facts(
        blocking(move || store.search_facts_with(&req, vector.as_deref())).await?,
    ))
}
