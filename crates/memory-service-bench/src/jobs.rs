//! Talking to the chat index the way every benchmark must: check each
//! `/index-chat-message` acknowledgement, and wait (polling `/metrics`, never
//! sleeping a guessed time) until every acknowledged message is indexed, so a
//! search measured afterwards runs over the whole store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use memory_api::chat::Queued;
use memory_api::search::{SearchRequest, SearchResult, SearchResults};

use crate::client::{self, Client};
use crate::proc::HANG_GUARD;

/// The store's counters from `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    /// `memory_service_store_pending_chat_jobs`.
    pub pending: u64,
    /// `memory_service_store_messages_indexed_total`.
    pub indexed: u64,
    /// `memory_service_store_index_errors_total`.
    pub errors: u64,
}

/// Reads [`Counts`] from `GET /metrics`.
pub fn counts(c: &Client) -> Result<Counts> {
    let a = c.get("/metrics")?;
    if a.status != 200 {
        bail!("GET /metrics: HTTP {}", a.status);
    }
    let get = |name: &str| {
        client::metric(&a.body, name)
            .map(|v| v as u64)
            .with_context(|| format!("GET /metrics has no {name}"))
    };
    Ok(Counts {
        pending: get("memory_service_store_pending_chat_jobs")?,
        indexed: get("memory_service_store_messages_indexed_total")?,
        errors: get("memory_service_store_index_errors_total")?,
    })
}

/// How the chat indexer caught up.
pub struct Drained {
    /// The poll that saw it drained.
    pub at: Instant,
    /// Most pending jobs seen.
    pub peak_pending: u64,
    /// The counts then.
    pub counts: Counts,
    /// The first poll that saw writing over, and the counts then.
    pub writing_done: Option<(Instant, Counts)>,
}

/// Polls `/metrics` every 50 ms until writing is over (`writing_done`), no
/// chat job is pending, and `target` jobs have ended (indexed + errors). Fails
/// if `failed` is set or nothing is indexed for [`HANG_GUARD`] while jobs wait.
/// `progress` is called about every 5 s.
pub fn wait_drained(
    c: &Client,
    target: u64,
    writing_done: &dyn Fn() -> bool,
    failed: &AtomicBool,
    progress: &dyn Fn(Counts),
) -> Result<Drained> {
    let mut peak = 0;
    let mut done_seen = None;
    let mut last_change = (Instant::now(), u64::MAX);
    let mut last_report = Instant::now();
    loop {
        if failed.load(Ordering::Relaxed) {
            bail!("stopped: a client failed");
        }
        let done = writing_done();
        let k = counts(c)?;
        let now = Instant::now();
        peak = peak.max(k.pending);
        if done && done_seen.is_none() {
            done_seen = Some((now, k));
        }
        if done && k.pending == 0 && k.indexed + k.errors >= target {
            return Ok(Drained {
                at: now,
                peak_pending: peak,
                counts: k,
                writing_done: done_seen,
            });
        }
        if k.indexed + k.errors != last_change.1 {
            last_change = (now, k.indexed + k.errors);
        } else if k.pending > 0 && now - last_change.0 > HANG_GUARD {
            bail!(
                "chat indexing stalled: {} jobs pending, none finished for {HANG_GUARD:?} (indexed {}, errors {})",
                k.pending,
                k.indexed,
                k.errors
            );
        } else if done && k.pending == 0 && now - last_change.0 > HANG_GUARD {
            bail!(
                "no chat job pending, but only {} of {target} ended (indexed {}, errors {})",
                k.indexed + k.errors,
                k.indexed,
                k.errors
            );
        }
        if now - last_report > Duration::from_secs(5) {
            progress(k);
            last_report = now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the `/index-chat-message` answer; returns the job id.
pub fn check_ack(a: client::Answer, i: usize) -> Result<String> {
    let v: Queued = a.json_200(&format!("POST /index-chat-message (message m-{i})"))?;
    if v.status != "queued" {
        bail!(
            "POST /index-chat-message (message m-{i}): status is {:?}, not \"queued\"",
            v.status
        );
    }
    if v.job_id.is_empty() {
        bail!("POST /index-chat-message (message m-{i}): an empty job_id in {v:?}");
    }
    Ok(v.job_id)
}

/// `POST /search` with `body`; returns the results.
pub fn search(c: &Client, body: &SearchRequest) -> Result<Vec<SearchResult>> {
    let v: SearchResults = c
        .post("/search", body)?
        .json_200(&format!("POST /search {body:?}"))?;
    Ok(v.results)
}

/// A `/search` body: `query` in `project`, at most `limit` results, over
/// `source_ids` if given.
pub fn search_body(project: &str, query: &str, limit: i64, source_ids: Option<Vec<String>>) -> SearchRequest {
    SearchRequest {
        project_id: project.to_string(),
        query: query.to_string(),
        limit,
        source_ids,
        chat_id: None,
        exclude_chat_ids: None,
    }
}
