//! Sentence embeddings for semantic search, computed in-process on the CPU.
//!
//! Why in-process: the service must work offline with nothing to install but one binary and
//! a model directory, so the model runs with candle (pure Rust; no Python, no ONNX runtime)
//! and the `tokenizers` crate, and loads from a plain directory of Hugging Face files. This
//! crate knows nothing of HTTP, SQLite or the app: it turns text into unit vectors, runs
//! that on threads of its own, and installs models.
//!
//! # Layout
//! - [`model`] holds [`Embedder`], one loaded model (all-MiniLM-L6-v2 by default: 384 floats per
//!   text, mean pooling, L2-normalised, 256 word pieces at most).
//! - `bert` holds the BERT encoder (candle tensor operations), `kernels` its in-place
//!   GELU and softmax.
//! - [`pool`] holds [`EmbedPool`], bounded worker threads; queries before background batches.
//! - [`install`] holds [`install_from_path`] (directory or zip) and [`download`] (Hugging Face
//!   Hub via `hf-hub`), both verified and put in place atomically.
//! - [`error`] holds [`EmbeddingError`].
//!
//! # Tests
//! The tests need the real model: `scripts/fetch-test-model.sh` puts it in
//! `target/test-model/all-MiniLM-L6-v2` (see [`test_model_dir`]).

mod bert;
pub mod error;
pub mod install;
mod kernels;
pub mod model;
pub mod pool;

use std::path::PathBuf;

pub use error::EmbeddingError;
pub use install::{DEFAULT_REPO, NoProgress, Progress, default_model_name, download, install_from_path};
pub use model::{Embedder, Pooling};
pub use pool::EmbedPool;

/// The environment variable that sets how many threads candle splits one matrix product
/// across (rayon's own; candle reads it at every product).
pub const MATMUL_THREADS_ENV: &str = "RAYON_NUM_THREADS";

/// Makes candle run each matrix product on the thread that asks for it, by setting
/// [`MATMUL_THREADS_ENV`] to 1 unless the environment sets it already. [`EmbedPool`]
/// already spreads the work over its threads (whole groups of texts side by side, see
/// [`pool`]); left alone, candle splits every one of those small products across the
/// same threads again, and the nesting costs more than it gains. Measured with the
/// `embed_speed` example on this project's 2-core machine (busy, same minute):
/// 1000-character chunks 11.8 -> 15.5 per second, chat-sized texts about 200 -> 320 per
/// second, a query's p50 15 -> 12 ms.
///
/// # Safety
/// It changes the process environment, which is only sound while no other thread may
/// read or write it: call it first thing in `main`, before any thread is started.
pub unsafe fn one_thread_per_matmul() {
    if std::env::var_os(MATMUL_THREADS_ENV).is_none() {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var(MATMUL_THREADS_ENV, "1") };
    }
}

/// Environment variable naming the model directory tests use instead of the default
/// `<workspace>/target/test-model/all-MiniLM-L6-v2`.
pub const TEST_MODEL_ENV: &str = "MEMORY_SERVICE_TEST_MODEL";

/// Where tests find the model: `$MEMORY_SERVICE_TEST_MODEL` if set, else
/// `<workspace root>/target/test-model/all-MiniLM-L6-v2` (the workspace root as it was when
/// this crate was compiled), which `scripts/fetch-test-model.sh` fills. For tests and
/// benchmarks only; the service finds its model through its own configuration. The
/// directory may not exist: callers should fail with "test model missing at X: run
/// scripts/fetch-test-model.sh".
pub fn test_model_dir() -> PathBuf {
    match std::env::var_os(TEST_MODEL_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root()
            .join("target/test-model")
            .join(default_model_name()),
    }
}

/// The workspace root: two levels above this crate's manifest (`crates/memory-embedding`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
