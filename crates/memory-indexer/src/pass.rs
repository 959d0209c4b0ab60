//! One indexing pass over a source: walk, compare with the rows of the target generation,
//! read and chunk only what changed, remove what vanished, and send the changes to the
//! store in small batches (each file's row and chunks commit together). Used by jobs
//! (sync, rebuild) and by watcher refreshes. It decides nothing about scheduling.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use memory_store::{FileBatch, FileOp, FileRecord, FileUpsert, JobProgress, SkipCounts, Store, StoreError};

use crate::chunk;
use sha2::{Digest, Sha256};

use crate::IndexerConfig;
use crate::error::IndexerError;
use crate::extract::{self, Extracted, Kind};
use crate::walk::{Rules, WalkOutcome, WalkedFile};

/// What a pass writes into.
pub(crate) struct Target<'a> {
    /// The source's id.
    pub source_id: &'a str,
    /// Its root, include and exclude rules.
    pub rules: Rules,
    /// The generation written.
    pub generation: i64,
    /// The job, or `None` for a watcher refresh.
    pub job_id: Option<i64>,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassEnd {
    /// Every file was handled.
    Done(JobProgress),
    /// `stop` said so; stopped at a file boundary, everything before it committed.
    Stopped(JobProgress),
}

/// Hands batches to the store from a thread of its own, so the pass goes on reading
/// and extracting while its previous batch commits (with the pass waiting for each
/// commit, the writer and the workers took turns instead of working at once). At most
/// one batch waits while another is written, which bounds the text held in memory.
/// Batches commit in the order sent; [`BatchSender::finish`] returns once the last one
/// has, so nothing of a pass is written after it returns (dropped early, it waits too).
struct BatchSender {
    tx: Option<SyncSender<FileBatch>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl BatchSender {
    fn start(store: &Store) -> Result<BatchSender, IndexerError> {
        let (tx, rx) = mpsc::sync_channel::<FileBatch>(1);
        let store = store.clone();
        let thread = std::thread::Builder::new()
            .name("file-batches".into())
            .spawn(move || {
                for batch in rx {
                    store.apply_file_batch(batch)?;
                }
                Ok(())
            })
            .map_err(|e| IndexerError::Unavailable(format!("cannot start the file batch thread: {e}")))?;
        Ok(BatchSender {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `batch`; waits while another batch is already waiting. An error is the
    /// one a batch sent earlier met (the thread stops at the first).
    fn send(&mut self, batch: FileBatch) -> Result<(), IndexerError> {
        if self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok()) {
            return Ok(());
        }
        Err(self
            .join()
            .err()
            .unwrap_or_else(|| internal("the file batch thread stopped")))
    }

    /// Waits until every batch sent is committed; the first error met, if any.
    fn finish(mut self) -> Result<(), IndexerError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), IndexerError> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(_)) => Err(internal("the file batch thread panicked")),
        }
    }
}

fn internal(what: &str) -> IndexerError {
    IndexerError::Store(StoreError::Internal(what.into()))
}

impl Drop for BatchSender {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Accumulates ops and flushes them by count, text size or time.
struct Batcher<'a> {
    sender: BatchSender,
    cfg: &'a IndexerConfig,
    target: &'a Target<'a>,
    ops: Vec<FileOp>,
    text_bytes: usize,
    last_flush: Instant,
    progress: JobProgress,
}

impl<'a> Batcher<'a> {
    /// A batcher whose progress starts with what the walk already skipped.
    fn new(
        store: &Store,
        cfg: &'a IndexerConfig,
        target: &'a Target<'a>,
        walked: &WalkOutcome,
    ) -> Result<Self, IndexerError> {
        let skipped = SkipCounts {
            unreadable: walked.unreadable as i64,
            ignored: walked.ignored as i64,
            ..SkipCounts::default()
        };
        Ok(Batcher {
            sender: BatchSender::start(store)?,
            cfg,
            target,
            ops: Vec::new(),
            text_bytes: 0,
            last_flush: Instant::now(),
            progress: JobProgress {
                files_total: Some(walked.files.len() as i64),
                files_skipped: skipped.total(),
                skipped,
                ..JobProgress::default()
            },
        })
    }

    /// A file whose text is searchable (indexed now or before).
    fn count_indexed(&mut self, file: &WalkedFile) {
        self.progress.files_indexed += 1;
        self.progress.bytes_indexed += file.size as i64;
    }

    /// A file not indexed, by reason.
    fn count_skipped(&mut self, skip: Skip) {
        let s = &mut self.progress.skipped;
        *match skip {
            Skip::Binary => &mut s.binary,
            Skip::TooLarge => &mut s.too_large,
            Skip::Unsupported => &mut s.unsupported,
            Skip::Unreadable => &mut s.unreadable,
            Skip::ExtractionFailed => &mut s.extraction_failed,
        } += 1;
        self.progress.files_skipped = s.total();
    }

    fn push(&mut self, op: FileOp) {
        if let FileOp::Upsert(u) = &op {
            self.text_bytes += u.chunks().iter().map(|c| c.text.len()).sum::<usize>();
        }
        self.ops.push(op);
    }

    fn due(&self) -> bool {
        self.ops.len() >= self.cfg.batch_files
            || self.text_bytes >= self.cfg.batch_text_bytes
            || self.last_flush.elapsed() >= self.cfg.batch_interval
    }

    fn flush(&mut self) -> Result<(), IndexerError> {
        let progress = self.target.job_id.map(|_| self.progress);
        if self.ops.is_empty() && progress.is_none() {
            return Ok(());
        }
        self.sender.send(FileBatch {
            source_id: self.target.source_id.to_string(),
            generation: self.target.generation,
            job_id: self.target.job_id,
            ops: std::mem::take(&mut self.ops),
            progress,
        })?;
        self.text_bytes = 0;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Flushes what is left and waits until all of it is committed; the progress then.
    fn finish(mut self) -> Result<JobProgress, IndexerError> {
        self.flush()?;
        self.sender.finish()?;
        Ok(self.progress)
    }
}

/// Why a file was not read.
enum NotRead {
    TooLarge,
    Binary,
    Unreadable,
}

/// Reads a file of at most `cap` bytes; a plain-text file (`sniff`) with a NUL and no
/// UTF-16 BOM in its first bytes is binary and not read further.
fn read_file(file: &WalkedFile, cap: u64, sniff: bool) -> Result<Vec<u8>, NotRead> {
    if file.size > cap {
        return Err(NotRead::TooLarge);
    }
    let mut f = crate::guard::open_regular(&file.abs_path).map_err(|_| NotRead::Unreadable)?;
    let mut bytes = Vec::with_capacity(file.size as usize);
    f.by_ref()
        .take(extract::SNIFF_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(|_| NotRead::Unreadable)?;
    if sniff && extract::has_nul(&bytes) {
        return Err(NotRead::Binary);
    }
    f.take(cap + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|_| NotRead::Unreadable)?;
    if bytes.len() as u64 > cap {
        return Err(NotRead::TooLarge); // grew since the walk
    }
    Ok(bytes)
}

/// Why a walked file is not indexed (a reason of [`SkipCounts`]).
enum Skip {
    Binary,
    TooLarge,
    Unsupported,
    Unreadable,
    ExtractionFailed,
}

impl From<NotRead> for Skip {
    fn from(n: NotRead) -> Skip {
        match n {
            NotRead::TooLarge => Skip::TooLarge,
            NotRead::Binary => Skip::Binary,
            NotRead::Unreadable => Skip::Unreadable,
        }
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn filetype(rel: &str) -> Option<String> {
    Path::new(rel)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty())
        .map(str::to_string)
}

fn record(file: &WalkedFile, hash: String) -> FileRecord {
    FileRecord {
        rel_path: file.rel_path.clone(),
        size: file.size as i64,
        mtime_ns: file.mtime_ns,
        content_hash: hash,
    }
}

/// Files read and extracted ahead of the writer, per worker thread (see `parallel`).
const WINDOW_PER_WORKER: usize = 4;
/// Most worker threads reading and extracting files for one pass.
const MAX_WORKERS: usize = 8;

/// Runs a pass. `stop` is checked between files; `tick` is called after each file is
/// read (on a worker thread) and after each is handled (the stuck-job detector's
/// heartbeat).
pub(crate) fn run(
    store: &Store,
    cfg: &IndexerConfig,
    target: &Target<'_>,
    stop: &dyn Fn() -> bool,
    tick: &(dyn Fn() + Sync),
) -> Result<PassEnd, IndexerError> {
    let root = target.rules.root();
    // The same message the root monitor records, so a job failing on a missing root and
    // the monitor agree (see `roots`).
    if let crate::roots::Observed::Gone(message) = crate::roots::observe(root) {
        return Err(IndexerError::InvalidInput(message));
    }
    let walked = target.rules.walk(stop)?;
    for why in &walked.unsafe_dirs {
        tracing::warn!(
            source = target.source_id,
            "folder skipped: {why}; replace or remove that file"
        );
    }
    let mut known: HashMap<String, FileRecord> = store
        .file_records(target.source_id, target.generation)?
        .into_iter()
        .map(|r| (r.rel_path.clone(), r))
        .collect();
    let mut b = Batcher::new(store, cfg, target, &walked)?;
    b.flush()?;
    // Each walked file with what the store recorded of it.
    let files: Vec<(&WalkedFile, Option<FileRecord>)> = walked
        .files
        .iter()
        .map(|f| (f, known.remove(&f.rel_path)))
        .collect();
    let workers = crate::parallel::workers_for(files.len(), MAX_WORKERS);
    let finished = crate::parallel::ordered_map(
        &files,
        workers,
        workers * WINDOW_PER_WORKER,
        |(file, previous)| {
            let seen = examine(cfg, target, file, previous.as_ref());
            tick();
            seen
        },
        |i, seen| {
            if stop() {
                return Ok(false);
            }
            let (file, previous) = &files[i];
            handle_file(&mut b, file, previous.is_some(), seen)?;
            tick();
            Ok::<_, IndexerError>(true)
        },
    )?;
    if !finished || stop() {
        return Ok(PassEnd::Stopped(b.finish()?));
    }
    // Whatever the walk no longer finds is gone (deleted, now ignored or excluded).
    remove_vanished(&mut b, cfg, root, known)?;
    Ok(PassEnd::Done(b.finish()?))
}

/// What a worker found of one walked file.
enum Seen {
    /// Its size and mtime are the recorded ones: not even opened.
    Unchanged,
    /// Read: the change to write, or why it is not indexed.
    Read(Result<FileOp, Skip>),
}

/// The worker's part for one walked file: skipped when its size and mtime are the
/// recorded ones, else read, extracted and chunked (CPU work only, no store access).
fn examine(
    cfg: &IndexerConfig,
    target: &Target<'_>,
    file: &WalkedFile,
    previous: Option<&FileRecord>,
) -> Seen {
    if previous.is_some_and(|p| p.size == file.size as i64 && p.mtime_ns == file.mtime_ns) {
        return Seen::Unchanged;
    }
    Seen::Read(index_file(cfg, target, file, previous))
}

/// The pass's part for one walked file, in walk order: counted, its change queued (a
/// file that can no longer be indexed has its old chunks removed) and the batch
/// written when due.
fn handle_file(
    b: &mut Batcher<'_>,
    file: &WalkedFile,
    recorded: bool,
    seen: Seen,
) -> Result<(), IndexerError> {
    let root = b.target.rules.root();
    b.progress.files_processed += 1;
    b.progress.bytes_processed += file.size as i64;
    let op = match seen {
        Seen::Unchanged => {
            // Its row exists only if its text was indexed.
            b.count_indexed(file);
            None
        }
        Seen::Read(Ok(op)) => {
            if matches!(op, FileOp::Upsert(_)) {
                b.progress.files_updated += 1;
            }
            b.count_indexed(file);
            Some(op)
        }
        Seen::Read(Err(skip)) => {
            b.count_skipped(skip);
            recorded.then(|| FileOp::Remove {
                rel_path: file.rel_path.clone(),
                abs_path: abs_path(root, &file.rel_path),
            })
        }
    };
    if let Some(op) = op {
        b.push(op);
    }
    if b.due() {
        b.flush()?;
    }
    Ok(())
}

/// Queues the removal of the recorded files the walk no longer found (`known`, by
/// relative path), flushing every `cfg.batch_files` operations.
fn remove_vanished(
    b: &mut Batcher<'_>,
    cfg: &IndexerConfig,
    root: &Path,
    known: HashMap<String, FileRecord>,
) -> Result<(), IndexerError> {
    for (rel, _) in known {
        b.push(FileOp::Remove {
            abs_path: abs_path(root, &rel),
            rel_path: rel,
        });
        if b.ops.len() >= cfg.batch_files {
            b.flush()?;
        }
    }
    Ok(())
}

/// The absolute path stored with a file's chunks.
fn abs_path(root: &Path, rel: &str) -> String {
    root.join(rel).display().to_string()
}

/// A new or changed file: read it (bounded by `cfg.read_timeout`), then, unless its
/// content hash is the one indexed, extract its text and chunk it.
fn index_file(
    cfg: &IndexerConfig,
    target: &Target<'_>,
    file: &WalkedFile,
    previous: Option<&FileRecord>,
) -> Result<FileOp, Skip> {
    let ft = filetype(&file.rel_path);
    let bytes = read_bounded(cfg, target, file, extract::kind(ft.as_deref()))?;
    let hash = hash_hex(&bytes);
    if previous.is_some_and(|p| p.content_hash == hash) {
        return Ok(FileOp::Touch(record(file, hash)));
    }
    match extract::extract_isolated(ft.as_deref(), bytes, extract::EXTRACT_DEADLINE) {
        Extracted::Binary => Err(Skip::Binary),
        Extracted::Failed(reason) => {
            tracing::info!(source = target.source_id, file = %file.rel_path, %reason,
                "document skipped: extraction failed");
            Err(Skip::ExtractionFailed)
        }
        Extracted::Text(text) => Ok(FileOp::Upsert(FileUpsert::new(
            record(file, hash),
            abs_path(target.rules.root(), &file.rel_path),
            ft,
            chunk::split(&text),
        ))),
    }
}

/// Reads a file of a kind worth reading, on its own thread, giving up after
/// `cfg.read_timeout` (a file that blocks is abandoned, counted unreadable).
fn read_bounded(
    cfg: &IndexerConfig,
    target: &Target<'_>,
    file: &WalkedFile,
    kind: Kind,
) -> Result<Vec<u8>, Skip> {
    // Documents have their own, larger cap; text is sniffed for binary.
    let (cap, sniff) = match kind {
        Kind::Binary => return Err(Skip::Binary),
        Kind::Unsupported => return Err(Skip::Unsupported),
        Kind::Document => (cfg.max_file_bytes.max(extract::MAX_DOCUMENT_BYTES), false),
        Kind::Text => (cfg.max_file_bytes, true),
    };
    let f = file.clone();
    match crate::guard::within(cfg.read_timeout, move || read_file(&f, cap, sniff)) {
        Some(read) => read.map_err(Skip::from),
        None => {
            tracing::warn!(source = target.source_id, file = %file.rel_path,
                "file skipped: reading it took longer than {} s", cfg.read_timeout.as_secs());
            Err(Skip::Unreadable)
        }
    }
}
