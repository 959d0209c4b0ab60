//! File source endpoints (api.md A.2.2-A.2.8): list, add, delete, reindex,
//! one source's status, its jobs, its chunk statistics. The indexing itself
//! is `memory-indexer`'s; handlers only translate shapes and errors.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, AppState, blocking};

/// Skipped files by reason, `{"binary": n, "too_large": n, ...}` (ours, additive).
fn skipped_json(s: &memory_store::SkipCounts) -> Value {
    Value::Object(
        s.by_reason()
            .into_iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect(),
    )
}

/// A job as the contract shows it, plus (ours, additive) `files_indexed` and
/// `bytes_indexed` (files looked at whose text is searchable, and their size),
/// `files_skipped` and `skipped` by reason.
fn job_json(j: &memory_store::FileJob) -> Value {
    json!({
        "id": j.id,
        "source_id": j.source_id,
        "status": j.status.as_str(),
        "started_at": j.started_at,
        "completed_at": j.completed_at,
        "files_total": j.files_total,
        "files_processed": j.files_processed,
        "bytes_processed": j.bytes_processed,
        "error": j.error,
        "files_indexed": j.files_indexed,
        "bytes_indexed": j.bytes_indexed,
        "files_skipped": j.files_skipped,
        "skipped": skipped_json(&j.skipped),
    })
}

/// A source as the contract shows it; `connected_projects` (names of ChatDO
/// projects) only in lists. Ours, additive: `files_skipped` and `skipped` (by reason)
/// of its latest job (zeros before the first).
fn source_json(s: &memory_store::Source, connected_projects: Option<&[String]>) -> Value {
    let mut v = json!({
        "id": s.id,
        "display_name": s.display_name,
        "root_path": s.root_path,
        "status": s.status.as_str(),
        "files_indexed": s.files_indexed,
        "bytes_indexed": s.bytes_indexed,
        "last_index_started_at": s.last_index_started_at,
        "last_index_completed_at": s.last_index_completed_at,
        "last_error": s.last_error,
        "project_id": s.project_id,
        "latest_job": s.latest_job.as_ref().map(job_json),
    });
    let skipped = s.latest_job.as_ref().map(|j| j.skipped).unwrap_or_default();
    v["files_skipped"] = json!(skipped.total());
    v["skipped"] = skipped_json(&skipped);
    if let Some(names) = connected_projects {
        v["connected_projects"] = json!(names);
    }
    v
}

/// Source id -> connected ChatDO project names, from the configured
/// `projects.json`; empty when none is configured or it cannot be read (logged:
/// the list must not fail because the backend's file is broken, as the original).
fn connected_projects(state: &AppState) -> std::collections::HashMap<String, Vec<String>> {
    let Some(path) = &state.config.chatdo_projects else {
        return Default::default();
    };
    crate::chatdo_projects::connected_projects(path).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read ChatDO's projects file; connected_projects left empty");
        Default::default()
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::client(StatusCode::NOT_FOUND, format!("Source not found: {id}"))
}

/// `GET /sources`.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store()?.clone();
    let st = state.clone();
    let (sources, projects) =
        blocking(move || store.list_sources().map(|s| (s, connected_projects(&st)))).await?;
    let none: Vec<String> = Vec::new();
    Ok(Json(json!({
        "sources": sources
            .iter()
            .map(|s| source_json(s, Some(projects.get(&s.id).unwrap_or(&none))))
            .collect::<Vec<_>>()
    })))
}

/// The `POST /sources` body.
#[derive(Debug, Deserialize)]
pub struct AddSource {
    root_path: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    /// Ours: a chosen id (e.g. to recreate the original's static `drr-repo`);
    /// 400 when not a valid id, 409 when taken.
    #[serde(default)]
    source_id: Option<String>,
}

/// `POST /sources`: adds the folder and starts a tracked indexing job.
pub async fn add(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<AddSource>,
) -> Result<Json<Value>, ApiError> {
    let indexer = state.indexer()?.clone();
    let (source, job_id) =
        blocking(move || indexer.add_source_with_id(&b.root_path, b.display_name, b.project_id, b.source_id))
            .await?;
    Ok(Json(json!({
        "status": "ok",
        "source_id": source.id,
        "display_name": source.display_name,
        "root_path": source.root_path,
        "project_id": source.project_id,
        "files_indexed": 0,
        "bytes_indexed": 0,
        "job_id": job_id,
    })))
}

/// `DELETE /sources/{id}`: stops its watcher, removes its rows in one
/// transaction, then removes the id from the configured ChatDO projects file
/// (as the original; a failure there is logged, not answered). The user's
/// files are never touched.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let indexer = state.indexer()?.clone();
    let sid = id.clone();
    if !blocking(move || indexer.delete_source(&sid)).await? {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            format!("Source '{id}' not found"),
        ));
    }
    if let Some(path) = state.config.chatdo_projects.clone() {
        let sid = id.clone();
        let edited =
            tokio::task::spawn_blocking(move || crate::chatdo_projects::remove_source(&path, &sid)).await;
        match edited {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(source = %id, entries = n, "removed from ChatDO's projects"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, source = %id, "cannot remove the source from ChatDO's projects")
            }
            Err(e) => {
                tracing::error!(error = %e, source = %id, "cannot remove the source from ChatDO's projects")
            }
        }
    }
    Ok(Json(
        json!({"status": "ok", "message": format!("Source '{id}' deleted successfully")}),
    ))
}

/// The `POST /reindex` body.
#[derive(Debug, Deserialize)]
pub struct Reindex {
    source_id: String,
}

/// `POST /reindex`: builds a new index beside the old one and swaps it in;
/// answers at once with the job id.
pub async fn reindex(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<Reindex>,
) -> Result<Json<Value>, ApiError> {
    let indexer = state.indexer()?.clone();
    let id = b.source_id.clone();
    let job_id = blocking(move || indexer.reindex(&id)).await?;
    Ok(Json(json!({
        "status": "ok",
        "files_indexed": 0,
        "bytes_indexed": 0,
        "job_id": job_id,
        "source_id": b.source_id,
    })))
}

/// `GET /sources/{id}/status`: read-only; 404 for an unknown id.
pub async fn status(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let store = state.store()?.clone();
    let sid = id.clone();
    let source = blocking(move || store.get_source(&sid)).await?;
    Ok(Json(source_json(&source.ok_or_else(|| not_found(&id))?, None)))
}

/// The `jobs` query.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    #[serde(default = "default_jobs_limit")]
    limit: i64,
}

fn default_jobs_limit() -> i64 {
    10
}

/// `GET /sources/{id}/jobs?limit=10`: newest first; an unknown id has none.
pub async fn jobs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> Result<Json<Value>, ApiError> {
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit must be between 1 and 1000",
        ));
    }
    let store = state.store()?.clone();
    let jobs = blocking(move || store.source_jobs(&id, q.limit as usize)).await?;
    Ok(Json(
        json!({"jobs": jobs.iter().map(job_json).collect::<Vec<_>>()}),
    ))
}

/// A size bucket of the chunk statistics.
#[derive(Debug, Serialize)]
struct Bucket {
    range: String,
    count: i64,
}

/// `GET /sources/{id}/chunk-stats`.
pub async fn chunk_stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store()?.clone();
    let sid = id.clone();
    let s = blocking(move || store.chunk_stats(&sid))
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({
        "source_id": s.source_id,
        "total_chunks": s.total_chunks,
        "unique_chunks": s.unique_chunks,
        "duplicate_rate": s.duplicate_rate,
        "avg_chunk_size": s.avg_chunk_size,
        "min_chunk_size": s.min_chunk_size,
        "max_chunk_size": s.max_chunk_size,
        "total_files": s.total_files,
        "size_distribution": s.size_distribution.into_iter().map(|(range, count)| Bucket { range, count }).collect::<Vec<_>>(),
    })))
}
