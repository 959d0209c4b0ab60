//! The model itself: a BERT-family sentence-transformers encoder run with candle on the CPU.
//!
//! Why it looks like this: sentence-transformers models are a BERT encoder plus a pooling
//! step (mean over real tokens, or the `[CLS]` vector) plus L2 normalisation. The encoder
//! is the crate's `bert` module (candle's BERT in fewer, fused operations); pooling and
//! normalisation are done here on plain slices because they are cheap and must match the
//! Python library exactly (padding excluded, `eps = 1e-12`).
//! Padding is the main waste on a CPU, so texts are sorted by token length and grouped so a
//! group pads to its own longest member, within a budget of padded tokens per forward pass.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::Encoder;
use crate::error::EmbeddingError;

/// The three files every model directory must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Optional sentence-transformers files honoured when present (pooling mode, max length).
pub const OPTIONAL_FILES: [&str; 2] = ["1_Pooling/config.json", "sentence_bert_config.json"];

/// Max word pieces when the model directory does not say (sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2, from its `sentence_bert_config.json`).
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Padded tokens (sequences x longest length) in one forward pass. Larger groups amortise
/// per-call overhead for short texts; smaller ones keep a group's activations near the
/// core's cache (the attention scores alone are 12 heads x L x L floats per sequence:
/// 3 MB at L = 256), make a query wait less behind a background group and lower peak
/// memory. Measured with `examples/embed_speed.rs` on the shared 2-core machine (L2 2 MiB
/// a core) with the encoder of [`crate::bert`] and [`crate::kernels`], file chunks/s
/// (256 word pieces) at 256 / 512 / 1024: 43.5-44.6 / 38.6-40.7 / 32.6; chat texts/s
/// (22 pieces) 551-562 at 256 and 512, 501 at 1024.
pub(crate) const GROUP_TOKEN_BUDGET: usize = 256;

/// [`GROUP_TOKEN_BUDGET`], unless `MEMORY_EMBEDDING_GROUP_TOKENS` says otherwise (a tuning
/// knob for `examples/embed_speed.rs`; read once).
pub(crate) fn group_token_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var("MEMORY_EMBEDDING_GROUP_TOKENS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(GROUP_TOKEN_BUDGET)
    })
}

/// At most this many sequences in one forward pass, however short.
pub(crate) const GROUP_MAX_SEQS: usize = 64;

/// How token vectors become one sentence vector (sentence-transformers' `1_Pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the token vectors over the attention mask (all-MiniLM-L6-v2, e5).
    Mean,
    /// The `[CLS]` token's vector (bge).
    Cls,
}

/// A loaded sentence-embedding model: tokenizer + BERT encoder + pooling + L2 normalisation.
///
/// `Send + Sync`: one instance serves every thread; `embed` takes `&self`. Wrap it in an
/// [`std::sync::Arc`] and hand it to an [`crate::EmbedPool`] rather than calling it on an
/// async runtime's threads (one call takes milliseconds to seconds of CPU).
pub struct Embedder {
    /// The BERT encoder; output shape `(batch, seq_len, dim)`.
    model: Encoder,
    /// Truncates to `max_tokens` word pieces (including `[CLS]` and `[SEP]`), no padding.
    tokenizer: Tokenizer,
    /// Always the CPU.
    device: Device,
    pooling: Pooling,
    /// `hidden_size` of the config: 384 for all-MiniLM-L6-v2.
    dim: usize,
    /// Word pieces per text after truncation, `[CLS]` and `[SEP]` included.
    max_tokens: usize,
    /// Token id used to pad a group to its longest member (`pad_token_id` of the config).
    pad_id: u32,
    /// `<dir basename>@<12 hex of sha256>`; see [`Embedder::model_id`].
    model_id: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.model_id)
            .field("dim", &self.dim)
            .field("max_tokens", &self.max_tokens)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

/// `1_Pooling/config.json` as sentence-transformers writes it (only the fields we use).
#[derive(serde::Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// `sentence_bert_config.json` (only `max_seq_length`).
#[derive(serde::Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

fn read_required(dir: &Path, name: &str) -> Result<Vec<u8>, EmbeddingError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EmbeddingError::MissingFile { path }),
        Err(e) => Err(EmbeddingError::io(path, e)),
    }
}

fn read_optional(dir: &Path, name: &str) -> Result<Option<(PathBuf, Vec<u8>)>, EmbeddingError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some((path, bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EmbeddingError::io(path, e)),
    }
}

fn read_pooling(dir: &Path) -> Result<Pooling, EmbeddingError> {
    let Some((path, bytes)) = read_optional(dir, OPTIONAL_FILES[0])? else {
        return Ok(Pooling::Mean);
    };
    let cfg: PoolingConfig = serde_json::from_slice(&bytes).map_err(|e| EmbeddingError::BadConfig {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    match (
        cfg.pooling_mode_mean_tokens,
        cfg.pooling_mode_cls_token,
        cfg.pooling_mode_max_tokens
            || cfg.pooling_mode_mean_sqrt_len_tokens
            || cfg.pooling_mode_weightedmean_tokens
            || cfg.pooling_mode_lasttoken,
    ) {
        (true, false, false) => Ok(Pooling::Mean),
        (false, true, false) => Ok(Pooling::Cls),
        _ => Err(EmbeddingError::BadConfig {
            path,
            reason: "only one of pooling_mode_mean_tokens or pooling_mode_cls_token may be set \
                     (max, sqrt-length, weighted-mean and last-token pooling are not supported)"
                .into(),
        }),
    }
}

fn read_max_tokens(dir: &Path, max_positions: usize) -> Result<usize, EmbeddingError> {
    let configured = match read_optional(dir, OPTIONAL_FILES[1])? {
        Some((path, bytes)) => {
            let cfg: SentenceBertConfig =
                serde_json::from_slice(&bytes).map_err(|e| EmbeddingError::BadConfig {
                    path,
                    reason: e.to_string(),
                })?;
            cfg.max_seq_length.unwrap_or(DEFAULT_MAX_TOKENS)
        }
        None => DEFAULT_MAX_TOKENS,
    };
    Ok(configured.min(max_positions).max(2))
}

/// First 12 hex digits of sha256 over the three files' bytes, in [`REQUIRED_FILES`] order.
fn weights_fingerprint(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `config.json` (at `path`) as a BERT config whose hidden size splits evenly into heads.
fn parse_config(path: &Path, bytes: &[u8]) -> Result<Config, EmbeddingError> {
    let config: Config = serde_json::from_slice(bytes).map_err(|e| EmbeddingError::BadConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
        return Err(EmbeddingError::BadConfig {
            path: path.to_path_buf(),
            reason: format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ),
        });
    }
    Ok(config)
}

/// `tokenizer.json` (at `path`), truncating to `max_tokens` word pieces, never padding
/// (batches are padded by the embedder itself).
fn load_tokenizer(path: &Path, bytes: &[u8], max_tokens: usize) -> Result<Tokenizer, EmbeddingError> {
    let bad = |source| EmbeddingError::BadTokenizer {
        path: path.to_path_buf(),
        source,
    };
    let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(bad)?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(bad)?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// The BERT encoder from `model.safetensors` (at `path`, already read into `bytes`), in f32.
fn load_weights(
    path: &Path,
    bytes: Vec<u8>,
    config: &Config,
    device: &Device,
) -> Result<Encoder, EmbeddingError> {
    let bad = |e| EmbeddingError::BadWeights {
        path: path.to_path_buf(),
        source: crate::error::cause(e),
    };
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device).map_err(bad)?;
    Encoder::load(vb, config).map_err(bad)
}

impl Embedder {
    /// Loads a model from `dir`, which must hold `config.json`, `tokenizer.json` and
    /// `model.safetensors`; `1_Pooling/config.json` (mean or cls) and
    /// `sentence_bert_config.json` (`max_seq_length`) are honoured when present, else mean
    /// pooling and 256 word pieces (capped by `max_position_embeddings`).
    ///
    /// Reads and hashes every file (about 90 MB and 0.3-1 s for all-MiniLM-L6-v2); resident
    /// memory afterwards is about the size of `model.safetensors` plus the tokenizer.
    pub fn load(dir: &Path) -> Result<Embedder, EmbeddingError> {
        let config_bytes = read_required(dir, REQUIRED_FILES[0])?;
        let tokenizer_bytes = read_required(dir, REQUIRED_FILES[1])?;
        let weights_bytes = read_required(dir, REQUIRED_FILES[2])?;
        let config = parse_config(&dir.join(REQUIRED_FILES[0]), &config_bytes)?;
        let pooling = read_pooling(dir)?;
        let max_tokens = read_max_tokens(dir, config.max_position_embeddings)?;
        let tokenizer = load_tokenizer(&dir.join(REQUIRED_FILES[1]), &tokenizer_bytes, max_tokens)?;
        let model_id = format!(
            "{}@{}",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            weights_fingerprint(&[&config_bytes, &tokenizer_bytes, &weights_bytes])
        );
        let device = Device::Cpu;
        let model = load_weights(&dir.join(REQUIRED_FILES[2]), weights_bytes, &config, &device)?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
            pooling,
            dim: config.hidden_size,
            max_tokens,
            pad_id: config.pad_token_id as u32,
            model_id,
        })
    }

    /// Stable identity of the model, for tagging stored vectors:
    /// `<dir basename>@<first 12 hex digits of sha256(config.json ++ tokenizer.json ++
    /// model.safetensors)>`, e.g. `all-MiniLM-L6-v2@ad404e0d5b24`. Another model, or the same
    /// model with other weights, gives another id; vectors tagged with another id must be
    /// recomputed.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Length of every vector: the encoder's `hidden_size` (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Word pieces a text is truncated to, `[CLS]` and `[SEP]` included (256 for
    /// all-MiniLM-L6-v2; roughly 1000-1200 characters of English prose).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// How this model pools token vectors.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Embeds `texts`: one vector of [`Embedder::dim`] floats per text, in input order, each of
    /// L2 norm 1 (so a dot product is the cosine similarity). Texts longer than
    /// [`Embedder::max_tokens`] word pieces are truncated; an empty text is allowed (it
    /// embeds as `[CLS] [SEP]`). Internally sorts by token length and runs groups of similar
    /// length so padding is small; the result does not depend on how texts are grouped
    /// beyond float rounding (~1e-6).
    ///
    /// Uses the calling thread and, for matrix products, the current rayon pool (the
    /// [`crate::EmbedPool`]'s own when called through it).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let tokens = self.tokenize(texts)?;
        let groups = plan_groups(&tokens, group_token_budget(), GROUP_MAX_SEQS);
        let mut out = vec![Vec::new(); texts.len()];
        self.forward_groups(&tokens, &groups, &mut out)?;
        Ok(out)
    }

    /// Word pieces `text` becomes, `[CLS]` and `[SEP]` included, after truncation to
    /// [`Embedder::max_tokens`] (so at most that). Cheap next to [`Embedder::embed`]: tens of
    /// microseconds for a 1000-character text.
    pub fn token_count(&self, text: &str) -> Result<usize, EmbeddingError> {
        Ok(self.tokenize(&[text])?.pop().map(|t| t.len()).unwrap_or(0))
    }

    /// Runs `groups` (indices into `tokens`) side by side on the current rayon pool, one
    /// group per thread (each group's matrix products may also split across idle threads),
    /// and stores each text's vector at its index in `out`.
    pub(crate) fn forward_groups(
        &self,
        tokens: &[Vec<u32>],
        groups: &[Vec<usize>],
        out: &mut [Vec<f32>],
    ) -> Result<(), EmbeddingError> {
        use rayon::prelude::*;
        let results: Vec<Result<Vec<Vec<f32>>, EmbeddingError>> = groups
            .par_iter()
            .map(|group| {
                let seqs: Vec<&[u32]> = group.iter().map(|&i| tokens[i].as_slice()).collect();
                self.forward(&seqs)
            })
            .collect();
        for (group, vectors) in groups.iter().zip(results) {
            for (&i, v) in group.iter().zip(vectors?) {
                out[i] = v;
            }
        }
        Ok(())
    }

    /// Token ids of each text, truncated to `max_tokens`, special tokens added.
    pub(crate) fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EmbeddingError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(EmbeddingError::Inference)?;
        Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// One forward pass over `seqs` (padded to the longest), pooled and normalised:
    /// one `dim`-float unit vector per sequence.
    pub(crate) fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let batch = seqs.len();
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(self.pad_id, len - s.len()));
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            mask.extend(std::iter::repeat_n(0u32, len - s.len()));
        }
        let run = || -> candle_core::Result<Vec<Vec<Vec<f32>>>> {
            let ids = Tensor::from_vec(ids, (batch, len), &self.device)?;
            // The mask only matters when something is padded.
            let mask_t = if seqs.iter().any(|s| s.len() < len) {
                Some(Tensor::from_vec(mask, (batch, len), &self.device)?)
            } else {
                None
            };
            self.model.forward(&ids, mask_t.as_ref())?.to_vec3::<f32>()
        };
        let hidden = run().map_err(EmbeddingError::inference)?;
        Ok(hidden
            .iter()
            .zip(seqs)
            .map(|(tokens, s)| {
                let mut v = match self.pooling {
                    Pooling::Cls => tokens[0].clone(),
                    Pooling::Mean => mean_pool(&tokens[..s.len().max(1)], self.dim),
                };
                l2_normalise(&mut v);
                v
            })
            .collect())
    }
}

/// Mean of `tokens` (each `dim` floats): sentence-transformers' mean pooling with the
/// padding already cut off.
fn mean_pool(tokens: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dim];
    for t in tokens {
        for (acc, x) in sum.iter_mut().zip(t) {
            *acc += x;
        }
    }
    let n = tokens.len().max(1) as f32;
    sum.iter_mut().for_each(|x| *x /= n);
    sum
}

/// Divides by the L2 norm, floored at 1e-12 as `torch.nn.functional.normalize` does.
fn l2_normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Groups indices of `seqs` into forward passes: longest first, each group padded to its
/// first (longest) member, at most `max_seqs` sequences and at most `token_budget` padded
/// tokens (a single sequence longer than the budget gets a group of its own).
pub(crate) fn plan_groups(seqs: &[Vec<u32>], token_budget: usize, max_seqs: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = seqs[i].len().max(1);
        if current.is_empty() {
            longest = len;
        } else if current.len() >= max_seqs || (current.len() + 1) * longest > token_budget {
            groups.push(std::mem::take(&mut current));
            longest = len;
        }
        current.push(i);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_respect_budget_and_cover_every_index() {
        let seqs: Vec<Vec<u32>> = [5usize, 300, 2, 100, 100, 7, 256]
            .iter()
            .map(|&n| vec![1; n])
            .collect();
        let groups = plan_groups(&seqs, 256, 3);
        let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..seqs.len()).collect::<Vec<_>>());
        for g in &groups {
            let longest = g.iter().map(|&i| seqs[i].len()).max().unwrap();
            assert!(g.len() <= 3);
            assert!(g.len() == 1 || g.len() * longest <= 256, "{g:?}");
        }
        assert_eq!(groups[0], vec![1], "the longest sequence comes first, alone");
    }

    #[test]
    fn normalise_and_mean() {
        let mut v = mean_pool(&[vec![1.0, 0.0], vec![3.0, 4.0]], 2);
        assert_eq!(v, vec![2.0, 2.0]);
        l2_normalise(&mut v);
        assert!((v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let mut zero = vec![0.0f32; 3];
        l2_normalise(&mut zero);
        assert_eq!(zero, vec![0.0; 3]);
    }
}
