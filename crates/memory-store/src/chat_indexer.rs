//! The background chat indexer: one thread that takes queued jobs oldest first, in
//! batches, splits each message into chunks and writes them (FTS rows follow by
//! trigger), all through the writer: one commit (and one FTS segment) per batch, not per
//! message. It sleeps on a condition variable until new work is committed, never polls.
//! It must never die on bad data: a failing job is marked `error` and the loop goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use crate::chat_jobs::{self, ChatJobState, Claimed};
use crate::chunk;
use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::stats::{Counters, PendingJobs};
use crate::vectors::ChunkChanges;
use crate::writer::{Wait, Writer};

/// After a failed step (e.g. disk full), retry this much later even without new work.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Most jobs held claimed (`running`) at once; each step tops the batch up to this.
const MAX_CLAIMED: usize = 256;
/// Indexing work per writer transaction: no further job is started in a step after
/// this long, so request writes committed with or after it wait at most about this.
const STEP_BUDGET: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Flags {
    /// Work may be waiting (set after an enqueue commits).
    hint: bool,
    /// Finish the claimed jobs, then exit.
    stop: bool,
    /// Exit at once, leaving the claimed jobs `running` (crash simulation in tests).
    abandon: bool,
    /// Do not take new jobs (tests).
    paused: bool,
}

/// Wakes and stops the indexer thread.
#[derive(Debug, Default)]
pub(crate) struct ChatIndexerSignal {
    flags: Mutex<Flags>,
    changed: Condvar,
}

impl ChatIndexerSignal {
    fn update(&self, f: impl FnOnce(&mut Flags)) {
        let mut flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut flags);
        self.changed.notify_all();
    }

    /// New work was committed.
    pub fn notify_work(&self) {
        self.update(|f| f.hint = true);
    }

    /// Stop once the jobs already claimed are finished (a few short steps at most).
    pub fn stop(&self) {
        self.update(|f| f.stop = true);
    }

    /// Stop immediately, leaving any claimed jobs `running`.
    pub fn abandon(&self) {
        self.update(|f| {
            f.stop = true;
            f.abandon = true;
        });
    }

    /// Pause or resume taking new jobs.
    pub fn set_paused(&self, paused: bool) {
        self.update(|f| {
            f.paused = paused;
            f.hint = true;
        });
    }

    /// Waits for work (or `retry` to pass); false when the thread must exit.
    fn wait_for_work(&self, retry: Option<Duration>) -> bool {
        let mut flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if flags.stop {
                return false;
            }
            if flags.hint && !flags.paused {
                flags.hint = false;
                return true;
            }
            flags = match retry {
                None => self.changed.wait(flags).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let (f, timeout) = self
                        .changed
                        .wait_timeout(flags, d)
                        .unwrap_or_else(PoisonError::into_inner);
                    if timeout.timed_out() && !f.stop && !f.paused {
                        return true;
                    }
                    f
                }
            };
        }
    }

    /// (may take new jobs, must exit now).
    fn state(&self) -> (bool, bool) {
        let f = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        (!f.stop && !f.paused, f.abandon)
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Chunks written, job `success`.
    Indexed,
    /// Job marked `error`.
    Failed,
    /// The job vanished meanwhile (its chat was deleted).
    Skipped,
}

/// What one pipelined step did.
struct Step {
    /// The jobs that ended in this transaction and how.
    finished: Vec<(Claimed, Outcome)>,
    /// The jobs still claimed for the next step: those the time budget left over, then
    /// the newly claimed ones, oldest first.
    next: Vec<Claimed>,
}

/// Everything the thread needs; it holds no reference to the store handle itself (so
/// dropping the last handle can stop it).
///
/// Batches and pipelining: each writer request indexes the jobs claimed by the previous
/// one (replace chunks, mark `success`, each in its own savepoint) for at most
/// [`STEP_BUDGET`], then claims queued jobs up to [`MAX_CLAIMED`] (mark `running`), all
/// in one transaction. So `queued -> running -> success` are separate commits, a crash
/// leaves at most the claimed jobs `running` (re-queued at open), and request writes
/// interleave with indexer steps on the writer's FIFO. The latest content of the message
/// is indexed, so an old queued job of an updated message simply re-indexes the newest
/// text.
pub(crate) struct ChatIndexer {
    pub writer: Writer,
    pub signal: Arc<ChatIndexerSignal>,
    pub pending: Arc<PendingJobs>,
    pub counters: Arc<Counters>,
    /// Bumped after a step that indexed messages (wakes the embedding stage).
    pub changes: Arc<ChunkChanges>,
}

impl ChatIndexer {
    /// Starts the thread.
    pub fn spawn(self) -> Result<JoinHandle<()>, StoreError> {
        std::thread::Builder::new()
            .name("store-chat-indexer".into())
            .spawn(move || self.run())
            .map_err(|cause| StoreError::Io {
                context: "while starting the chat indexer thread".into(),
                cause,
            })
    }

    fn run(self) {
        let mut retry = None;
        // Jobs claimed (committed `running`) and not finished yet; kept across a failed
        // step so they are retried rather than left `running`.
        let mut claimed = Vec::new();
        while self.signal.wait_for_work(retry) {
            retry = match self.drain(&mut claimed) {
                Ok(()) => None,
                Err(StoreError::Unavailable(_)) => return,
                Err(_) => Some(RETRY_AFTER),
            };
        }
    }

    /// Processes jobs until none is queued, or until asked to stop (the jobs already
    /// claimed are finished first). On a failed step `current` keeps its jobs: the
    /// rolled-back transaction left them `running`, and the next drain retries them.
    fn drain(&self, current: &mut Vec<Claimed>) -> Result<(), StoreError> {
        loop {
            let (take_more, abandon) = self.signal.state();
            if abandon {
                return Ok(());
            }
            if current.is_empty() && !take_more {
                return Ok(());
            }
            let jobs = current.clone();
            let pending = Arc::clone(&self.pending);
            let counters = Arc::clone(&self.counters);
            let changes = Arc::clone(&self.changes);
            let result = self.writer.execute_then(
                Wait::Forever,
                move |conn| step(conn, jobs, take_more),
                move |s: &Step| {
                    // Counters first: `wait_idle` returns as soon as the jobs leave
                    // `pending`, and callers then read the counters.
                    for (_, outcome) in &s.finished {
                        match outcome {
                            Outcome::Indexed => {
                                counters.messages_indexed.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Failed => {
                                counters.index_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Skipped => {}
                        }
                    }
                    pending.remove_all(
                        s.finished
                            .iter()
                            .map(|(job, _)| (job.enqueue_ms, job.job_id.as_str())),
                    );
                    if s.finished.iter().any(|(_, o)| *o == Outcome::Indexed) {
                        changes.bump();
                    }
                },
            );
            *current = result?.next;
            if current.is_empty() {
                return Ok(()); // nothing queued, or asked to stop
            }
        }
    }
}

/// Indexes `jobs` in order until [`STEP_BUDGET`] is spent (at least one), then claims
/// queued jobs up to [`MAX_CLAIMED`] held (if `claim`), in the writer's transaction. A
/// failure (or panic) indexing one job marks it `error` without failing the step.
fn step(conn: &Connection, jobs: Vec<Claimed>, claim: bool) -> Result<Step, StoreError> {
    let started = Instant::now();
    let mut finished = Vec::with_capacity(jobs.len());
    let mut next = Vec::new();
    for job in jobs {
        if !finished.is_empty() && started.elapsed() >= STEP_BUDGET {
            next.push(job);
            continue;
        }
        let outcome = finish_one(conn, &job)?;
        finished.push((job, outcome));
    }
    if claim {
        next.extend(chat_jobs::claim_batch(
            conn,
            MAX_CLAIMED.saturating_sub(next.len()),
        )?);
    }
    Ok(Step { finished, next })
}

/// Indexes one claimed job inside its own savepoint; a failure rolls back its partial
/// work and marks it `error`. `Err` when the savepoint itself fails or the disk is full.
fn finish_one(conn: &Connection, job: &Claimed) -> Result<Outcome, StoreError> {
    conn.execute_batch("SAVEPOINT idx")
        .ctx("while opening the indexer savepoint")?;
    let result = catch_unwind(AssertUnwindSafe(|| index_message(conn, job)))
        .unwrap_or_else(|_| Err(StoreError::Internal("indexing the message panicked".into())));
    match result {
        Ok(indexed) => {
            conn.execute_batch("RELEASE idx")
                .ctx("while closing the indexer savepoint")?;
            Ok(if indexed {
                Outcome::Indexed
            } else {
                Outcome::Skipped
            })
        }
        // A full disk is not the message's fault: fail the step, so the whole batch
        // is retried later instead of the job being marked `error` for good.
        Err(e) if e.is_disk_full() => Err(e),
        Err(e) => {
            conn.execute_batch("ROLLBACK TO idx; RELEASE idx")
                .ctx("while rolling back a failed index")?;
            if chat_jobs::is_running(conn, &job.job_id)? {
                chat_jobs::finish(conn, job, ChatJobState::Error, Some(&e.to_string()))?;
            }
            Ok(Outcome::Failed)
        }
    }
}

/// Replaces the chunks of the job's message with chunks of its current content and
/// marks the job `success` (true). A job deleted meanwhile (with its chat) is skipped
/// (false).
fn index_message(conn: &Connection, job: &Claimed) -> Result<bool, StoreError> {
    if !chat_jobs::is_running(conn, &job.job_id)? {
        return Ok(false);
    }
    let context = "while indexing a chat message";
    let message: Option<(String, String, String, String)> = conn
        .prepare_cached(
            "SELECT project_id, chat_id, message_id, content FROM chat_messages
             WHERE message_uuid = ?1",
        )
        .ctx(context)?
        .query_row([&job.message_uuid], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .ctx(context)?;
    let Some((project_id, chat_id, message_id, content)) = message else {
        return Err(StoreError::NotFound(format!(
            "message {} no longer exists",
            job.message_uuid
        )));
    };
    conn.prepare_cached("DELETE FROM chunks WHERE kind = 'chat' AND message_uuid = ?1")
        .ctx(context)?
        .execute([&job.message_uuid])
        .ctx(context)?;
    let source_id = format!("project-{project_id}");
    let now = clock::now_iso();
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO chunks (kind, project_id, source_id, chat_id, message_id, message_uuid,
                    chunk_index, start_char, end_char, text, created_at)
             VALUES ('chat', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .ctx(context)?;
    for (i, c) in chunk::split(&content).into_iter().enumerate() {
        insert
            .execute(params![
                project_id,
                source_id,
                chat_id,
                message_id,
                job.message_uuid,
                i as i64,
                c.start_char as i64,
                c.end_char as i64,
                c.text,
                now
            ])
            .ctx(context)?;
    }
    chat_jobs::finish(conn, job, ChatJobState::Success, None)?;
    Ok(true)
}
