//! In-memory counters ([`StoreStats`]) and the pending-job tracker. Everything here is
//! read without touching the database and without waiting on anything slow: `/health`
//! and `/metrics` call [`crate::Store::stats`] and must answer in microseconds even when
//! the writer is busy. Updated by the writer thread after each commit.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::clock;

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// The writer thread ended while the store was open (every write fails).
    pub writer_exited: bool,
    /// A chat stage ended without being asked to while the store was open (messages
    /// are acknowledged but no longer indexed).
    pub indexer_exited: bool,
    /// Write requests sent to the writer thread and not yet picked up.
    pub writer_queue_depth: u64,
    /// Chat index jobs queued or running.
    pub pending_chat_jobs: u64,
    /// Age in ms of the oldest pending chat job (0 when none).
    pub oldest_pending_job_age_ms: u64,
    /// Transactions committed by the writer (one per group of writes).
    pub commits: u64,
    /// Write requests committed (a commit may carry several).
    pub writes_committed: u64,
    /// Sum of commit latencies (BEGIN to COMMIT done) in microseconds.
    pub commit_latency_total_us: u64,
    /// Largest commit latency seen, in microseconds.
    pub commit_latency_max_us: u64,
    /// Transactions that failed to commit.
    pub commit_failures: u64,
    /// Chat messages indexed successfully (jobs that ended in `success`).
    pub messages_indexed: u64,
    /// Chat index jobs that ended in `error`.
    pub index_errors: u64,
    /// Forced WAL checkpoints that reset the WAL (it had grown past the limit).
    pub wal_checkpoints: u64,
    /// Forced checkpoints that gave up (readers still on the WAL); retried later.
    pub wal_checkpoints_busy: u64,
    /// Longest writer stall caused by a forced checkpoint, in microseconds.
    pub wal_checkpoint_stall_max_us: u64,
    /// Sum of writer stalls caused by forced checkpoints, in microseconds.
    pub wal_checkpoint_stall_total_us: u64,
    /// True once `shutdown` has started.
    pub shut_down: bool,
    /// The last write failed because the disk is full (`SQLITE_FULL`); cleared by the
    /// next commit that writes something, or by [`crate::Store::clear_disk_full`].
    pub disk_full: bool,
    /// Damage SQLite reported (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) on any connection,
    /// or the problems of the last [`crate::Store::quick_check`], one per line; `None`
    /// while none was seen. Cleared only by a `quick_check` that finds none.
    pub damage: Option<String>,
}

/// Monotone counters shared by the writer, the chat steps and the handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub queue_depth: AtomicU64,
    pub commits: AtomicU64,
    pub writes_committed: AtomicU64,
    pub commit_us_total: AtomicU64,
    pub commit_us_max: AtomicU64,
    pub commit_failures: AtomicU64,
    pub messages_indexed: AtomicU64,
    pub index_errors: AtomicU64,
    pub wal_checkpoints: AtomicU64,
    pub wal_checkpoints_busy: AtomicU64,
    pub wal_stall_us_max: AtomicU64,
    pub wal_stall_us_total: AtomicU64,
    pub shut_down: AtomicBool,
    pub disk_full: AtomicBool,
    pub damage: Mutex<Option<String>>,
}

impl Counters {
    /// Records one committed transaction carrying `writes` requests.
    pub fn record_commit(&self, latency: Duration, writes: usize) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes_committed.fetch_add(writes as u64, Ordering::Relaxed);
        self.commit_us_total.fetch_add(us, Ordering::Relaxed);
        self.commit_us_max.fetch_max(us, Ordering::Relaxed);
    }

    /// Records damage SQLite reported (the first report is kept until a clean check).
    pub fn note_damage(&self, what: &str) {
        let mut damage = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        if damage.is_none() {
            *damage = Some(what.to_string());
        }
    }

    /// Records one forced WAL checkpoint attempt that held the writer for `stall`.
    pub fn record_checkpoint(&self, stall: Duration, reset: bool) {
        let us = u64::try_from(stall.as_micros()).unwrap_or(u64::MAX);
        let n = if reset {
            &self.wal_checkpoints
        } else {
            &self.wal_checkpoints_busy
        };
        n.fetch_add(1, Ordering::Relaxed);
        self.wal_stall_us_total.fetch_add(us, Ordering::Relaxed);
        self.wal_stall_us_max.fetch_max(us, Ordering::Relaxed);
    }
}

/// The set of pending (queued or running) chat jobs, mirrored in memory so that the
/// count and the oldest age can be read from atomics, and `wait_idle` can block on it.
#[derive(Debug, Default)]
pub(crate) struct PendingJobs {
    /// (enqueue epoch ms, job id).
    set: Mutex<BTreeSet<(i64, String)>>,
    changed: Condvar,
    count: AtomicU64,
    /// Enqueue epoch ms of the oldest pending job, 0 when none.
    oldest_ms: AtomicI64,
}

impl PendingJobs {
    /// A job became pending (after its enqueue committed, or found at open).
    pub fn add(&self, enqueue_ms: i64, job_id: String) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert((enqueue_ms, job_id));
        self.publish(&set);
    }

    /// Several jobs are no longer pending; one wake-up for all.
    pub fn remove_all<'a>(&self, jobs: impl IntoIterator<Item = (i64, &'a str)>) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        for (ms, id) in jobs {
            changed |= set.remove(&(ms, id.to_string()));
        }
        if changed {
            self.publish(&set);
        }
    }

    /// A job is no longer pending (finished or deleted). Unknown jobs are ignored.
    pub fn remove(&self, enqueue_ms: i64, job_id: &str) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        if set.remove(&(enqueue_ms, job_id.to_string())) {
            self.publish(&set);
        }
    }

    fn publish(&self, set: &BTreeSet<(i64, String)>) {
        self.count.store(set.len() as u64, Ordering::Release);
        let oldest = set.first().map(|(ms, _)| *ms).unwrap_or(0);
        self.oldest_ms.store(oldest, Ordering::Release);
        self.changed.notify_all();
    }

    /// Number of pending jobs (lock-free).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Age of the oldest pending job in ms (lock-free), 0 when none.
    pub fn oldest_age_ms(&self) -> u64 {
        match self.oldest_ms.load(Ordering::Acquire) {
            0 => 0,
            ms => u64::try_from(clock::now_epoch_ms().saturating_sub(ms)).unwrap_or(0),
        }
    }

    /// Blocks until no job is pending or `timeout` passes; true when idle.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        while !set.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            set = self
                .changed
                .wait_timeout(set, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_tracks_count_and_oldest() {
        let p = PendingJobs::default();
        assert_eq!((p.count(), p.oldest_age_ms()), (0, 0));
        let old = clock::now_epoch_ms() - 5_000;
        p.add(old, "a".into());
        p.add(old + 4_000, "b".into());
        assert_eq!(p.count(), 2);
        assert!(p.oldest_age_ms() >= 5_000);
        p.remove(old, "a");
        p.remove(old, "nope");
        assert_eq!(p.count(), 1);
        assert!(p.oldest_age_ms() < 5_000);
        assert!(!p.wait_empty(Duration::from_millis(10)));
        p.remove(old + 4_000, "b");
        assert!(p.wait_empty(Duration::from_millis(10)));
    }
}
