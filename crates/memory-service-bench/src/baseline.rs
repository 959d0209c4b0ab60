//! The bare FTS5 baseline: the same text inserted straight into a lone FTS5
//! table (same tokenizer as the service, WAL, `synchronous=FULL`) in a temp
//! file, with rusqlite in this process. It is the yardstick for the service's
//! indexing rate: what SQLite alone costs, without HTTP, message and job rows,
//! chunk rows, triggers, or a durable commit per message.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::Connection;

/// The service's tokenizer (crates/memory-store/src/schema.rs).
pub const TOKENIZER: &str = "porter unicode61 remove_diacritics 2";

/// A bare FTS5 table being filled: rows go in `per_txn` to a transaction.
pub struct Bare {
    conn: Connection,
    per_txn: usize,
    in_txn: usize,
    /// Rows inserted so far.
    pub rows: usize,
    /// Bytes of text inserted so far.
    pub bytes: u64,
}

impl Bare {
    /// Creates the database `path` (must not exist) with one FTS5 table.
    pub fn create(path: &Path, per_txn: usize) -> Result<Bare> {
        let conn = Connection::open(path).with_context(|| format!("creating {}", path.display()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .context("setting WAL")?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "journal_mode is {mode}, not wal"
        );
        conn.pragma_update(None, "synchronous", "FULL")
            .context("setting synchronous=FULL")?;
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE t USING fts5(text, tokenize = '{TOKENIZER}')"
        ))
        .context("creating the FTS5 table (is FTS5 compiled in?)")?;
        Ok(Bare {
            conn,
            per_txn: per_txn.max(1),
            in_txn: 0,
            rows: 0,
            bytes: 0,
        })
    }

    /// Inserts one row, committing every `per_txn` rows.
    pub fn insert(&mut self, text: &str) -> Result<()> {
        if self.in_txn == 0 {
            self.conn.execute_batch("BEGIN").context("BEGIN")?;
        }
        self.conn
            .prepare_cached("INSERT INTO t(text) VALUES (?1)")
            .and_then(|mut s| s.execute([text]))
            .context("inserting a row")?;
        self.rows += 1;
        self.bytes += text.len() as u64;
        self.in_txn += 1;
        if self.in_txn == self.per_txn {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if self.in_txn > 0 {
            self.conn.execute_batch("COMMIT").context("COMMIT")?;
            self.in_txn = 0;
        }
        Ok(())
    }

    /// Commits what is left.
    pub fn finish(mut self) -> Result<(usize, u64)> {
        self.commit()?;
        Ok((self.rows, self.bytes))
    }
}

/// One baseline run: rows, bytes and seconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Run {
    /// Rows inserted.
    pub rows: usize,
    /// Bytes of text inserted.
    pub bytes: u64,
    /// Wall time, including every commit.
    pub secs: f64,
}

impl Run {
    /// Rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.secs
    }

    /// MB (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
}

/// Inserts `texts` into a fresh bare table at `path`, `per_txn` rows per
/// transaction, stopping early after `max_time` (if given). Timed from the
/// first insert to the last commit; the table is created before.
pub fn run<'a>(
    path: &Path,
    per_txn: usize,
    texts: impl IntoIterator<Item = &'a str>,
    max_time: Option<Duration>,
) -> Result<Run> {
    let mut bare = Bare::create(path, per_txn)?;
    let t0 = Instant::now();
    for text in texts {
        bare.insert(text)?;
        if max_time.is_some_and(|m| t0.elapsed() > m) {
            break;
        }
    }
    let (rows, bytes) = bare.finish()?;
    Ok(Run {
        rows,
        bytes,
        secs: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_matches_with_the_service_tokenizer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bare.sqlite");
        let texts = ["Indexing messages quickly", "the searching of files", "café"];
        let r = run(&path, 2, texts, None).unwrap();
        assert_eq!(r.rows, 3);
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM t WHERE t MATCH 'index OR search OR cafe'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 3, "porter stems and diacritics folded");
    }
}
