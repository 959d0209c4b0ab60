//! The memory service's data: one SQLite database (WAL, FTS5) holding chat messages,
//! their index jobs and the searchable chunks, behind a blocking, cloneable [`Store`].
//! No HTTP, no async: the HTTP layer calls it from `spawn_blocking`.
//!
//! # Layout
//! - [`Store`] (this file): opening, the public methods, shutdown.
//! - `schema`: migrations (`PRAGMA user_version`), the table definitions and why FTS5
//!   uses external content.
//! - `writer`: the single writer thread with group commit.
//! - `readers`: the pool of read-only connections.
//! - `chat`: message validation, upsert + job enqueue, chat deletion.
//! - `job`: index job states, ids and their SQL.
//! - `indexer`: the background thread turning queued jobs into chunks.
//! - `chunk`: splitting text into chunks with character offsets (sizes documented there).
//! - `search`: safe FTS5 queries, BM25 ranking, score mapping.
//! - `stats`: in-memory counters and the pending-job tracker.
//! - `clock`: timestamps. `error`: [`StoreError`].
//!
//! # Threads
//! One writer thread owns the only write connection; every write (request handlers and
//! the indexer alike) is a closure sent to it. One indexer thread. Reads use a small pool
//! of read-only connections on the caller's thread; in WAL mode they never wait on writes.
#![deny(missing_docs)]

mod chat;
mod chunk;
mod clock;
mod error;
mod indexer;
mod job;
mod readers;
mod schema;
mod search;
mod stats;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use chat::{ChatAck, ChatMessageIn, MAX_CONTENT_BYTES, MAX_ID_BYTES, MAX_ROLE_BYTES};
pub use chunk::{MIN_BREAK_CHARS, MIN_TAIL_CHARS, TARGET_CHARS};
pub use error::StoreError;
pub use job::{JobState, JobStatus};
pub use schema::SCHEMA_VERSION;
pub use search::{MAX_LIMIT, MAX_TERMS, SearchHit, SearchRequest, SourceType};
pub use stats::StoreStats;

use error::{SqlContext, on_path};
use indexer::{Indexer, IndexerSignal};
use readers::Readers;
use stats::{Counters, PendingJobs};
use writer::{Wait, Writer};

/// Where and how to open the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The `.sqlite` file (created with its parent directory if missing).
    pub path: PathBuf,
    /// Read connections kept open (default 4; at least 1 is used).
    pub readers: usize,
    /// How long SQLite waits on a lock before answering "busy" (default 2 s). Request
    /// handlers wait at most 5 times this (10 s by default) for the writer's answer.
    pub busy_timeout: Duration,
}

impl StoreConfig {
    /// Defaults for the database file `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            readers: 4,
            busy_timeout: Duration::from_secs(2),
        }
    }
}

/// The store handle: cheap to clone, `Send + Sync`, blocking methods.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Threads {
    writer: JoinHandle<()>,
    indexer: JoinHandle<()>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
    counters: Arc<Counters>,
    pending: Arc<PendingJobs>,
    signal: Arc<IndexerSignal>,
    threads: Mutex<Option<Threads>>,
    closed: AtomicBool,
    reply_wait: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Opens the write connection with the durability settings and applies migrations.
fn open_write_connection(cfg: &StoreConfig) -> Result<Connection, StoreError> {
    let context = on_path("opening database", &cfg.path);
    if let Some(parent) = cfg.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            context: on_path("creating the database directory", parent),
            source,
        })?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let mut conn = Connection::open_with_flags(&cfg.path, flags).ctx(&context)?;
    conn.busy_timeout(cfg.busy_timeout).ctx(&context)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .ctx(&context)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!(
            "{context}: journal_mode is {mode}, WAL could not be enabled"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL").ctx(&context)?;
    conn.pragma_update(None, "foreign_keys", true).ctx(&context)?;
    schema::migrate(&mut conn, &cfg.path.display().to_string())?;
    Ok(conn)
}

impl Store {
    /// Opens or creates the database (WAL, `foreign_keys=ON`, `synchronous=FULL`),
    /// applies migrations, re-queues jobs a crash left `running`, and starts the writer
    /// and the chat indexer threads. Pending jobs are resumed.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        let conn = open_write_connection(&cfg)?;
        job::requeue_running(&conn)?;
        let pending = Arc::new(PendingJobs::default());
        let found = job::pending(&conn)?;
        let resume = !found.is_empty();
        for (ms, id) in found {
            pending.add(ms, id);
        }
        let readers = Readers::open(cfg.path.clone(), cfg.readers, cfg.busy_timeout)?;
        let counters = Arc::new(Counters::default());
        let (writer, writer_thread) = Writer::spawn(conn, Arc::clone(&counters))?;
        let signal = Arc::new(IndexerSignal::default());
        let indexer = Indexer {
            writer: writer.clone(),
            signal: Arc::clone(&signal),
            pending: Arc::clone(&pending),
            counters: Arc::clone(&counters),
        };
        let indexer_thread = match indexer.spawn() {
            Ok(t) => t,
            Err(e) => {
                let _ = writer.shutdown();
                let _ = writer_thread.join();
                return Err(e);
            }
        };
        if resume {
            signal.notify_work();
        }
        Ok(Store {
            inner: Arc::new(Inner {
                path: cfg.path,
                writer,
                readers,
                counters,
                pending,
                signal,
                threads: Mutex::new(Some(Threads {
                    writer: writer_thread,
                    indexer: indexer_thread,
                })),
                closed: AtomicBool::new(false),
                reply_wait: (cfg.busy_timeout * 5).max(Duration::from_secs(1)),
            }),
        })
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(StoreError::Unavailable("the store is shut down".into()))
        } else {
            Ok(())
        }
    }

    /// `POST /index-chat-message`: validates, then commits the message row and its queued
    /// index job in one transaction and returns after that commit. The same
    /// (project_id, chat_id, message_id) again updates the row in place and keeps its
    /// UUID; a client UUID is used for a new row. Indexing happens later.
    pub fn index_chat_message(&self, mut m: ChatMessageIn) -> Result<ChatAck, StoreError> {
        self.check_open()?;
        chat::validate(&mut m)?;
        let pending = Arc::clone(&self.inner.pending);
        let signal = Arc::clone(&self.inner.signal);
        let done = self.inner.writer.execute_then(
            Wait::Bounded(self.inner.reply_wait),
            move |conn| chat::upsert(conn, &m),
            move |e: &chat::Enqueued| {
                pending.add(e.enqueue_ms, e.ack.job_id.clone());
                signal.notify_work();
            },
        )?;
        Ok(done.ack)
    }

    /// `GET /index-job-status/{job_id}`, from the database; `Ok(None)` for an unknown id.
    pub fn job_status(&self, job_id: &str) -> Result<Option<JobStatus>, StoreError> {
        self.check_open()?;
        if job_id.is_empty() {
            return Ok(None);
        }
        self.inner.readers.with(|c| job::status(c, job_id))
    }

    /// `POST /search`: BM25 over the project's chat chunks (minus `exclude_chat_ids`) and
    /// the file chunks of `source_ids`, best first, at most `limit` (clamped to 1..=200).
    /// An empty or punctuation-only query gives no results.
    pub fn search(&self, q: &SearchRequest) -> Result<Vec<SearchHit>, StoreError> {
        self.check_open()?;
        let limit = search::validate(q)?;
        let Some(expr) = search::match_expression(&q.query) else {
            return Ok(Vec::new());
        };
        self.inner.readers.with(|c| search::run(c, q, &expr, limit))
    }

    /// `DELETE /chats/{project_id}/{chat_id}`: deletes the chat's messages, chunks (and
    /// FTS rows) and jobs in one transaction; returns how many messages were deleted.
    pub fn delete_chat(&self, project_id: &str, chat_id: &str) -> Result<u64, StoreError> {
        self.check_open()?;
        chat::validate_chat_ids(project_id, chat_id)?;
        let (project_id, chat_id) = (project_id.to_string(), chat_id.to_string());
        let pending = Arc::clone(&self.inner.pending);
        let deleted = self.inner.writer.execute_then(
            Wait::Bounded(self.inner.reply_wait),
            move |conn| chat::delete(conn, &project_id, &chat_id),
            move |d: &chat::DeletedChat| {
                for (ms, id) in &d.pending_jobs {
                    pending.remove(*ms, id);
                }
            },
        )?;
        Ok(deleted.messages)
    }

    /// In-memory counters; never touches the database, never blocks.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        StoreStats {
            writer_queue_depth: load(&c.queue_depth),
            pending_chat_jobs: self.inner.pending.count(),
            oldest_pending_job_age_ms: self.inner.pending.oldest_age_ms(),
            commits: load(&c.commits),
            writes_committed: load(&c.writes_committed),
            commit_latency_total_us: load(&c.commit_us_total),
            commit_latency_max_us: load(&c.commit_us_max),
            commit_failures: load(&c.commit_failures),
            messages_indexed: load(&c.messages_indexed),
            index_errors: load(&c.index_errors),
            shut_down: c.shut_down.load(Ordering::Relaxed),
        }
    }

    /// Graceful stop: the indexer stops at a message boundary, the writer commits what is
    /// queued and exits, the WAL is checkpointed (TRUNCATE). Idempotent; also run when the
    /// last clone is dropped.
    pub fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.shutdown()
    }

    /// `PRAGMA integrity_check` plus FTS5's own check of `chunks_fts` against `chunks`:
    /// `"ok"` when both are fine, otherwise the problems, one a line. The FTS check runs
    /// on the writer (FTS5 spells it as an INSERT), so writes wait for it.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.check_open()?;
        let mut problems = self.inner.readers.with(|c| {
            let context = "while running PRAGMA integrity_check";
            let mut stmt = c.prepare("PRAGMA integrity_check").ctx(context)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).ctx(context)?;
            let lines = rows.collect::<Result<Vec<_>, _>>().ctx(context)?;
            Ok(lines.into_iter().filter(|l| l != "ok").collect::<Vec<_>>())
        })?;
        let fts = self.inner.writer.execute_then(
            Wait::Bounded(self.inner.reply_wait),
            |c| {
                Ok(c.execute(
                    "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)",
                    [],
                ))
            },
            |_| {},
        )?;
        match fts {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseCorrupt => {
                problems.push("chunks_fts: the FTS index does not match the chunks table".into())
            }
            Err(e) => return Err(StoreError::sqlite("while checking the FTS index", e)),
        }
        Ok(if problems.is_empty() {
            "ok".into()
        } else {
            problems.join("\n")
        })
    }

    /// Blocks until no chat job is pending or `timeout` passes; true when idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.inner.pending.wait_empty(timeout)
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.inner.path
    }

    /// Tests only: stop (`true`) or resume (`false`) taking new index jobs.
    #[doc(hidden)]
    pub fn pause_indexer_for_tests(&self, paused: bool) {
        self.inner.signal.set_paused(paused);
    }

    /// Tests only: stop as abruptly as possible in-process, as if killed: the indexer
    /// leaves its claimed job `running`, queued writes are not run, the WAL is not
    /// checkpointed and the write connection is leaked rather than closed.
    #[doc(hidden)]
    pub fn simulate_crash_for_tests(&self) {
        let threads = self
            .inner
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.inner.closed.store(true, Ordering::Release);
        self.inner.counters.shut_down.store(true, Ordering::Relaxed);
        if let Some(t) = threads {
            self.inner.signal.abandon();
            let _ = t.indexer.join();
            self.inner.writer.abandon();
            let _ = t.writer.join();
        }
        self.inner.readers.close_all();
    }
}

impl Inner {
    fn shutdown(&self) -> Result<(), StoreError> {
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(threads) = threads else {
            return Ok(());
        };
        self.closed.store(true, Ordering::Release);
        self.counters.shut_down.store(true, Ordering::Relaxed);
        self.signal.stop();
        let indexer = threads
            .indexer
            .join()
            .map_err(|_| StoreError::Internal("the chat indexer thread panicked".into()));
        self.readers.close_all();
        let writer = self.writer.shutdown();
        let joined = threads
            .writer
            .join()
            .map_err(|_| StoreError::Internal("the writer thread panicked".into()));
        indexer.and(writer).and(joined)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        fn check_error<T: std::error::Error + Send + Sync + 'static>() {}
        check::<Store>();
        check_error::<StoreError>();
    }
}
