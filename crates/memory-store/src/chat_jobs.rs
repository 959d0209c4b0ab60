//! Chat index jobs: their public status type and every SQL statement on
//! `chat_index_jobs` (enqueue, claim, finish, status, requeue at open). It owns job ids
//! and timing fields; it must not decide *when* jobs run (the chat stage in `memory-indexer` does) nor open
//! transactions itself (callers run it inside the writer's transaction).

use rusqlite::{Connection, OptionalExtension, params};

use crate::chunk;
use crate::clock;
use crate::error::{SqlContext, StoreError};

/// The life of an index job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatJobState {
    /// Committed and waiting for the chat stage.
    Queued,
    /// Taken by the chat stage.
    Running,
    /// Indexed; the message is searchable.
    Success,
    /// Took longer than its computed timeout (kept for wire compatibility; not produced
    /// today because a message is indexed in one bounded transaction).
    Timeout,
    /// Failed; see `error_message`.
    Error,
}

impl ChatJobState {
    /// The wire name: `queued`, `running`, `success`, `timeout` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatJobState::Queued => "queued",
            ChatJobState::Running => "running",
            ChatJobState::Success => "success",
            ChatJobState::Timeout => "timeout",
            ChatJobState::Error => "error",
        }
    }

    /// The state named `s`, if any.
    pub fn parse(s: &str) -> Option<ChatJobState> {
        Some(match s {
            "queued" => ChatJobState::Queued,
            "running" => ChatJobState::Running,
            "success" => ChatJobState::Success,
            "timeout" => ChatJobState::Timeout,
            "error" => ChatJobState::Error,
            _ => return None,
        })
    }

    /// True for `queued` and `running`.
    pub fn is_pending(self) -> bool {
        matches!(self, ChatJobState::Queued | ChatJobState::Running)
    }
}

impl std::fmt::Display for ChatJobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `GET /index-job-status/{job_id}` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatJobStatus {
    /// `<chat_id>:<message_id>:<epoch_ms>`.
    pub job_id: String,
    /// Current state.
    pub state: ChatJobState,
    /// When the job was committed (naive local ISO-8601 with microseconds).
    pub enqueue_time: String,
    /// When the chat stage took it.
    pub start_time: Option<String>,
    /// When it finished.
    pub end_time: Option<String>,
    /// Seconds from start to end.
    pub duration: Option<f64>,
    /// Chunks expected from the content length at enqueue time.
    pub estimated_chunks: i64,
    /// Seconds the job is expected to take at most.
    pub computed_timeout: f64,
    /// Why it failed, when `state` is `error`.
    pub error_message: Option<String>,
    /// The message the job indexes.
    pub message_uuid: Option<String>,
}

/// Seconds allowed for a job of `estimated_chunks` (reported, informational).
pub(crate) fn computed_timeout(estimated_chunks: usize) -> f64 {
    10.0 + 0.5 * estimated_chunks as f64
}

/// Inserts a queued job for a message; returns `(job_id, enqueue_ms)`. The id keeps the
/// original's shape `<chat_id>:<message_id>:<epoch_ms>`; on collision the ms is bumped.
pub(crate) fn enqueue(
    conn: &Connection,
    chat_id: &str,
    message_id: &str,
    message_uuid: &str,
    content_chars: usize,
) -> Result<(String, i64), StoreError> {
    let context = "while enqueueing a chat index job";
    let enqueue_ms = clock::now_epoch_ms();
    let mut id_ms = enqueue_ms;
    let mut exists = conn
        .prepare_cached("SELECT 1 FROM chat_index_jobs WHERE job_id = ?1")
        .ctx(context)?;
    let job_id = loop {
        let candidate = format!("{chat_id}:{message_id}:{id_ms}");
        if !exists.exists([&candidate]).ctx(context)? {
            break candidate;
        }
        id_ms += 1;
    };
    let estimated = chunk::estimate(content_chars);
    conn.prepare_cached(
        "INSERT INTO chat_index_jobs
             (job_id, message_uuid, state, enqueue_ms, enqueue_time, estimated_chunks, computed_timeout)
         VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6)",
    )
    .ctx(context)?
    .execute(params![
        job_id,
        message_uuid,
        enqueue_ms,
        clock::now_iso(),
        estimated as i64,
        computed_timeout(estimated)
    ])
    .ctx(context)?;
    Ok((job_id, enqueue_ms))
}

/// Looks a job up; `None` when unknown.
pub(crate) fn status(conn: &Connection, job_id: &str) -> Result<Option<ChatJobStatus>, StoreError> {
    let context = "while reading a job's status";
    let row = conn
        .prepare_cached(
            "SELECT job_id, state, enqueue_time, start_time, end_time, duration,
                    estimated_chunks, computed_timeout, error_message, message_uuid
             FROM chat_index_jobs WHERE job_id = ?1",
        )
        .ctx(context)?
        .query_row([job_id], |r| {
            Ok((
                r.get::<_, String>(1)?,
                ChatJobStatus {
                    job_id: r.get(0)?,
                    state: ChatJobState::Queued,
                    enqueue_time: r.get(2)?,
                    start_time: r.get(3)?,
                    end_time: r.get(4)?,
                    duration: r.get(5)?,
                    estimated_chunks: r.get(6)?,
                    computed_timeout: r.get(7)?,
                    error_message: r.get(8)?,
                    message_uuid: r.get(9)?,
                },
            ))
        })
        .optional()
        .ctx(context)?;
    match row {
        None => Ok(None),
        Some((state, mut status)) => {
            status.state = ChatJobState::parse(&state)
                .ok_or_else(|| StoreError::Internal(format!("job {job_id} has unknown state {state:?}")))?;
            Ok(Some(status))
        }
    }
}

/// A chat index job the chat stage has claimed (committed `running`), to hand back to
/// [`crate::Store::index_chat_jobs`]. Opaque: only the store reads its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedChatJob {
    pub(crate) job_id: String,
    pub(crate) enqueue_ms: i64,
    pub(crate) message_uuid: String,
    pub(crate) start_us: i64,
}

impl ClaimedChatJob {
    /// The job's id (as in [`ChatJobStatus::job_id`]).
    pub fn job_id(&self) -> &str {
        &self.job_id
    }
}

/// Marks the oldest `max` queued jobs `running` and returns them, oldest first.
pub(crate) fn claim_batch(conn: &Connection, max: usize) -> Result<Vec<ClaimedChatJob>, StoreError> {
    let context = "while claiming chat index jobs";
    if max == 0 {
        return Ok(Vec::new());
    }
    let mut select = conn
        .prepare_cached(
            "SELECT job_id, enqueue_ms, message_uuid FROM chat_index_jobs
             WHERE state = 'queued' ORDER BY rowid LIMIT ?1",
        )
        .ctx(context)?;
    let found = select
        .query_map([max as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
        })
        .ctx(context)?
        .collect::<Result<Vec<(String, i64, String)>, _>>()
        .ctx(context)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let start_us = clock::now_epoch_us();
    let start_time = clock::now_iso();
    let mut update = conn
        .prepare_cached(
            "UPDATE chat_index_jobs SET state = 'running', start_time = ?2, start_us = ?3
             WHERE job_id = ?1",
        )
        .ctx(context)?;
    let mut claimed = Vec::with_capacity(found.len());
    for (job_id, enqueue_ms, message_uuid) in found {
        update
            .execute(params![job_id, start_time, start_us])
            .ctx(context)?;
        claimed.push(ClaimedChatJob {
            job_id,
            enqueue_ms,
            message_uuid,
            start_us,
        });
    }
    Ok(claimed)
}

/// True when the job still exists and is `running` (it may have been deleted with its chat).
pub(crate) fn is_running(conn: &Connection, job_id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM chat_index_jobs WHERE job_id = ?1 AND state = 'running'")
        .ctx("while checking a job")?
        .exists([job_id])
        .ctx("while checking a job")
}

/// Ends a running job in `success` or `error`.
pub(crate) fn finish(
    conn: &Connection,
    job: &ClaimedChatJob,
    state: ChatJobState,
    error_message: Option<&str>,
) -> Result<(), StoreError> {
    let context = "while recording the end of a chat index job";
    let duration = (clock::now_epoch_us() - job.start_us).max(0) as f64 / 1e6;
    conn.prepare_cached(
        "UPDATE chat_index_jobs SET state = ?2, end_time = ?3, duration = ?4, error_message = ?5
         WHERE job_id = ?1",
    )
    .ctx(context)?
    .execute(params![
        job.job_id,
        state.as_str(),
        clock::now_iso(),
        duration,
        error_message
    ])
    .ctx(context)?;
    Ok(())
}

/// At open: jobs left `running` by a crash go back to `queued`. Returns how many.
pub(crate) fn requeue_running(conn: &Connection) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE chat_index_jobs SET state = 'queued', start_time = NULL, start_us = NULL
         WHERE state = 'running'",
        [],
    )
    .ctx("while re-queueing jobs left running")
}

/// Every pending job as `(enqueue_ms, job_id)`, for the in-memory tracker.
pub(crate) fn pending(conn: &Connection) -> Result<Vec<(i64, String)>, StoreError> {
    let context = "while listing pending jobs";
    let mut stmt = conn
        .prepare(
            "SELECT enqueue_ms, job_id FROM chat_index_jobs
             WHERE state IN ('queued', 'running')",
        )
        .ctx(context)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).ctx(context)?;
    rows.collect::<Result<Vec<_>, _>>().ctx(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in [
            ChatJobState::Queued,
            ChatJobState::Running,
            ChatJobState::Success,
            ChatJobState::Timeout,
            ChatJobState::Error,
        ] {
            assert_eq!(ChatJobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ChatJobState::parse("done"), None);
    }
}
