//! The writer thread: the only connection that writes. Callers hand it closures over
//! a channel; it runs every request already waiting in ONE transaction (group commit),
//! each inside its own savepoint so one failing request does not sink the others, and
//! answers each caller only after the COMMIT. It must not run slow non-database work,
//! since every write in the process queues behind it. After commits it keeps the WAL
//! bounded ([`WalGuard`]): steady readers stop SQLite's passive checkpoints from ever
//! resetting the WAL, so past a size limit it forces one, with a short bounded wait.

use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{SqlContext, StoreError};
use crate::stats::Counters;

/// Most requests folded into one transaction.
const MAX_BATCH: usize = 256;
/// Requests allowed to wait in the channel before new ones are refused (503).
const MAX_QUEUE: u64 = 10_000;

/// Shortest wait for readers in a forced checkpoint (the writer, so every write, stalls
/// meanwhile). The wait adapts: doubled after an attempt that gave up (the searches in
/// flight took longer), halved after one that succeeded, within this and
/// [`CHECKPOINT_WAIT_MAX`].
const CHECKPOINT_WAIT: Duration = Duration::from_millis(25);
/// Longest wait for readers in one forced checkpoint (acks are given 2 s).
const CHECKPOINT_WAIT_MAX: Duration = Duration::from_millis(400);
/// After an attempt gave up, the next one comes once the WAL grew by another quarter of
/// the limit, or this long after, whichever is first: the stall is paid at most once per
/// limit/4 bytes written (or per second), whatever the readers do.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

/// Keeps the WAL file under a size limit. SQLite's automatic checkpoints are passive:
/// they copy pages back but can only *reset* the WAL (write from its start again) when
/// no reader is using it, which never happens under steady searches, so the file grows
/// without bound. After a commit, when the file is over the limit (one `stat`), the
/// writer runs `wal_checkpoint(TRUNCATE)` with a short busy timeout: new readers read
/// the database file meanwhile and are never blocked; the writer waits only for reads
/// already in flight, and gives up (retrying later) rather than stall for long.
pub(crate) struct WalGuard {
    wal_path: PathBuf,
    /// 0: disabled.
    limit: u64,
    /// The connection's usual busy timeout, restored after a checkpoint.
    busy_timeout: Duration,
    /// Current wait for readers.
    wait: Duration,
    /// After an attempt that gave up: (when, WAL size then).
    gave_up: Option<(Instant, u64)>,
}

impl WalGuard {
    /// A guard for the WAL of database `db` (`<db>-wal`); `limit` 0 disables it.
    pub fn new(db: &Path, limit: u64, busy_timeout: Duration) -> Self {
        let mut wal = OsString::from(db.as_os_str());
        wal.push("-wal");
        WalGuard {
            wal_path: PathBuf::from(wal),
            limit,
            busy_timeout,
            wait: CHECKPOINT_WAIT,
            gave_up: None,
        }
    }

    /// A guard that never checkpoints.
    #[cfg(test)]
    pub fn disabled() -> Self {
        WalGuard::new(Path::new(""), 0, Duration::from_secs(2))
    }

    /// Called after each batch: forces a checkpoint when the WAL is over the limit.
    fn after_commit(&mut self, conn: &Connection, counters: &Counters) {
        if self.limit == 0 {
            return;
        }
        let size = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if size <= self.limit {
            return;
        }
        if let Some((at, then)) = self.gave_up
            && size < then.saturating_add(self.limit / 4)
            && at.elapsed() < CHECKPOINT_RETRY
        {
            return;
        }
        let started = Instant::now();
        let _ = conn.busy_timeout(self.wait);
        // (busy, WAL frames, frames checkpointed); busy = 1 when readers kept it from
        // finishing.
        let outcome = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
        let _ = conn.busy_timeout(self.busy_timeout);
        let reset = matches!(outcome, Ok(0));
        counters.record_checkpoint(started.elapsed(), reset);
        if reset {
            self.wait = (self.wait / 2).max(CHECKPOINT_WAIT);
            self.gave_up = None;
        } else {
            self.wait = (self.wait * 2).min(CHECKPOINT_WAIT_MAX);
            self.gave_up = Some((Instant::now(), size));
        }
    }
}

/// Runs after the batch's COMMIT (`Ok`) or its failure (`Err`), on the writer thread.
type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// A type-erased write request.
trait Request: Send {
    /// Runs the request inside the open transaction. `Ok` = keep its changes; `Err` = roll
    /// back its savepoint. Either way the completion is called after the batch ends. A
    /// failure because the disk is full is recorded in `counters` (`/health` says so).
    fn run(self: Box<Self>, conn: &Connection, counters: &Counters) -> Result<Completion, Completion>;
    /// Fails the request without running it.
    fn fail(self: Box<Self>, err: StoreError);
}

/// A request returning `T`, with a hook run on commit before the caller is answered.
struct Typed<T, F, H> {
    work: F,
    on_commit: H,
    reply: SyncSender<Result<T, StoreError>>,
}

impl<T, F, H> Request for Typed<T, F, H>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    H: FnOnce(&T) + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, counters: &Counters) -> Result<Completion, Completion> {
        let Typed {
            work,
            on_commit,
            reply,
        } = *self;
        match work(conn) {
            Ok(value) => Ok(Box::new(move |committed: Result<(), &StoreError>| {
                let _ = match committed {
                    Ok(()) => {
                        on_commit(&value);
                        reply.send(Ok(value))
                    }
                    Err(e) => reply.send(Err(e.duplicate())),
                };
            })),
            Err(e) => {
                if e.is_disk_full() {
                    counters.disk_full.store(true, Ordering::Relaxed);
                }
                Err(Box::new(move |_| {
                    let _ = reply.send(Err(e));
                }))
            }
        }
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

enum Msg {
    Write(Box<dyn Request>),
    /// Drain, checkpoint, close, then answer.
    Shutdown(SyncSender<Result<(), StoreError>>),
    /// Exit at once, leaking the connection (crash simulation in tests).
    Abandon,
}

/// How long a caller waits for the writer's answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Give up with [`StoreError::Unavailable`] after this long (request handlers).
    Bounded(Duration),
    /// Wait as long as it takes (the indexer, which must not give up on its job).
    Forever,
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: Sender<Msg>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Moves `conn` (already migrated) onto a new writer thread.
    pub fn spawn(
        conn: Connection,
        counters: Arc<Counters>,
        wal: WalGuard,
    ) -> Result<(Writer, JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel();
        let thread_counters = Arc::clone(&counters);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, rx, thread_counters, wal))
            .map_err(|cause| StoreError::Io {
                context: "while starting the writer thread".into(),
                cause,
            })?;
        Ok((Writer { tx, counters }, handle))
    }

    /// Runs `work` in a write transaction; returns its value once committed.
    #[cfg(test)]
    pub fn execute<T, F>(&self, wait: Wait, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.execute_then(wait, work, |_| {})
    }

    /// Like [`Writer::execute`]; `on_commit` runs on the writer thread right after the
    /// commit, before the caller is answered (used to keep in-memory state in commit order).
    pub fn execute_then<T, F, H>(&self, wait: Wait, work: F, on_commit: H) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        H: FnOnce(&T) + Send + 'static,
    {
        // Back-pressure for request handlers only; the indexer must never be refused.
        if matches!(wait, Wait::Bounded(_)) && self.counters.queue_depth.load(Ordering::Relaxed) >= MAX_QUEUE
        {
            return Err(StoreError::Unavailable(format!(
                "writer queue is full ({MAX_QUEUE} requests waiting)"
            )));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let request = Typed {
            work,
            on_commit,
            reply,
        };
        self.counters.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Write(Box::new(request))).is_err() {
            self.counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable("the writer has stopped".into()));
        }
        let dropped = || {
            StoreError::Internal(
                "the writer dropped the request (it panicked, or the store was shutting down)".into(),
            )
        };
        let result = match wait {
            Wait::Forever => answer.recv().map_err(|_| dropped()).and_then(|r| r),
            Wait::Bounded(limit) => match answer.recv_timeout(limit) {
                Ok(result) => result,
                Err(RecvTimeoutError::Timeout) => Err(StoreError::Unavailable(format!(
                    "the writer did not answer within {} ms",
                    limit.as_millis()
                ))),
                Err(RecvTimeoutError::Disconnected) => Err(dropped()),
            },
        };
        if let Err(e) = &result
            && e.is_damage()
        {
            self.counters.note_damage(&e.to_string());
        }
        result
    }

    /// Asks the thread to commit what is queued, checkpoint the WAL and close; waits.
    pub fn shutdown(&self) -> Result<(), StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.counters.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Shutdown(reply)).is_err() {
            self.counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Ok(()); // already gone
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Internal("the writer thread died".into())))
    }

    /// Stops the thread at once: nothing queued is committed, no checkpoint (tests only).
    pub fn abandon(&self) {
        let _ = self.tx.send(Msg::Abandon);
    }
}

/// The thread body.
fn run(conn: Connection, rx: Receiver<Msg>, counters: Arc<Counters>, mut wal: WalGuard) {
    let mut stop: Option<SyncSender<Result<(), StoreError>>> = None;
    while stop.is_none() {
        let Ok(first) = rx.recv() else {
            return; // every handle dropped without shutdown: nothing left to answer
        };
        if matches!(first, Msg::Abandon) {
            // Like a kill: no commit of anything queued, no checkpoint, no close.
            std::mem::forget(conn);
            return;
        }
        let batch = collect(first, &rx, &counters, &mut stop);
        commit_batch(&conn, batch, &counters);
        wal.after_commit(&conn, &counters);
    }
    // Graceful stop: commit what was already queued, then refuse the rest.
    loop {
        let batch: Vec<Box<dyn Request>> = rx
            .try_iter()
            .take(MAX_BATCH)
            .filter_map(|m| {
                counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
                match m {
                    Msg::Write(r) => Some(r),
                    Msg::Shutdown(r) => {
                        let _ = r.send(Ok(()));
                        None
                    }
                    Msg::Abandon => None,
                }
            })
            .collect();
        if batch.is_empty() {
            break;
        }
        commit_batch(&conn, batch, &counters);
    }
    drop(rx);
    let result = checkpoint_and_close(conn);
    if let Some(reply) = stop {
        let _ = reply.send(result);
    }
}

/// `first` plus whatever is already waiting, up to [`MAX_BATCH`].
fn collect(
    first: Msg,
    rx: &Receiver<Msg>,
    counters: &Counters,
    stop: &mut Option<SyncSender<Result<(), StoreError>>>,
) -> Vec<Box<dyn Request>> {
    let mut batch = Vec::new();
    let mut next = Some(first);
    while let Some(msg) = next {
        counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
        match msg {
            Msg::Write(r) => batch.push(r),
            Msg::Shutdown(r) if stop.is_none() => *stop = Some(r),
            Msg::Shutdown(r) => {
                let _ = r.send(Ok(()));
            }
            Msg::Abandon => {}
        }
        next = if batch.len() < MAX_BATCH && stop.is_none() {
            rx.try_recv().ok()
        } else {
            None
        };
    }
    batch
}

/// Runs `batch` in one transaction and answers every request.
fn commit_batch(conn: &Connection, batch: Vec<Box<dyn Request>>, counters: &Counters) {
    let started = Instant::now();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = StoreError::sqlite("while beginning a write transaction", e);
        counters.commit_failures.fetch_add(1, Ordering::Relaxed);
        if err.is_disk_full() {
            counters.disk_full.store(true, Ordering::Relaxed);
        }
        for r in batch {
            r.fail(err.duplicate());
        }
        return;
    }
    let mut rest = batch.into_iter();
    let ran = run_requests(conn, &mut rest, counters);
    let result = match ran.broken {
        Some(e) => Err(e),
        None => conn
            .execute_batch("COMMIT")
            .ctx("while committing a write transaction"),
    };
    match &result {
        Ok(()) => {
            counters.record_commit(started.elapsed(), ran.kept.len());
            // Something was written and committed: the disk has room again.
            if !ran.kept.is_empty() {
                counters.disk_full.store(false, Ordering::Relaxed);
            }
        }
        Err(e) => {
            counters.commit_failures.fetch_add(1, Ordering::Relaxed);
            if e.is_disk_full() {
                counters.disk_full.store(true, Ordering::Relaxed);
            }
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
    let result_ref = result.as_ref().map(|_| ());
    for c in ran.kept.into_iter().chain(ran.rolled_back) {
        // A panicking hook must not take the writer thread down with it.
        let _ = catch_unwind(AssertUnwindSafe(|| c(result_ref)));
    }
    if let Err(e) = &result {
        for r in rest {
            r.fail(e.duplicate());
        }
    }
}

/// What running a batch's requests left to do once the transaction ends.
struct Ran {
    /// Completions of requests whose changes are kept.
    kept: Vec<Completion>,
    /// Completions of requests that failed (their savepoint rolled back).
    rolled_back: Vec<Completion>,
    /// The transaction itself failed; requests not yet run stay in the iterator.
    broken: Option<StoreError>,
}

/// Runs requests from `batch`, each inside its own savepoint, until it is empty or the
/// transaction breaks (then the rest stay in `batch` for the caller to fail).
fn run_requests(
    conn: &Connection,
    batch: &mut impl Iterator<Item = Box<dyn Request>>,
    counters: &Counters,
) -> Ran {
    let mut ran = Ran {
        kept: Vec::new(),
        rolled_back: Vec::new(),
        broken: None,
    };
    for request in batch.by_ref() {
        if let Err(e) = conn.execute_batch("SAVEPOINT w").ctx("while opening a savepoint") {
            ran.broken = Some(e);
            request.fail(StoreError::Unavailable("write transaction failed".into()));
            break;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| request.run(conn, counters)));
        let (keep, completion) = match outcome {
            Ok(Ok(c)) => (true, Some(c)),
            Ok(Err(c)) => (false, Some(c)),
            Err(_) => (false, None), // panicked: its reply channel is gone, caller sees it
        };
        let end = if keep {
            "RELEASE w"
        } else {
            "ROLLBACK TO w; RELEASE w"
        };
        let closed = conn.execute_batch(end).ctx("while closing a savepoint");
        match (keep, completion) {
            (true, Some(c)) => ran.kept.push(c),
            (false, Some(c)) => ran.rolled_back.push(c),
            _ => {}
        }
        if let Err(e) = closed {
            ran.broken = Some(savepoint_failure(conn, counters, e));
            break;
        }
    }
    ran
}

/// Why a savepoint could not be closed. After `SQLITE_FULL`, SQLite may roll the whole
/// transaction back on its own and the savepoint is gone: then say so, so every caller
/// gets the disk-full answer (HTTP 507) rather than "no such savepoint".
fn savepoint_failure(conn: &Connection, counters: &Counters, e: StoreError) -> StoreError {
    if conn.is_autocommit() && counters.disk_full.load(Ordering::Relaxed) {
        StoreError::sqlite(
            "while writing (SQLite rolled the transaction back)",
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full".into()),
            ),
        )
    } else {
        e
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` then close.
pub(crate) fn checkpoint_and_close(conn: Connection) -> Result<(), StoreError> {
    let checkpoint = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
        .ctx("while checkpointing the WAL at shutdown");
    let closed = conn
        .close()
        .map_err(|(_, e)| StoreError::sqlite("while closing the write connection", e));
    checkpoint.and(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (Writer, JoinHandle<()>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("w.sqlite")).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER UNIQUE)")
            .expect("setup");
        let (w, h) = Writer::spawn(conn, Arc::new(Counters::default()), WalGuard::disabled()).expect("spawn");
        (w, h, dir)
    }

    const WAIT: Wait = Wait::Bounded(Duration::from_secs(10));

    #[test]
    fn failing_request_does_not_sink_the_batch() {
        let (w, h, _d) = writer();
        let ok = w.execute(WAIT, |c| c.execute("INSERT INTO t VALUES (1)", []).ctx("ins"));
        assert_eq!(ok.expect("insert"), 1);
        let dup = w.execute(WAIT, |c| c.execute("INSERT INTO t VALUES (1)", []).ctx("dup"));
        assert!(matches!(dup, Err(StoreError::Sqlite { .. })));
        let panicked: Result<(), _> = w.execute(WAIT, |_| panic!("boom"));
        assert!(matches!(panicked, Err(StoreError::Internal(_))));
        let n: i64 = w
            .execute(WAIT, |c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).ctx("n")
            })
            .expect("count");
        assert_eq!(n, 1);
        w.shutdown().expect("shutdown");
        h.join().expect("join");
        assert!(matches!(
            w.execute(WAIT, |_| Ok(())),
            Err(StoreError::Unavailable(_))
        ));
        w.shutdown().expect("second shutdown is a no-op");
    }

    #[test]
    fn many_threads_group_commit() {
        let (w, h, _d) = writer();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let v = t * 1000 + i;
                        w.execute(WAIT, move |c| {
                            c.execute("INSERT INTO t VALUES (?1)", [v]).ctx("i")
                        })
                        .expect("insert");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let n: i64 = w
            .execute(WAIT, |c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).ctx("n")
            })
            .expect("count");
        assert_eq!(n, 400);
        w.shutdown().expect("shutdown");
        h.join().expect("join");
    }
}
