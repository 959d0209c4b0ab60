//! Phase 3, mixed load, and the harness behind it: writers, searchers and a
//! `/health` prober running together while the caller does its part (waits a
//! while, or waits for a file job), so every phase under load is measured the
//! same way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use memory_api::search::SearchRequest;
use serde::Serialize;

use super::Ctx;
use crate::client::Client;
use crate::corpus::{self, Rng};
use crate::jobs::{Counts, Drained, check_ack, counts, search, wait_drained};
use crate::stats::Summary;

/// Phase 3: mixed load.
#[derive(Debug, Serialize)]
pub struct Mixed {
    /// Writers and searchers.
    pub clients: usize,
    /// Seconds of load.
    pub secs: f64,
    /// The samples.
    pub load: LoadSummary,
    /// End of the load to pending chat jobs 0, seconds.
    pub drain_secs: f64,
    /// Chat chunks the searches ran over (after the drain).
    pub chat_chunks: Option<i64>,
}

/// The summaries of one stretch of load.
#[derive(Debug, Serialize)]
pub struct LoadSummary {
    /// `/health` every 10 ms on its own connection.
    pub health_ms: Option<Summary>,
    /// `/health` answers slower than 1 s (ChatDO's client timeout).
    pub health_over_1s: usize,
    /// `/search` round trips.
    pub search_ms: Option<Summary>,
    /// Searches per second (all searchers).
    pub searches_per_sec: f64,
    /// Mean results per search.
    pub results_per_search: f64,
    /// `/index-chat-message` round trips.
    pub ack_ms: Option<Summary>,
    /// Acks per second (all writers).
    pub acks_per_sec: f64,
}

/// The raw samples of one stretch of load.
#[derive(Default)]
pub(super) struct Samples {
    health_ms: Vec<f64>,
    search_ms: Vec<f64>,
    results: usize,
    pub(super) ack_ms: Vec<f64>,
    pub(super) secs: f64,
}

impl Samples {
    pub(super) fn summary(&self) -> LoadSummary {
        let per_sec = |n: usize| {
            if self.secs > 0.0 {
                n as f64 / self.secs
            } else {
                0.0
            }
        };
        LoadSummary {
            health_ms: Summary::of(&self.health_ms),
            health_over_1s: self.health_ms.iter().filter(|&&ms| ms > 1000.0).count(),
            search_ms: Summary::of(&self.search_ms),
            searches_per_sec: per_sec(self.search_ms.len()),
            results_per_search: if self.search_ms.is_empty() {
                0.0
            } else {
                self.results as f64 / self.search_ms.len() as f64
            },
            ack_ms: Summary::of(&self.ack_ms),
            acks_per_sec: per_sec(self.ack_ms.len()),
        }
    }
}

/// How the writers and searchers of [`under_load`] pace themselves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Pace {
    /// Each posts (searches) again as soon as its last answer is back: a
    /// stress figure, the most the clients can take from the service.
    FlatOut,
    /// Each writer posts `writes_per_sec` messages a second and each searcher
    /// runs `searches_per_sec` searches a second, on a fixed schedule
    /// ([`due`]): ChatDO's pace, whatever the answers take.
    Paced {
        /// Messages a second per writer.
        writes_per_sec: f64,
        /// Searches a second per searcher.
        searches_per_sec: f64,
    },
}

impl Pace {
    /// ChatDO's pace: 10 messages/s from one writer, 1 search/s.
    pub const CHATDO: Pace = Pace::Paced {
        writes_per_sec: 10.0,
        searches_per_sec: 1.0,
    };

    fn writes(self) -> Option<f64> {
        match self {
            Pace::FlatOut => None,
            Pace::Paced { writes_per_sec, .. } => Some(writes_per_sec),
        }
    }

    fn searches(self) -> Option<f64> {
        match self {
            Pace::FlatOut => None,
            Pace::Paced { searches_per_sec, .. } => Some(searches_per_sec),
        }
    }
}

/// When request `k` (from 0) of a schedule of `rate` a second that began at
/// `start` is due: `start + k / rate`. Fixed deadlines, so a slow answer
/// delays only the requests it overlaps and the rate does not drift.
pub(super) fn due(start: Instant, rate: f64, k: u64) -> Instant {
    start + Duration::from_secs_f64(k as f64 / rate)
}

/// Request `k` of the schedule `(start, rate)`: waits for its due time (in
/// slices of at most 20 ms, so a stop is seen) and returns whether to go
/// on; at once with `true` when unpaced or already late.
fn wait_due(schedule: Option<(Instant, f64)>, k: u64, running: &dyn Fn() -> bool) -> bool {
    let Some((start, rate)) = schedule else {
        return true;
    };
    let at = due(start, rate, k);
    loop {
        let now = Instant::now();
        if now >= at {
            return true;
        }
        if !running() {
            return false;
        }
        std::thread::sleep((at - now).min(Duration::from_millis(20)));
    }
}

/// Runs `writers` writer threads (new messages numbered from `next`),
/// `searchers` search threads (bodies from `query`), both paced by `pace`,
/// and a `/health` prober (every 10 ms, own connection) while `body` runs on
/// this thread; stops them when it returns. A failing thread makes the whole
/// call fail (and `body` sees `failed` set, so it can give up early).
pub(super) fn under_load<T>(
    ctx: &Ctx,
    writers: usize,
    searchers: usize,
    pace: Pace,
    next: &AtomicUsize,
    query: &(dyn Fn(&mut Rng) -> SearchRequest + Sync),
    body: impl FnOnce(&AtomicBool) -> Result<T>,
) -> Result<(Samples, T)> {
    let stop = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    let t0 = Instant::now();
    let running = || !stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed);
    let guard = |r: Result<Vec<f64>>| {
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        r
    };
    let results = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let prober = s.spawn(|| guard(probe_health(ctx, &running)));
        let writer_handles: Vec<_> = (0..writers)
            .map(|_| s.spawn(|| guard(write_new(ctx, next, pace.writes(), &running))))
            .collect();
        let search_handles: Vec<_> = (0..searchers)
            .map(|k| {
                let (results, running, guard) = (&results, &running, &guard);
                s.spawn(move || {
                    guard(search_repeatedly(
                        ctx,
                        k,
                        query,
                        pace.searches(),
                        results,
                        running,
                    ))
                })
            })
            .collect();

        let out = body(&failed);
        stop.store(true, Ordering::Relaxed);
        let mut samples = Samples {
            secs: t0.elapsed().as_secs_f64(),
            ..Samples::default()
        };
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<Vec<f64>>>| {
            h.join().unwrap_or_else(|_| bail!("a load thread panicked"))
        };
        let mut first_err = None;
        let mut take = |r: Result<Vec<f64>>, into: &mut Vec<f64>| match r {
            Ok(v) => into.extend(v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        };
        take(join(prober), &mut samples.health_ms);
        for h in writer_handles {
            take(join(h), &mut samples.ack_ms);
        }
        for h in search_handles {
            take(join(h), &mut samples.search_ms);
        }
        samples.results = results.load(Ordering::Relaxed);
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok((samples, out?))
    })
}

/// The prober of [`under_load`]: `/health` every 10 ms (on a fixed tick, not
/// 10 ms after each answer) while `running`; returns the latencies, ms.
fn probe_health(ctx: &Ctx, running: &dyn Fn() -> bool) -> Result<Vec<f64>> {
    let c = ctx.client();
    let mut lat = Vec::new();
    let mut tick = Instant::now();
    while running() {
        let t = Instant::now();
        c.get("/health")?
            .json_200::<serde::de::IgnoredAny>("GET /health under load")?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        tick += Duration::from_millis(10);
        let now = Instant::now();
        if tick > now {
            std::thread::sleep(tick - now);
        } else {
            tick = now;
        }
    }
    Ok(lat)
}

/// A writer of [`under_load`]: new messages numbered from `next` while
/// `running`, `rate` a second on a fixed schedule when given (else back to
/// back); returns the ack latencies, ms.
fn write_new(
    ctx: &Ctx,
    next: &AtomicUsize,
    rate: Option<f64>,
    running: &dyn Fn() -> bool,
) -> Result<Vec<f64>> {
    let c = ctx.client();
    let mut lat = Vec::new();
    let schedule = rate.map(|r| (Instant::now(), r));
    let mut k = 0;
    while running() && wait_due(schedule, k, running) {
        k += 1;
        let i = next.fetch_add(1, Ordering::Relaxed);
        let body = corpus::message_body(i, &corpus::message(i));
        let t = Instant::now();
        let a = c.post("/index-chat-message", &body)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        check_ack(a, i)?;
    }
    Ok(lat)
}

/// Searcher `k` of [`under_load`]: bodies from `query` (its own seeded
/// generator) while `running`, `rate` a second on a fixed schedule when
/// given (else back to back); adds result counts to `results`, returns the
/// latencies, ms.
fn search_repeatedly(
    ctx: &Ctx,
    k: usize,
    query: &(dyn Fn(&mut Rng) -> SearchRequest + Sync),
    rate: Option<f64>,
    results: &AtomicUsize,
    running: &dyn Fn() -> bool,
) -> Result<Vec<f64>> {
    let c = ctx.client();
    let mut rng = Rng::new(0xC0FFEE + k as u64);
    let mut lat = Vec::new();
    let schedule = rate.map(|r| (Instant::now(), r));
    let mut n = 0;
    while running() && wait_due(schedule, n, running) {
        n += 1;
        let q = query(&mut rng);
        let t = Instant::now();
        let r = search(&c, &q)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        results.fetch_add(r.len(), Ordering::Relaxed);
    }
    Ok(lat)
}

/// The `body` of [`under_load`] that lets the load run for `d` (checking
/// every 20 ms whether a thread failed).
pub(super) fn for_duration(d: Duration) -> impl FnOnce(&AtomicBool) -> Result<()> {
    move |failed| {
        let end = Instant::now() + d;
        while Instant::now() < end && !failed.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// A query body over the chat project; markers of messages `0..n`.
pub(super) fn chat_query(n: usize) -> impl Fn(&mut Rng) -> SearchRequest + Sync {
    move |rng: &mut Rng| {
        let q = corpus::query(rng, &|r: &mut Rng| corpus::message_marker(r.below(n)));
        crate::jobs::search_body(corpus::PROJECT, &q, 10, None)
    }
}

pub(super) fn mixed(ctx: &Ctx, next: &AtomicUsize) -> Result<Mixed> {
    let c = ctx.client();
    let before = counts(&c)?;
    let first = next.load(Ordering::Relaxed);
    let query = chat_query(first);
    let duration = Duration::from_secs(ctx.size.duration_secs);
    let (samples, ()) = under_load(
        ctx,
        ctx.size.clients,
        ctx.size.clients,
        Pace::FlatOut,
        next,
        &query,
        for_duration(duration),
    )?;
    let t = Instant::now();
    let posted = samples.ack_ms.len() as u64;
    let drained = drain(ctx, &c, before, posted)?;
    Ok(Mixed {
        clients: ctx.size.clients,
        secs: samples.secs,
        load: samples.summary(),
        drain_secs: drained.at.saturating_duration_since(t).as_secs_f64(),
        chat_chunks: ctx.chunk_counts().map(|c| c.0),
    })
}

/// Waits until the `posted` messages since `before` are indexed; fails on errors.
pub(super) fn drain(ctx: &Ctx, c: &Client, before: Counts, posted: u64) -> Result<Drained> {
    let never = AtomicBool::new(false);
    let d = wait_drained(
        c,
        before.indexed + before.errors + posted,
        &|| true,
        &never,
        &|k| ctx.note(&format!("draining: {} pending", k.pending)),
    )?;
    let errors = d.counts.errors - before.errors;
    if errors > 0 {
        bail!("{errors} acknowledged chat message(s) ended with their index job in `error`");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_fixed_deadlines_from_the_start() {
        let start = Instant::now();
        assert_eq!(due(start, 10.0, 0), start);
        assert_eq!(due(start, 10.0, 1), start + Duration::from_millis(100));
        assert_eq!(due(start, 10.0, 25), start + Duration::from_millis(2500));
        assert_eq!(due(start, 1.0, 3), start + Duration::from_secs(3));
        // No drift: request 10 000 at 10/s is due at exactly 1000 s.
        assert_eq!(due(start, 10.0, 10_000), start + Duration::from_secs(1000));
        assert_eq!(due(start, 0.5, 2), start + Duration::from_secs(4));
    }

    #[test]
    fn a_late_or_unpaced_request_goes_at_once_and_a_stop_ends_the_wait() {
        let past = Instant::now() - Duration::from_secs(10);
        assert!(wait_due(Some((past, 10.0)), 3, &|| false), "late: go");
        assert!(wait_due(None, 1_000_000, &|| false), "unpaced: go");
        let future = Instant::now() + Duration::from_secs(3600);
        assert!(!wait_due(Some((future, 1.0)), 0, &|| false), "stopped: stop");
    }
}
