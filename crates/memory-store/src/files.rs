//! Indexed files and their chunks: the batch write the file indexer sends (each file's
//! row, chunks and FTS rows in the same transaction, never one without the other), the
//! rows it compares against for incremental runs, and the batched deletion of garbage
//! generations. Chunking and reading files happen in the indexer, never here: this runs
//! on the writer thread, which every write in the process waits behind.

use rusqlite::{Connection, params};

use crate::chunk::Chunk;
use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::fts::FtsRows;

/// What the store knows of an indexed file (compared by the indexer to skip unchanged
/// files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// POSIX path relative to the source root.
    pub rel_path: String,
    /// Bytes.
    pub size: i64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Hex digest of the content.
    pub content_hash: String,
}

/// A file whose chunks are (re)written, with each chunk's index terms already computed
/// ([`FileUpsert::new`], on the caller's thread: the writer thread, which every write in
/// the process waits behind, only inserts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUpsert {
    /// Its row.
    pub record: FileRecord,
    /// Absolute path, as search returns it.
    pub abs_path: String,
    /// Extension without the dot, if any.
    pub filetype: Option<String>,
    /// Its chunks (an empty file has none but keeps its row).
    chunks: Vec<Chunk>,
    /// `terms[i]` is [`crate::terms::index_terms`] of `chunks[i].text`.
    terms: Vec<String>,
}

impl FileUpsert {
    /// The upsert of a file's row and `chunks`, computing each chunk's FTS index terms
    /// (about 10 µs per 1000-character chunk).
    pub fn new(record: FileRecord, abs_path: String, filetype: Option<String>, chunks: Vec<Chunk>) -> Self {
        let terms = chunks
            .iter()
            .map(|c| crate::terms::index_terms(&c.text))
            .collect();
        FileUpsert {
            record,
            abs_path,
            filetype,
            chunks,
            terms,
        }
    }

    /// The file's chunks, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }
}

/// One change to a source's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// Replace the file's row and chunks.
    Upsert(FileUpsert),
    /// Same content, new size/mtime: update the row only.
    Touch(FileRecord),
    /// The file is gone (or no longer indexable): drop its row and chunks.
    Remove {
        /// Relative path.
        rel_path: String,
        /// Absolute path (how its chunks are keyed).
        abs_path: String,
    },
}

/// Files a job skipped, by reason (each file counted once, under its first reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkipCounts {
    /// Content that no text decoding accepts (a NUL, control characters) or a known
    /// binary extension (images, archives, executables).
    pub binary: i64,
    /// Larger than the indexer's cap.
    pub too_large: i64,
    /// A document format recognised but not extracted (`.doc`, `.ppt`, iWork).
    pub unsupported: i64,
    /// Could not be listed, stat'ed or read (permissions, vanished, non-UTF-8 name).
    pub unreadable: i64,
    /// A document whose extraction failed (malformed, hostile, no text, too slow).
    pub extraction_failed: i64,
    /// Found by the walk but outside the source's include globs. (Files hidden by
    /// `.gitignore` or the exclude globs are never walked, so never counted.)
    pub ignored: i64,
}

impl SkipCounts {
    /// All skipped files.
    pub fn total(&self) -> i64 {
        self.binary
            + self.too_large
            + self.unsupported
            + self.unreadable
            + self.extraction_failed
            + self.ignored
    }

    /// `(wire name, count)` for each reason, in a stable order.
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

/// Progress of a running job: absolute values, so a retried write is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobProgress {
    /// Files found by the walk, once known.
    pub files_total: Option<i64>,
    /// Files looked at.
    pub files_processed: i64,
    /// Their bytes.
    pub bytes_processed: i64,
    /// Files skipped: the sum of `skipped`.
    pub files_skipped: i64,
    /// Files whose chunks were (re)written.
    pub files_updated: i64,
    /// Files looked at whose text is searchable (written, or unchanged since indexed).
    pub files_indexed: i64,
    /// Their bytes (file sizes on disk).
    pub bytes_indexed: i64,
    /// Skipped files by reason.
    pub skipped: SkipCounts,
}

/// A group of file changes committed in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBatch {
    /// The source.
    pub source_id: String,
    /// The generation written (a job's, or the searchable one for watcher updates).
    pub generation: i64,
    /// The job writing it; `None` for watcher updates (which then refresh the totals).
    pub job_id: Option<i64>,
    /// The changes.
    pub ops: Vec<FileOp>,
    /// The job's progress after these changes.
    pub progress: Option<JobProgress>,
}

/// The rows of one generation of a source.
pub(crate) fn records(
    conn: &Connection,
    source_id: &str,
    generation: i64,
) -> Result<Vec<FileRecord>, StoreError> {
    let context = "while reading indexed files";
    let mut stmt = conn
        .prepare_cached(
            "SELECT rel_path, size, mtime_ns, content_hash FROM files
             WHERE source_id = ?1 AND generation = ?2",
        )
        .ctx(context)?;
    let rows = stmt
        .query_map(params![source_id, generation], |r| {
            Ok(FileRecord {
                rel_path: r.get(0)?,
                size: r.get(1)?,
                mtime_ns: r.get(2)?,
                content_hash: r.get(3)?,
            })
        })
        .ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

/// Checks the batch may still be written: its job is running on that generation, or
/// (no job) its source exists with that generation searchable. `NotFound` otherwise,
/// which the indexer takes as "stop": the source was deleted or the job cancelled.
fn check_target(conn: &Connection, b: &FileBatch) -> Result<(), StoreError> {
    let context = "while checking an index target";
    let ok = match b.job_id {
        Some(job) => conn
            .prepare_cached(
                "SELECT 1 FROM file_index_jobs WHERE id = ?1 AND status = 'running'
                 AND source_id = ?2 AND generation = ?3",
            )
            .ctx(context)?
            .exists(params![job, b.source_id, b.generation])
            .ctx(context)?,
        None => conn
            .prepare_cached("SELECT 1 FROM sources WHERE id = ?1 AND generation = ?2")
            .ctx(context)?
            .exists(params![b.source_id, b.generation])
            .ctx(context)?,
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::NotFound(match b.job_id {
            Some(job) => format!("index job {job} is no longer running"),
            None => format!(
                "source {} (generation {}) no longer exists",
                b.source_id, b.generation
            ),
        }))
    }
}

/// Deletes the chunks of file `abs_path` in the batch's generation, if it has any; the
/// FTS rows still pending are written first (see the `fts` module), so a chunk inserted
/// earlier in this batch never leaves a row behind.
fn delete_chunks(
    conn: &Connection,
    b: &FileBatch,
    abs_path: &str,
    fts: &mut FtsRows,
) -> Result<(), StoreError> {
    let context = "while deleting a file's chunks";
    let key = params![b.source_id, b.generation, abs_path];
    let has_chunks = conn
        .prepare_cached(
            "SELECT 1 FROM chunks
             WHERE kind = 'file' AND source_id = ?1 AND generation = ?2 AND file_path = ?3",
        )
        .ctx(context)?
        .exists(key)
        .ctx(context)?;
    if !has_chunks {
        return Ok(());
    }
    fts.write(conn)?;
    conn.prepare_cached(
        "DELETE FROM chunks WHERE kind = 'file' AND source_id = ?1 AND generation = ?2 AND file_path = ?3",
    )
    .ctx(context)?
    .execute(key)
    .ctx(context)?;
    Ok(())
}

fn upsert_row(
    conn: &Connection,
    b: &FileBatch,
    r: &FileRecord,
    chunks: Option<usize>,
) -> Result<(), StoreError> {
    let context = "while recording a file";
    conn.prepare_cached(
        "INSERT INTO files (source_id, generation, rel_path, size, mtime_ns, content_hash,
                chunk_count, indexed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce(?7, 0), ?8)
         ON CONFLICT (source_id, generation, rel_path) DO UPDATE SET
            size = excluded.size, mtime_ns = excluded.mtime_ns,
            content_hash = excluded.content_hash,
            chunk_count = coalesce(?7, files.chunk_count), indexed_at = excluded.indexed_at",
    )
    .ctx(context)?
    .execute(params![
        b.source_id,
        b.generation,
        r.rel_path,
        r.size,
        r.mtime_ns,
        r.content_hash,
        chunks.map(|n| n as i64),
        clock::now_iso()
    ])
    .ctx(context)?;
    Ok(())
}

/// Applies a batch inside the writer's transaction.
pub(crate) fn apply(conn: &Connection, b: &FileBatch) -> Result<(), StoreError> {
    check_target(conn, b)?;
    let context = "while writing a file's chunks";
    let mut fts = FtsRows::default();
    for op in &b.ops {
        match op {
            FileOp::Upsert(f) => {
                delete_chunks(conn, b, &f.abs_path, &mut fts)?;
                upsert_row(conn, b, &f.record, Some(f.chunks.len()))?;
                insert_chunks(conn, b, f, &mut fts)?;
            }
            FileOp::Touch(r) => upsert_row(conn, b, r, None)?,
            FileOp::Remove { rel_path, abs_path } => {
                delete_chunks(conn, b, abs_path, &mut fts)?;
                conn.prepare_cached(
                    "DELETE FROM files WHERE source_id = ?1 AND generation = ?2 AND rel_path = ?3",
                )
                .ctx(context)?
                .execute(params![b.source_id, b.generation, rel_path])
                .ctx(context)?;
            }
        }
    }
    if let (Some(job), Some(p)) = (b.job_id, b.progress) {
        record_progress(conn, job, &p)?;
    }
    fts.write(conn)
}

/// Inserts the chunks of an upserted file into the batch's source and generation, numbered
/// from 0 in their order; their FTS rows join `fts`.
fn insert_chunks(
    conn: &Connection,
    b: &FileBatch,
    f: &FileUpsert,
    fts: &mut FtsRows,
) -> Result<(), StoreError> {
    let context = "while writing a file's chunks";
    let now = clock::now_iso();
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO chunks (kind, source_id, file_path, filetype, chunk_index,
                    start_char, end_char, text, created_at, generation)
             VALUES ('file', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             RETURNING id, scope",
        )
        .ctx(context)?;
    for (i, (c, terms)) in f.chunks.iter().zip(&f.terms).enumerate() {
        let (rowid, scope) = insert
            .query_row(
                params![
                    b.source_id,
                    f.abs_path,
                    f.filetype,
                    i as i64,
                    c.start_char as i64,
                    c.end_char as i64,
                    c.text,
                    now,
                    b.generation
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .ctx(context)?;
        fts.push(rowid, terms.clone(), scope);
    }
    Ok(())
}

/// Writes a file job's progress counters (files, bytes, skips by reason) to its row.
fn record_progress(conn: &Connection, job: i64, p: &JobProgress) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE file_index_jobs SET files_total = coalesce(?2, files_total), files_processed = ?3,
                bytes_processed = ?4, files_skipped = ?5, files_updated = ?6,
                files_indexed = ?7, bytes_indexed = ?8, skipped_binary = ?9,
                skipped_too_large = ?10, skipped_unsupported = ?11, skipped_unreadable = ?12,
                skipped_extraction_failed = ?13, skipped_ignored = ?14
         WHERE id = ?1",
    )
    .ctx("while recording job progress")?
    .execute(params![
        job,
        p.files_total,
        p.files_processed,
        p.bytes_processed,
        p.files_skipped,
        p.files_updated,
        p.files_indexed,
        p.bytes_indexed,
        p.skipped.binary,
        p.skipped.too_large,
        p.skipped.unsupported,
        p.skipped.unreadable,
        p.skipped.extraction_failed,
        p.skipped.ignored
    ])
    .ctx("while recording job progress")?;
    Ok(())
}

/// Deletes at most `max_rows` chunks (and as many file rows) of one garbage generation;
/// forgets the generation once empty. Returns rows deleted plus 1 when a generation was
/// forgotten, so 0 means there is no garbage left.
pub(crate) fn collect_garbage(conn: &Connection, max_rows: usize) -> Result<usize, StoreError> {
    let context = "while deleting an old generation";
    let next: Option<(String, i64)> = conn
        .prepare_cached("SELECT source_id, generation FROM garbage_generations LIMIT 1")
        .ctx(context)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .ctx(context)?;
    let Some((source, generation)) = next else {
        return Ok(0);
    };
    let limit = max_rows.max(1) as i64;
    let chunks = conn
        .prepare_cached(
            "DELETE FROM chunks WHERE id IN (SELECT id FROM chunks WHERE kind = 'file'
                 AND source_id = ?1 AND generation = ?2 LIMIT ?3)",
        )
        .ctx(context)?
        .execute(params![source, generation, limit])
        .ctx(context)?;
    let files = conn
        .prepare_cached(
            "DELETE FROM files WHERE source_id = ?1 AND generation = ?2 AND rel_path IN
                 (SELECT rel_path FROM files WHERE source_id = ?1 AND generation = ?2 LIMIT ?3)",
        )
        .ctx(context)?
        .execute(params![source, generation, limit])
        .ctx(context)?;
    if chunks + files > 0 {
        return Ok(chunks + files);
    }
    conn.prepare_cached("DELETE FROM garbage_generations WHERE source_id = ?1 AND generation = ?2")
        .ctx(context)?
        .execute(params![source, generation])
        .ctx(context)?;
    Ok(1)
}
