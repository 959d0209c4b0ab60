//! The BERT encoder, written against candle's tensor operations instead of taken whole
//! from `candle_transformers::models::bert`, because on a CPU the same maths costs less in
//! fewer, fused operations:
//!
//! - the query, key and value projections are one matrix product (weights concatenated
//!   at load), not three;
//! - the attention scale `1 / sqrt(head_dim)` is folded into the query weights and bias at
//!   load, instead of dividing every attention score;
//! - the softmax is one pass per row, in place ([`crate::kernels::SoftmaxLastDim`]),
//!   instead of five whole-tensor operations (max, subtract, exp, sum, divide), each
//!   allocating a tensor of `batch × heads × len × len` floats;
//! - the token-type embedding (always type 0 for sentence embeddings) is one row added,
//!   not a lookup per token;
//! - the exact GELU and the softmax's exponentials are computed by [`crate::kernels`]
//!   (a vectorised `erf` and `exp`), not by a scalar libm call per element.
//!
//! The weights, names and results are those of Hugging Face's `BertModel` (and candle's
//! port of it): a test compares the two encoders' outputs on the test model. `config.json`
//! is read with candle-transformers' `Config`, so every model candle's BERT loads, this
//! loads.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::kernels::{GeluErf, SoftmaxLastDim};

/// One transformer layer's weights.
struct Layer {
    /// Query, key and value projections in one: weight `(3 × hidden, hidden)`, the
    /// query third pre-scaled by `1 / sqrt(head_dim)`.
    qkv: Linear,
    /// Attention output projection `(hidden, hidden)`.
    attention_out: Linear,
    attention_norm: LayerNorm,
    /// `(intermediate, hidden)`, then the activation.
    intermediate: Linear,
    /// `(hidden, intermediate)`.
    output: Linear,
    output_norm: LayerNorm,
}

/// A BERT encoder: token ids in, one `hidden_size` vector per token out.
pub(crate) struct Encoder {
    word_embeddings: Embedding,
    /// `(max_position_embeddings, hidden)`.
    position_embeddings: Tensor,
    /// Token type 0's embedding, `(hidden,)`.
    token_type: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    activation: HiddenAct,
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
    let weight = vb.get(size, "weight")?;
    let bias = vb.get(size, "bias")?;
    Ok(LayerNorm::new(weight, bias, eps))
}

fn linear(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Linear> {
    let weight = vb.get((outputs, inputs), "weight")?;
    let bias = vb.get(outputs, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

/// The prefix the checkpoint's tensor names carry: none (sentence-transformers exports),
/// `bert.` (Hugging Face `BertModel` checkpoints) or `<model_type>.`, as candle's BERT
/// accepts.
fn prefix(vb: &VarBuilder, config: &Config) -> String {
    let mut candidates = vec![String::new(), "bert.".to_string()];
    if let Some(t) = &config.model_type {
        candidates.push(format!("{t}."));
    }
    candidates
        .into_iter()
        .find(|p| vb.contains_tensor(&format!("{p}embeddings.word_embeddings.weight")))
        .unwrap_or_default()
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config, head_dim: usize) -> Result<Layer> {
        let h = config.hidden_size;
        let attention = vb.pp("attention");
        let this = attention.pp("self");
        let scale = 1.0 / (head_dim as f64).sqrt();
        let q = linear(this.pp("query"), h, h)?;
        let k = linear(this.pp("key"), h, h)?;
        let v = linear(this.pp("value"), h, h)?;
        let bias = |l: &Linear| {
            l.bias()
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("a bias".into()))
        };
        let weight = Tensor::cat(
            &[(q.weight() * scale)?, k.weight().clone(), v.weight().clone()],
            0,
        )?;
        let b = Tensor::cat(&[(bias(&q)? * scale)?, bias(&k)?, bias(&v)?], 0)?;
        let eps = config.layer_norm_eps;
        Ok(Layer {
            qkv: Linear::new(weight, Some(b)),
            attention_out: linear(attention.pp("output").pp("dense"), h, h)?,
            attention_norm: layer_norm(attention.pp("output").pp("LayerNorm"), h, eps)?,
            intermediate: linear(vb.pp("intermediate").pp("dense"), h, config.intermediate_size)?,
            output: linear(vb.pp("output").pp("dense"), config.intermediate_size, h)?,
            output_norm: layer_norm(vb.pp("output").pp("LayerNorm"), h, eps)?,
        })
    }
}

impl Encoder {
    /// Loads the encoder's weights (f32) from `vb` as `config` describes them.
    pub(crate) fn load(vb: VarBuilder, config: &Config) -> Result<Encoder> {
        let vb = match prefix(&vb, config).trim_end_matches('.') {
            "" => vb,
            p => vb.pp(p),
        };
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        let head_dim = h / heads;
        let emb = vb.pp("embeddings");
        let word = emb.pp("word_embeddings").get((config.vocab_size, h), "weight")?;
        let position_embeddings = emb
            .pp("position_embeddings")
            .get((config.max_position_embeddings, h), "weight")?;
        let token_type = emb
            .pp("token_type_embeddings")
            .get((config.type_vocab_size.max(1), h), "weight")?
            .get(0)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i.to_string()), config, head_dim))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            word_embeddings: Embedding::new(word, h),
            position_embeddings,
            token_type,
            embeddings_norm: layer_norm(emb.pp("LayerNorm"), h, config.layer_norm_eps)?,
            layers,
            heads,
            head_dim,
            hidden: h,
            activation: config.hidden_act,
        })
    }

    /// Token vectors `(batch, len, hidden)` for `ids` `(batch, len)` (u32, token type 0
    /// throughout). `mask` `(batch, len)` (u32, 1 for a real token, 0 for padding) keeps
    /// padding out of every token's attention; `None` when nothing is padded.
    pub(crate) fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let x = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&self.position_embeddings.narrow(0, 0, len)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.embeddings_norm.forward(&x)?;
        // Added to the attention scores: 0 for a real token, f32::MIN for padding (as
        // Hugging Face's `get_extended_attention_mask`), shape (batch, 1, 1, len).
        let additive = match mask {
            Some(m) => {
                let m = m.to_dtype(DType::F32)?;
                Some(((1.0 - m)? * f64::from(f32::MIN))?.reshape((batch, 1, 1, len))?)
            }
            None => None,
        };
        for layer in &self.layers {
            x = self.layer(layer, &x, additive.as_ref())?;
        }
        Ok(x)
    }

    fn layer(&self, l: &Layer, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (batch, len, _) = x.dims3()?;
        let qkv = l
            .qkv
            .forward(x)?
            .reshape((batch, len, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        // `scores` is the fresh output of the product (and mask) above: nothing else holds it.
        scores.inplace_op1(&SoftmaxLastDim)?;
        let probs = scores;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, len, self.hidden))?;
        let attended = l
            .attention_norm
            .forward(&(l.attention_out.forward(&context)? + x)?)?;
        let inner = l.intermediate.forward(&attended)?;
        let inner = match self.activation {
            HiddenAct::Gelu => {
                // `inner` is the fresh output of the product above: nothing else holds it.
                inner.inplace_op1(&GeluErf)?;
                inner
            }
            HiddenAct::GeluApproximate => inner.gelu()?,
            HiddenAct::Relu => inner.relu()?,
        };
        l.output_norm.forward(&(l.output.forward(&inner)? + &attended)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_transformers::models::bert::BertModel;

    /// The fused encoder gives candle's `BertModel` results on the real weights: a batch
    /// with padding (masked) and one without, every token vector.
    #[test]
    fn matches_candles_bert_on_the_test_model() {
        let dir = crate::test_model_dir();
        assert!(
            dir.join("model.safetensors").is_file(),
            "test model missing at {}: run scripts/fetch-test-model.sh",
            dir.display()
        );
        let config: Config =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config")).expect("parse");
        let weights = std::fs::read(dir.join("model.safetensors")).expect("weights");
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device).expect("vb");
        let ours = Encoder::load(vb.clone(), &config).expect("ours");
        let theirs = BertModel::load(vb, &config).expect("theirs");
        // Token ids of the test model's vocabulary ([CLS] 101, [SEP] 102, padding 0).
        let rows: [&[u32]; 3] = [
            &[101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 102],
            &[101, 3899, 102, 0, 0, 0, 0, 0, 0],
            &[101, 1045, 2293, 2026, 3899, 1998, 2014, 102, 0],
        ];
        let ids: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let mask: Vec<u32> = ids.iter().map(|&t| u32::from(t != 0)).collect();
        let ids = Tensor::from_vec(ids, (3, 9), &device).expect("ids");
        let mask = Tensor::from_vec(mask, (3, 9), &device).expect("mask");
        let a = ours.forward(&ids, Some(&mask)).expect("ours forward");
        let b = theirs
            .forward(&ids, &ids.zeros_like().expect("types"), Some(&mask))
            .expect("theirs forward");
        let diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .expect("sub")
                .abs()
                .expect("abs")
                .flatten_all()
                .expect("flat")
                .max(0)
                .expect("max")
                .to_scalar::<f32>()
                .expect("scalar")
        };
        assert_eq!(a.dims(), &[3, 9, config.hidden_size]);
        let d = diff(&a, &b);
        assert!(d < 1e-4, "max abs difference with padding {d}");
        let one = ids.narrow(0, 0, 1).expect("row");
        let a = ours.forward(&one, None).expect("ours forward");
        let b = theirs
            .forward(&one, &one.zeros_like().expect("types"), None)
            .expect("theirs forward");
        let d = diff(&a, &b);
        assert!(d < 1e-4, "max abs difference without padding {d}");
    }
}
