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
        EmbeddingError::Inference(cause(e))
    }
}

/// A dependency's error as one [`Cause`] that says each of its causes once. Some
/// dependencies print their own cause in their message and also return it from
/// `source()` (hf-hub: `"I/O error {0}"` with `#[from]`); their chain is flattened to
/// one line, dropping every link whose text the link before it already contains.
pub(crate) fn cause(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
    let mut text = e.to_string();
    let mut said = text.clone();
    let mut next = e.source();
    let mut flattened = false;
    while let Some(link) = next {
        let line = link.to_string();
        if !said.contains(&line) {
            text = format!("{text}: {line}");
        }
        said = line;
        flattened = true;
        next = link.source();
    }
    if flattened { text.into() } else { Box::new(e) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::assert_each_cause_once;

    fn os_error() -> std::io::Error {
        std::io::Error::from_raw_os_error(21)
    }

    /// Every variant, with real dependency errors where a variant wraps one.
    fn every_variant() -> Vec<EmbeddingError> {
        let tokenizer = tokenizers::Tokenizer::from_bytes(b"not json").unwrap_err();
        let candle = candle_core::Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu)
            .and_then(|t| t.reshape(3))
            .unwrap_err();
        let zip = zip::ZipArchive::new(std::io::Cursor::new(b"not a zip".to_vec())).unwrap_err();
        let download = hf_hub::api::sync::ApiError::from(os_error());
        let all = vec![
            EmbeddingError::MissingFile {
                path: "/m/model.safetensors".into(),
            },
            EmbeddingError::io("/m/config.json", os_error()),
            EmbeddingError::BadConfig {
                path: "/m/config.json".into(),
                reason: "hidden_size is missing".into(),
            },
            EmbeddingError::BadTokenizer {
                path: "/m/tokenizer.json".into(),
                source: tokenizer,
            },
            EmbeddingError::BadWeights {
                path: "/m/model.safetensors".into(),
                source: cause(candle),
            },
            EmbeddingError::inference(candle_core::Error::Msg("out of memory".into())),
            EmbeddingError::PoolStopped,
            EmbeddingError::BadSource {
                src: "/tmp/m.zip".into(),
                reason: "it holds no config.json".into(),
            },
            EmbeddingError::Zip {
                path: "/tmp/m.zip".into(),
                source: cause(zip),
            },
            EmbeddingError::Download {
                repo: "sentence-transformers/all-MiniLM-L6-v2".into(),
                file: "model.safetensors".into(),
                endpoint: "https://huggingface.co".into(),
                source: cause(download),
            },
        ];
        // A new variant fails to compile here until it is added above.
        for e in &all {
            match e {
                EmbeddingError::MissingFile { .. }
                | EmbeddingError::Io { .. }
                | EmbeddingError::BadConfig { .. }
                | EmbeddingError::BadTokenizer { .. }
                | EmbeddingError::BadWeights { .. }
                | EmbeddingError::Inference(_)
                | EmbeddingError::PoolStopped
                | EmbeddingError::BadSource { .. }
                | EmbeddingError::Zip { .. }
                | EmbeddingError::Download { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_variant_prints_each_cause_once() {
        for e in every_variant() {
            assert_each_cause_once(anyhow::Error::new(e).context("installing the embedding model"));
        }
    }

    #[test]
    fn a_dependency_error_that_repeats_its_cause_is_flattened_to_one_line() {
        let raw = hf_hub::api::sync::ApiError::from(os_error());
        assert_eq!(raw.to_string(), format!("I/O error {}", os_error()));
        let flat = cause(raw);
        assert_eq!(flat.to_string(), format!("I/O error {}", os_error()));
        assert!(flat.source().is_none());
    }
}
