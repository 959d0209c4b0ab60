//! The embedding stage of indexing: one thread that gives every chunk (chat and file)
//! its vector, after its text is indexed. Its work queue is durable by construction: the
//! chunks without a vector of the current model ([`Store::chunks_to_embed`]), so nothing
//! acknowledged is left without a vector after a crash, a `kill -9` mid-batch simply
//! finds the same chunks missing at the next start, installing a model backfills every
//! existing chunk, and a model change (another id) re-embeds everything.
//!
//! Facts (`/search-facts`) get theirs the same way, once no chunk waits: a fact without
//! a vector of the current model is its queue entry.
//!
//! Chat chunks go first (a message should be searchable by meaning within seconds of
//! its acknowledgement even while a large folder is being embedded). Inference runs on
//! the [`EmbedPool`]'s own threads at background priority, so queries' embeddings
//! overtake it. The thread sleeps on the store's chunk-change counter; it never polls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use memory_embedding::EmbedPool;
use memory_store::{Store, StoreError};

use crate::IndexerError;

/// Chunks embedded per batch (one `embed_batch` call, one write transaction).
pub const BATCH_CHUNKS: usize = 32;
/// After a failed step (e.g. a full disk), retry this much later.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest sleep without a chunk change, after which the stage re-checks anyway (a
/// backstop; changes wake it at once).
const IDLE_RECHECK: Duration = Duration::from_secs(60);

/// What the stage reports after each batch and when it goes idle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageProgress {
    /// Chunks waiting for a vector (all chunks minus those embedded).
    pub pending_chunks: u64,
    /// Chunks with a vector of the current model.
    pub embedded_chunks: u64,
    /// The last failure, until a step succeeds again.
    pub last_error: Option<String>,
}

/// A running embedding stage; [`EmbeddingStage::shutdown`] (or drop) stops it at a
/// batch boundary.
pub struct EmbeddingStage {
    stop: Arc<AtomicBool>,
    store: Store,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddingStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingStage")
            .field("stopped", &self.stop.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl EmbeddingStage {
    /// Points the store at the pool's model (loading that model's stored vectors into
    /// memory) and starts the thread. `progress` is called from the stage's thread.
    pub fn start(
        store: Store,
        pool: Arc<EmbedPool>,
        progress: impl Fn(StageProgress) + Send + 'static,
    ) -> Result<EmbeddingStage, IndexerError> {
        store.set_embedding_model(pool.model_id(), pool.dim())?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            store: store.clone(),
            pool,
            stop: Arc::clone(&stop),
            progress: Box::new(progress),
        };
        let thread = std::thread::Builder::new()
            .name("embedding-stage".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                IndexerError::Unavailable(format!("cannot start the embedding stage thread: {e}"))
            })?;
        Ok(EmbeddingStage {
            stop,
            store,
            thread: Some(thread),
        })
    }

    /// Stops after the current batch and waits for the thread.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.store.chunk_changes().wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Whether the thread has ended (a bug or a panic) while not asked to stop.
    pub fn has_died(&self) -> bool {
        !self.stop.load(Ordering::Acquire) && self.thread.as_ref().is_some_and(JoinHandle::is_finished)
    }
}

impl Drop for EmbeddingStage {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    store: Store,
    pool: Arc<EmbedPool>,
    stop: Arc<AtomicBool>,
    progress: Box<dyn Fn(StageProgress) + Send>,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run(self) {
        let changes = self.store.chunk_changes();
        // Chunks at or below `cursor` have been seen by a full pass; ids only grow, but
        // SQLite may reuse the largest id after a delete, so an empty pass from a
        // non-zero cursor is followed by one from the start.
        let mut cursor = 0;
        let mut last_error: Option<String> = None;
        while !self.stopping() {
            let seen = changes.current();
            match self.step(&mut cursor) {
                Ok(true) => {
                    last_error = None;
                    self.report(None);
                }
                Ok(false) if cursor > 0 => cursor = 0,
                Ok(false) => {
                    last_error = None;
                    if let Err(e) = self.store.prune_vectors() {
                        tracing::warn!(error = %e, "pruning vectors of deleted chunks");
                    }
                    self.report(None);
                    changes.wait_past(seen, IDLE_RECHECK);
                }
                Err(StoreError::Unavailable(_)) => return,
                Err(e) => {
                    let text = e.to_string();
                    if last_error.as_deref() != Some(&text) {
                        tracing::warn!(error = %text, "embedding stage: step failed; retrying");
                    }
                    self.report(Some(text.clone()));
                    last_error = Some(text);
                    changes.wait_past(seen, RETRY_AFTER);
                }
            }
        }
    }

    /// Embeds one batch of chunks or, when no chunk above `cursor` waits, of facts
    /// (`/search-facts` by meaning); false when neither is waiting.
    fn step(&self, cursor: &mut i64) -> Result<bool, StoreError> {
        let batch = self.store.chunks_to_embed(*cursor, BATCH_CHUNKS)?;
        if batch.is_empty() {
            let facts = self.store.facts_to_embed(BATCH_CHUNKS)?;
            if facts.is_empty() {
                return Ok(false);
            }
            let texts: Vec<(i64, String)> = facts.into_iter().map(|f| (f.seq, f.text)).collect();
            let rows = self.embed_texts(&texts, "fact");
            self.store.store_fact_vectors(self.pool.model_id(), rows)?;
            return Ok(true);
        }
        let texts: Vec<(i64, String)> = batch.iter().map(|c| (c.chunk_id, c.text.clone())).collect();
        let rows = self.embed_texts(&texts, "chunk");
        self.store.store_vectors(self.pool.model_id(), rows)?;
        // Chat chunks come first whatever the cursor, so a batch of chat chunks may
        // have skipped file chunks below its ids: only a batch holding file chunks (the
        // store's second query, once no chat chunk waits) moves the cursor.
        if batch.iter().any(|c| !c.is_chat) {
            *cursor = batch
                .iter()
                .map(|c| c.chunk_id)
                .max()
                .unwrap_or(*cursor)
                .max(*cursor);
        }
        Ok(true)
    }

    /// Vectors for a batch of `(id, text)` (chunk ids or fact seqs; `what` names them in
    /// the log). A batch that fails is retried one text at a time; a text that still
    /// fails gets a zero vector (it then ranks by its words alone) so it is not retried
    /// forever, and is logged.
    fn embed_texts(&self, batch: &[(i64, String)], what: &str) -> Vec<(i64, Vec<f32>)> {
        let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
        match self.pool.embed_batch(texts) {
            Ok(vectors) if vectors.len() == batch.len() => {
                return batch.iter().map(|(id, _)| *id).zip(vectors).collect();
            }
            Ok(vectors) => tracing::warn!(
                want = batch.len(),
                got = vectors.len(),
                "embedding batch returned the wrong number of vectors; retrying one by one"
            ),
            Err(e) => tracing::warn!(error = %e, "embedding a batch failed; retrying one by one"),
        }
        batch
            .iter()
            .map(|(id, text)| match self.pool.embed_batch(vec![text.clone()]) {
                Ok(mut v) if v.len() == 1 => (*id, v.remove(0)),
                other => {
                    let why = other.err().map_or_else(|| "no vector".to_string(), |e| e.to_string());
                    tracing::warn!(id, kind = what, error = %why, "text cannot be embedded; stored as a zero vector");
                    (*id, vec![0.0; self.pool.dim()])
                }
            })
            .collect()
    }

    fn report(&self, last_error: Option<String>) {
        let embedded = self.store.embedded_chunks() as u64;
        let total = self.store.chunk_count().unwrap_or(embedded);
        (self.progress)(StageProgress {
            pending_chunks: total.saturating_sub(embedded),
            embedded_chunks: embedded,
            last_error,
        });
    }
}
