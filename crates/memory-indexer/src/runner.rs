//! The worker thread: runs queued file jobs (oldest first, one at a time) and watcher
//! refreshes, one after another, so two passes never write the same source at once and
//! a refresh can never race a rebuild's swap. It sleeps on a condition variable, never
//! polls for jobs; it stops at a file boundary on shutdown (re-queueing the job) or when
//! its source is deleted. It must not hold its lock while doing I/O. After each task,
//! and after a minute without one, it does upkeep in short transactions while nothing
//! else waits: deleting replaced generations, merging the full-text index's segments.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use memory_store::{ClaimedFileJob, JobEnd, Store, StoreError};

use crate::IndexerConfig;
use crate::error::IndexerError;
use crate::pass::{self, PassEnd, Target};
use crate::roots::Monitor;
use crate::walk::Rules;

/// Rows deleted per garbage-collection transaction.
const GC_ROWS: usize = 500;
/// FTS5 pages (4 KiB) merged per idle merge transaction (tens of milliseconds).
const MERGE_PAGES: u32 = 256;

/// What the worker is doing now.
struct Current {
    source_id: String,
    job_id: Option<i64>,
    cancel: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    /// Shut down: finish the current file, then exit.
    stop: bool,
    /// Jobs may be queued in the store.
    jobs_hint: bool,
    /// Sources whose watcher saw changes.
    refresh: BTreeSet<String>,
    current: Option<Current>,
    /// Tests only: a pass waits at its start, without progress, while set.
    paused: bool,
}

/// State shared by the handle, the worker and the watchers.
pub(crate) struct Shared {
    pub store: Store,
    pub cfg: IndexerConfig,
    state: Mutex<State>,
    wake: Condvar,
    /// Notified whenever a job ends (for `wait_job`).
    pub job_done: Condvar,
    /// Guards nothing; pairs with `job_done`.
    pub job_done_lock: Mutex<()>,
    /// When the worker last made progress (ms since `epoch`), for the stuck detector.
    heartbeat_ms: AtomicU64,
    epoch: Instant,
    /// The source-root monitor's wake-ups and findings (see `roots`).
    pub roots: Monitor,
}

impl Shared {
    pub fn new(store: Store, cfg: IndexerConfig) -> Shared {
        Shared {
            store,
            cfg,
            state: Mutex::new(State {
                jobs_hint: true,
                ..State::default()
            }),
            wake: Condvar::new(),
            job_done: Condvar::new(),
            job_done_lock: Mutex::new(()),
            heartbeat_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            roots: Monitor::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// New jobs were queued.
    pub fn notify_jobs(&self) {
        self.lock().jobs_hint = true;
        self.wake.notify_all();
    }

    /// The watcher saw changes under this source.
    pub fn request_refresh(&self, source_id: &str) {
        let mut s = self.lock();
        if !s.stop {
            s.refresh.insert(source_id.to_string());
            self.wake.notify_all();
        }
    }

    /// Forgets pending refreshes of a source and cancels its running pass.
    pub fn cancel_source(&self, source_id: &str) {
        let mut s = self.lock();
        s.refresh.remove(source_id);
        if let Some(c) = s.current.as_ref().filter(|c| c.source_id == source_id) {
            c.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Tests only: passes wait at their start (running, without progress) while
    /// `paused`; a way to wedge a job that the walker's own defences do not undo.
    pub fn pause_passes(&self, paused: bool) {
        self.lock().paused = paused;
        self.wake.notify_all();
    }

    /// Asks the worker to exit after the current file, and the root monitor to end.
    pub fn stop(&self) {
        self.roots.stop();
        let mut s = self.lock();
        s.stop = true;
        if let Some(c) = &s.current {
            c.cancel.store(true, Ordering::Relaxed);
        }
        self.wake.notify_all();
    }

    /// A pass running with no progress for longer than `cfg.stuck_after`, if any.
    pub fn stuck(&self) -> Option<String> {
        let s = self.lock();
        let c = s.current.as_ref()?;
        let idle_ms = (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed));
        let idle = Duration::from_millis(idle_ms);
        (idle > self.cfg.stuck_after).then(|| {
            let what = c
                .job_id
                .map_or_else(|| "watcher refresh".to_string(), |j| format!("index job {j}"));
            format!(
                "{what} for source {} has made no progress for {} s",
                c.source_id,
                idle.as_secs()
            )
        })
    }

    fn job_ended(&self) {
        let _g = self.job_done_lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.job_done.notify_all();
    }
}

enum Task {
    Jobs,
    Refresh(String),
    /// Nothing happened for [`IDLE_MAINTENANCE`]: only the upkeep that follows every
    /// task (garbage generations, merging the full-text index, which chat messages keep
    /// adding small segments to).
    Upkeep,
}

/// How long the worker waits for work before it looks for upkeep to do.
const IDLE_MAINTENANCE: Duration = Duration::from_secs(60);

/// The worker thread's body.
pub(crate) fn run(shared: Arc<Shared>) {
    while let Some(task) = next_task(&shared) {
        let result = match task {
            Task::Jobs => run_jobs(&shared),
            Task::Refresh(id) => refresh(&shared, &id),
            Task::Upkeep => Ok(()),
        };
        match result {
            Ok(()) => {}
            Err(IndexerError::Store(StoreError::Unavailable(e))) => {
                tracing::warn!("file indexer stopping: the store is unavailable: {e}");
                return;
            }
            Err(e) => tracing::warn!("file indexer: {e}"),
        }
        if let Err(e) = collect_garbage(&shared) {
            tracing::warn!("file indexer: deleting old generations: {e}");
        }
        if let Err(e) = merge_full_text_index(&shared) {
            tracing::warn!("file indexer: merging the full-text index: {e}");
        }
    }
}

fn next_task(shared: &Shared) -> Option<Task> {
    let mut s = shared.lock();
    loop {
        if s.stop {
            return None;
        }
        if s.jobs_hint {
            s.jobs_hint = false;
            return Some(Task::Jobs);
        }
        if let Some(id) = s.refresh.pop_first() {
            return Some(Task::Refresh(id));
        }
        let (guard, waited) = shared
            .wake
            .wait_timeout(s, IDLE_MAINTENANCE)
            .unwrap_or_else(PoisonError::into_inner);
        s = guard;
        if waited.timed_out() && !s.stop && !s.jobs_hint && s.refresh.is_empty() {
            return Some(Task::Upkeep);
        }
    }
}

/// Marks the pass current; returns its cancel flag (already set if stopping).
fn begin(shared: &Shared, source_id: &str, job_id: Option<i64>) -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let mut s = shared.lock();
    if s.stop {
        cancel.store(true, Ordering::Relaxed);
    }
    s.current = Some(Current {
        source_id: source_id.to_string(),
        job_id,
        cancel: Arc::clone(&cancel),
    });
    shared.beat();
    while s.paused && !s.stop && !cancel.load(Ordering::Relaxed) {
        s = shared.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
    }
    cancel
}

fn end(shared: &Shared) -> bool {
    let mut s = shared.lock();
    s.current = None;
    s.stop
}

fn run_jobs(shared: &Shared) -> Result<(), IndexerError> {
    while let Some(claimed) = shared.store.claim_file_job()? {
        let stopping = run_job(shared, claimed);
        shared.job_ended();
        if stopping {
            break;
        }
    }
    Ok(())
}

/// Runs one claimed job to its end; true when the indexer is stopping.
fn run_job(shared: &Shared, claimed: ClaimedFileJob) -> bool {
    let ClaimedFileJob { job, source } = claimed;
    let cancel = begin(shared, &source.id, Some(job.id));
    let generation = job.generation.unwrap_or(source.generation);
    let outcome = Rules::new(
        std::path::Path::new(&source.root_path),
        &source.include_globs,
        &source.exclude_globs,
    )
    .and_then(|rules| {
        let target = Target {
            source_id: &source.id,
            rules,
            generation,
            job_id: Some(job.id),
        };
        let stop = || cancel.load(Ordering::Relaxed);
        pass::run(&shared.store, &shared.cfg, &target, &stop, &|| shared.beat())
    });
    let stopping = end(shared);
    let end = match outcome {
        Ok(PassEnd::Done(_)) => JobEnd::Completed,
        Ok(PassEnd::Stopped(_)) if stopping => JobEnd::Requeued,
        Ok(PassEnd::Stopped(_)) => {
            JobEnd::Cancelled("cancelled: its source was deleted or its folder went missing".into())
        }
        // The job stopped running under us (source deleted): nothing to record.
        Err(IndexerError::NotFound(_)) => return stopping,
        Err(e) => JobEnd::Failed(e.to_string()),
    };
    tracing::info!(job = job.id, source = %source.id, ?end, "file index job ended");
    if let Err(e) = shared.store.finish_file_job(job.id, end) {
        tracing::warn!("file indexer: finishing job {}: {e}", job.id);
    }
    stopping
}

/// A watcher-triggered sync of one source's searchable generation (no job row).
fn refresh(shared: &Shared, source_id: &str) -> Result<(), IndexerError> {
    let Some(source) = shared.store.get_source(source_id)? else {
        return Ok(());
    };
    let rules = Rules::new(
        std::path::Path::new(&source.root_path),
        &source.include_globs,
        &source.exclude_globs,
    )?;
    let cancel = begin(shared, source_id, None);
    let target = Target {
        source_id,
        rules,
        generation: source.generation,
        job_id: None,
    };
    let stop = || cancel.load(Ordering::Relaxed);
    let result = pass::run(&shared.store, &shared.cfg, &target, &stop, &|| shared.beat());
    end(shared);
    match result {
        Ok(_) | Err(IndexerError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes replaced generations in short transactions, yielding to other work.
fn collect_garbage(shared: &Shared) -> Result<(), IndexerError> {
    loop {
        {
            let s = shared.lock();
            if s.stop || s.jobs_hint {
                return Ok(()); // resumed after the next task
            }
        }
        if shared.store.collect_garbage(GC_ROWS)? == 0 {
            return Ok(());
        }
        std::thread::yield_now();
    }
}

/// Merges the full-text index's segments in short transactions while there is nothing
/// else to do, so the merging a bulk index leaves behind is not paid by the next job
/// or by searches (see [`Store::merge_full_text_index`]).
fn merge_full_text_index(shared: &Shared) -> Result<(), IndexerError> {
    loop {
        {
            let s = shared.lock();
            if s.stop || s.jobs_hint || !s.refresh.is_empty() {
                return Ok(()); // resumed after the next task
            }
        }
        if !shared.store.merge_full_text_index(MERGE_PAGES)? {
            return Ok(());
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass that stops beating (a file job blocked in the file system) is named by
    /// `stuck()`, which `/health` lists among its reasons; an ended pass is not.
    #[test]
    fn a_job_without_progress_is_reported_stuck() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(memory_store::StoreConfig::new(dir.path().join("m.sqlite"))).expect("store");
        let cfg = IndexerConfig {
            stuck_after: Duration::from_millis(20),
            ..IndexerConfig::default()
        };
        let shared = Shared::new(store, cfg);
        assert_eq!(shared.stuck(), None, "nothing running");
        let _cancel = begin(&shared, "docs", Some(7));
        let deadline = Instant::now() + Duration::from_secs(30);
        let reason = loop {
            if let Some(r) = shared.stuck() {
                break r;
            }
            assert!(Instant::now() < deadline, "never reported stuck");
            std::thread::yield_now();
        };
        assert!(
            reason.starts_with("index job 7 for source docs has made no progress for"),
            "{reason}"
        );
        end(&shared);
        assert_eq!(shared.stuck(), None);
    }
}
