//! Semantic search's life in the service: find and load the embedding model behind
//! `/health` (loading takes seconds and must never delay the bind or the database),
//! start the embedding stage, embed queries for `/search`, and report all of it in the
//! `semantic` object of `/health`. Without a model everything works as text search and
//! `/health` says why, with the command that installs one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use memory_embedding::{EmbedPool, Embedder};
use memory_indexer::embedding_stage::{EmbeddingStage, StageProgress};

use crate::monitor::{Monitor, SemanticReport, SemanticState};

/// Threads of the embedding pool. Two on this 2-core class of machine: a query's
/// embedding takes one while the background stage holds the other.
pub const POOL_THREADS: usize = 2;

/// How long `/search` waits for its query's embedding before answering from text alone.
pub const QUERY_EMBED_TIMEOUT: Duration = Duration::from_secs(2);

/// The three files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The command that installs the default model for this home.
pub fn install_hint(home: &Path) -> String {
    format!("memory-service model install --home {}", home.display())
}

/// Why `dir` holds no usable model, or `None` when the three files are there.
pub fn missing_model(dir: &Path) -> Option<String> {
    let missing: Vec<&str> = MODEL_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if missing.is_empty() {
        None
    } else if missing.len() == MODEL_FILES.len() {
        Some(format!("no embedding model at {}", dir.display()))
    } else {
        Some(format!(
            "the embedding model at {} is incomplete (missing {})",
            dir.display(),
            missing.join(", ")
        ))
    }
}

/// The service's semantic-search handle: the pool once loaded, the stage once started.
#[derive(Default)]
pub struct Semantic {
    pool: OnceLock<Arc<EmbedPool>>,
    stage: Mutex<Option<EmbeddingStage>>,
}

impl std::fmt::Debug for Semantic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semantic")
            .field("loaded", &self.pool.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Semantic {
    /// Loads the model from `dir` on a thread of its own, then starts the embedding
    /// stage over `store`; reports every step to `monitor`. Returns at once.
    pub fn start(
        self: &Arc<Self>,
        dir: PathBuf,
        home: PathBuf,
        store: memory_store::Store,
        monitor: Arc<Monitor>,
    ) {
        if let Some(why) = missing_model(&dir) {
            let reason = format!("{why}; semantic search is off: run `{}`", install_hint(&home));
            tracing::info!("{reason}");
            monitor.set_semantic(SemanticReport {
                state: SemanticState::Off,
                reason: Some(reason),
                ..SemanticReport::default()
            });
            return;
        }
        monitor.set_semantic(SemanticReport {
            state: SemanticState::Loading,
            reason: Some(format!("loading the embedding model from {}", dir.display())),
            ..SemanticReport::default()
        });
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("embedding-model-loader".into())
            .spawn(move || this.load(&dir, &home, store, monitor));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the embedding model loader thread");
        }
    }

    fn load(&self, dir: &Path, home: &Path, store: memory_store::Store, monitor: Arc<Monitor>) {
        let started = std::time::Instant::now();
        let embedder = match Embedder::load(dir) {
            Ok(e) => e,
            Err(e) => {
                let reason = format!(
                    "cannot load the embedding model at {}: {e}; semantic search is off: reinstall it with `{}`",
                    dir.display(),
                    install_hint(home)
                );
                report_error(&monitor, None, reason);
                return;
            }
        };
        let pool = Arc::new(EmbedPool::new(Arc::new(embedder), POOL_THREADS));
        let model = pool.model_id().to_string();
        match start_stage(store, &pool, &monitor) {
            Ok(stage) => {
                *self.stage.lock().unwrap_or_else(PoisonError::into_inner) = Some(stage);
                let _ = self.pool.set(pool);
                if monitor.semantic().state != SemanticState::Ready {
                    monitor.set_semantic(SemanticReport {
                        state: SemanticState::Ready,
                        model: Some(model.clone()),
                        ..SemanticReport::default()
                    });
                }
                tracing::info!(
                    model = %model,
                    dir = %dir.display(),
                    load_ms = started.elapsed().as_millis() as u64,
                    "semantic search is on"
                );
            }
            Err(e) => report_error(
                &monitor,
                Some(model),
                format!("cannot start the embedding stage: {e}"),
            ),
        }
    }

    /// Starts embedding a search query on the model's threads and returns at once; the
    /// caller collects the vector with [`QueryVector::wait`] when it needs it (after the
    /// words have been searched), so the embedding and the BM25 channel overlap. Without
    /// a model, `wait` gives `None` at once.
    pub fn begin_query_vector(&self, text: &str) -> QueryVector {
        let Some(pool) = self.pool.get() else {
            return QueryVector { rx: None };
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        pool.embed_query_then(text.to_string(), move |r| {
            let _ = tx.send(r);
        });
        QueryVector { rx: Some(rx) }
    }

    /// Whether the embedding stage's thread died (reported as a health problem).
    pub fn stage_died(&self) -> bool {
        self.stage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(EmbeddingStage::has_died)
    }

    /// Stops the embedding stage at a batch boundary (before the store closes).
    pub fn shutdown(&self) {
        let stage = self.stage.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut stage) = stage {
            stage.shutdown();
        }
    }
}

/// A query's embedding in progress ([`Semantic::begin_query_vector`]).
#[derive(Debug)]
pub struct QueryVector {
    /// Receives the result from the pool's scheduler thread; `None` without a model.
    rx: Option<std::sync::mpsc::Receiver<Result<Vec<f32>, memory_embedding::EmbeddingError>>>,
}

impl QueryVector {
    /// Blocks (call it off the async workers) until the query's embedding is ready:
    /// `None` when no model is loaded, embedding failed, or it is not ready within
    /// [`QUERY_EMBED_TIMEOUT`] of this call (search then ranks by words alone; the last
    /// two are logged).
    pub fn wait(self) -> Option<Vec<f32>> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.rx?.recv_timeout(QUERY_EMBED_TIMEOUT) {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "embedding a query failed; searching by words");
                None
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!("embedding a query took over {QUERY_EMBED_TIMEOUT:?}; searching by words");
                None
            }
        }
    }
}

/// Starts the embedding stage on `pool`, reporting its progress (backlog,
/// chunks embedded, its last error) to `monitor` as semantic search `ready`.
fn start_stage(
    store: memory_store::Store,
    pool: &Arc<EmbedPool>,
    monitor: &Arc<Monitor>,
) -> Result<EmbeddingStage, memory_indexer::IndexerError> {
    let report_to = Arc::clone(monitor);
    let model = pool.model_id().to_string();
    EmbeddingStage::start(store, Arc::clone(pool), move |p: StageProgress| {
        report_to.set_semantic(SemanticReport {
            state: SemanticState::Ready,
            model: Some(model.clone()),
            reason: p.last_error.map(|e| format!("embedding stage: {e}")),
            pending_chunks: p.pending_chunks,
            embedded_chunks: p.embedded_chunks,
        });
    })
}

/// Logs `reason` and reports semantic search in `error` with it (and the model
/// id when one was loaded).
fn report_error(monitor: &Monitor, model: Option<String>, reason: String) {
    tracing::error!("{reason}");
    monitor.set_semantic(SemanticReport {
        state: SemanticState::Error,
        model,
        reason: Some(reason),
        ..SemanticReport::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_directory_needs_all_three_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let why = missing_model(dir.path()).expect("empty");
        assert!(why.starts_with("no embedding model at"), "{why}");
        std::fs::write(dir.path().join("config.json"), "{}").expect("write");
        let why = missing_model(dir.path()).expect("incomplete");
        assert!(why.contains("missing tokenizer.json, model.safetensors"), "{why}");
        for f in MODEL_FILES {
            std::fs::write(dir.path().join(f), "x").expect("write");
        }
        assert_eq!(missing_model(dir.path()), None);
        assert!(install_hint(Path::new("/h")).contains("model install --home /h"));
    }
}
