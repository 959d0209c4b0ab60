//! The memory service's indexing pipeline: everything that turns what the store has
//! accepted into searchable chunks and vectors, as stages of one pipeline (durable job,
//! extract, chunk, index text, index vector, commit), each on its own thread, each
//! writing through the store, which owns only the data. Chat messages: the chat stage
//! indexes the jobs the store queued with each acknowledged message. File sources:
//! registering directories, indexing them incrementally (durable jobs with progress),
//! keeping them current with a file watcher, and read-only, confined browsing. Then the
//! embedding stage gives every chunk its vector. No HTTP, no async: the HTTP layer calls
//! the blocking [`Indexer`] from `spawn_blocking` and maps [`IndexerError`] /
//! [`filetree::TreeError`] to status codes.
//!
//! # Layout
//! - [`Indexer`] (this file): start (the chat stage and the file indexer),
//!   add/reindex/delete a source, wait, health, shutdown.
//! - [`chat_stage`]: the thread indexing queued chat jobs in batches.
//! - [`chunk`]: splitting text into chunks (for chat, run by the store in its transaction).
//! - [`walk`]: which files are indexed (`.gitignore`, default excludes, no symlinks).
//! - [`guard`]: roots refused, files opened safely, reads abandoned after a deadline.
//! - [`extract`]: bytes to text (text-like files only, HTML stripped, binaries refused).
//! - `pass`: one incremental pass over a source, in small batches.
//! - `parallel`: files read and extracted on every core, written in walk order.
//! - `runner`: the worker thread running jobs and watcher refreshes one at a time.
//! - `watch`: one debounced watcher per source.
//! - `roots`: source folders that disappear, come back or are replaced.
//! - [`filetree`]: the two filetree endpoints' core, strictly confined to the root.
//! - [`embedding_stage`]: the thread giving every chunk its embedding.
//! - `error`: [`IndexerError`].
//!
//! # Jobs and restarts
//! Chat jobs live in the store (`chat_index_jobs`): one a crash left `running` is
//! re-queued when the store opens, and the chat stage takes it at its start. File jobs
//! live there too (`file_index_jobs`), so ids survive restarts. A file job a crash left
//! `running` is marked `failed` ("interrupted by a restart") when the store opens; at
//! [`Indexer::start`] every source gets a fresh incremental sync job (catching changes
//! made while the service was down and finishing interrupted work without re-reading
//! unchanged files). A graceful [`Indexer::shutdown`] re-queues the running job instead.
#![deny(missing_docs)]

pub mod chat_stage;
pub mod chunk;
mod documents;
pub mod embedding_stage;
mod error;
pub mod extract;
pub mod filetree;
pub mod guard;
mod parallel;
mod pass;
mod roots;
mod runner;
pub mod walk;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memory_store::{FileJob, FileJobKind, FileJobState, NewSource, Source, Store};

pub use chat_stage::ChatStage;
pub use error::IndexerError;
pub use roots::{ROOT_MISSING, missing_message};

use runner::Shared;
use watch::Watchers;

/// Tunables; [`IndexerConfig::default`] is what the service uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexerConfig {
    /// Files larger than this are skipped and counted (default 2 MiB).
    pub max_file_bytes: u64,
    /// Quiet time before a burst of file events triggers a refresh (default 400 ms).
    pub debounce: Duration,
    /// A pass with no progress for this long is reported by [`Indexer::problems`]
    /// (default 120 s).
    pub stuck_after: Duration,
    /// Start file watchers (default true).
    pub watch: bool,
    /// Files per write transaction at most (default 50).
    pub batch_files: usize,
    /// Chunk text per write transaction at most, in bytes (default 1 MiB).
    pub batch_text_bytes: usize,
    /// A batch is written at least this often while a pass runs (default 250 ms).
    pub batch_interval: Duration,
    /// A file read taking longer is abandoned and the file counted as skipped (default
    /// 30 s: far above a 2 MiB read from any working disk, below `stuck_after`).
    pub read_timeout: Duration,
    /// How long [`Indexer::shutdown`] waits for the worker before leaving it behind
    /// (default 5 s; a pass stops at the next file boundary, reads are bounded by
    /// `read_timeout` on their own thread).
    pub shutdown_wait: Duration,
    /// Directories no source may be or contain (the service's home); see
    /// [`guard::check_root`]. Default none.
    pub protected: Vec<PathBuf>,
    /// How often every source root is looked at (one `lstat` each) to notice a folder
    /// deleted, unmounted, back again or replaced (default 1 s: "within seconds", at a
    /// cost of microseconds per source; a watcher event on a root also triggers a look).
    pub root_check: Duration,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            max_file_bytes: 2 * 1024 * 1024,
            debounce: Duration::from_millis(400),
            stuck_after: Duration::from_secs(120),
            watch: true,
            batch_files: 50,
            batch_text_bytes: 1024 * 1024,
            batch_interval: Duration::from_millis(250),
            read_timeout: Duration::from_secs(30),
            shutdown_wait: Duration::from_secs(5),
            protected: Vec::new(),
            root_check: Duration::from_secs(1),
        }
    }
}

/// The indexing pipeline's text stages: the chat stage and the file indexer (jobs,
/// watchers, the monitor of source roots). Cheap to share behind an `Arc`, blocking
/// methods.
pub struct Indexer {
    /// Indexes acknowledged chat messages; taken (and stopped) by [`Indexer::shutdown`].
    chat: Mutex<Option<ChatStage>>,
    shared: Arc<Shared>,
    watchers: Arc<Watchers>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// The root monitor thread (see `roots`) and its end signal (disconnected when it
    /// has returned).
    monitor: Mutex<Option<(JoinHandle<()>, std::sync::mpsc::Receiver<()>)>>,
    /// Disconnected when the worker thread has returned (or panicked).
    worker_gone: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl std::fmt::Debug for Indexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexer")
            .field("cfg", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

/// `~` and `~/...` expanded with `$HOME`.
fn expand_tilde(path: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (path, home) {
        ("~", Some(h)) => h,
        (p, Some(h)) if p.starts_with("~/") => h.join(&p[2..]),
        (p, _) => PathBuf::from(p),
    }
}

impl Indexer {
    /// Starts the chat stage ([`ChatStage`]) and the file indexer's worker, queues an
    /// incremental sync for every source that has no job waiting, starts a watcher per
    /// source (a watcher that fails is reported by [`Indexer::problems`], not fatal) and
    /// the monitor of source roots.
    pub fn start(store: Store, cfg: IndexerConfig) -> Result<Indexer, IndexerError> {
        let sources = store.list_sources()?;
        for s in &sources {
            let waiting = s
                .latest_job
                .as_ref()
                .is_some_and(|j| j.status == FileJobState::Queued);
            if !waiting {
                store.enqueue_file_job(&s.id, FileJobKind::Sync)?;
            }
        }
        let chat = ChatStage::start(store.clone())?;
        let shared = Arc::new(Shared::new(store, cfg));
        let worker_shared = Arc::clone(&shared);
        let (gone_tx, gone_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("file-indexer".into())
            .spawn(move || {
                let _gone = gone_tx; // dropped when the worker ends, even by a panic
                runner::run(worker_shared)
            })
            .map_err(|e| IndexerError::Unavailable(format!("starting the file indexer thread: {e}")))?;
        let indexer = Indexer {
            chat: Mutex::new(Some(chat)),
            shared,
            watchers: Arc::new(Watchers::default()),
            worker: Mutex::new(Some(worker)),
            monitor: Mutex::new(None),
            worker_gone: Mutex::new(Some(gone_rx)),
        };
        for s in &sources {
            indexer.watch(s);
        }
        let (shared, watchers) = (Arc::clone(&indexer.shared), Arc::clone(&indexer.watchers));
        let (gone_tx, gone_rx) = std::sync::mpsc::channel::<()>();
        let monitor = std::thread::Builder::new()
            .name("source-roots".into())
            .spawn(move || {
                let _gone = gone_tx;
                roots::run(shared, watchers)
            })
            .map_err(|e| {
                IndexerError::Unavailable(format!("starting the source folder monitor thread: {e}"))
            })?;
        *indexer.monitor.lock().unwrap_or_else(PoisonError::into_inner) = Some((monitor, gone_rx));
        Ok(indexer)
    }

    fn watch(&self, source: &Source) {
        if !self.shared.cfg.watch {
            return;
        }
        if let Err(e) = self
            .watchers
            .start(source, Arc::downgrade(&self.shared), self.shared.cfg.debounce)
        {
            tracing::warn!("{e}");
        }
    }

    fn check_running(&self) -> Result<(), IndexerError> {
        if self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return Err(IndexerError::Unavailable("the indexer is shut down".into()));
        }
        Ok(())
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// `POST /sources`: validates the path (`~` expanded, resolved), records the source
    /// with the default excludes and queues its first index; returns it and the job id.
    /// `InvalidInput` (`Path does not exist: <root_path as sent>`, `Path is not a
    /// directory: <root_path as sent>`) maps to HTTP 400.
    pub fn add_source(
        &self,
        root_path: &str,
        display_name: Option<String>,
        project_id: Option<String>,
    ) -> Result<(Source, i64), IndexerError> {
        self.add_source_with_id(root_path, display_name, project_id, None)
    }

    /// [`Indexer::add_source`] with a client-chosen id (see
    /// `Store::add_source_with_id`: checked, `Conflict` when taken); `None` slugs the
    /// display name as `add_source` does.
    pub fn add_source_with_id(
        &self,
        root_path: &str,
        display_name: Option<String>,
        project_id: Option<String>,
        source_id: Option<String>,
    ) -> Result<(Source, i64), IndexerError> {
        self.check_running()?;
        let expanded = expand_tilde(root_path);
        if root_path.trim().is_empty() || !expanded.exists() {
            return Err(IndexerError::InvalidInput(format!(
                "Path does not exist: {root_path}"
            )));
        }
        if !expanded.is_dir() {
            return Err(IndexerError::InvalidInput(format!(
                "Path is not a directory: {root_path}"
            )));
        }
        let resolved = std::fs::canonicalize(&expanded).map_err(|cause| IndexerError::Io {
            action: "resolving",
            path: expanded.clone(),
            cause,
        })?;
        guard::check_root(&resolved, root_path, &self.shared.cfg.protected)?;
        let display_name = display_name
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| basename(&resolved));
        let (source, job) = self.shared.store.add_source_with_id(
            NewSource {
                root_path: resolved.display().to_string(),
                display_name,
                project_id: project_id
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or_else(|| "general".into()),
                include_globs: vec!["**/*".into()],
                exclude_globs: walk::DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect(),
            },
            source_id,
        )?;
        self.watch(&source);
        self.shared.notify_jobs();
        Ok((source, job))
    }

    /// `POST /reindex`: queues a rebuild (a new generation built beside the searchable
    /// one, swapped in when complete); its job id. `NotFound` (`Source not found: <id>`).
    pub fn reindex(&self, source_id: &str) -> Result<i64, IndexerError> {
        self.check_running()?;
        let job = self
            .shared
            .store
            .enqueue_file_job(source_id, FileJobKind::Rebuild)?;
        self.shared.notify_jobs();
        Ok(job)
    }

    /// `DELETE /sources/{id}`: stops its watcher and any pass running for it, then
    /// deletes the source, its jobs, files and chunks in one transaction. False if unknown.
    pub fn delete_source(&self, source_id: &str) -> Result<bool, IndexerError> {
        self.watchers.stop(source_id);
        self.shared.cancel_source(source_id);
        Ok(self.shared.store.delete_source(source_id)?)
    }

    /// Waits until the job has finished (completed, failed or cancelled) and returns it;
    /// `None` if it is unknown (e.g. deleted with its source) or still unfinished after
    /// `timeout`. For tests and tools; the HTTP layer reads jobs from the store.
    pub fn wait_job(&self, job_id: i64, timeout: Duration) -> Option<FileJob> {
        let deadline = Instant::now() + timeout;
        let mut guard = self
            .shared
            .job_done_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            let job = self.shared.store.file_job(job_id).ok().flatten()?;
            if job.status.is_finished() {
                return Some(job);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            // Short waits too: a job can end between the read above and this wait.
            let wait = (deadline - now).min(Duration::from_millis(100));
            guard = self
                .shared
                .job_done
                .wait_timeout(guard, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Health hook for `/health`: a pass stuck without progress, watchers that could not
    /// start, source folders that are missing (see [`missing_message`]), a stopped
    /// worker or root monitor. Empty when all is well. Never touches the database.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(stuck) = self.shared.stuck() {
            out.push(stuck);
        }
        out.extend(self.watchers.problems());
        out.extend(self.shared.roots.missing());
        let monitor = self.monitor.lock().unwrap_or_else(PoisonError::into_inner);
        if monitor.as_ref().is_some_and(|(m, _)| m.is_finished()) {
            out.push("the source folder monitor thread has stopped: deleted or returning folders go unnoticed; restart the service".into());
        }
        drop(monitor);
        let worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        if worker.as_ref().is_some_and(|w| w.is_finished()) {
            out.push("the file indexer thread has stopped".into());
        }
        out
    }

    /// Tests only: while `paused`, every pass (job or refresh) waits at its start, counted
    /// as running without progress (what `/health`'s stuck-job reason reports).
    #[doc(hidden)]
    pub fn pause_passes_for_tests(&self, paused: bool) {
        self.shared.pause_passes(paused);
    }

    /// Stops the watchers, then the worker at a file boundary (its job is re-queued and
    /// resumes at the next start). Waits at most `cfg.shutdown_wait` for the worker: one
    /// blocked in the file system is left behind (logged) so that `stop` always ends.
    /// Idempotent; also run on drop. Call before [`Store::shutdown`].
    pub fn shutdown(&self) {
        // The chat stage finishes the jobs it claimed (a few short steps at most).
        let chat = self.chat.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(chat);
        self.shared.stop();
        self.watchers.stop_all();
        // The monitor ends at its wake-up (now) unless an `lstat` of a hung mount holds
        // it; it is then left behind, like a blocked worker.
        let monitor = self.monitor.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((m, gone)) = monitor {
            let ended = !matches!(
                gone.recv_timeout(self.shared.cfg.shutdown_wait),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if !ended {
                tracing::error!(
                    "the source folder monitor thread did not stop (blocked in the file system?); leaving it behind"
                );
            } else if m.join().is_err() {
                tracing::error!("the source folder monitor thread panicked");
            }
        }
        let worker = self.worker.lock().unwrap_or_else(PoisonError::into_inner).take();
        let gone = self
            .worker_gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(w) = worker else { return };
        let ended = gone.is_none_or(|rx| {
            !matches!(
                rx.recv_timeout(self.shared.cfg.shutdown_wait),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            )
        });
        if !ended {
            tracing::error!(
                "the file indexer thread did not stop within {} s (blocked in the file system?); leaving it behind",
                self.shared.cfg.shutdown_wait.as_secs()
            );
            return;
        }
        if w.join().is_err() {
            tracing::error!("the file indexer thread panicked");
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn basename(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "root".into())
}
