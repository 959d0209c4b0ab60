//! File source endpoints (api.md A.2.2-A.2.8): list, add, delete, reindex,
//! one source's status, its jobs, its chunk statistics. The indexing itself
//! is `memory-indexer`'s; handlers only translate shapes and errors.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use memory_api::StatusMessage;
use memory_api::sources::{
    AddSource, ChunkStats, FileJob, FileJobList, FileJobStatus, FileJobsQuery, Reindex, Reindexing,
    SizeBucket, Skipped, Source, SourceAdded, SourceList, SourceStatus,
};

use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, AppState, blocking};

/// Skipped files by reason (ours, additive).
fn skipped(s: &memory_store::SkipCounts) -> Skipped {
    Skipped {
        binary: s.binary,
        too_large: s.too_large,
        unsupported: s.unsupported,
        unreadable: s.unreadable,
        extraction_failed: s.extraction_failed,
        ignored: s.ignored,
    }
}

/// A job as the contract shows it.
fn job(j: &memory_store::FileJob) -> FileJob {
    use memory_store::FileJobState as S;
    FileJob {
        id: j.id,
        source_id: j.source_id.clone(),
        status: match j.status {
            S::Queued => FileJobStatus::Queued,
            S::Running => FileJobStatus::Running,
            S::Completed => FileJobStatus::Completed,
            S::Failed => FileJobStatus::Failed,
            S::Cancelled => FileJobStatus::Cancelled,
        },
        started_at: j.started_at.clone(),
        completed_at: j.completed_at.clone(),
        files_total: j.files_total,
        files_processed: j.files_processed,
        bytes_processed: j.bytes_processed,
        error: j.error.clone(),
        files_indexed: j.files_indexed,
        bytes_indexed: j.bytes_indexed,
        files_skipped: j.files_skipped,
        skipped: skipped(&j.skipped),
    }
}

/// A source as the contract shows it; `connected_projects` (names of ChatDO
/// projects) only in lists.
fn source(s: &memory_store::Source, connected_projects: Option<Vec<String>>) -> Source {
    use memory_store::SourceStatus as S;
    let skips = s.latest_job.as_ref().map(|j| j.skipped).unwrap_or_default();
    Source {
        id: s.id.clone(),
        display_name: s.display_name.clone(),
        root_path: s.root_path.clone(),
        status: match s.status {
            S::Idle => SourceStatus::Idle,
            S::Indexing => SourceStatus::Indexing,
            S::Error => SourceStatus::Error,
        },
        files_indexed: s.files_indexed,
        bytes_indexed: s.bytes_indexed,
        last_index_started_at: s.last_index_started_at.clone(),
        last_index_completed_at: s.last_index_completed_at.clone(),
        last_error: s.last_error.clone(),
        project_id: s.project_id.clone(),
        latest_job: s.latest_job.as_ref().map(job),
        files_skipped: skips.total(),
        skipped: skipped(&skips),
        connected_projects,
    }
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
pub async fn list(State(state): State<AppState>) -> Result<Json<SourceList>, ApiError> {
    let store = state.store()?.clone();
    let st = state.clone();
    let (sources, mut projects) =
        blocking(move || store.list_sources().map(|s| (s, connected_projects(&st)))).await?;
    Ok(Json(SourceList {
        sources: sources
            .iter()
            .map(|s| source(s, Some(projects.remove(&s.id).unwrap_or_default())))
            .collect(),
    }))
}

/// `POST /sources`: adds the folder and starts a tracked indexing job.
pub async fn add(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<AddSource>,
) -> Result<Json<SourceAdded>, ApiError> {
    let indexer = state.indexer()?.clone();
    let (source, job_id) =
        blocking(move || indexer.add_source_with_id(&b.root_path, b.display_name, b.project_id, b.source_id))
            .await?;
    Ok(Json(SourceAdded {
        status: "ok".into(),
        source_id: source.id,
        display_name: source.display_name,
        root_path: source.root_path,
        project_id: source.project_id,
        files_indexed: 0,
        bytes_indexed: 0,
        job_id,
    }))
}

/// `DELETE /sources/{id}`: stops its watcher, removes its rows in one
/// transaction, then removes the id from the configured ChatDO projects file
/// (as the original; a failure there is logged, not answered). The user's
/// files are never touched.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<StatusMessage>, ApiError> {
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
    Ok(Json(StatusMessage::ok(format!(
        "Source '{id}' deleted successfully"
    ))))
}

/// `POST /reindex`: builds a new index beside the old one and swaps it in;
/// answers at once with the job id.
pub async fn reindex(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<Reindex>,
) -> Result<Json<Reindexing>, ApiError> {
    let indexer = state.indexer()?.clone();
    let id = b.source_id.clone();
    let job_id = blocking(move || indexer.reindex(&id)).await?;
    Ok(Json(Reindexing {
        status: "ok".into(),
        files_indexed: 0,
        bytes_indexed: 0,
        job_id,
        source_id: b.source_id,
    }))
}

/// `GET /sources/{id}/status`: read-only; 404 for an unknown id.
pub async fn status(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Source>, ApiError> {
    let store = state.store()?.clone();
    let sid = id.clone();
    let blocking_result = blocking(move || store.get_source(&sid)).await?;
    let found = blocking_result.ok_or_else(|| not_found(&id))?;
    Ok(Json(source(&found, None)))
}

/// `GET /sources/{id}/jobs?limit=10`: newest first; an unknown id has none.
pub async fn jobs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FileJobsQuery>,
) -> Result<Json<FileJobList>, ApiError> {
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit must be between 1 and 1000",
        ));
    }
    let store = state.store()?.clone();
    let jobs = blocking(move || store.source_jobs(&id, q.limit as usize)).await?;
    Ok(Json(FileJobList {
        jobs: jobs.iter().map(job).collect(),
    }))
}

/// `GET /sources/{id}/chunk-stats`.
pub async fn chunk_stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChunkStats>, ApiError> {
    let store = state.store()?.clone();
    let sid = id.clone();
    let s = blocking(move || store.chunk_stats(&sid))
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(ChunkStats {
        source_id: s.source_id,
        total_chunks: s.total_chunks,
        unique_chunks: s.unique_chunks,
        duplicate_rate: s.duplicate_rate,
        avg_chunk_size: s.avg_chunk_size,
        min_chunk_size: s.min_chunk_size,
        max_chunk_size: s.max_chunk_size,
        total_files: s.total_files,
        size_distribution: s
            .size_distribution
            .into_iter()
            .map(|(range, count)| SizeBucket { range, count })
            .collect(),
    }))
}
