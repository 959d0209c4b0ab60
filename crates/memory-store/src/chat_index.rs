//! The data side of chat indexing: what the chat stage (`memory-indexer`'s
//! `chat_stage`, the thread and its policy) asks the store to do, each step in one
//! writer transaction. Finishing the claimed jobs (each message's chunks replaced by
//! chunks of its current content, job `success`) and claiming the next ones share one
//! commit per step, not per message; the step's FTS rows are inserted at its end, so
//! they make one FTS segment (see the `fts` module). A job that fails is marked `error`
//! in its own savepoint and the step goes on; a full disk fails the whole step.
//! [`ChatWork`] is how the stage learns, without polling, that an enqueue has committed
//! or that the store is closing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use crate::chat_jobs::{self, ChatJobState, ClaimedChatJob};
use crate::chunk::Splitter;
use crate::clock;
use crate::error::{SqlContext, StoreError};
use crate::fts::FtsRows;

#[derive(Debug, Default)]
struct WorkState {
    /// Bumped after an enqueue commits, at open when jobs are pending, and by wakes.
    count: u64,
    /// The store is shutting down: the stage finishes its claimed jobs and exits.
    closing: bool,
    /// Chat stages attached (see [`ChatWork::attach`]).
    attached: usize,
    /// A stage ended without being asked to (a panic, or the writer gone).
    exited: bool,
}

/// The chat stage's work signal: a counter bumped after each chat enqueue commits, with
/// a blocking wait, plus the store's "closing" notice and a record of attached stages
/// (so a store shutdown waits for the stage to finish its claimed jobs, and
/// [`crate::StoreStats::indexer_exited`] can say that a stage died).
#[derive(Debug, Default)]
pub struct ChatWork {
    state: Mutex<WorkState>,
    changed: Condvar,
}

impl ChatWork {
    fn update(&self, f: impl FnOnce(&mut WorkState)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state);
        self.changed.notify_all();
    }

    /// Records that chat work may be waiting and wakes the waiters.
    pub(crate) fn bump(&self) {
        self.update(|s| s.count += 1);
    }

    /// Wakes the waiters (e.g. to make a stage see its own stop or pause flag); counts
    /// as a change, like an enqueue.
    pub fn wake(&self) {
        self.bump();
    }

    /// The current count.
    pub fn current(&self) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).count
    }

    /// Waits until the count differs from `seen`, or `timeout` passes (`None`: no
    /// timeout); the count then.
    pub fn wait_past(&self, seen: u64, timeout: Option<Duration>) -> u64 {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = match timeout {
            None => self
                .changed
                .wait_while(state, |s| s.count == seen)
                .unwrap_or_else(PoisonError::into_inner),
            Some(d) => {
                self.changed
                    .wait_timeout_while(state, d, |s| s.count == seen)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        state.count
    }

    /// The store is shutting down (or has crashed, in tests): take no new job, finish
    /// the claimed ones and exit.
    pub fn is_closing(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).closing
    }

    /// Registers a running chat stage until the returned attachment is dropped: a store
    /// shutdown then waits for it (it finishes its claimed jobs first).
    pub fn attach(self: &Arc<Self>) -> ChatStageAttachment {
        self.update(|s| s.attached += 1);
        ChatStageAttachment {
            work: Arc::clone(self),
            expected: false,
        }
    }

    /// Marks the store closing (waking the stages) without waiting for them.
    pub(crate) fn close(&self) {
        self.update(|s| {
            s.closing = true;
            s.count += 1;
        });
    }

    /// Marks the store closing and waits until every attached stage has ended.
    pub(crate) fn close_and_wait(&self) {
        self.close();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let _ended = self
            .changed
            .wait_while(state, |s| s.attached > 0)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Whether a stage ended without being asked to while the store was open.
    pub(crate) fn stage_exited(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).exited
    }
}

/// A chat stage's registration with the store ([`ChatWork::attach`]); dropping it
/// detaches the stage. Dropped without [`ChatStageAttachment::finished`] while the
/// store is open (a panic, an early return) it reports the stage as exited.
#[derive(Debug)]
pub struct ChatStageAttachment {
    work: Arc<ChatWork>,
    expected: bool,
}

impl ChatStageAttachment {
    /// Detaches the stage, which ends because it was asked to (stop, or the store
    /// closing).
    pub fn finished(mut self) {
        self.expected = true;
    }
}

impl Drop for ChatStageAttachment {
    fn drop(&mut self) {
        let expected = self.expected;
        self.work.update(|s| {
            s.attached = s.attached.saturating_sub(1);
            if !expected && !s.closing {
                s.exited = true;
            }
        });
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Chunks written, job `success`.
    Indexed,
    /// Job marked `error`.
    Failed,
    /// The job vanished meanwhile (its chat was deleted).
    Skipped,
}

/// What one step did (in the writer's transaction).
pub(crate) struct Step {
    /// The jobs that ended in this transaction and how.
    pub finished: Vec<(ClaimedChatJob, Outcome)>,
    /// The jobs still claimed for the next step: those the time budget left over, then
    /// the newly claimed ones, oldest first.
    pub next: Vec<ClaimedChatJob>,
}

/// What [`crate::Store::index_chat_jobs`] did, once committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatStep {
    /// Jobs that ended `success` (their message's chunks replaced).
    pub indexed: usize,
    /// Jobs marked `error`.
    pub failed: usize,
    /// Jobs gone meanwhile (their chat was deleted).
    pub skipped: usize,
    /// The jobs still claimed, to pass to the next step: those the time budget left
    /// over, then the newly claimed ones, oldest first.
    pub next: Vec<ClaimedChatJob>,
}

/// Indexes `jobs` in order until `budget` is spent (at least one), each message's text
/// cut by `split`, then claims queued jobs until `max_claimed` are held (none when 0), in
/// the writer's transaction. A failure (or panic) indexing one job marks it `error`
/// without failing the step.
pub(crate) fn step(
    conn: &Connection,
    jobs: Vec<ClaimedChatJob>,
    budget: Duration,
    max_claimed: usize,
    split: Splitter,
) -> Result<Step, StoreError> {
    let started = Instant::now();
    let mut finished = Vec::with_capacity(jobs.len());
    let mut next = Vec::new();
    let mut fts = FtsRows::default();
    for job in jobs {
        if !finished.is_empty() && started.elapsed() >= budget {
            next.push(job);
            continue;
        }
        let outcome = finish_one(conn, &job, split, &mut fts)?;
        finished.push((job, outcome));
    }
    next.extend(chat_jobs::claim_batch(
        conn,
        max_claimed.saturating_sub(next.len()),
    )?);
    fts.write(conn)?;
    Ok(Step { finished, next })
}

/// Indexes one claimed job inside its own savepoint; a failure rolls back its partial
/// work and marks it `error`. The FTS rows of its chunks join `fts` once its savepoint is
/// released. `Err` when the savepoint itself fails or the disk is full.
fn finish_one(
    conn: &Connection,
    job: &ClaimedChatJob,
    split: Splitter,
    fts: &mut FtsRows,
) -> Result<Outcome, StoreError> {
    // Re-indexing deletes the message's chunks, which may have been inserted earlier in
    // this step: their FTS rows go in first (see the `fts` module), outside the job's
    // savepoint, so a rollback of this job cannot take them with it.
    if !fts.is_empty() && message_has_chunks(conn, &job.message_uuid)? {
        fts.write(conn)?;
    }
    conn.execute_batch("SAVEPOINT idx")
        .ctx("while opening the indexer savepoint")?;
    let mut mine = FtsRows::default();
    let result = catch_unwind(AssertUnwindSafe(|| index_message(conn, job, split, &mut mine)))
        .unwrap_or_else(|_| Err(StoreError::Internal("indexing the message panicked".into())));
    match result {
        Ok(indexed) => {
            conn.execute_batch("RELEASE idx")
                .ctx("while closing the indexer savepoint")?;
            fts.append(&mut mine);
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

/// Whether message `message_uuid` has chunks.
fn message_has_chunks(conn: &Connection, message_uuid: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM chunks WHERE kind = 'chat' AND message_uuid = ?1")
        .ctx("while looking for a message's chunks")?
        .exists([message_uuid])
        .ctx("while looking for a message's chunks")
}

/// Replaces the chunks of the job's message with chunks of its current content (cut by
/// `split`; their FTS rows pushed to `fts`) and marks the job `success` (true). A job
/// deleted meanwhile (with its chat) is skipped (false).
fn index_message(
    conn: &Connection,
    job: &ClaimedChatJob,
    split: Splitter,
    fts: &mut FtsRows,
) -> Result<bool, StoreError> {
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
             VALUES ('chat', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             RETURNING id, scope",
        )
        .ctx(context)?;
    for (i, c) in split(&content).into_iter().enumerate() {
        let terms = crate::terms::index_terms(&c.text);
        let (rowid, scope) = insert
            .query_row(
                params![
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
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .ctx(context)?;
        fts.push(rowid, terms, scope);
    }
    chat_jobs::finish(conn, job, ChatJobState::Success, None)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage that ends without saying it was asked to, while the store is open, is
    /// reported as exited; one that ends as asked, or once the store is closing, is not.
    #[test]
    fn only_an_unexpected_end_counts_as_exited() {
        let work = Arc::new(ChatWork::default());
        work.attach().finished();
        assert!(!work.stage_exited(), "asked to stop");
        drop(work.attach());
        assert!(work.stage_exited(), "ended on its own");

        let work = Arc::new(ChatWork::default());
        let attachment = work.attach();
        work.close();
        drop(attachment);
        assert!(!work.stage_exited(), "ended because the store closes");
        assert!(work.is_closing());
    }

    /// `wait_past` returns at once for a change it has not seen, and after its timeout
    /// otherwise, with the count unchanged.
    #[test]
    fn wait_past_sees_bumps_and_times_out() {
        let work = ChatWork::default();
        assert_eq!(work.current(), 0);
        work.bump();
        assert_eq!(work.wait_past(0, None), 1);
        assert_eq!(work.wait_past(1, Some(Duration::from_millis(1))), 1);
        work.wake();
        assert_eq!(work.wait_past(1, Some(Duration::from_secs(60))), 2);
    }
}
