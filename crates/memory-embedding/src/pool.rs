//! A bounded pool of CPU threads that runs the model, so inference never blocks an async
//! runtime's workers and a search's query vector never waits behind a backfill.
//!
//! Layout: one scheduler thread (`embed-sched`) takes work from two queues, queries first,
//! and runs it inside a rayon pool of `threads` workers (`embed-N`) that candle's matrix
//! products split across. Background batches are cut into groups of similar token length
//! (see [`crate::Embedder::embed`]) and the query queue is checked before every group, so a
//! query waits at most for one group in flight (tens of milliseconds), not a whole batch.
//! Recent query vectors are cached because searches repeat (typing, paging, retries).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::EmbeddingError;
use crate::model::{Embedder, GROUP_MAX_SEQS, group_token_budget, plan_groups};

/// Query vectors kept for repeated queries (384 floats each: ~1.5 KB, so ~400 KB in all).
pub const QUERY_CACHE_ENTRIES: usize = 256;

type QueryCallback = Box<dyn FnOnce(Result<Vec<f32>, EmbeddingError>) + Send + 'static>;
type BatchCallback = Box<dyn FnOnce(Result<Vec<Vec<f32>>, EmbeddingError>) + Send + 'static>;

struct QueryJob {
    text: String,
    done: QueryCallback,
}

struct BatchJob {
    texts: Vec<String>,
    done: BatchCallback,
}

#[derive(Default)]
struct Queues {
    queries: VecDeque<QueryJob>,
    batches: VecDeque<BatchJob>,
    stopping: bool,
}

/// Most-recently-used first; linear search is fine at this size (a few microseconds).
#[derive(Default)]
struct QueryCache {
    entries: VecDeque<(String, Vec<f32>)>,
}

impl QueryCache {
    fn get(&mut self, text: &str) -> Option<Vec<f32>> {
        let pos = self.entries.iter().position(|(t, _)| t == text)?;
        let entry = self.entries.remove(pos)?;
        let v = entry.1.clone();
        self.entries.push_front(entry);
        Some(v)
    }

    fn put(&mut self, text: String, v: Vec<f32>) {
        if let Some(pos) = self.entries.iter().position(|(t, _)| *t == text) {
            self.entries.remove(pos);
        }
        self.entries.push_front((text, v));
        self.entries.truncate(QUERY_CACHE_ENTRIES);
    }
}

struct Shared {
    embedder: Arc<Embedder>,
    queues: Mutex<Queues>,
    wake: Condvar,
    cache: Mutex<QueryCache>,
}

impl Shared {
    fn queues(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding the lock cannot leave the queues half-updated (every update
        // is one push or pop), so a poisoned lock is still usable.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache(&self) -> MutexGuard<'_, QueryCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs an [`Embedder`] on threads of its own: `threads` compute threads plus one idle-most
/// scheduler thread. Queries ([`EmbedPool::embed_query`], [`EmbedPool::embed_query_then`])
/// go before background batches ([`EmbedPool::embed_batch`]). Dropping the pool finishes
/// the group in flight, fails every queued request with [`EmbeddingError::PoolStopped`],
/// and joins its threads.
pub struct EmbedPool {
    shared: Arc<Shared>,
    scheduler: Option<JoinHandle<()>>,
    /// Compute threads (rayon workers) this pool started.
    threads: usize,
}

impl std::fmt::Debug for EmbedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedPool")
            .field("model_id", &self.shared.embedder.model_id())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl EmbedPool {
    /// Starts the pool: `threads` compute threads (at least 1; use the number of cores the
    /// service may spend on embeddings, e.g. 2 on a 2-core machine) and one scheduler thread.
    ///
    /// # Panics
    /// If the operating system refuses to start a thread.
    pub fn new(embedder: Arc<Embedder>, threads: usize) -> EmbedPool {
        let threads = threads.max(1);
        let compute = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("embed-{i}"))
            .build()
            .expect("start the embedding threads");
        let shared = Arc::new(Shared {
            embedder,
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            cache: Mutex::new(QueryCache::default()),
        });
        let scheduler = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("embed-sched".into())
                .spawn(move || run_scheduler(&shared, &compute))
                .expect("start the embedding scheduler thread")
        };
        EmbedPool {
            shared,
            scheduler: Some(scheduler),
            threads,
        }
    }

    /// The embedder's [`Embedder::model_id`].
    pub fn model_id(&self) -> &str {
        self.shared.embedder.model_id()
    }

    /// The embedder's [`Embedder::dim`] (floats per vector).
    pub fn dim(&self) -> usize {
        self.shared.embedder.dim()
    }

    /// The embedder's [`Embedder::max_tokens`].
    pub fn max_tokens(&self) -> usize {
        self.shared.embedder.max_tokens()
    }

    /// Compute threads this pool runs.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Embeds one search query, ahead of any background batch, and blocks until done:
    /// a unit vector of [`EmbedPool::dim`] floats. Served from a cache of the last
    /// [`QUERY_CACHE_ENTRIES`] distinct queries when possible. Do not call this on an async
    /// runtime's worker thread; use [`EmbedPool::embed_query_then`] there.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbeddingError> {
        if let Some(v) = self.shared.cache().get(text) {
            return Ok(v);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.push_query(
            text.to_owned(),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(EmbeddingError::PoolStopped))
    }

    /// Like [`EmbedPool::embed_query`] but returns at once; `done` runs on the pool's
    /// scheduler thread with the result (immediately, on the calling thread, on a cache hit).
    /// `done` should be quick, e.g. send on a `tokio::sync::oneshot`. If the pool stops first,
    /// `done` gets [`EmbeddingError::PoolStopped`].
    pub fn embed_query_then(
        &self,
        text: String,
        done: impl FnOnce(Result<Vec<f32>, EmbeddingError>) + Send + 'static,
    ) {
        if let Some(v) = self.shared.cache().get(&text) {
            done(Ok(v));
            return;
        }
        self.push_query(text, Box::new(done));
    }

    /// Embeds `texts` at low priority (queries go first, between groups of this batch) and
    /// blocks until done: one unit vector per text, in order. Results are not cached.
    pub fn embed_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job = BatchJob {
            texts,
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        };
        {
            let mut q = self.shared.queues();
            if q.stopping {
                return Err(EmbeddingError::PoolStopped);
            }
            q.batches.push_back(job);
        }
        self.shared.wake.notify_one();
        rx.recv().unwrap_or(Err(EmbeddingError::PoolStopped))
    }

    fn push_query(&self, text: String, done: QueryCallback) {
        {
            let mut q = self.shared.queues();
            if !q.stopping {
                q.queries.push_back(QueryJob { text, done });
                drop(q);
                self.shared.wake.notify_one();
                return;
            }
        }
        done(Err(EmbeddingError::PoolStopped));
    }
}

impl Drop for EmbedPool {
    fn drop(&mut self) {
        self.shared.queues().stopping = true;
        self.shared.wake.notify_all();
        if let Some(handle) = self.scheduler.take() {
            let _ = handle.join();
        }
    }
}

/// Runs `f` on the compute pool; a panic inside candle becomes an inference error instead of
/// killing the scheduler.
fn compute<T: Send>(
    pool: &rayon::ThreadPool,
    f: impl FnOnce() -> Result<T, EmbeddingError> + Send,
) -> Result<T, EmbeddingError> {
    pool.install(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(EmbeddingError::Inference(
                format!("the model panicked: {what}").into(),
            ))
        })
}

/// Serves every queued query, all in one forward pass (they are short).
fn serve_queries(shared: &Shared, pool: &rayon::ThreadPool, jobs: Vec<QueryJob>) {
    let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
    let result = compute(pool, || shared.embedder.embed(&texts));
    match result {
        Ok(vectors) => {
            for (job, v) in jobs.into_iter().zip(vectors) {
                shared.cache().put(job.text, v.clone());
                (job.done)(Ok(v));
            }
        }
        Err(e) => {
            // One failure for several queries: report it to the first; retry the others
            // alone so one bad text cannot fail its neighbours.
            let mut jobs = jobs.into_iter();
            if let Some(first) = jobs.next() {
                (first.done)(Err(e));
            }
            for job in jobs {
                let r = compute(pool, || shared.embedder.embed(&[job.text.as_str()]))
                    .map(|mut v| v.pop().unwrap_or_default());
                if let Ok(v) = &r {
                    shared.cache().put(job.text.clone(), v.clone());
                }
                (job.done)(r);
            }
        }
    }
}

/// Takes every waiting query, or `None`.
fn take_queries(shared: &Shared) -> Option<Vec<QueryJob>> {
    let mut q = shared.queues();
    if q.queries.is_empty() {
        None
    } else {
        Some(q.queries.drain(..).collect())
    }
}

fn run_batch(
    shared: &Shared,
    pool: &rayon::ThreadPool,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, EmbeddingError> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = shared.embedder.tokenize(&refs)?;
    let mut out = vec![Vec::new(); texts.len()];
    let groups = plan_groups(&tokens, group_token_budget(), GROUP_MAX_SEQS);
    // Waves of one group per compute thread: groups run side by side (better use of the
    // cores than splitting one group's small matrices), and queries get a turn between waves.
    for wave in groups.chunks(pool.current_num_threads().max(1)) {
        while let Some(queries) = take_queries(shared) {
            serve_queries(shared, pool, queries);
        }
        if shared.queues().stopping {
            return Err(EmbeddingError::PoolStopped);
        }
        compute(pool, || shared.embedder.forward_groups(&tokens, wave, &mut out))?;
    }
    Ok(out)
}

enum Work {
    Queries(Vec<QueryJob>),
    Batch(BatchJob),
    Stop(VecDeque<QueryJob>, VecDeque<BatchJob>),
}

fn run_scheduler(shared: &Shared, pool: &rayon::ThreadPool) {
    loop {
        let work = {
            let mut q = shared.queues();
            loop {
                if q.stopping {
                    break Work::Stop(std::mem::take(&mut q.queries), std::mem::take(&mut q.batches));
                }
                if !q.queries.is_empty() {
                    break Work::Queries(q.queries.drain(..).collect());
                }
                if let Some(job) = q.batches.pop_front() {
                    break Work::Batch(job);
                }
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        match work {
            Work::Queries(jobs) => serve_queries(shared, pool, jobs),
            Work::Batch(job) => {
                let result = run_batch(shared, pool, &job.texts);
                (job.done)(result);
            }
            Work::Stop(queries, batches) => {
                for job in queries {
                    (job.done)(Err(EmbeddingError::PoolStopped));
                }
                for job in batches {
                    (job.done)(Err(EmbeddingError::PoolStopped));
                }
                return;
            }
        }
    }
}
