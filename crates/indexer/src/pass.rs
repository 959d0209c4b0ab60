//! One indexing pass over a source: walk, compare with the rows of the target generation,
//! read and chunk only what changed, remove what vanished, and send the changes to the
//! store in small batches (each file's row and chunks commit together). Used by jobs
//! (sync, rebuild) and by watcher refreshes. It decides nothing about scheduling.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use memory_store::{FileBatch, FileOp, FileRecord, FileUpsert, JobProgress, Store, chunk};
use sha2::{Digest, Sha256};

use crate::IndexerConfig;
use crate::error::IndexerError;
use crate::extract::{self, Extracted};
use crate::walk::{Rules, WalkedFile};

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

/// Accumulates ops and flushes them by count, text size or time.
struct Batcher<'a> {
    store: &'a Store,
    cfg: &'a IndexerConfig,
    target: &'a Target<'a>,
    ops: Vec<FileOp>,
    text_bytes: usize,
    last_flush: Instant,
    progress: JobProgress,
}

impl Batcher<'_> {
    fn push(&mut self, op: FileOp) {
        if let FileOp::Upsert(u) = &op {
            self.text_bytes += u.chunks.iter().map(|c| c.text.len()).sum::<usize>();
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
        self.store.apply_file_batch(FileBatch {
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
}

/// Reads the file if it is indexable: `None` for binary, too large or unreadable.
fn read_text_file(file: &WalkedFile, cap: u64) -> Option<Vec<u8>> {
    if file.size > cap {
        return None;
    }
    let mut f = crate::guard::open_regular(&file.abs_path).ok()?;
    let mut bytes = Vec::with_capacity(file.size as usize);
    f.by_ref()
        .take(extract::SNIFF_BYTES as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    if extract::has_nul(&bytes) {
        return None;
    }
    f.take(cap + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= cap).then_some(bytes)
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

/// Runs a pass. `stop` is checked between files; `tick` is called after each file (the
/// stuck-job detector's heartbeat).
pub(crate) fn run(
    store: &Store,
    cfg: &IndexerConfig,
    target: &Target<'_>,
    stop: &dyn Fn() -> bool,
    tick: &dyn Fn(),
) -> Result<PassEnd, IndexerError> {
    let root = target.rules.root();
    if !root.is_dir() {
        return Err(IndexerError::InvalidInput(format!(
            "Source root path does not exist: {}",
            root.display()
        )));
    }
    let walked = target.rules.walk(stop);
    let mut known: HashMap<String, FileRecord> = store
        .file_records(target.source_id, target.generation)?
        .into_iter()
        .map(|r| (r.rel_path.clone(), r))
        .collect();
    let mut b = Batcher {
        store,
        cfg,
        target,
        ops: Vec::new(),
        text_bytes: 0,
        last_flush: Instant::now(),
        progress: JobProgress {
            files_total: Some(walked.files.len() as i64),
            files_skipped: walked.unreadable as i64,
            ..JobProgress::default()
        },
    };
    b.flush()?;
    let abs = |rel: &str| root.join(rel).display().to_string();
    for file in &walked.files {
        if stop() {
            b.flush()?;
            return Ok(PassEnd::Stopped(b.progress));
        }
        let previous = known.remove(&file.rel_path);
        b.progress.files_processed += 1;
        b.progress.bytes_processed += file.size as i64;
        tick();
        if previous
            .as_ref()
            .is_some_and(|p| p.size == file.size as i64 && p.mtime_ns == file.mtime_ns)
        {
            continue; // unchanged: not even opened
        }
        let ft = filetype(&file.rel_path);
        let bytes = if extract::is_binary_extension(ft.as_deref()) {
            None
        } else {
            let (f, cap) = (file.clone(), cfg.max_file_bytes);
            crate::guard::within(cfg.read_timeout, move || read_text_file(&f, cap)).flatten()
        };
        let op = match bytes {
            None => {
                b.progress.files_skipped += 1;
                previous.map(|_| FileOp::Remove {
                    rel_path: file.rel_path.clone(),
                    abs_path: abs(&file.rel_path),
                })
            }
            Some(bytes) => {
                let hash = hash_hex(&bytes);
                if previous.as_ref().is_some_and(|p| p.content_hash == hash) {
                    Some(FileOp::Touch(record(file, hash)))
                } else {
                    match extract::extract(ft.as_deref(), &bytes) {
                        Extracted::Binary => {
                            b.progress.files_skipped += 1;
                            previous.map(|_| FileOp::Remove {
                                rel_path: file.rel_path.clone(),
                                abs_path: abs(&file.rel_path),
                            })
                        }
                        Extracted::Text(text) => {
                            b.progress.files_updated += 1;
                            Some(FileOp::Upsert(FileUpsert {
                                record: record(file, hash),
                                abs_path: abs(&file.rel_path),
                                filetype: ft,
                                chunks: chunk::split(&text),
                            }))
                        }
                    }
                }
            }
        };
        if let Some(op) = op {
            b.push(op);
        }
        if b.due() {
            b.flush()?;
        }
        // Indexing must never starve request handlers of CPU.
        std::thread::yield_now();
    }
    if stop() {
        b.flush()?;
        return Ok(PassEnd::Stopped(b.progress));
    }
    // Whatever the walk no longer finds is gone (deleted, now ignored or excluded).
    for (rel, _) in known {
        b.push(FileOp::Remove {
            abs_path: abs(&rel),
            rel_path: rel,
        });
        if b.ops.len() >= cfg.batch_files {
            b.flush()?;
        }
    }
    b.flush()?;
    Ok(PassEnd::Done(b.progress))
}
