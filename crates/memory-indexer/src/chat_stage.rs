//! The chat stage of indexing: one thread that takes queued chat jobs oldest first, in
//! batches, and has the store index them ([`Store::index_chat_jobs`]: each message
//! split into chunks and written, FTS rows following by trigger), one writer
//! transaction per step, not per message. It sleeps on the store's [`ChatWork`] counter
//! until an enqueue commits, never polls. It must never die on bad data: a failing job
//! is marked `error` by the store and the loop goes on.
//!
//! Batches and pipelining: each step finishes the jobs claimed by the previous one for
//! at most [`STEP_BUDGET`], then claims queued jobs up to [`MAX_CLAIMED`], all in one
//! transaction. So `queued -> running -> success` are separate commits, a crash leaves
//! at most the claimed jobs `running` (re-queued at the next open), and request writes
//! interleave with the stage's steps on the writer's FIFO.
//!
//! Stopping: [`ChatStage::shutdown`] (or drop), or a store shutdown, lets the stage
//! finish the jobs it claimed (a few short steps at most), then it ends; a store
//! shutdown waits for that.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use memory_store::{ChatStageAttachment, ChatWork, ClaimedChatJob, Store, StoreError};

use crate::IndexerError;

/// After a failed step (e.g. disk full), retry this much later even without new work.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Most jobs held claimed (`running`) at once; each step tops the batch up to this.
pub const MAX_CLAIMED: usize = 256;
/// Indexing work per writer transaction: no further job is started in a step after
/// this long, so request writes committed with or after it wait at most about this.
pub const STEP_BUDGET: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Flags {
    /// Finish the claimed jobs, then exit.
    stop: bool,
    /// Exit at once, leaving the claimed jobs `running` (crash simulation in tests).
    abandon: bool,
    /// Do not take new jobs (tests).
    paused: bool,
}

/// The stage's own flags; every change wakes the thread through the store's
/// [`ChatWork`] (the one thing it sleeps on).
#[derive(Debug)]
struct Signal {
    flags: Mutex<Flags>,
    work: Arc<ChatWork>,
}

impl Signal {
    fn update(&self, f: impl FnOnce(&mut Flags)) {
        f(&mut self.flags.lock().unwrap_or_else(PoisonError::into_inner));
        self.work.wake();
    }

    fn flags(&self) -> (bool, bool, bool) {
        let f = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        (f.stop, f.abandon, f.paused)
    }

    /// Waits for work (a change past `seen`, or `retry` to pass); false when the thread
    /// must exit (asked to stop, or the store is closing).
    fn wait_for_work(&self, seen: &mut u64, retry: Option<Duration>) -> bool {
        loop {
            let (stop, _, paused) = self.flags();
            if stop || self.work.is_closing() {
                return false;
            }
            let now = self.work.current();
            if now != *seen && !paused {
                *seen = now;
                return true;
            }
            let after = self.work.wait_past(now, retry);
            if retry.is_some() && after == now {
                // Timed out: retry the failed step unless stopping or paused.
                let (stop, _, paused) = self.flags();
                if !stop && !paused && !self.work.is_closing() {
                    return true;
                }
            }
        }
    }

    /// (may take new jobs, must exit now).
    fn state(&self) -> (bool, bool) {
        let (stop, abandon, paused) = self.flags();
        (!stop && !paused && !self.work.is_closing(), abandon)
    }
}

/// A running chat stage; [`ChatStage::shutdown`] (or drop) stops it once the jobs it
/// claimed are finished. Start one per open store, or messages are acknowledged but
/// never indexed ([`memory_store::StoreStats::pending_chat_jobs`] grows).
pub struct ChatStage {
    signal: Arc<Signal>,
    store: Store,
    /// Taken when joined.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ChatStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStage")
            .field("flags", &self.signal.flags())
            .finish_non_exhaustive()
    }
}

impl ChatStage {
    /// Starts the thread; jobs already pending (queued, or re-queued after a crash) are
    /// taken at once.
    ///
    /// # Errors
    /// [`IndexerError::Unavailable`] when the thread cannot be started.
    pub fn start(store: Store) -> Result<ChatStage, IndexerError> {
        let work = store.chat_work();
        let signal = Arc::new(Signal {
            flags: Mutex::default(),
            work: Arc::clone(&work),
        });
        let worker = Worker {
            store: store.clone(),
            signal: Arc::clone(&signal),
            attachment: work.attach(),
        };
        let thread = std::thread::Builder::new()
            .name("chat-stage".into())
            .spawn(move || worker.run())
            .map_err(|e| IndexerError::Unavailable(format!("cannot start the chat stage thread: {e}")))?;
        Ok(ChatStage {
            signal,
            store,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops once the jobs already claimed are finished (a few short steps at most) and
    /// waits for the thread. Idempotent.
    pub fn shutdown(&self) {
        self.signal.update(|f| f.stop = true);
        self.join();
    }

    fn join(&self) {
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Tests only: stop (`true`) or resume (`false`) taking new chat jobs.
    #[doc(hidden)]
    pub fn pause_for_tests(&self, paused: bool) {
        self.signal.update(|f| f.paused = paused);
    }

    /// Tests only: a crash, as if the process were killed: the stage ends at once,
    /// leaving its claimed jobs `running`, then the store stops abruptly
    /// ([`Store::simulate_crash_for_tests`]).
    #[doc(hidden)]
    pub fn simulate_crash_for_tests(&self) {
        self.signal.update(|f| {
            f.stop = true;
            f.abandon = true;
        });
        self.join();
        self.store.simulate_crash_for_tests();
    }
}

impl Drop for ChatStage {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The thread's state; it holds a store handle, so the store stays open until the
/// stage has ended.
struct Worker {
    store: Store,
    signal: Arc<Signal>,
    attachment: ChatStageAttachment,
}

impl Worker {
    fn run(self) {
        let mut retry = None;
        let mut seen = 0;
        // Jobs claimed (committed `running`) and not finished yet; kept across a failed
        // step so they are retried rather than left `running`.
        let mut claimed = Vec::new();
        while self.signal.wait_for_work(&mut seen, retry) {
            retry = match self.drain(&mut claimed) {
                Ok(()) => None,
                // The writer is gone: an exit not asked for (reported by the store).
                Err(StoreError::Unavailable(_)) => return,
                Err(_) => Some(RETRY_AFTER),
            };
        }
        self.attachment.finished();
    }

    /// Processes jobs until none is queued, or until asked to stop (the jobs already
    /// claimed are finished first). On a failed step `current` keeps its jobs: the
    /// rolled-back transaction left them `running`, and the next drain retries them.
    fn drain(&self, current: &mut Vec<ClaimedChatJob>) -> Result<(), StoreError> {
        loop {
            let (take_more, abandon) = self.signal.state();
            if abandon {
                return Ok(());
            }
            if current.is_empty() && !take_more {
                return Ok(());
            }
            let max_claimed = if take_more { MAX_CLAIMED } else { 0 };
            let step =
                self.store
                    .index_chat_jobs(current.clone(), STEP_BUDGET, max_claimed, crate::chunk::split)?;
            *current = step.next;
            if current.is_empty() {
                return Ok(()); // nothing queued, or asked to stop
            }
        }
    }
}
