//! The FTS5 rows of new chunks, written by the code that writes the chunks, last in its
//! write request. Why not a trigger on `chunks` (as schemas before version 10 had):
//! FTS5 writes its pending in-memory index out as a new on-disk segment at every
//! savepoint of the transaction (`fts5SavepointMethod` calls `sqlite3Fts5FlushToDisk`),
//! and SQLite opens a statement savepoint for every statement that fires triggers. So
//! with the FTS row inserted by a trigger, each chunk insert flushed a segment of one
//! row, and FTS5 spent its time merging them back: profiled while indexing a 50 MB tree,
//! flushing and merging took about a third of the writer thread, which every write in
//! the process waits behind. A plain single-row `INSERT` into the FTS table fires no
//! trigger and opens no statement savepoint, so a request's rows collected in
//! [`FtsRows`] and inserted at its end reach disk as one segment, as in a bare FTS5 bulk
//! insert.
//!
//! The rule that keeps the index equal to the table: a chunk deleted in the request that
//! inserted it must not leave a pending row behind. Deletes of chunks go through the
//! delete trigger, which removes committed FTS rows only, so writers call
//! [`FtsRows::write`] before they delete chunks in a request that already inserted some
//! (`files::apply` and `chat_index::step` do). Updates of chunk text keep their trigger
//! (rare, and never mixed with pending rows).

use rusqlite::Connection;

use crate::error::{SqlContext, StoreError};

/// FTS rows of chunks inserted in the current write request, not yet in `chunks_fts`.
#[derive(Debug, Default)]
pub(crate) struct FtsRows {
    /// (chunk rowid, index terms as [`crate::terms::index_terms`] gives them, scope token).
    rows: Vec<(i64, String, String)>,
}

impl FtsRows {
    /// Records the FTS row of chunk `rowid`: its index terms and its `scope` column.
    pub fn push(&mut self, rowid: i64, terms: String, scope: String) {
        self.rows.push((rowid, terms, scope));
    }

    /// Moves `other`'s rows into this set (a chat job's rows, once its savepoint is
    /// released).
    pub fn append(&mut self, other: &mut FtsRows) {
        self.rows.append(&mut other.rows);
    }

    /// Whether no row is pending.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Inserts the pending rows into `chunks_fts`, each with a plain single-row insert
    /// (no savepoint, so no segment flush in between), and empties the set.
    pub fn write(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let context = "while writing the full-text index";
        let mut insert = conn
            .prepare_cached("INSERT INTO chunks_fts(rowid, terms, scope) VALUES (?1, ?2, ?3)")
            .ctx(context)?;
        for (rowid, terms, scope) in self.rows.drain(..) {
            insert.execute((rowid, terms, scope)).ctx(context)?;
        }
        Ok(())
    }
}

/// Runs FTS5's `merge` command for up to `pages` pages; true when it did work (SQLite's
/// documentation of the command: a change count that grew by 2 or more).
pub(crate) fn merge(conn: &Connection, pages: u32) -> Result<bool, StoreError> {
    let before = conn.total_changes();
    conn.prepare_cached("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('merge', ?1)")
        .ctx("while merging the full-text index")?
        .execute([pages])
        .ctx("while merging the full-text index")?;
    Ok(conn.total_changes() - before >= 2)
}
