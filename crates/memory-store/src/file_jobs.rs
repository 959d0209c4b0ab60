//! File index jobs: their public types ([`FileJob`], [`FileJobKind`], [`FileJobState`],
//! [`JobEnd`]) and every SQL statement on `file_index_jobs` (enqueue, claim with its
//! generation, finish with the rebuild's swap, the failure of interrupted jobs at open).
//! It must not decide when jobs run (the indexer crate does) nor open transactions itself
//! (callers run it inside the writer's transaction).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::files::SkipCounts;
use crate::sources::{Source, get, refresh_totals};

/// The error recorded on a job found `running` when the database is opened.
pub const INTERRUPTED: &str = "interrupted by a restart";

/// What a file job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileJobKind {
    /// Incremental pass over the current generation: unchanged files are not read,
    /// changed ones re-indexed, vanished ones removed (a new source's first index too).
    Sync,
    /// Builds a new generation beside the current one, then swaps (`POST /reindex`).
    Rebuild,
}

impl FileJobKind {
    /// `sync` or `rebuild`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileJobKind::Sync => "sync",
            FileJobKind::Rebuild => "rebuild",
        }
    }

    fn parse(s: &str) -> FileJobKind {
        if s == "rebuild" {
            FileJobKind::Rebuild
        } else {
            FileJobKind::Sync
        }
    }
}

/// A file job's state. `queued` is ours (the original starts jobs at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileJobState {
    /// Committed, waiting for the indexer.
    Queued,
    /// Being run.
    Running,
    /// Finished; for a rebuild, the new generation is swapped in.
    Completed,
    /// Failed (or interrupted by a crash); see `error`.
    Failed,
    /// Stopped on purpose (its source deleted).
    Cancelled,
}

impl FileJobState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileJobState::Queued => "queued",
            FileJobState::Running => "running",
            FileJobState::Completed => "completed",
            FileJobState::Failed => "failed",
            FileJobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> FileJobState {
        match s {
            "queued" => FileJobState::Queued,
            "running" => FileJobState::Running,
            "completed" => FileJobState::Completed,
            "cancelled" => FileJobState::Cancelled,
            _ => FileJobState::Failed,
        }
    }

    /// True for `completed`, `failed` and `cancelled`.
    pub fn is_finished(self) -> bool {
        !matches!(self, FileJobState::Queued | FileJobState::Running)
    }
}

/// One file index job (`latest_job` of `/sources`, `/sources/{id}/jobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJob {
    /// The real, durable job id.
    pub id: i64,
    /// Its source.
    pub source_id: String,
    /// Sync or rebuild.
    pub kind: FileJobKind,
    /// Current state.
    pub status: FileJobState,
    /// The generation it writes (set when it starts).
    pub generation: Option<i64>,
    /// Files found by the walk (known once the walk is done).
    pub files_total: Option<i64>,
    /// Files looked at so far (indexed, unchanged or skipped).
    pub files_processed: i64,
    /// Bytes of the files looked at so far.
    pub bytes_processed: i64,
    /// Files skipped, all reasons (the sum of `skipped`).
    pub files_skipped: i64,
    /// Files whose chunks this job (re)wrote.
    pub files_updated: i64,
    /// Files looked at whose text is searchable (written, or unchanged since indexed).
    pub files_indexed: i64,
    /// Their bytes (file sizes on disk).
    pub bytes_indexed: i64,
    /// Skipped files by reason.
    pub skipped: SkipCounts,
    /// When it was enqueued (naive local ISO).
    pub created_at: String,
    /// When it started running; the enqueue time while queued.
    pub started_at: String,
    /// When it finished.
    pub completed_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A job the indexer has claimed, with its source as it was at claim time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedFileJob {
    /// The job, now `running`, with its generation set.
    pub job: FileJob,
    /// Its source.
    pub source: Source,
}

/// How the indexer ends a running job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Done: totals refreshed; a rebuild's generation becomes the searchable one.
    Completed,
    /// Failed with this message; the previous generation stays searchable.
    Failed(String),
    /// Stopped on purpose with this reason.
    Cancelled(String),
    /// Graceful shutdown mid-job: back to `queued`, run again at the next start.
    Requeued,
}

pub(crate) const JOB_COLUMNS: &str = "j.id, j.source_id, j.kind, j.status, j.generation, j.files_total,
    j.files_processed, j.bytes_processed, j.files_skipped, j.files_updated, j.created_at,
    j.started_at, j.completed_at, j.error, j.files_indexed, j.bytes_indexed, j.skipped_binary,
    j.skipped_too_large, j.skipped_unsupported, j.skipped_unreadable, j.skipped_extraction_failed,
    j.skipped_ignored";

/// Reads a job from columns `at..at + 22` ([`JOB_COLUMNS`]).
pub(crate) fn job_from(r: &Row<'_>, at: usize) -> rusqlite::Result<FileJob> {
    let created_at: String = r.get(at + 10)?;
    let started_at: Option<String> = r.get(at + 11)?;
    Ok(FileJob {
        id: r.get(at)?,
        source_id: r.get(at + 1)?,
        kind: FileJobKind::parse(&r.get::<_, String>(at + 2)?),
        status: FileJobState::parse(&r.get::<_, String>(at + 3)?),
        generation: r.get(at + 4)?,
        files_total: r.get(at + 5)?,
        files_processed: r.get(at + 6)?,
        bytes_processed: r.get(at + 7)?,
        files_skipped: r.get(at + 8)?,
        files_updated: r.get(at + 9)?,
        started_at: started_at.unwrap_or_else(|| created_at.clone()),
        created_at,
        completed_at: r.get(at + 12)?,
        error: r.get(at + 13)?,
        files_indexed: r.get(at + 14)?,
        bytes_indexed: r.get(at + 15)?,
        skipped: SkipCounts {
            binary: r.get(at + 16)?,
            too_large: r.get(at + 17)?,
            unsupported: r.get(at + 18)?,
            unreadable: r.get(at + 19)?,
            extraction_failed: r.get(at + 20)?,
            ignored: r.get(at + 21)?,
        },
    })
}

/// Queues a job for an existing source; its id.
pub(crate) fn enqueue(conn: &Connection, source_id: &str, kind: FileJobKind) -> Result<i64, StoreError> {
    let context = "while queueing an index job";
    let n = conn
        .prepare_cached(
            "INSERT INTO file_index_jobs (source_id, kind, status, created_at)
             SELECT id, ?2, 'queued', ?3 FROM sources WHERE id = ?1",
        )
        .ctx(context)?
        .execute(params![source_id, kind.as_str(), clock::now_iso()])
        .ctx(context)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("Source not found: {source_id}")));
    }
    Ok(conn.last_insert_rowid())
}

/// One job by id.
pub(crate) fn job(conn: &Connection, id: i64) -> Result<Option<FileJob>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM file_index_jobs j WHERE j.id = ?1");
    conn.prepare_cached(&sql)
        .ctx("while reading an index job")?
        .query_row([id], |r| job_from(r, 0))
        .optional()
        .ctx("while reading an index job")
}

/// The newest `limit` jobs of a source (empty for an unknown id).
pub(crate) fn jobs(conn: &Connection, source_id: &str, limit: usize) -> Result<Vec<FileJob>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM file_index_jobs j WHERE j.source_id = ?1 ORDER BY j.id DESC LIMIT ?2"
    );
    let context = "while listing index jobs";
    let mut stmt = conn.prepare_cached(&sql).ctx(context)?;
    let rows = stmt
        .query_map(params![source_id, limit as i64], |r| job_from(r, 0))
        .ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

/// Marks the oldest queued job `running`, gives it its generation (the current one for a
/// sync, a never-used one for a rebuild) and marks its source `indexing`.
pub(crate) fn claim_next(conn: &Connection) -> Result<Option<ClaimedFileJob>, StoreError> {
    let context = "while starting an index job";
    let next: Option<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT id, source_id, kind FROM file_index_jobs WHERE status = 'queued' ORDER BY id LIMIT 1",
        )
        .ctx(context)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .ctx(context)?;
    let Some((id, source_id, kind)) = next else {
        return Ok(None);
    };
    if FileJobKind::parse(&kind) == FileJobKind::Rebuild {
        conn.prepare_cached("UPDATE sources SET max_generation = max_generation + 1 WHERE id = ?1")
            .ctx(context)?
            .execute([&source_id])
            .ctx(context)?;
    }
    let now = clock::now_iso();
    conn.prepare_cached(
        "UPDATE file_index_jobs SET status = 'running', started_at = ?2,
                generation = (SELECT CASE WHEN ?3 = 'rebuild' THEN max_generation ELSE generation END
                              FROM sources WHERE id = file_index_jobs.source_id)
         WHERE id = ?1",
    )
    .ctx(context)?
    .execute(params![id, now, kind])
    .ctx(context)?;
    conn.prepare_cached("UPDATE sources SET status = 'indexing', last_index_started_at = ?2 WHERE id = ?1")
        .ctx(context)?
        .execute(params![source_id, now])
        .ctx(context)?;
    let job = job(conn, id)?.ok_or_else(|| StoreError::Internal("claimed job vanished".into()))?;
    let mut source =
        get(conn, &source_id)?.ok_or_else(|| StoreError::Internal("claimed job's source vanished".into()))?;
    source.latest_job = None;
    Ok(Some(ClaimedFileJob { job, source }))
}

/// Ends a running job; false when it is no longer running (its source was deleted).
pub(crate) fn finish(conn: &Connection, job_id: i64, end: &JobEnd) -> Result<bool, StoreError> {
    let context = "while finishing an index job";
    let Some(job) = job(conn, job_id)? else {
        return Ok(false);
    };
    if job.status != FileJobState::Running {
        return Ok(false);
    }
    let now = clock::now_iso();
    let generation = job.generation.unwrap_or(0);
    let (status, error, source_status, source_error) = end_statuses(end);
    let rebuild = job.kind == FileJobKind::Rebuild;
    if rebuild {
        end_rebuild_generation(conn, &job.source_id, generation, end)?;
    }
    let completed_at = if *end == JobEnd::Requeued {
        None
    } else {
        Some(now.as_str())
    };
    conn.prepare_cached(
        "UPDATE file_index_jobs SET status = ?2, error = ?3, completed_at = ?4,
                generation = CASE WHEN ?2 = 'queued' THEN NULL ELSE generation END
         WHERE id = ?1",
    )
    .ctx(context)?
    .execute(params![job_id, status, error, completed_at])
    .ctx(context)?;
    let completed = if *end == JobEnd::Completed {
        Some(now.as_str())
    } else {
        None
    };
    conn.prepare_cached(
        "UPDATE sources SET status = ?2,
                last_error = CASE WHEN ?2 = 'error' THEN ?3 WHEN ?4 IS NOT NULL THEN NULL ELSE last_error END,
                last_index_completed_at = coalesce(?4, last_index_completed_at)
         WHERE id = ?1",
    )
    .ctx(context)?
    .execute(params![job.source_id, source_status, source_error, completed])
    .ctx(context)?;
    refresh_totals(conn, &job.source_id)?;
    Ok(true)
}

/// The job's status and error, then its source's status and error, after `end`.
fn end_statuses(end: &JobEnd) -> (&'static str, Option<&str>, &'static str, Option<&str>) {
    match end {
        JobEnd::Completed => ("completed", None, "idle", None),
        JobEnd::Failed(e) => ("failed", Some(e), "error", Some(e)),
        JobEnd::Cancelled(e) => ("cancelled", Some(e), "idle", None),
        JobEnd::Requeued => ("queued", None, "idle", None),
    }
}

/// At the end of a rebuild into `generation`: a completed one becomes the source's
/// searchable generation; the generation that stops being useful (the old one on a swap,
/// else the new one) becomes garbage.
fn end_rebuild_generation(
    conn: &Connection,
    source_id: &str,
    generation: i64,
    end: &JobEnd,
) -> Result<(), StoreError> {
    let context = "while finishing an index job";
    let old: i64 = conn
        .query_row("SELECT generation FROM sources WHERE id = ?1", [source_id], |r| {
            r.get(0)
        })
        .ctx(context)?;
    let garbage = if *end == JobEnd::Completed {
        old
    } else {
        generation
    };
    if *end == JobEnd::Completed {
        conn.prepare_cached("UPDATE sources SET generation = ?2 WHERE id = ?1")
            .ctx(context)?
            .execute(params![source_id, generation])
            .ctx(context)?;
    }
    conn.prepare_cached("INSERT OR IGNORE INTO garbage_generations (source_id, generation) VALUES (?1, ?2)")
        .ctx(context)?
        .execute(params![source_id, garbage])
        .ctx(context)?;
    Ok(())
}

/// At open: jobs a crash left `running` become `failed` ("interrupted by a restart"); a
/// rebuild's half-built generation becomes garbage; their sources show the error. The
/// indexer queues a fresh sync for every source when it starts, which finishes the work
/// incrementally. Failing rather than re-queueing means a job that crashes the process
/// cannot crash it again at every start. Returns how many jobs were failed.
pub(crate) fn fail_interrupted(conn: &Connection) -> Result<usize, StoreError> {
    let context = "while failing index jobs interrupted by a restart";
    let ids: Vec<i64> = {
        let mut stmt = conn
            .prepare("SELECT id FROM file_index_jobs WHERE status = 'running'")
            .ctx(context)?;
        let rows = stmt.query_map([], |r| r.get(0)).ctx(context)?;
        rows.collect::<Result<_, _>>().ctx(context)?
    };
    for id in &ids {
        finish(conn, *id, &JobEnd::Failed(INTERRUPTED.to_string()))?;
    }
    Ok(ids.len())
}
