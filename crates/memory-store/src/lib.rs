//! The memory service's data: one SQLite database (WAL, FTS5) holding chat messages,
//! their index jobs and the searchable chunks, behind a blocking, cloneable [`Store`].
//! No HTTP, no async: the HTTP layer calls it from `spawn_blocking`.
//!
//! # Layout
//! - [`Store`] (this file): opening, the public methods, shutdown.
//! - `schema`: migrations (`PRAGMA user_version`), the table definitions, why FTS5
//!   uses external content, and the FTS scope column (v3) that keeps searches in scope.
//! - `writer`: the single writer thread with group commit, and the WAL size guard.
//! - `readers`: the pool of read-only connections.
//! - `chat`: message validation, upsert + job enqueue, chat deletion.
//! - `chat_jobs`: chat index job states, ids and their SQL.
//! - `chat_index`: the data side of chat indexing: one step (finish claimed jobs into
//!   chunks, claim more) per writer transaction, and [`ChatWork`], the signal the chat
//!   stage waits on.
//! - [`chunk`]: a chunk as stored (text and character offsets) and the [`Splitter`] the
//!   chat stage hands over; splitting itself is the pipeline's (`memory_indexer::chunk`).
//! - `sources`: file sources (slug ids, list with latest jobs, delete, totals).
//! - `file_jobs`: durable file index jobs (ids, claim, finish and swap, recovery).
//! - `chunk_stats`: chunk diagnostics of a source.
//! - `facts`: project facts (latest wins per key) and their search.
//! - `files`: indexed files, their chunks in generations, garbage collection.
//! - `fts`: new chunks' FTS5 rows, written at the end of their request (why not a
//!   trigger: one segment per request, not one per chunk).
//! - [`terms`]: words in every script (CJK bigrams, identifier parts) for FTS5.
//! - `search`: safe FTS5 queries, hybrid ranking (BM25, word coverage, embeddings).
//! - `vectors`: chunk embeddings in `chunk_vectors` and their in-memory copy.
//! - `stats`: in-memory counters and the pending-job tracker.
//! - [`repair`]: `quick_check`, and the offline check and rebuild behind
//!   `memory-service doctor`.
//! - [`clock`]: the service's one timestamp format. `error`: [`StoreError`].
//!
//! # Threads
//! One writer thread owns the only write connection; every write (request handlers and
//! the indexing stages alike) is a closure sent to it. Reads use a small pool of
//! read-only connections on the caller's thread; in WAL mode they never wait on writes.
//! The store runs no indexing thread of its own: the stages of the indexing pipeline
//! (chat, file, embedding) live in `memory-indexer` and call the methods marked "chat
//! stage", "file indexer" or "embedding stage" below; the store owns only the data
//! (schema, writer, readers, queries) and the in-memory bookkeeping of pending jobs.
#![deny(missing_docs)]

mod chat;
mod chat_index;
mod chat_jobs;
pub mod chunk;
mod chunk_stats;
pub mod clock;
mod cores;
mod error;
mod facts;
mod file_jobs;
mod files;
mod fts;
mod readers;
pub mod repair;
mod schema;
mod search;
mod sources;
mod stats;
pub mod terms;
mod vectors;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use chat::{ChatAck, ChatMessageIn, MAX_CONTENT_BYTES, MAX_ID_BYTES, MAX_ROLE_BYTES};
pub use chat_index::{ChatStageAttachment, ChatStep, ChatWork};
pub use chat_jobs::{ChatJobState, ChatJobStatus, ClaimedChatJob};
pub use chunk::{Chunk, Splitter};
pub use chunk_stats::ChunkStats;
pub use error::StoreError;
pub use facts::{
    FACT_COSINE_MIN, FACT_WORDS_WEIGHT, Fact, FactIn, FactQuery, PendingFact, VALUE_TYPES, fact_text,
};
pub use file_jobs::{ClaimedFileJob, FileJob, FileJobKind, FileJobState, INTERRUPTED, JobEnd};
pub use files::{FileBatch, FileOp, FileRecord, FileUpsert, JobProgress, SkipCounts};
pub use schema::SCHEMA_VERSION;
pub use search::{MAX_LIMIT, MAX_TERMS, SearchHit, SearchRequest, SourceType};
pub use sources::{
    MAX_SOURCE_ID_BYTES, NewSource, Source, SourceStatus, slug, source_id_base, validate_source_id,
};
pub use stats::StoreStats;
pub use vectors::{ChunkChanges, PendingChunk, VectorIndex, dot};

use error::{SqlContext, on_path};
use readers::Readers;
use stats::{Counters, PendingJobs};
use writer::{Wait, WalGuard, Writer};

/// Default [`StoreConfig::wal_limit_bytes`]: 64 MiB.
pub const DEFAULT_WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

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
    /// WAL size in bytes above which the writer forces a checkpoint that resets the WAL
    /// (default 64 MiB; also the `journal_size_limit`). Steady readers keep SQLite's own
    /// passive checkpoints from ever resetting it, so without this it grows without
    /// bound. 0 turns the forced checkpoint off.
    pub wal_limit_bytes: u64,
}

impl StoreConfig {
    /// Defaults for the database file `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            readers: 4,
            busy_timeout: Duration::from_secs(2),
            wal_limit_bytes: DEFAULT_WAL_LIMIT_BYTES,
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
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
    counters: Arc<Counters>,
    pending: Arc<PendingJobs>,
    /// Wakes the chat stage after an enqueue; tells it the store is closing.
    chat_work: Arc<ChatWork>,
    /// The current embedding model's vectors (empty, model "", until one is set).
    vectors: VectorIndex,
    changes: Arc<ChunkChanges>,
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
        std::fs::create_dir_all(parent).map_err(|cause| StoreError::Io {
            context: on_path("creating the database directory", parent),
            cause,
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
    // Statement journals (every statement inside the writer's per-request savepoint
    // that may fail halfway has one) in memory: as temporary files, each was created
    // and deleted again, about 5 % of the writer's time while indexing files.
    conn.pragma_update(None, "temp_store", "MEMORY").ctx(&context)?;
    if cfg.wal_limit_bytes > 0 {
        let limit = i64::try_from(cfg.wal_limit_bytes).unwrap_or(i64::MAX);
        conn.query_row(&format!("PRAGMA journal_size_limit = {limit}"), [], |_| Ok(()))
            .ctx(&context)?;
    }
    schema::migrate(&mut conn, &cfg.path.display().to_string())?;
    Ok(conn)
}

impl Store {
    /// Opens or creates the database (WAL, `foreign_keys=ON`, `synchronous=FULL`),
    /// applies migrations, re-queues jobs a crash left `running`, and starts the writer
    /// thread. Pending chat jobs are left for the chat stage (`memory-indexer`), which
    /// finds them at once: [`ChatWork`] starts changed when some are pending.
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        let conn = open_write_connection(&cfg)?;
        chat_jobs::requeue_running(&conn)?;
        file_jobs::fail_interrupted(&conn)?;
        let pending = Arc::new(PendingJobs::default());
        let found = chat_jobs::pending(&conn)?;
        let resume = !found.is_empty();
        for (ms, id) in found {
            pending.add(ms, id);
        }
        let counters = Arc::new(Counters::default());
        let readers = Readers::open(
            cfg.path.clone(),
            cfg.readers,
            cfg.busy_timeout,
            Arc::clone(&counters),
        )?;
        let wal = WalGuard::new(&cfg.path, cfg.wal_limit_bytes, cfg.busy_timeout);
        let (writer, writer_thread) = Writer::spawn(conn, Arc::clone(&counters), wal)?;
        let chat_work = Arc::new(ChatWork::default());
        let changes = Arc::new(ChunkChanges::default());
        if resume {
            chat_work.bump();
        }
        Ok(Store {
            inner: Arc::new(Inner {
                path: cfg.path,
                writer,
                readers,
                counters,
                pending,
                chat_work,
                vectors: VectorIndex::default(),
                changes,
                threads: Mutex::new(Some(Threads {
                    writer: writer_thread,
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
    /// UUID; a client UUID is used for a new row. Indexing happens later, in the chat
    /// stage, which [`ChatWork`] wakes after the commit.
    pub fn index_chat_message(&self, mut m: ChatMessageIn) -> Result<ChatAck, StoreError> {
        self.check_open()?;
        chat::validate(&mut m)?;
        let pending = Arc::clone(&self.inner.pending);
        let work = Arc::clone(&self.inner.chat_work);
        let done = self.inner.writer.execute_then(
            Wait::Bounded(self.inner.reply_wait),
            move |conn| chat::upsert(conn, &m),
            move |e: &chat::Enqueued| {
                pending.add(e.enqueue_ms, e.ack.job_id.clone());
                work.bump();
            },
        )?;
        Ok(done.ack)
    }

    /// Chat stage: one step, in one writer transaction. Indexes the claimed `jobs` in
    /// order (each message's chunks replaced by chunks of its current content, so an
    /// outdated job of an updated message indexes the newest text; job `success`) until
    /// `budget` is spent (at least one job), then claims queued jobs, oldest first,
    /// until `max_claimed` are held (none when 0; job `running`). A job that fails (or
    /// panics) is marked `error` in its own savepoint and the step goes on; a job deleted
    /// meanwhile (with its chat) is skipped. Once committed, the finished jobs leave
    /// the pending count ([`Store::wait_idle`]), the counters move and, when a message
    /// was indexed, [`ChunkChanges`] wakes the embedding stage.
    ///
    /// Runs even while the store shuts down, so the stage can finish its claimed jobs.
    ///
    /// # Errors
    /// A full disk (or any failure outside one job's savepoint) fails the whole step:
    /// nothing of it is committed and the caller still holds `jobs` (`running` in the
    /// database), to retry later. [`StoreError::Unavailable`] once the writer is gone.
    pub fn index_chat_jobs(
        &self,
        jobs: Vec<ClaimedChatJob>,
        budget: Duration,
        max_claimed: usize,
        split: Splitter,
    ) -> Result<ChatStep, StoreError> {
        let pending = Arc::clone(&self.inner.pending);
        let counters = Arc::clone(&self.inner.counters);
        let changes = Arc::clone(&self.inner.changes);
        let step = self.inner.writer.execute_then(
            Wait::Forever,
            move |conn| chat_index::step(conn, jobs, budget, max_claimed, split),
            move |s: &chat_index::Step| {
                // Counters first: `wait_idle` returns as soon as the jobs leave
                // `pending`, and callers then read the counters.
                for (_, outcome) in &s.finished {
                    match outcome {
                        chat_index::Outcome::Indexed => {
                            counters.messages_indexed.fetch_add(1, Ordering::Relaxed);
                        }
                        chat_index::Outcome::Failed => {
                            counters.index_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        chat_index::Outcome::Skipped => {}
                    }
                }
                pending.remove_all(
                    s.finished
                        .iter()
                        .map(|(job, _)| (job.enqueue_ms, job.job_id.as_str())),
                );
                if s.finished.iter().any(|(_, o)| *o == chat_index::Outcome::Indexed) {
                    changes.bump();
                }
            },
        )?;
        let count = |want| step.finished.iter().filter(|(_, o)| *o == want).count();
        Ok(ChatStep {
            indexed: count(chat_index::Outcome::Indexed),
            failed: count(chat_index::Outcome::Failed),
            skipped: count(chat_index::Outcome::Skipped),
            next: step.next,
        })
    }

    /// Chat stage: the signal to wait on for chat work (bumped after each enqueue
    /// commits) and to attach to, so a shutdown waits for the stage.
    pub fn chat_work(&self) -> Arc<ChatWork> {
        Arc::clone(&self.inner.chat_work)
    }

    /// `GET /index-job-status/{job_id}`, from the database; `Ok(None)` for an unknown id.
    pub fn job_status(&self, job_id: &str) -> Result<Option<ChatJobStatus>, StoreError> {
        self.check_open()?;
        if job_id.is_empty() {
            return Ok(None);
        }
        self.inner.readers.with(|c| chat_jobs::status(c, job_id))
    }

    /// `POST /search` without a query vector: the text channel only (see
    /// [`Store::search_with`]).
    pub fn search(&self, q: &SearchRequest) -> Result<Vec<SearchHit>, StoreError> {
        self.search_with(q, None)
    }

    /// `POST /search`: the project's chat chunks (minus `exclude_chat_ids`) and the file
    /// chunks of `source_ids`, best first, at most `limit` (clamped to 1..=200), each
    /// scored in [0, 1] from BM25, the query words it holds and, when `query_vector` (the
    /// query's embedding by the model of [`Store::set_embedding_model`], L2-normalised)
    /// is given, its meaning. A query without a word gives no results.
    pub fn search_with(
        &self,
        q: &SearchRequest,
        query_vector: Option<&[f32]>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.search_awaiting(q, || query_vector.map(<[f32]>::to_vec))
    }

    /// [`Store::search_with`], asking for the query vector only once the words have been
    /// searched, in the same read transaction: a caller can embed the query while the
    /// BM25 channel runs (each takes a few milliseconds; run one after the other, they
    /// add up). `query_vector` is called at most once, on this thread, and may block until
    /// the embedding is ready; `None` ranks by words alone. It is not called when the
    /// query holds no word (no results) or the request is invalid.
    pub fn search_awaiting(
        &self,
        q: &SearchRequest,
        query_vector: impl FnOnce() -> Option<Vec<f32>>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.check_open()?;
        let limit = search::validate(q)?;
        let terms = terms::query_terms(&q.query, MAX_TERMS);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = &self.inner.vectors;
        self.inner
            .readers
            .with(|c| search::run(c, q, &terms, vectors, query_vector, limit))
    }

    /// Chooses the embedding model whose vectors search uses (`model`: its id; `dim`:
    /// its vector length) and loads them from the database into memory (about
    /// `4 * dim` bytes per chunk). Chunks without a vector of this model are then
    /// [`Store::chunks_to_embed`].
    pub fn set_embedding_model(&self, model: &str, dim: usize) -> Result<(), StoreError> {
        self.check_open()?;
        if model.is_empty() || dim == 0 {
            return Err(StoreError::InvalidInput(
                "an embedding model needs a name and a dimension".into(),
            ));
        }
        let vectors = &self.inner.vectors;
        self.inner.readers.with(|c| vectors.load(c, model, dim))
    }

    /// Embedding stage: up to `limit` chunks without a vector of the current model,
    /// chat chunks first, ids above `after` ascending. Empty before a model is set.
    pub fn chunks_to_embed(&self, after: i64, limit: usize) -> Result<Vec<PendingChunk>, StoreError> {
        self.check_open()?;
        let model = self.inner.vectors.model();
        if model.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .readers
            .with(|c| vectors::pending(c, &model, after, limit))
    }

    /// Embedding stage: stores vectors of `model` (`(chunk id, vector)`, each of the
    /// model's dimension) in one transaction, then makes them searchable. Chunks deleted
    /// meanwhile are skipped; returns how many were stored.
    pub fn store_vectors(&self, model: &str, rows: Vec<(i64, Vec<f32>)>) -> Result<usize, StoreError> {
        let model = model.to_string();
        let m = model.clone();
        let stored = self.write(true, move |c| vectors::write(c, &m, rows))?;
        self.inner.vectors.insert_all(&model, &stored);
        Ok(stored.len())
    }

    /// Embedding stage: drops vectors of deleted chunks from memory; how many.
    pub fn prune_vectors(&self) -> Result<usize, StoreError> {
        self.check_open()?;
        let model = self.inner.vectors.model();
        if model.is_empty() {
            return Ok(0);
        }
        let alive = self.inner.readers.with(|c| vectors::alive(c, &model))?;
        Ok(self.inner.vectors.retain(&alive))
    }

    /// Chunks in the database (chat and file, every generation).
    pub fn chunk_count(&self) -> Result<u64, StoreError> {
        self.check_open()?;
        self.inner.readers.with(|c| {
            c.query_row("SELECT count(*) FROM chunks", [], |r| r.get::<_, i64>(0))
                .ctx("while counting chunks")
                .map(|n| n.max(0) as u64)
        })
    }

    /// Vectors of the current model held for search (never touches the database).
    pub fn embedded_chunks(&self) -> usize {
        self.inner.vectors.len()
    }

    /// Wakes when chunks are added or removed, or facts added (see [`ChunkChanges`]).
    pub fn chunk_changes(&self) -> Arc<ChunkChanges> {
        Arc::clone(&self.inner.changes)
    }

    /// `DELETE /chats/{project_id}/{chat_id}`: deletes the chat's messages, chunks (and
    /// FTS rows), jobs and facts in one transaction; returns how many messages were
    /// deleted ([`Store::delete_chat_counts`] also says how many facts).
    pub fn delete_chat(&self, project_id: &str, chat_id: &str) -> Result<u64, StoreError> {
        self.delete_chat_counts(project_id, chat_id)
            .map(|(messages, _)| messages)
    }

    /// [`Store::delete_chat`], answering `(messages, facts)` deleted.
    pub fn delete_chat_counts(&self, project_id: &str, chat_id: &str) -> Result<(u64, u64), StoreError> {
        self.check_open()?;
        chat::validate_chat_ids(project_id, chat_id)?;
        let (project_id, chat_id) = (project_id.to_string(), chat_id.to_string());
        let pending = Arc::clone(&self.inner.pending);
        let changes = Arc::clone(&self.inner.changes);
        let deleted = self.inner.writer.execute_then(
            Wait::Bounded(self.inner.reply_wait),
            move |conn| chat::delete(conn, &project_id, &chat_id),
            move |d: &chat::DeletedChat| {
                for (ms, id) in &d.pending_jobs {
                    pending.remove(*ms, id);
                }
                changes.bump();
            },
        )?;
        Ok((deleted.messages, deleted.facts))
    }

    /// `POST /facts`: validates, then stores the fact as its key's current one (the
    /// key's older facts stop being current; `supersedes_fact_id` names the one it
    /// replaced) and returns it once committed.
    pub fn add_fact(&self, mut f: FactIn) -> Result<Fact, StoreError> {
        facts::validate(&mut f)?;
        let fact = self.write(false, move |c| facts::insert(c, &f))?;
        // The embedding stage gives it a vector.
        self.inner.changes.bump();
        Ok(fact)
    }

    /// Embedding stage: up to `limit` facts without a vector of the current model
    /// (empty without a model), oldest first.
    pub fn facts_to_embed(&self, limit: usize) -> Result<Vec<PendingFact>, StoreError> {
        self.check_open()?;
        let model = self.inner.vectors.model();
        if model.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .readers
            .with(|c| facts::pending_vectors(c, &model, limit))
    }

    /// Embedding stage: stores fact vectors of `model` (`(seq, vector)`, from
    /// [`Store::facts_to_embed`]) in one transaction; facts deleted meanwhile are
    /// skipped. Returns how many were stored.
    pub fn store_fact_vectors(&self, model: &str, rows: Vec<(i64, Vec<f32>)>) -> Result<usize, StoreError> {
        let model = model.to_string();
        self.write(true, move |c| facts::write_vectors(c, &model, rows))
    }

    /// `GET /facts?project_id=&include_history=`: current facts, or all of them, by key.
    pub fn list_facts(&self, project_id: &str, include_history: bool) -> Result<Vec<Fact>, StoreError> {
        self.check_open()?;
        facts::require_project(project_id)?;
        self.inner
            .readers
            .with(|c| facts::list(c, project_id, include_history))
    }

    /// `DELETE /facts/{id}`: false when unknown. When it was its key's current fact,
    /// the newest remaining one of that key becomes current.
    pub fn delete_fact(&self, fact_id: &str) -> Result<bool, StoreError> {
        let id = fact_id.to_string();
        self.write(false, move |c| facts::delete(c, &id))
    }

    /// `POST /search-facts`: current facts matching the original's keyword rule, best
    /// match first, then newest; `limit` clamped to 1..=[`MAX_LIMIT`].
    pub fn search_facts(&self, q: &FactQuery) -> Result<Vec<Fact>, StoreError> {
        self.search_facts_with(q, None)
    }

    /// [`Store::search_facts`], and by meaning when `query_vector` (the query's
    /// embedding by the model of [`Store::set_embedding_model`], L2-normalised) is
    /// given: facts close in meaning are found too and meaning counts in the ranking
    /// (see `facts::search`).
    pub fn search_facts_with(
        &self,
        q: &FactQuery,
        query_vector: Option<&[f32]>,
    ) -> Result<Vec<Fact>, StoreError> {
        self.check_open()?;
        facts::require_project(&q.project_id)?;
        // Stored message UUIDs are lower-case hyphenated; compare in that form.
        let exclude = q
            .exclude_message_uuid
            .as_ref()
            .map(|u| uuid::Uuid::parse_str(u).map_or_else(|_| u.clone(), |p| p.hyphenated().to_string()));
        let q = FactQuery {
            limit: q.limit.clamp(1, MAX_LIMIT),
            exclude_message_uuid: exclude,
            ..q.clone()
        };
        let model = self.inner.vectors.model();
        let semantic = query_vector
            .filter(|v| !v.is_empty() && !model.is_empty())
            .map(|v| (v, model.as_str()));
        self.inner.readers.with(|c| facts::search(c, &q, semantic))
    }

    /// Runs `work` on the writer; request handlers wait a bounded time, the file indexer
    /// (`wait_forever`) as long as it takes.
    fn write<T, F>(&self, wait_forever: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        let wait = if wait_forever {
            Wait::Forever
        } else {
            Wait::Bounded(self.inner.reply_wait)
        };
        self.inner.writer.execute_then(wait, work, |_| {})
    }

    /// `POST /sources`: records the source (id `slug(display_name)-dir`, `-2`... on
    /// collision) and its first job (`queued`, a sync) in one transaction. The caller
    /// validated and resolved `root_path`; the file indexer runs the job.
    pub fn add_source(&self, new: NewSource) -> Result<(Source, i64), StoreError> {
        self.add_source_with_id(new, None)
    }

    /// [`Store::add_source`] with a client-chosen id (`POST /sources` with `source_id`,
    /// the importer keeping the original's ids): checked by [`validate_source_id`];
    /// [`StoreError::Conflict`] when a source already has it. `None` picks the id as
    /// `add_source` does.
    pub fn add_source_with_id(
        &self,
        new: NewSource,
        id: Option<String>,
    ) -> Result<(Source, i64), StoreError> {
        if let Some(id) = &id {
            validate_source_id(id)?;
        }
        if new.root_path.is_empty() || new.display_name.trim().is_empty() {
            return Err(StoreError::InvalidInput(
                "root_path and display_name are required".into(),
            ));
        }
        self.write(false, move |c| sources::insert(c, &new, id.as_deref()))
    }

    /// `GET /sources`: every source ordered by id, each with its latest job (one query).
    pub fn list_sources(&self) -> Result<Vec<Source>, StoreError> {
        self.check_open()?;
        self.inner.readers.with(sources::list)
    }

    /// One source with its latest job; `None` for an unknown id.
    pub fn get_source(&self, id: &str) -> Result<Option<Source>, StoreError> {
        self.check_open()?;
        self.inner.readers.with(|c| sources::get(c, id))
    }

    /// `DELETE /sources/{id}`: the source, its files, jobs and chunks (with their FTS
    /// rows) in one transaction; false for an unknown id. A job still running for it
    /// notices at its next write and stops.
    pub fn delete_source(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        let deleted = self.write(false, move |c| sources::delete(c, &id))?;
        self.inner.changes.bump();
        Ok(deleted)
    }

    /// File indexer side: a source's root folder is gone. Marks it `error` with `message` and
    /// hides its files from search at once (an empty generation swapped in; the old one
    /// is collected as garbage); chat rows are untouched. False for an unknown id.
    pub fn mark_source_missing(&self, id: &str, message: &str) -> Result<bool, StoreError> {
        let (id, message) = (id.to_string(), message.to_string());
        let marked = self.write(true, move |c| sources::mark_missing(c, &id, &message))?;
        self.inner.changes.bump();
        Ok(marked)
    }

    /// `GET /sources/{id}/jobs`: the newest `limit` jobs, newest first.
    pub fn source_jobs(&self, id: &str, limit: usize) -> Result<Vec<FileJob>, StoreError> {
        self.check_open()?;
        self.inner.readers.with(|c| file_jobs::jobs(c, id, limit))
    }

    /// One file job by id.
    pub fn file_job(&self, job_id: i64) -> Result<Option<FileJob>, StoreError> {
        self.check_open()?;
        self.inner.readers.with(|c| file_jobs::job(c, job_id))
    }

    /// `GET /sources/{id}/chunk-stats` over the searchable generation; `None` if unknown.
    pub fn chunk_stats(&self, id: &str) -> Result<Option<ChunkStats>, StoreError> {
        self.check_open()?;
        self.inner.readers.with(|c| chunk_stats::chunk_stats(c, id))
    }

    /// Queues a job for a source (`POST /reindex` queues a rebuild); its id.
    /// [`StoreError::NotFound`] (`Source not found: <id>`) for an unknown source.
    pub fn enqueue_file_job(&self, source_id: &str, kind: FileJobKind) -> Result<i64, StoreError> {
        let id = source_id.to_string();
        self.write(false, move |c| file_jobs::enqueue(c, &id, kind))
    }

    /// File indexer side: marks the oldest queued file job `running` and returns it.
    pub fn claim_file_job(&self) -> Result<Option<ClaimedFileJob>, StoreError> {
        self.write(true, file_jobs::claim_next)
    }

    /// File indexer side: the file rows of one generation of a source.
    pub fn file_records(&self, source_id: &str, generation: i64) -> Result<Vec<FileRecord>, StoreError> {
        self.check_open()?;
        self.inner
            .readers
            .with(|c| files::records(c, source_id, generation))
    }

    /// File indexer side: commits a batch of file changes (each file's row and chunks
    /// together) and the job's progress in one transaction. `NotFound` when the job is no
    /// longer running or the source is gone: the indexer stops.
    pub fn apply_file_batch(&self, batch: FileBatch) -> Result<(), StoreError> {
        self.write(true, move |c| {
            files::apply(c, &batch)?;
            if batch.job_id.is_none() {
                sources::refresh_totals(c, &batch.source_id)?;
            }
            Ok(())
        })?;
        self.inner.changes.bump();
        Ok(())
    }

    /// File indexer side: ends a running job (a completed rebuild swaps its generation in, in
    /// the same transaction). False when the job was no longer running.
    pub fn finish_file_job(&self, job_id: i64, end: JobEnd) -> Result<bool, StoreError> {
        let finished = self.write(true, move |c| file_jobs::finish(c, job_id, &end))?;
        self.inner.changes.bump();
        Ok(finished)
    }

    /// File indexer side, when idle: up to `pages` pages (4 KiB each) of FTS5 segment
    /// merging (its `merge` command: segments of one level, at least `usermerge` = 2 of
    /// them, are combined), in one short transaction. True when work was done, so more
    /// may remain; call in a loop until false. Why: a bulk index leaves FTS5 with many
    /// segments and merges under way, whose cost otherwise falls on the next writes
    /// (the next source indexed about a third slower right after a 50 MB one) and on
    /// every search, which reads each segment.
    pub fn merge_full_text_index(&self, pages: u32) -> Result<bool, StoreError> {
        self.write(true, move |c| fts::merge(c, pages))
    }

    /// File indexer side: deletes at most `max_rows` rows of replaced generations; 0 when
    /// nothing is left. Call in a loop: each call is its own short transaction.
    pub fn collect_garbage(&self, max_rows: usize) -> Result<usize, StoreError> {
        let deleted = self.write(true, move |c| files::collect_garbage(c, max_rows))?;
        if deleted > 0 {
            self.inner.changes.bump();
        }
        Ok(deleted)
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
            wal_checkpoints: load(&c.wal_checkpoints),
            wal_checkpoints_busy: load(&c.wal_checkpoints_busy),
            wal_checkpoint_stall_max_us: load(&c.wal_stall_us_max),
            wal_checkpoint_stall_total_us: load(&c.wal_stall_us_total),
            shut_down: c.shut_down.load(Ordering::Relaxed),
            disk_full: c.disk_full.load(Ordering::Relaxed),
            damage: c.damage.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            writer_exited: self.thread_exited(|t| &t.writer),
            indexer_exited: !self.inner.closed.load(Ordering::Acquire) && self.inner.chat_work.stage_exited(),
        }
    }

    /// Whether a background thread has ended while the store is open (a bug
    /// or a panic): requests would then fail or messages stay unindexed.
    fn thread_exited(&self, which: fn(&Threads) -> &JoinHandle<()>) -> bool {
        let threads = self.inner.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.as_ref().is_some_and(|t| which(t).is_finished())
    }

    /// Graceful stop: new requests are refused, a running chat stage finishes the jobs it
    /// claimed and ends (this waits for it), the writer commits what is queued and exits,
    /// the WAL is checkpointed (TRUNCATE). Idempotent; also run when the last clone is
    /// dropped.
    pub fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.shutdown()
    }

    /// `PRAGMA quick_check` on a fresh read-only connection (so no page cached by
    /// another connection hides damage on disk): `Ok(None)` when the database is
    /// whole, else `Ok(Some(problems))`, at most 20, one a line. The result is also
    /// what [`StoreStats::damage`] says from now on. Reads the whole file (seconds
    /// for a few hundred MB) without blocking writers (WAL); cheaper than
    /// [`Store::integrity_check`], which also checks indexes against tables and FTS.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] after shutdown; a SQLite error other than damage
    /// (e.g. the file cannot be opened) as [`StoreError::Sqlite`].
    pub fn quick_check(&self) -> Result<Option<String>, StoreError> {
        self.check_open()?;
        let found = repair::quick_check(&self.inner.path)?;
        let mut damage = self
            .inner
            .counters
            .damage
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        damage.clone_from(&found);
        Ok(found)
    }

    /// Forgets a disk-full condition, when the caller has seen that the disk has room
    /// again (`/health` stops saying "disk full" without waiting for the next write).
    /// A write that fails again sets it again.
    pub fn clear_disk_full(&self) {
        self.inner.counters.disk_full.store(false, Ordering::Relaxed);
    }

    /// `PRAGMA integrity_check` plus FTS5's own check of `chunks_fts`: `"ok"` when both
    /// are fine, otherwise the problems, one a line.
    ///
    /// Both run on the writer, between two write transactions, so writes wait for them.
    /// Why not on a reader: while the writer commits, FTS5's check on a reader connection
    /// can report "corruption found reading blob …" for an index that is fine (seen with
    /// SQLite 3.54 while old generations were being deleted; a check run once the writer
    /// was idle, or on a fresh connection, said "ok"). A diagnostic that cries wolf is
    /// worse than one that makes writes wait.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.check_open()?;
        let (mut problems, fts) = self.inner.writer.execute_then(
            Wait::Bounded(self.inner.reply_wait),
            |c| {
                let context = "while running PRAGMA integrity_check";
                let mut stmt = c.prepare("PRAGMA integrity_check").ctx(context)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).ctx(context)?;
                let lines = rows.collect::<Result<Vec<_>, _>>().ctx(context)?;
                let problems = lines.into_iter().filter(|l| l != "ok").collect::<Vec<_>>();
                let fts = c.execute(
                    "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)",
                    [],
                );
                Ok((problems, fts))
            },
            |_| {},
        )?;
        match fts {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseCorrupt => {
                problems.push("chunks_fts: the FTS index is damaged".into())
            }
            Err(e) => return Err(StoreError::sqlite("while checking the FTS index", e)),
        }
        // The FTS table is contentless (schema TERMS_AND_VECTORS), so FTS5's own check
        // cannot compare it with `chunks`: compare the rows.
        let (chunks, indexed, missing): (i64, i64, i64) = self.inner.readers.with(|c| {
            c.query_row(
                "SELECT (SELECT count(*) FROM chunks), (SELECT count(*) FROM chunks_fts),
                        (SELECT count(*) FROM chunks c
                         WHERE NOT EXISTS (SELECT 1 FROM chunks_fts f WHERE f.rowid = c.id))",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ctx("while comparing chunks_fts with chunks")
        })?;
        if chunks != indexed || missing != 0 {
            problems.push(format!(
                "chunks_fts: the FTS index does not match the chunks table \
                 ({chunks} chunks, {indexed} indexed, {missing} missing)"
            ));
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

    /// Tests only: caps the database at `pages` pages (`PRAGMA max_page_count` on the
    /// write connection), so a write that would grow it fails with `SQLITE_FULL`
    /// exactly as on a full disk; returns the cap SQLite applied (never below the
    /// current size). `u32::MAX` lifts it.
    #[doc(hidden)]
    pub fn limit_pages_for_tests(&self, pages: u32) -> Result<i64, StoreError> {
        self.inner.writer.execute_then(
            Wait::Forever,
            move |c| {
                c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0))
                    .ctx("while setting max_page_count")
            },
            |_| {},
        )
    }

    /// Tests only: stop as abruptly as possible in-process, as if killed: queued writes
    /// are not run, the WAL is not checkpointed and the write connection is leaked
    /// rather than closed. A chat stage still attached sees the store closing and its
    /// next write fails; to leave its claimed jobs `running`, as a kill does, use the
    /// stage's own crash simulation (it abandons the stage, then calls this).
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
        self.inner.chat_work.close();
        if let Some(t) = threads {
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
        self.chat_work.close_and_wait();
        self.readers.close_all();
        let writer = self.writer.shutdown();
        let joined = threads
            .writer
            .join()
            .map_err(|_| StoreError::Internal("the writer thread panicked".into()));
        writer.and(joined)
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

    /// Each message whole as one chunk: the pipeline's splitter lives in
    /// `memory-indexer`, which a unit test here cannot use (the texts here are short).
    fn one_chunk(text: &str) -> Vec<Chunk> {
        if text.trim().is_empty() {
            return Vec::new();
        }
        vec![Chunk {
            start_char: 0,
            end_char: text.chars().count(),
            text: text.to_string(),
        }]
    }

    /// The chat stage's work done inline (the stage itself lives in `memory-indexer`,
    /// which a unit test here cannot use): steps until no job is claimed.
    fn index_pending_chat(store: &Store) {
        let mut jobs = Vec::new();
        loop {
            jobs = store
                .index_chat_jobs(jobs, Duration::from_millis(20), 256, one_chunk)
                .expect("chat step")
                .next;
            if jobs.is_empty() {
                return;
            }
        }
    }

    #[test]
    fn store_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        fn check_error<T: std::error::Error + Send + Sync + 'static>() {}
        check::<Store>();
        check_error::<StoreError>();
    }

    /// A version-2 database (FTS without the scope column) with chat chunks of two
    /// projects and file chunks of two generations opens as version 3 and searches the
    /// same: the FTS table is rebuilt from `chunks` and scoped.
    #[test]
    fn migrates_a_v2_database_to_scoped_fts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.sqlite");
        {
            let mut conn = Connection::open(&path).expect("open");
            conn.execute_batch("PRAGMA journal_mode=WAL").expect("wal");
            schema::migrate_to(&mut conn, "old", 2).expect("v2");
            conn.execute_batch(
                r#"
                INSERT INTO chat_messages VALUES
                    ('u1', 'proj a', 'chat1', 'm1', 'user', 'the osprey dives', '2025-01-01',
                     0, '2025-01-01', '2025-01-01'),
                    ('u2', 'proj', 'chat1', 'm1', 'user', 'an osprey again', '2025-01-01',
                     0, '2025-01-01', '2025-01-01');
                INSERT INTO chat_index_jobs (job_id, message_uuid, state, enqueue_ms, enqueue_time,
                        estimated_chunks, computed_timeout)
                    VALUES ('chat1:m1:1', 'u1', 'success', 1, '2025-01-01', 1, 10),
                           ('chat1:m1:2', 'u2', 'success', 2, '2025-01-01', 1, 10);
                INSERT INTO chunks (kind, project_id, source_id, chat_id, message_id,
                        message_uuid, chunk_index, start_char, end_char, text, created_at)
                    VALUES ('chat', 'proj a', 'project-proj a', 'chat1', 'm1', 'u1', 0, 0, 16,
                            'the osprey dives', '2025-01-01'),
                           ('chat', 'proj', 'project-proj', 'chat1', 'm1', 'u2', 0, 0, 15,
                            'an osprey again', '2025-01-01');
                INSERT INTO sources (id, display_name, root_path, project_id, created_at,
                        generation, max_generation)
                    VALUES ('docs-dir', 'docs', '/docs', 'proj a', '2025-01-01', 2, 2);
                INSERT INTO chunks (kind, source_id, file_path, filetype, chunk_index,
                        start_char, end_char, text, created_at, generation)
                    VALUES ('file', 'docs-dir', '/docs/old.md', 'md', 0, 0, 10,
                            'osprey old', '2025-01-01', 1),
                           ('file', 'docs-dir', '/docs/new.md', 'md', 0, 0, 10,
                            'osprey new', '2025-01-01', 2);
                "#,
            )
            .expect("v2 rows");
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'osprey'",
                    [],
                    |r| r.get(0),
                )
                .expect("v2 fts");
            assert_eq!(n, 4);
        }
        let store = Store::open(StoreConfig::new(&path)).expect("open v2");
        let version: i64 = store
            .inner
            .readers
            .with(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)).ctx("v"))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(SCHEMA_VERSION, 10);
        let sizes = |sql: &str| -> Vec<(String, i64)> {
            store
                .inner
                .readers
                .with(|c| {
                    let mut stmt = c.prepare(sql).ctx("sizes")?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).ctx("sizes")?;
                    rows.collect::<Result<Vec<_>, _>>().ctx("sizes")
                })
                .expect("scope sizes")
        };
        let kept = sizes("SELECT scope, chunks FROM scope_sizes ORDER BY scope");
        assert_eq!(kept.len(), 4, "two projects' chats and two generations: {kept:?}");
        assert_eq!(
            kept,
            sizes("SELECT scope, count(*) FROM chunks GROUP BY scope ORDER BY scope")
        );
        let search = |project: &str| {
            let q = SearchRequest {
                project_id: project.into(),
                query: "OSPREY".into(),
                limit: 10,
                ..Default::default()
            };
            let mut hits: Vec<String> = store
                .search(&q)
                .expect("search")
                .into_iter()
                .map(|h| h.file_path.or(h.message_uuid).unwrap_or_default())
                .collect();
            hits.sort();
            hits
        };
        assert_eq!(search("proj a"), vec!["/docs/new.md", "u1"]);
        assert_eq!(search("proj"), vec!["u2"]);
        assert!(search("a").is_empty());
        assert_eq!(store.integrity_check().expect("check"), "ok");
        // New writes after the migration are scoped too.
        store
            .index_chat_message(ChatMessageIn {
                project_id: "proj".into(),
                chat_id: "chat2".into(),
                message_id: "m".into(),
                role: "user".into(),
                content: "osprey three".into(),
                timestamp: "2025-01-01T00:00:00Z".into(),
                message_index: 0,
                message_uuid: None,
            })
            .expect("index");
        index_pending_chat(&store);
        assert!(store.wait_idle(Duration::from_secs(60)));
        assert_eq!(search("proj").len(), 2);
        assert_eq!(search("proj a").len(), 2);
        assert_eq!(store.delete_chat("proj a", "chat1").expect("delete"), 1);
        assert_eq!(search("proj a"), vec!["/docs/new.md"]);
        assert_eq!(store.integrity_check().expect("check"), "ok");
        store.shutdown().expect("shutdown");
    }

    #[test]
    fn scope_tokens_match_the_generated_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(StoreConfig::new(dir.path().join("s.sqlite"))).expect("open");
        let ids = ["p", "a b", "Ünï \"cödé\" *:^()", &"é".repeat(256)];
        let computed = store
            .inner
            .readers
            .with(|c| {
                let mut out = Vec::new();
                for id in ids {
                    let (chat, file): (String, String) = c
                        .query_row("SELECT 'c' || hex(?1), 's' || hex(?1) || 'g' || 7", [id], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .ctx("hex")?;
                    out.push((chat, file));
                }
                Ok(out)
            })
            .expect("sql");
        for (id, (chat, file)) in ids.iter().zip(computed) {
            assert_eq!(search::chat_scope(id), chat);
            assert_eq!(search::file_scope(id, 7), file);
        }
        store.shutdown().expect("shutdown");
    }
}
