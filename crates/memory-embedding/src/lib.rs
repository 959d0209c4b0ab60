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
//! - [`pool`] holds [`EmbedPool`], bounded worker threads; queries before background batches.
//! - [`install`] holds [`install_from_path`] (directory or zip) and [`download`] (Hugging Face
//!   Hub via `hf-hub`), both verified and put in place atomically.
//! - [`error`] holds [`EmbeddingError`].
//!
//! # Tests
//! The tests need the real model: `scripts/fetch-test-model.sh` puts it in
//! `target/test-model/all-MiniLM-L6-v2` (see [`test_model_dir`]).

pub mod error;
pub mod install;
pub mod model;
pub mod pool;

use std::path::PathBuf;

pub use error::EmbeddingError;
pub use install::{DEFAULT_REPO, NoProgress, Progress, default_model_name, download, install_from_path};
pub use model::{Embedder, Pooling};
pub use pool::EmbedPool;

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
