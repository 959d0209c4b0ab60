//! Phases 1 and 2: the fill (as many messages as the writers can get
//! acknowledged, then every one indexed, sampled jobs and markers checked) and
//! the bare FTS5 table fed the same rows, the yardstick for the fill's rate.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use memory_api::chat::{ChatJobState, ChatJobStatus};
use serde::Serialize;

use super::{Ctx, summary};
use crate::baseline;
use crate::corpus;
use crate::jobs::{Counts, Drained, check_ack, counts, search, search_body, wait_drained};
use crate::stats::Summary;

/// Phase 1: the fill.
#[derive(Debug, Serialize)]
pub struct Fill {
    /// Messages posted.
    pub messages: usize,
    /// Bytes of message text posted.
    pub bytes: u64,
    /// POST to 200 of `/index-chat-message`.
    pub ack_ms: Summary,
    /// Messages acknowledged per second (first post to last ack).
    pub acks_per_sec: f64,
    /// First post to the last message indexed (pending jobs 0), seconds.
    pub indexed_secs: f64,
    /// Messages indexed per second over `indexed_secs`.
    pub indexed_per_sec: f64,
    /// Last ack to pending jobs 0, seconds.
    pub index_lag_after_last_ack_secs: f64,
    /// Most pending chat jobs seen (polled every 50 ms).
    pub peak_pending_jobs: u64,
    /// The indexer's rate alone: jobs pending when the last writer finished,
    /// per second until none were (`None` when under 100 were left).
    pub catch_up_per_sec: Option<f64>,
    /// Sampled jobs checked `success` through `/index-job-status`.
    pub jobs_checked: usize,
    /// Messages found by their marker through `/search`.
    pub markers_found: usize,
    /// Chat chunks in the database afterwards.
    pub chat_chunks: Option<i64>,
}

/// Phase 2: the bare FTS5 baseline.
#[derive(Debug, Serialize)]
pub struct Baseline {
    /// The same rows, 1000 per transaction.
    pub batched: baseline::Run,
    /// The same rows, one transaction each (a durable commit per row, like
    /// the service), stopped after 2 s.
    pub per_row: baseline::Run,
    /// Service indexed/s : bare rows/s (batched).
    pub ratio: f64,
    /// Service indexed/s : bare rows/s (one commit per row).
    pub ratio_per_row: f64,
}

/// One fill writer's ack latencies, sampled (message, job id) pairs, last ack.
type WriterOut = (Vec<f64>, Vec<(usize, String)>, Instant);

/// What the writers and the watcher of the fill saw.
struct Posted {
    /// Every ack latency, ms.
    lat: Vec<f64>,
    /// About 100 (message, job id) pairs spread over the run, to check.
    jobs: Vec<(usize, String)>,
    /// The last ack.
    last_ack: Instant,
    /// When the last job ended.
    drained: Drained,
}

/// Phase 1: posts `messages` from the writers, waits until all are indexed,
/// checks sampled jobs and markers.
pub(super) fn fill(ctx: &Ctx, messages: &[String]) -> Result<Fill> {
    let n = messages.len();
    let before = counts(&ctx.client())?;
    let t0 = Instant::now();
    let mut p = post_and_wait(ctx, messages, before, t0)?;
    let errors = p.drained.counts.errors - before.errors;
    if errors > 0 {
        bail!(
            "{errors} acknowledged chat message(s) ended with their index job in `error` (see /metrics memory_service_store_index_errors_total)"
        );
    }
    p.jobs.sort();
    check_jobs(ctx, &p.jobs)?;
    let markers_found = check_markers(ctx, n)?;

    let (drained, last_ack) = (&p.drained, p.last_ack);
    let indexed_secs = (drained.at - t0).as_secs_f64();
    Ok(Fill {
        messages: n,
        bytes: messages.iter().map(|m| m.len() as u64).sum(),
        ack_ms: summary(&p.lat)?,
        acks_per_sec: n as f64 / (last_ack - t0).as_secs_f64(),
        indexed_secs,
        indexed_per_sec: n as f64 / indexed_secs,
        index_lag_after_last_ack_secs: drained.at.saturating_duration_since(last_ack).as_secs_f64(),
        peak_pending_jobs: drained.peak_pending,
        catch_up_per_sec: drained.writing_done.and_then(|(t, k)| {
            let secs = drained.at.saturating_duration_since(t).as_secs_f64();
            (k.pending >= 100 && secs > 0.0).then(|| k.pending as f64 / secs)
        }),
        jobs_checked: p.jobs.len(),
        markers_found,
        chat_chunks: ctx.chunk_counts().map(|c| c.0),
    })
}

/// Runs the writers while this thread watches `/metrics` until every message
/// is indexed (`before`: the counts before the first post at `t0`).
fn post_and_wait(ctx: &Ctx, messages: &[String], before: Counts, t0: Instant) -> Result<Posted> {
    let n = messages.len();
    let clients = ctx.size.clients;
    let watch = ctx.client();
    let next = AtomicUsize::new(0);
    let acked = AtomicUsize::new(0);
    let writers_done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let (writer_results, drained) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let r = write_messages(ctx, messages, &next, &acked, &failed);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    writers_done.fetch_add(1, Ordering::Relaxed);
                    r
                })
            })
            .collect();
        let progress = |k: Counts| {
            ctx.note(&format!(
                "{:.0} s: {} of {n} acknowledged, {} indexed, {} pending",
                t0.elapsed().as_secs_f64(),
                acked.load(Ordering::Relaxed),
                k.indexed - before.indexed,
                k.pending
            ))
        };
        let drained = wait_drained(
            &watch,
            before.indexed + before.errors + n as u64,
            &|| writers_done.load(Ordering::Relaxed) == clients,
            &failed,
            &progress,
        );
        if drained.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a writer thread panicked")))
            .collect();
        (results, drained)
    });
    let (mut lat, mut jobs, mut last_ack) = (Vec::new(), Vec::new(), t0);
    for r in writer_results {
        let (l, j, last) = r?;
        lat.extend(l);
        jobs.extend(j);
        last_ack = last_ack.max(last);
    }
    Ok(Posted {
        lat,
        jobs,
        last_ack,
        drained: drained?,
    })
}

/// One writer: posts messages by shared index until none is left (or another
/// thread failed), keeping the job id of about 100 of them.
fn write_messages(
    ctx: &Ctx,
    messages: &[String],
    next: &AtomicUsize,
    acked: &AtomicUsize,
    failed: &AtomicBool,
) -> Result<WriterOut> {
    let n = messages.len();
    let stride = (n / 100).max(1);
    let c = ctx.client();
    let (mut lat, mut jobs) = (Vec::with_capacity(n / ctx.size.clients + 1), Vec::new());
    let mut last = Instant::now();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n || failed.load(Ordering::Relaxed) {
            return Ok((lat, jobs, last));
        }
        let body = corpus::message_body(i, &messages[i]);
        let t = Instant::now();
        let a = c.post("/index-chat-message", &body)?;
        last = Instant::now();
        lat.push((last - t).as_secs_f64() * 1e3);
        let job = check_ack(a, i)?;
        acked.fetch_add(1, Ordering::Relaxed);
        if i.is_multiple_of(stride) {
            jobs.push((i, job));
        }
    }
}

/// Every sampled job must say `success` once all jobs are done.
fn check_jobs(ctx: &Ctx, jobs: &[(usize, String)]) -> Result<()> {
    let c = ctx.client();
    for (i, job) in jobs {
        let v: ChatJobStatus = c
            .get(&format!("/index-job-status/{job}"))?
            .json_200(&format!("GET /index-job-status/{job} (message m-{i})"))?;
        match v.state {
            ChatJobState::Success => {}
            ChatJobState::Error => bail!(
                "message m-{i} was acknowledged but its job {job} ended in error: {}",
                v.error_message.as_deref().unwrap_or("no error message")
            ),
            other => bail!("message m-{i}: job {job} is {other:?} after every job was done, not \"success\""),
        }
    }
    Ok(())
}

/// 20 messages spread over `0..n` must each be found by their marker;
/// returns how many were checked.
fn check_markers(ctx: &Ctx, n: usize) -> Result<usize> {
    let c = ctx.client();
    let mut markers_found = 0;
    for i in (0..n).step_by((n / 20).max(1)) {
        let body = search_body(corpus::PROJECT, &corpus::message_marker(i), 5, None);
        let results = search(&c, &body)?;
        let want = format!("m-{i}");
        if !results
            .iter()
            .any(|r| r.message_id.as_deref() == Some(want.as_str()))
        {
            bail!(
                "message m-{i} was acknowledged and indexed, but /search for its marker {} does not return it ({} results)",
                corpus::message_marker(i),
                results.len()
            );
        }
        markers_found += 1;
    }
    Ok(markers_found)
}

/// Phase 2: the same rows into a bare FTS5 table, 1000 per transaction and
/// one per transaction (2 s).
pub(super) fn chat_baseline(ctx: &Ctx, messages: &[String], service_per_sec: f64) -> Result<Baseline> {
    let dir = ctx.root.join("baseline");
    std::fs::create_dir_all(&dir).context("creating the baseline directory")?;
    let texts = || messages.iter().map(String::as_str);
    let batched = baseline::run(&dir.join("chat-batched.sqlite"), 1000, texts(), None)?;
    let per_row = baseline::run(
        &dir.join("chat-per-row.sqlite"),
        1,
        texts(),
        Some(Duration::from_secs(2)),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Baseline {
        ratio: service_per_sec / batched.rows_per_sec(),
        ratio_per_row: service_per_sec / per_row.rows_per_sec(),
        batched,
        per_row,
    })
}
