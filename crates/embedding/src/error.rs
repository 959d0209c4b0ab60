//! One error type for loading, running and installing a model. Each variant either says its
//! cause in its message or exposes it through `source()`, never both, so a chain printed by
//! `anyhow` shows every cause exactly once.

use std::path::PathBuf;

/// A boxed cause from a dependency (candle, tokenizers, hf-hub, zip), kept behind `source()`
/// so those crates' types do not leak into this crate's API.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while loading, running or installing an embedding model.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    /// A file the model needs is not there (usually: no model installed yet).
    #[error(
        "embedding model file {} is missing; install the model with `memory-service model install` \
         (or `memory-service model install --from DIR_OR_ZIP` offline)",
        path.display()
    )]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },

    /// A file exists but could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// `config.json` (or a sentence-transformers side config) is not a usable BERT config.
    #[error("bad embedding model config {}: {reason}", path.display())]
    BadConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// `tokenizer.json` cannot be loaded or configured.
    #[error("bad tokenizer {}", path.display())]
    BadTokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizers crate's error.
        #[source]
        source: Cause,
    },

    /// `model.safetensors` does not hold the tensors the config describes.
    #[error("bad model weights {}", path.display())]
    BadWeights {
        /// The weights file.
        path: PathBuf,
        /// Candle's error.
        #[source]
        source: Cause,
    },

    /// Tokenizing or running the model failed on some input.
    #[error("embedding inference failed")]
    Inference(#[source] Cause),

    /// The [`crate::EmbedPool`] stopped (dropped) before the request was served.
    #[error("the embedding pool has stopped; the request was not served")]
    PoolStopped,

    /// A model source (directory or zip) cannot be installed as given.
    #[error("cannot install an embedding model from {}: {reason}", src.display())]
    BadSource {
        /// The directory or zip given to `install_from_path`.
        src: PathBuf,
        /// What is wrong with it and what to do.
        reason: String,
    },

    /// A zip archive cannot be read.
    #[error("cannot read zip archive {}", path.display())]
    Zip {
        /// The archive.
        path: PathBuf,
        /// The zip crate's error.
        #[source]
        source: Cause,
    },

    /// Downloading a file from the Hugging Face Hub (or `HF_ENDPOINT`) failed.
    #[error(
        "cannot download {file} of {repo} from {endpoint} (set HF_ENDPOINT for a mirror, or use `memory-service model install --from DIR_OR_ZIP`)"
    )]
    Download {
        /// The repository, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
        repo: String,
        /// The file in it, e.g. `model.safetensors`.
        file: String,
        /// The endpoint used (`https://huggingface.co` unless `HF_ENDPOINT` says otherwise).
        endpoint: String,
        /// hf-hub's error.
        #[source]
        source: Cause,
    },
}

impl EmbeddingError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EmbeddingError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn inference(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        EmbeddingError::Inference(Box::new(e))
    }
}
