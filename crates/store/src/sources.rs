//! File sources: the public types ([`Source`], [`NewSource`], [`SourceStatus`]) and every
//! SQL statement on `sources` (create with a slug id and its first job, list with each
//! latest job in one query, delete with all its rows, recount totals). It must not walk
//! or read files (the indexer crate does) nor open transactions itself (callers run it
//! inside the writer's transaction).

use rusqlite::{Connection, Row, params};

use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::file_jobs::{FileJob, FileJobKind, JOB_COLUMNS, enqueue, job_from};

/// A source's indexing state, as `GET /sources` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceStatus {
    /// Nothing running; the index is usable.
    Idle,
    /// A job is running for it.
    Indexing,
    /// The last job failed; see `last_error` (the previous index stays searchable).
    Error,
}

impl SourceStatus {
    /// The wire name: `idle`, `indexing` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Idle => "idle",
            SourceStatus::Indexing => "indexing",
            SourceStatus::Error => "error",
        }
    }

    fn parse(s: &str) -> SourceStatus {
        match s {
            "indexing" => SourceStatus::Indexing,
            "error" => SourceStatus::Error,
            _ => SourceStatus::Idle,
        }
    }
}

/// A registered directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `slug(display_name)-dir`, `-2`, `-3`... on collision.
    pub id: String,
    /// Shown to users.
    pub display_name: String,
    /// Absolute, resolved directory.
    pub root_path: String,
    /// The project whose searches include this source.
    pub project_id: String,
    /// Globs a file's relative path must match (default `**/*`).
    pub include_globs: Vec<String>,
    /// Globs excluding files and directories (gitignore syntax).
    pub exclude_globs: Vec<String>,
    /// Idle, indexing or error.
    pub status: SourceStatus,
    /// Files in the searchable generation.
    pub files_indexed: i64,
    /// Their bytes.
    pub bytes_indexed: i64,
    /// When the last job started.
    pub last_index_started_at: Option<String>,
    /// When the last job completed.
    pub last_index_completed_at: Option<String>,
    /// The last job's failure.
    pub last_error: Option<String>,
    /// When the source was added.
    pub created_at: String,
    /// The searchable generation.
    pub generation: i64,
    /// The newest job, if any.
    pub latest_job: Option<FileJob>,
}

/// What `add_source` needs; the caller has validated and resolved `root_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    /// Absolute, resolved directory.
    pub root_path: String,
    /// Shown to users; its slug makes the id.
    pub display_name: String,
    /// Defaults to `general` when empty.
    pub project_id: String,
    /// Empty means `["**/*"]`.
    pub include_globs: Vec<String>,
    /// Exclusions (gitignore syntax).
    pub exclude_globs: Vec<String>,
}

/// `slug(name)`: lowercase ASCII letters and digits, runs of anything else as one `-`.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "source".into()
    } else {
        trimmed
            .chars()
            .take(64)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string()
    }
}

fn globs_json(globs: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(globs).map_err(|e| StoreError::Internal(format!("encoding globs: {e}")))
}

fn globs_parse(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

const SOURCE_COLUMNS: &str = "s.id, s.display_name, s.root_path, s.project_id, s.include_globs,
    s.exclude_globs, s.status, s.files_indexed, s.bytes_indexed, s.last_index_started_at,
    s.last_index_completed_at, s.last_error, s.created_at, s.generation";

/// Reads a source from [`SOURCE_COLUMNS`] followed by an optional [`JOB_COLUMNS`].
fn source_from(r: &Row<'_>, with_job: bool) -> rusqlite::Result<Source> {
    let latest_job = if with_job && r.get::<_, Option<i64>>(14)?.is_some() {
        Some(job_from(r, 14)?)
    } else {
        None
    };
    Ok(Source {
        id: r.get(0)?,
        display_name: r.get(1)?,
        root_path: r.get(2)?,
        project_id: r.get(3)?,
        include_globs: globs_parse(&r.get::<_, String>(4)?),
        exclude_globs: globs_parse(&r.get::<_, String>(5)?),
        status: SourceStatus::parse(&r.get::<_, String>(6)?),
        files_indexed: r.get(7)?,
        bytes_indexed: r.get(8)?,
        last_index_started_at: r.get(9)?,
        last_index_completed_at: r.get(10)?,
        last_error: r.get(11)?,
        created_at: r.get(12)?,
        generation: r.get(13)?,
        latest_job,
    })
}

/// Sources (all, or the one with `id`), each with its newest job, in one query.
fn select_sources(conn: &Connection, id: Option<&str>) -> Result<Vec<Source>, StoreError> {
    let sql = format!(
        "SELECT {SOURCE_COLUMNS}, {JOB_COLUMNS} FROM sources s
         LEFT JOIN index_jobs j ON j.id = (SELECT max(id) FROM index_jobs WHERE source_id = s.id)
         WHERE ?1 IS NULL OR s.id = ?1 ORDER BY s.id"
    );
    let context = "while reading sources";
    let mut stmt = conn.prepare_cached(&sql).ctx(context)?;
    let rows = stmt.query_map([id], |r| source_from(r, true)).ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

/// Every source ordered by id, each with its latest job.
pub(crate) fn list(conn: &Connection) -> Result<Vec<Source>, StoreError> {
    select_sources(conn, None)
}

/// One source with its latest job.
pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<Source>, StoreError> {
    Ok(select_sources(conn, Some(id))?.pop())
}

/// Inserts the source (id from the display name's slug) and its first (sync) job.
pub(crate) fn insert(conn: &Connection, new: &NewSource) -> Result<(Source, i64), StoreError> {
    let context = "while adding a source";
    let base = format!("{}-dir", slug(&new.display_name));
    let mut exists = conn
        .prepare_cached("SELECT 1 FROM sources WHERE id = ?1")
        .ctx(context)?;
    let mut id = base.clone();
    let mut n = 2;
    while exists.exists([&id]).ctx(context)? {
        id = format!("{base}-{n}");
        n += 1;
    }
    let include = if new.include_globs.is_empty() {
        vec!["**/*".to_string()]
    } else {
        new.include_globs.clone()
    };
    let project = if new.project_id.trim().is_empty() {
        "general"
    } else {
        new.project_id.as_str()
    };
    conn.prepare_cached(
        "INSERT INTO sources (id, display_name, root_path, project_id, include_globs,
                exclude_globs, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .ctx(context)?
    .execute(params![
        id,
        new.display_name,
        new.root_path,
        project,
        globs_json(&include)?,
        globs_json(&new.exclude_globs)?,
        clock::now_iso()
    ])
    .ctx(context)?;
    let job = enqueue(conn, &id, FileJobKind::Sync)?;
    let source = get(conn, &id)?.ok_or_else(|| StoreError::Internal("source vanished".into()))?;
    Ok((source, job))
}

/// Deletes the source, its files, jobs and chunks; false when it does not exist.
pub(crate) fn delete(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    let context = "while deleting a source";
    conn.prepare_cached("DELETE FROM chunks WHERE kind = 'file' AND source_id = ?1")
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
    conn.prepare_cached("DELETE FROM garbage_generations WHERE source_id = ?1")
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
    let n = conn
        .prepare_cached("DELETE FROM sources WHERE id = ?1")
        .ctx(context)?
        .execute([id])
        .ctx(context)?;
    Ok(n > 0)
}

/// Recomputes `files_indexed` and `bytes_indexed` from the searchable generation.
pub(crate) fn refresh_totals(conn: &Connection, source_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE sources SET
            files_indexed = (SELECT count(*) FROM files f
                             WHERE f.source_id = sources.id AND f.generation = sources.generation),
            bytes_indexed = (SELECT coalesce(sum(size), 0) FROM files f
                             WHERE f.source_id = sources.id AND f.generation = sources.generation)
         WHERE id = ?1",
    )
    .ctx("while counting a source's files")?
    .execute([source_id])
    .ctx("while counting a source's files")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("My Docs!"), "my-docs");
        assert_eq!(slug("  __ "), "source");
        assert_eq!(slug("Été 2025/notes"), "t-2025-notes");
        assert_eq!(slug("a--b"), "a-b");
    }
}
