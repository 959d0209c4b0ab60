//! File sources (api.md A.2.2-A.2.8): the folders the service indexes, their
//! indexing jobs and chunk statistics. The original's fields come first in
//! each type; fields marked "ours" are additive (ChatDO ignores them).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Where a source is in its indexing life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    /// Indexed and watched; nothing running.
    Idle,
    /// A job is indexing it.
    Indexing,
    /// The last job failed; see `last_error`.
    Error,
}

/// Where a file indexing job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileJobStatus {
    /// Waiting for the indexer (ours: the original started at once).
    Queued,
    /// Walking and indexing files.
    Running,
    /// Finished; its index is the one searched.
    Completed,
    /// Stopped by an error; see `error`.
    Failed,
    /// Stopped because the source was deleted or reindexed again.
    Cancelled,
}

impl FileJobStatus {
    /// Whether the job will not change any more (completed, failed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            FileJobStatus::Completed | FileJobStatus::Failed | FileJobStatus::Cancelled
        )
    }

    /// The wire name, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileJobStatus::Queued => "queued",
            FileJobStatus::Running => "running",
            FileJobStatus::Completed => "completed",
            FileJobStatus::Failed => "failed",
            FileJobStatus::Cancelled => "cancelled",
        }
    }
}

impl SourceStatus {
    /// The wire name, e.g. `idle`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Idle => "idle",
            SourceStatus::Indexing => "indexing",
            SourceStatus::Error => "error",
        }
    }
}

/// Files a job skipped, by reason (ours). Each file is counted once, under
/// its first reason; every reason is always present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Skipped {
    /// Content no text decoding accepts, or a known binary extension.
    pub binary: i64,
    /// Larger than the indexer's size cap.
    pub too_large: i64,
    /// A document format recognised but not extracted (`.doc`, `.ppt`, iWork).
    pub unsupported: i64,
    /// Could not be listed, stat'ed or read (permissions, vanished, non-UTF-8 name).
    pub unreadable: i64,
    /// A document whose text extraction failed.
    pub extraction_failed: i64,
    /// Walked but outside the source's include globs.
    pub ignored: i64,
}

impl Skipped {
    /// All skipped files.
    pub fn total(&self) -> i64 {
        self.binary
            + self.too_large
            + self.unsupported
            + self.unreadable
            + self.extraction_failed
            + self.ignored
    }

    /// `(wire name, count)` for each reason, in wire order.
    pub fn by_reason(&self) -> [(&'static str, i64); 6] {
        [
            ("binary", self.binary),
            ("too_large", self.too_large),
            ("unsupported", self.unsupported),
            ("unreadable", self.unreadable),
            ("extraction_failed", self.extraction_failed),
            ("ignored", self.ignored),
        ]
    }
}

/// One file indexing job (`latest_job` of a source, an item of
/// `GET /sources/{id}/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileJob {
    /// The job id (what `POST /sources` and `POST /reindex` return).
    pub id: i64,
    /// The source it indexes.
    pub source_id: String,
    /// Queued, running, completed, failed or cancelled.
    pub status: FileJobStatus,
    /// When it was created or started, ISO-8601.
    pub started_at: String,
    /// When it finished, ISO-8601, or null while running.
    #[schema(required = true)]
    pub completed_at: Option<String>,
    /// Files found by the walk, or null until the walk is done.
    #[schema(required = true)]
    pub files_total: Option<i64>,
    /// Files looked at so far.
    pub files_processed: i64,
    /// Bytes of the files looked at so far.
    pub bytes_processed: i64,
    /// Why it failed, or null.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Ours: files whose text is searchable.
    pub files_indexed: i64,
    /// Ours: bytes of those files.
    pub bytes_indexed: i64,
    /// Ours: files skipped (the sum of `skipped`).
    pub files_skipped: i64,
    /// Ours: files skipped, by reason.
    pub skipped: Skipped,
}

/// One source, as `GET /sources` lists it and `GET /sources/{id}/status`
/// shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Source {
    /// Its id, e.g. `docs-dir`.
    pub id: String,
    /// The name people see.
    pub display_name: String,
    /// The folder, absolute.
    pub root_path: String,
    /// Idle, indexing or error.
    pub status: SourceStatus,
    /// Files whose text is searchable.
    pub files_indexed: i64,
    /// Bytes of those files.
    pub bytes_indexed: i64,
    /// When the latest job started, ISO-8601, or null.
    #[schema(required = true)]
    pub last_index_started_at: Option<String>,
    /// When the latest job finished, ISO-8601, or null.
    #[schema(required = true)]
    pub last_index_completed_at: Option<String>,
    /// Why the latest job failed, or null.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// The ChatDO project it was added for (`general` by default).
    pub project_id: String,
    /// Its latest job, or null before the first.
    #[schema(required = true)]
    pub latest_job: Option<FileJob>,
    /// Ours: files skipped by the latest job (0 before the first).
    pub files_skipped: i64,
    /// Ours: files skipped by the latest job, by reason.
    pub skipped: Skipped,
    /// Names of the ChatDO projects that list this source (from ChatDO's
    /// `projects.json`). Present in `GET /sources` only; omitted by
    /// `GET /sources/{id}/status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_projects: Option<Vec<String>>,
}

/// The `GET /sources` body, sources ordered by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SourceList {
    /// Every source.
    pub sources: Vec<Source>,
}

/// The `POST /sources` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AddSource {
    /// The folder; `~` is expanded. 400 when it does not exist or is not a folder.
    pub root_path: String,
    /// The name people see; the folder's name when absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The ChatDO project; `general` when absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Ours: a chosen id (e.g. to recreate the original's static `drr-repo`);
    /// 400 when not a valid id, 409 when taken. Derived from the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

/// The `POST /sources` answer, sent once the source is stored and its first
/// job queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SourceAdded {
    /// Always `"ok"`.
    pub status: String,
    /// The new source's id.
    pub source_id: String,
    /// Its display name.
    pub display_name: String,
    /// Its folder, absolute.
    pub root_path: String,
    /// Its ChatDO project.
    pub project_id: String,
    /// Always 0 (indexing has just started), as the original.
    pub files_indexed: i64,
    /// Always 0, as the original.
    pub bytes_indexed: i64,
    /// The id of its first indexing job (the original: always 0).
    pub job_id: i64,
}

/// The `POST /reindex` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reindex {
    /// The source to rebuild; 404 when unknown.
    pub source_id: String,
}

/// The `POST /reindex` answer, sent at once: the new index is built beside
/// the old one, which stays searchable until the swap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reindexing {
    /// Always `"ok"`.
    pub status: String,
    /// Always 0, as the original.
    pub files_indexed: i64,
    /// Always 0, as the original.
    pub bytes_indexed: i64,
    /// The id of the rebuild job (the original: always 0).
    pub job_id: i64,
    /// The source being rebuilt.
    pub source_id: String,
}

/// The `GET /sources/{id}/jobs` query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileJobsQuery {
    /// How many jobs, newest first: 1 to 1000 (else 422), default 10.
    #[serde(default = "default_jobs_limit")]
    pub limit: i64,
}

fn default_jobs_limit() -> i64 {
    10
}

/// The `GET /sources/{id}/jobs` body, newest first; an unknown id has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileJobList {
    /// The jobs.
    pub jobs: Vec<FileJob>,
}

/// One size bucket of the chunk statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SizeBucket {
    /// `"< 100"`, `"100-500"`, `"500-1000"`, `"1000-2000"` or `"2000+"`
    /// (characters per chunk).
    pub range: String,
    /// Chunks in it (only non-empty buckets are listed).
    pub count: i64,
}

/// The `GET /sources/{id}/chunk-stats` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkStats {
    /// The source.
    pub source_id: String,
    /// Chunks in its current index.
    pub total_chunks: i64,
    /// Distinct chunk texts.
    pub unique_chunks: i64,
    /// Percent of chunks that repeat another's text, 2 decimals.
    pub duplicate_rate: f64,
    /// Mean chunk length in characters, 1 decimal.
    pub avg_chunk_size: f64,
    /// Shortest chunk, characters.
    pub min_chunk_size: i64,
    /// Longest chunk, characters.
    pub max_chunk_size: i64,
    /// Files with at least one chunk.
    pub total_files: i64,
    /// Chunks by length.
    pub size_distribution: Vec<SizeBucket>,
}
