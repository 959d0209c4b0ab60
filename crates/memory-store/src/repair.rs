//! Finding damage and recovering from it. A bad sector, a copy taken in the middle of
//! a write or a bug can leave pages of the database unreadable; SQLite then answers
//! `SQLITE_CORRUPT` for whatever touches them, and a service that only logged it would
//! look healthy while searches and deletions fail. So damage is looked for (a
//! `quick_check` at start and periodically, and every `SQLITE_CORRUPT` on the way), and
//! `memory-service doctor` can rebuild the database offline.
//!
//! The rebuild rests on one split of the schema: what the user gave the service (chat
//! messages, facts, sources) is copied row by row, stepping over unreadable pages and
//! saying which rows were lost; everything derived from it (chunks, the FTS index,
//! vectors, index jobs, the file list) is not copied but queued to be derived again by
//! the ordinary indexing pipeline at the next start. A damaged derived table therefore
//! costs nothing; a damaged message table costs exactly the rows on the bad pages.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::{SqlContext, StoreError, on_path};
use crate::{FileJobKind, StoreConfig, chat_jobs, file_jobs};

/// Most problems `quick_check` lists before it stops.
const QUICK_CHECK_MAX: u32 = 20;
/// Most problems the offline [`check`] lists.
const CHECK_MAX: u32 = 100;
/// Rows copied per statement while salvaging a table.
const SALVAGE_BATCH: i64 = 256;

/// The tables holding what the user gave the service, copied by [`rebuild`] in this
/// order. Every other table is derived from these and rebuilt by indexing.
pub const KEPT_TABLES: [&str; 3] = ["sources", "chat_messages", "project_facts"];

/// `PRAGMA quick_check` on a fresh read-only connection to `path`: `Ok(None)` when the
/// database is whole, `Ok(Some(problems))` (at most 20, one a line) when not, including
/// when SQLite cannot read it at all (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
///
/// # Errors
/// [`StoreError::Sqlite`] when the file cannot be opened or checked for another reason.
pub fn quick_check(path: &Path) -> Result<Option<String>, StoreError> {
    let context = on_path("running PRAGMA quick_check on", path);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let found = Connection::open_with_flags(path, flags).and_then(|conn| {
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        pragma_lines(&conn, &format!("PRAGMA quick_check({QUICK_CHECK_MAX})"))
    });
    match found {
        Ok(lines) => Ok(problems_of(lines)),
        Err(e) => {
            let e = StoreError::sqlite(context, e);
            if e.is_damage() {
                Ok(Some(e.to_string()))
            } else {
                Err(e)
            }
        }
    }
}

/// The offline check behind `memory-service doctor`: `PRAGMA integrity_check` (every
/// page, every index against its table) and FTS5's own check of `chunks_fts`. Returns
/// the problems, empty when none. No other process may use the database meanwhile.
///
/// # Errors
/// [`StoreError::Sqlite`] when the file cannot be opened for a reason other than
/// damage (a missing file, permissions).
pub fn check(path: &Path) -> Result<Vec<String>, StoreError> {
    let context = on_path("checking database", path);
    if !path.is_file() {
        return Err(StoreError::NotFound(format!("no database at {}", path.display())));
    }
    let conn = match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
        Ok(c) => c,
        Err(e) => return damage_or(StoreError::sqlite(context, e)),
    };
    let mut problems = match pragma_lines(&conn, &format!("PRAGMA integrity_check({CHECK_MAX})")) {
        Ok(lines) => problems_of(lines).map(|p| vec![p]).unwrap_or_default(),
        Err(e) => return damage_or(StoreError::sqlite(context, e)),
    };
    let has_fts = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE name = 'chunks_fts'",
            [],
            |_| Ok(()),
        )
        .optional();
    if matches!(has_fts, Ok(Some(()))) {
        match conn.execute(
            "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)",
            [],
        ) {
            Ok(_) => {}
            Err(e) => {
                let e = StoreError::sqlite("while checking the FTS index chunks_fts", e);
                if !e.is_damage() {
                    return Err(e);
                }
                problems.push(e.to_string());
            }
        }
    }
    Ok(problems)
}

/// A damage error becomes the one problem found; any other error stays an error.
fn damage_or(e: StoreError) -> Result<Vec<String>, StoreError> {
    if e.is_damage() {
        Ok(vec![e.to_string()])
    } else {
        Err(e)
    }
}

fn pragma_lines(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// `None` for SQLite's single "ok", else the lines joined.
fn problems_of(lines: Vec<String>) -> Option<String> {
    let problems: Vec<String> = lines.into_iter().filter(|l| l != "ok").collect();
    (!problems.is_empty()).then(|| problems.join("\n"))
}

/// What [`rebuild`] recovered from one kept table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSalvage {
    /// The table, one of [`KEPT_TABLES`].
    pub table: &'static str,
    /// Rows copied into the new database.
    pub rows: u64,
    /// Rowid ranges `(after, before)`, both exclusive, whose rows could not be read.
    /// Rowids of these tables grow with insertion, so `before - after - 1` bounds the
    /// rows lost in a range from above.
    pub unreadable: Vec<(i64, i64)>,
    /// The table could not be read at all (its root page or the file header is gone).
    pub unreadable_all: Option<String>,
}

impl TableSalvage {
    /// True when rows of this table may have been lost.
    pub fn lost_rows(&self) -> bool {
        !self.unreadable.is_empty() || self.unreadable_all.is_some()
    }
}

/// What [`rebuild`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// Where the damaged database (and its WAL, if any) was moved; kept for a later
    /// attempt with other tools.
    pub backup: PathBuf,
    /// One entry per table of [`KEPT_TABLES`].
    pub tables: Vec<TableSalvage>,
    /// Chat messages queued to be chunked and indexed again at the next start.
    pub chat_jobs_queued: u64,
    /// Sources queued for a full re-index from their folders at the next start.
    pub sources_queued: u64,
}

impl RebuildReport {
    /// True when some stored rows could not be recovered.
    pub fn lost_rows(&self) -> bool {
        self.tables.iter().any(TableSalvage::lost_rows)
    }
}

/// Rebuilds the database at `path` offline: creates a new one with the current schema
/// beside it, copies every readable row of [`KEPT_TABLES`] (stepping over unreadable
/// pages), queues every message and source to be indexed again, then moves the damaged
/// file to `<path>.damaged-<epoch seconds>` and the new one into its place. No other
/// process may use the database meanwhile (the caller holds the home's lock).
///
/// # Errors
/// [`StoreError::SchemaTooNew`] when a newer program wrote the file;
/// [`StoreError::Sqlite`] / [`StoreError::Io`] when the new database cannot be written
/// or the files cannot be moved (the damaged file is then left where it was).
pub fn rebuild(path: &Path) -> Result<RebuildReport, StoreError> {
    let fresh = sibling(path, ".rebuild");
    for suffix in ["", "-wal", "-shm"] {
        remove_if_present(&sibling(&fresh, suffix))?;
    }
    let mut report = {
        let conn = crate::open_write_connection(&StoreConfig::new(&fresh))?;
        let report = salvage_into(&conn, path)?;
        crate::writer::checkpoint_and_close(conn)?;
        report
    };
    sync_file(&fresh)?;
    report.backup = sibling(path, &format!(".damaged-{}", crate::clock::now_epoch_ms() / 1000));
    rename(path, &report.backup)?;
    if sibling(path, "-wal").exists() {
        rename(&sibling(path, "-wal"), &sibling(&report.backup, "-wal"))?;
    }
    remove_if_present(&sibling(path, "-shm"))?;
    rename(&fresh, path)?;
    if let Some(dir) = path.parent() {
        sync_file(dir)?;
    }
    Ok(report)
}

/// Copies the kept tables of the database at `old` into `conn` (a new, migrated
/// database) and queues the derived work, in one transaction.
fn salvage_into(conn: &Connection, old: &Path) -> Result<RebuildReport, StoreError> {
    let context = on_path("reading the damaged database", old);
    // Read-only, so nothing is ever written to the damaged file.
    conn.execute("ATTACH DATABASE ?1 AS old", [read_only_uri(old)])
        .ctx(&context)?;
    let version: Option<i64> = conn
        .query_row("PRAGMA old.user_version", [], |r| r.get(0))
        .optional()
        .unwrap_or(None);
    if let Some(found) = version
        && found > crate::SCHEMA_VERSION
    {
        return Err(StoreError::SchemaTooNew {
            path: old.display().to_string(),
            found,
            supported: crate::SCHEMA_VERSION,
        });
    }
    // Each batch commits on its own (autocommit): a statement that meets damage then
    // aborts only itself, where inside one transaction SQLite would refuse the COMMIT.
    // No fsync per batch: the finished file is synced once before it replaces the old.
    conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA synchronous = OFF")
        .ctx("while starting the rebuild")?;
    let mut tables = Vec::with_capacity(KEPT_TABLES.len());
    for table in KEPT_TABLES {
        tables.push(salvage_table(conn, table));
    }
    conn.execute_batch("DETACH DATABASE old")
        .ctx("while closing the damaged database")?;
    conn.execute_batch("PRAGMA foreign_keys = ON; BEGIN")
        .ctx("while starting to queue the indexing")?;
    let chat_jobs_queued = queue_messages(conn)?;
    let sources_queued = queue_sources(conn)?;
    conn.execute_batch("COMMIT")
        .ctx("while committing the queued indexing")?;
    Ok(RebuildReport {
        backup: PathBuf::new(),
        tables,
        chat_jobs_queued,
        sources_queued,
    })
}

/// `file:<path>?mode=ro`, the path percent-encoded (RFC 3986 unreserved characters
/// and `/` kept as they are), as SQLite's URI file names want it.
fn read_only_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// Copies every readable row of `table` from `old` to `main`, keeping rowids.
/// Batches first; at an error, single rows up to the bad page; then probes ever
/// further ahead (1, 2, 4, ... rowids) for the next readable row.
fn salvage_table(conn: &Connection, table: &'static str) -> TableSalvage {
    let mut out = TableSalvage {
        table,
        rows: 0,
        unreadable: Vec::new(),
        unreadable_all: None,
    };
    let columns = match shared_columns(conn, table) {
        Ok(c) => c,
        Err(e) => {
            out.unreadable_all = Some(e.to_string());
            return out;
        }
    };
    let copy = |after: i64, limit: i64| -> rusqlite::Result<usize> {
        conn.execute(
            &format!(
                "INSERT INTO main.{table} (rowid, {columns}) SELECT rowid, {columns} FROM old.{table}
                 WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
            ),
            params![after, limit],
        )
    };
    let last_copied = || -> rusqlite::Result<Option<i64>> {
        conn.query_row(&format!("SELECT max(rowid) FROM main.{table}"), [], |r| r.get(0))
    };
    let mut after = i64::MIN;
    loop {
        match copy(after, SALVAGE_BATCH).or_else(|_| copy(after, 1)) {
            Ok(0) => break,
            Ok(n) => {
                out.rows += n as u64;
                match last_copied() {
                    Ok(Some(r)) => after = r,
                    _ => break,
                }
            }
            // The next row is on a bad page: go on from the first readable one beyond.
            Err(e) => match next_readable(conn, table, after.max(0)) {
                Some(Some(next)) => {
                    out.unreadable.push((after.max(0), next));
                    after = next - 1;
                }
                Some(None) => {
                    out.unreadable.push((after.max(0), i64::MAX));
                    break;
                }
                None if out.rows == 0 => {
                    out.unreadable_all = Some(format!("table {table} cannot be read: {e}"));
                    break;
                }
                None => {
                    out.unreadable.push((after, i64::MAX));
                    break;
                }
            },
        }
    }
    out
}

/// The first readable rowid of `old.table` after the unreadable row following `from`:
/// probes `rowid > from + 1, + 2, + 4, ...` until a read succeeds, then narrows the gap
/// by bisection so no readable row is skipped. `Some(Some(rowid))`; `Some(None)` when
/// nothing readable follows; `None` when every probe fails.
fn next_readable(conn: &Connection, table: &str, from: i64) -> Option<Option<i64>> {
    let first_after = |x: i64| -> rusqlite::Result<Option<i64>> {
        conn.query_row(
            &format!("SELECT rowid FROM old.{table} WHERE rowid > ?1 ORDER BY rowid LIMIT 1"),
            [x],
            |r| r.get(0),
        )
        .optional()
    };
    let (mut bad, mut good) = (from, None);
    let mut jump: i64 = 1;
    while let Some(at) = from.checked_add(jump) {
        if first_after(at).is_ok() {
            good = Some(at);
            break;
        }
        bad = at;
        jump = jump.checked_mul(2)?;
    }
    let mut good = good?;
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if first_after(mid).is_ok() {
            good = mid
        } else {
            bad = mid
        }
    }
    first_after(good).ok()
}

/// The columns both databases' `table` have, quoted, comma-separated; an INTEGER
/// PRIMARY KEY (an alias of the rowid, copied as the rowid) is left out.
fn shared_columns(conn: &Connection, table: &str) -> Result<String, StoreError> {
    let context = format!("while reading the columns of {table}");
    let info = |schema: &str| -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = conn
            .prepare(&format!("PRAGMA {schema}.table_info({table})"))
            .ctx(&context)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))
            .ctx(&context)?;
        rows.collect::<Result<Vec<_>, _>>().ctx(&context)
    };
    let new = info("main")?;
    let old: Vec<String> = info("old")?.into_iter().map(|(name, _, _)| name).collect();
    if old.is_empty() {
        return Err(StoreError::NotFound(format!(
            "table {table} is missing from the damaged database"
        )));
    }
    let key_count = new.iter().filter(|(_, _, pk)| *pk > 0).count();
    let columns: Vec<String> = new
        .into_iter()
        .filter(|(_, ty, pk)| !(key_count == 1 && *pk == 1 && ty.eq_ignore_ascii_case("INTEGER")))
        .filter(|(name, _, _)| old.contains(name))
        .map(|(name, _, _)| format!("\"{}\"", name.replace('"', "\"\"")))
        .collect();
    Ok(columns.join(", "))
}

/// Queues every recovered message to be chunked and indexed again; returns how many.
fn queue_messages(conn: &Connection) -> Result<u64, StoreError> {
    let context = "while queueing the recovered messages for indexing";
    let messages: Vec<(String, String, String, i64)> = {
        let mut stmt = conn
            .prepare(
                "SELECT chat_id, message_id, message_uuid, length(content) FROM main.chat_messages
                 ORDER BY rowid",
            )
            .ctx(context)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .ctx(context)?;
        rows.collect::<Result<_, _>>().ctx(context)?
    };
    for (chat_id, message_id, uuid, chars) in &messages {
        chat_jobs::enqueue(
            conn,
            chat_id,
            message_id,
            uuid,
            usize::try_from(*chars).unwrap_or(0),
        )?;
    }
    Ok(messages.len() as u64)
}

/// Queues a full re-index of every recovered source (its files list and chunks were
/// not copied); returns how many.
fn queue_sources(conn: &Connection) -> Result<u64, StoreError> {
    let context = "while queueing the recovered sources for indexing";
    let ids: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT id FROM main.sources ORDER BY rowid")
            .ctx(context)?;
        let rows = stmt.query_map([], |r| r.get(0)).ctx(context)?;
        rows.collect::<Result<_, _>>().ctx(context)?
    };
    conn.execute(
        "UPDATE main.sources SET status = 'idle', files_indexed = 0, bytes_indexed = 0,
                last_error = NULL",
        [],
    )
    .ctx(context)?;
    for id in &ids {
        file_jobs::enqueue(conn, id, FileJobKind::Rebuild)?;
    }
    Ok(ids.len() as u64)
}

/// `<path><suffix>` (e.g. `memory.sqlite-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            context: on_path("removing", path),
            cause: e,
        }),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|cause| StoreError::Io {
        context: format!("while moving {} to {}", from.display(), to.display()),
        cause,
    })
}

/// `fsync` of a file or a directory (so a rename survives a power cut).
fn sync_file(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|cause| StoreError::Io {
            context: on_path("syncing", path),
            cause,
        })
}
