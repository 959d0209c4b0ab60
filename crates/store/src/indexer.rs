//! The background chat indexer: one thread that takes queued jobs oldest first, splits
//! the message into chunks and writes them (FTS rows follow by trigger), all through the
//! writer. It sleeps on a condition variable until new work is committed, never polls.
//! It must never die on bad data: a failing job is marked `error` and the loop goes on.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::chunk;
use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::job::{self, Claimed, JobState};
use crate::stats::{Counters, PendingJobs};
use crate::writer::{Wait, Writer};

/// After a failed step (e.g. disk full), retry this much later even without new work.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Flags {
    /// Work may be waiting (set after an enqueue commits).
    hint: bool,
    /// Finish the current message, then exit.
    stop: bool,
    /// Exit at once, leaving the claimed job `running` (crash simulation in tests).
    abandon: bool,
    /// Do not take new jobs (tests).
    paused: bool,
}

/// Wakes and stops the indexer thread.
#[derive(Debug, Default)]
pub(crate) struct IndexerSignal {
    flags: Mutex<Flags>,
    changed: Condvar,
}

impl IndexerSignal {
    fn update(&self, f: impl FnOnce(&mut Flags)) {
        let mut flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut flags);
        self.changed.notify_all();
    }

    /// New work was committed.
    pub fn notify_work(&self) {
        self.update(|f| f.hint = true);
    }

    /// Stop at the next message boundary.
    pub fn stop(&self) {
        self.update(|f| f.stop = true);
    }

    /// Stop immediately, leaving any claimed job `running`.
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
    /// The job that ended in this transaction and how.
    finished: Option<(Claimed, Outcome)>,
    /// The job claimed for the next step.
    next: Option<Claimed>,
}

/// Everything the thread needs; it holds no reference to the store handle itself (so
/// dropping the last handle can stop it).
///
/// Pipelining: each writer request finishes the previous job (replace chunks, mark
/// `success`) and claims the next (mark `running`) in the same transaction, so indexing
/// costs one commit per message. The latest content of the message is indexed, so an old
/// queued job of an updated message simply re-indexes the newest text.
pub(crate) struct Indexer {
    pub writer: Writer,
    pub signal: Arc<IndexerSignal>,
    pub pending: Arc<PendingJobs>,
    pub counters: Arc<Counters>,
}

impl Indexer {
    /// Starts the thread.
    pub fn spawn(self) -> Result<JoinHandle<()>, StoreError> {
        std::thread::Builder::new()
            .name("store-chat-indexer".into())
            .spawn(move || self.run())
            .map_err(|source| StoreError::Io {
                context: "while starting the chat indexer thread".into(),
                source,
            })
    }

    fn run(self) {
        let mut retry = None;
        while self.signal.wait_for_work(retry) {
            retry = match self.drain() {
                Ok(()) => None,
                Err(StoreError::Unavailable(_)) => return,
                Err(_) => Some(RETRY_AFTER),
            };
        }
    }

    /// Processes jobs until none is queued, or until asked to stop.
    fn drain(&self) -> Result<(), StoreError> {
        let mut current: Option<Claimed> = None;
        loop {
            let (take_more, abandon) = self.signal.state();
            if abandon {
                return Ok(());
            }
            if current.is_none() && !take_more {
                return Ok(());
            }
            let prev = current.take();
            let prev_for_recovery = prev.clone();
            let pending = Arc::clone(&self.pending);
            let counters = Arc::clone(&self.counters);
            let result = self.writer.execute_then(
                Wait::Forever,
                move |conn| step(conn, prev, take_more),
                move |s: &Step| {
                    if let Some((job, outcome)) = &s.finished {
                        // Counters first: `wait_idle` returns as soon as the job leaves
                        // `pending`, and callers then read the counters.
                        match outcome {
                            Outcome::Indexed => {
                                counters.messages_indexed.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Failed => {
                                counters.index_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Skipped => {}
                        }
                        pending.remove(job.enqueue_ms, &job.job_id);
                    }
                },
            );
            match result {
                Ok(s) => current = s.next,
                Err(e) => {
                    let writer_gone = matches!(e, StoreError::Unavailable(_));
                    if let Some(job) = prev_for_recovery.filter(|_| !writer_gone) {
                        self.record_failure(job, &e);
                    }
                    return Err(e);
                }
            }
            if current.is_none() {
                return Ok(()); // nothing queued, or asked to stop
            }
        }
    }

    /// Marks `job` failed in a transaction of its own after its step could not commit.
    fn record_failure(&self, job: Claimed, e: &StoreError) {
        let message = e.to_string();
        let pending = Arc::clone(&self.pending);
        let counters = Arc::clone(&self.counters);
        let done = job.clone();
        let _ = self.writer.execute_then(
            Wait::Forever,
            move |conn| {
                if job::is_running(conn, &job.job_id)? {
                    job::finish(conn, &job, JobState::Error, Some(&message))?;
                }
                Ok(())
            },
            move |_| {
                counters.index_errors.fetch_add(1, Ordering::Relaxed);
                pending.remove(done.enqueue_ms, &done.job_id);
            },
        );
    }
}

/// Finishes `prev` (if any) and claims the next job (if `claim`), in the writer's
/// transaction. A failure to index `prev` marks it `error` instead of failing the step.
fn step(conn: &Connection, prev: Option<Claimed>, claim: bool) -> Result<Step, StoreError> {
    let mut finished = None;
    if let Some(job) = prev {
        conn.execute_batch("SAVEPOINT idx")
            .ctx("while opening the indexer savepoint")?;
        match index_message(conn, &job) {
            Ok(indexed) => {
                conn.execute_batch("RELEASE idx")
                    .ctx("while closing the indexer savepoint")?;
                let outcome = if indexed {
                    Outcome::Indexed
                } else {
                    Outcome::Skipped
                };
                finished = Some((job, outcome));
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK TO idx; RELEASE idx")
                    .ctx("while rolling back a failed index")?;
                if job::is_running(conn, &job.job_id)? {
                    job::finish(conn, &job, JobState::Error, Some(&e.to_string()))?;
                }
                finished = Some((job, Outcome::Failed));
            }
        }
    }
    let next = if claim { job::claim_next(conn)? } else { None };
    Ok(Step { finished, next })
}

/// Replaces the chunks of the job's message with chunks of its current content and
/// marks the job `success` (true). A job deleted meanwhile (with its chat) is skipped
/// (false).
fn index_message(conn: &Connection, job: &Claimed) -> Result<bool, StoreError> {
    if !job::is_running(conn, &job.job_id)? {
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
    job::finish(conn, job, JobState::Success, None)?;
    Ok(true)
}
