//! Two element-wise steps of the encoder, each in one pass over a tensor, in place:
//! BERT's activation, GELU in its exact form `x/2 · (1 + erf(x/√2))` ([`GeluErf`]), and
//! the attention softmax over the last dimension ([`SoftmaxLastDim`]).
//!
//! Why not candle's `gelu_erf`: it calls the scalar `erff` of the `libm` crate once per
//! element (which calls `expf` again for |x| > 0.84), a new tensor each time; that was an
//! eighth of the embedding time, more than any operation but the matrix products
//! (`perf`, `examples/embed_speed.rs`). Here `erf` is a branch-free rational
//! approximation the compiler vectorises (16 lanes with AVX-512), writing over the matrix
//! product's output, which nothing else holds.
//!
//! - `erf`: Abramowitz & Stegun, *Handbook of Mathematical Functions* (1964), formula
//!   7.1.26: absolute error at most 1.5e-7 (f32's own rounding near 1 is 6e-8).
//! - `exp(-z²)` inside it: Cephes `expf` (S. L. Moshier): `x = n·ln 2 + r`, `ln 2` split in
//!   two so `r` is exact, a degree-5 polynomial for `e^r` on |r| ≤ ln2/2, times `2^n`
//!   built from the exponent bits; about 2 ulp.
//!
//! Against candle's `gelu_erf` the result differs by at most about 1e-6 × max(1, |x|)
//! (tested on a dense grid), far below what changes a sentence vector (the encoder test
//! compares whole models at 1e-4).
//!
//! The softmax is candle's `softmax_last_dim` (max, exponentials, sum, divide per row)
//! with the exponential above instead of a scalar `expf` call per attention score (the
//! next largest cost after `erf`); a score more than 87 below its row's maximum (a
//! padded token, masked with `f32::MIN`) gets exactly 0, as with `expf`.

use candle_core::{CpuStorage, InplaceOp1, Layout, Result};

/// In-place GELU (erf form) of a contiguous `f32` tensor: `t.inplace_op1(&GeluErf)`.
pub(crate) struct GeluErf;

impl InplaceOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        gelu_slice(contiguous_f32(storage, layout, self.name())?);
        Ok(())
    }
}

/// In-place softmax over the last dimension of a contiguous `f32` tensor:
/// `t.inplace_op1(&SoftmaxLastDim)`.
pub(crate) struct SoftmaxLastDim;

impl InplaceOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "softmax-last-dim-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let row = layout.dims().last().copied().unwrap_or(1).max(1);
        softmax_rows(contiguous_f32(storage, layout, self.name())?, row);
        Ok(())
    }
}

/// The values of a contiguous `f32` tensor, or an error naming `op`.
fn contiguous_f32<'a>(storage: &'a mut CpuStorage, layout: &Layout, op: &str) -> Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&mut values[start..end]),
        _ => Err(candle_core::Error::Msg(format!(
            "{op} needs a contiguous f32 tensor"
        ))),
    }
}

/// The softmax of each `row`-long row of `xs`, in place: `e^(x - max) / Σ e^(x - max)`,
/// with the widest vector instructions this CPU has (chosen once per tensor).
fn softmax_rows(xs: &mut [f32], row: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above; the check is cached).
            return unsafe { softmax_rows_avx512(xs, row) };
        }
    }
    softmax_rows_portable(xs, row);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn softmax_rows_avx512(xs: &mut [f32], row: usize) {
    softmax_rows_portable(xs, row);
}

#[inline(always)]
fn softmax_rows_portable(xs: &mut [f32], row: usize) {
    for r in xs.chunks_mut(row) {
        softmax_row(r);
    }
}

/// Lanes of the reductions below: independent partial maxima and sums let the compiler
/// vectorise them without reordering a single chain of float additions.
const LANES: usize = 16;

/// One row's softmax, in place.
#[inline(always)]
fn softmax_row(xs: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for x in xs.iter_mut() {
        let d = max - *x;
        // Below e^-87 the exponential is 0, as `expf` gives it (and a masked score is
        // f32::MIN below the row's maximum).
        *x = if d > 87.0 { 0.0 } else { exp_neg(d) };
    }
    let mut sums = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            sums[i] += c[i];
        }
    }
    let sum: f32 = sums.iter().chain(chunks.remainder()).sum();
    let inv = 1.0 / sum;
    for x in xs.iter_mut() {
        *x *= inv;
    }
}

/// Applies [`gelu`] to every element, with the widest vector instructions this CPU has
/// (the release build targets baseline x86-64; the same loop is also compiled for AVX2
/// and AVX-512, chosen at run time). No fused multiply-adds are formed (no fast-math),
/// so every path gives the same bits.
pub(crate) fn gelu_slice(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above; the check is cached).
            return unsafe { gelu_slice_avx512(xs) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { gelu_slice_avx2(xs) };
        }
    }
    gelu_slice_portable(xs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gelu_slice_avx512(xs: &mut [f32]) {
    gelu_slice_portable(xs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gelu_slice_avx2(xs: &mut [f32]) {
    gelu_slice_portable(xs);
}

/// The loop's one definition, vectorised for whatever features it is inlined into.
#[inline(always)]
fn gelu_slice_portable(xs: &mut [f32]) {
    for x in xs {
        *x = gelu(*x);
    }
}

/// `x/2 · (1 + erf(x/√2))`, erf by Abramowitz & Stegun 7.1.26.
#[allow(clippy::excessive_precision)] // The constants as published; f32 rounds them.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    // A&S 7.1.26: erf(z) = 1 - (a1 t + a2 t² + a3 t³ + a4 t⁴ + a5 t⁵) e^(-z²), t = 1/(1 + p z), z ≥ 0.
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_592;
    const A2: f32 = -0.284_496_736;
    const A3: f32 = 1.421_413_741;
    const A4: f32 = -1.453_152_027;
    const A5: f32 = 1.061_405_429;
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let erf = (1.0 - poly * exp_neg(z * z)).copysign(x);
    0.5 * x * (1.0 + erf)
}

/// `e^(-v)` for `v ≥ 0` (Cephes `expf`); 0 < result ≤ 1, flushed to about 1.6e-38 below
/// `e^-87` (where it no longer changes `erf` in f32).
#[allow(clippy::excessive_precision)] // The constants as published; f32 rounds them.
#[inline(always)]
fn exp_neg(v: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2^23 rounds to the nearest integer without a call (|x · log2 e| < 2^22
    // here) and leaves that integer in the low mantissa bits: `bits - 0x4B40_0000` is `n`
    // as a two's complement integer. No float-to-integer cast (Rust's saturates, which
    // the compiler cannot vectorise), so the whole loop runs in vector lanes.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: u32 = 0x4B40_0000;
    let x = (-v).max(-87.0);
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = (((((1.987_569_15e-4 * r + 1.398_199_950_7e-3) * r + 8.333_451_907_3e-3) * r
        + 4.166_579_589_4e-2)
        * r
        + 1.666_666_545_9e-1)
        * r
        + 5.000_000_120_1e-1)
        * r2
        + r
        + 1.0;
    // 2^n from the exponent bits: n is in [-126, 0], a normal exponent.
    let n_bits = rounded.to_bits().wrapping_sub(ROUND_BITS);
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn inputs() -> Vec<f32> {
        let mut xs: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 * 1e-3).collect();
        xs.extend([
            0.0, -0.0, 1e-30, -1e-30, 1e-6, -1e-6, 30.0, -30.0, 87.0, -87.0, 1e4, -1e4,
        ]);
        xs
    }

    /// Within 1e-6 × max(1, |x|) of candle's `gelu_erf` (libm's `erff`) everywhere.
    #[test]
    fn matches_candles_exact_gelu() {
        let xs = inputs();
        let want = Tensor::new(xs.as_slice(), &Device::Cpu)
            .and_then(|t| t.gelu_erf())
            .and_then(|t| t.to_vec1::<f32>())
            .expect("candle gelu_erf");
        let mut got = xs.clone();
        gelu_slice(&mut got);
        for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
            assert!(
                (g - w).abs() <= 1e-6 * x.abs().max(1.0),
                "gelu({x}) = {g}, candle {w}"
            );
        }
        assert_eq!(got[xs.len() - 12], 0.0);
        assert_eq!(got[xs.len() - 2], 1e4, "large x passes through");
        assert_eq!(got[xs.len() - 1], 0.0, "large negative x is cut to 0");
    }

    /// Within 1e-6 of candle's `softmax_last_dim`, rows summing to 1, masked scores 0.
    #[test]
    fn softmax_matches_candles() {
        let mut values: Vec<f32> = (0..4 * 37)
            .map(|i| ((i * 7919) % 200) as f32 * 0.11 - 11.0)
            .collect();
        values[3] = f32::MIN;
        values[40] = f32::MIN;
        values[41] = 50.0;
        let t = Tensor::from_vec(values, (4, 37), &Device::Cpu).expect("tensor");
        let want = candle_nn::ops::softmax_last_dim(&t)
            .and_then(|w| w.to_vec2::<f32>())
            .expect("candle softmax");
        let got = t.copy().expect("copy");
        got.inplace_op1(&SoftmaxLastDim).expect("softmax");
        let got = got.to_vec2::<f32>().expect("values");
        for (g, w) in got.iter().zip(&want) {
            let sum: f32 = g.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() <= 1e-6, "{a} vs candle {b}");
            }
        }
        assert_eq!(got[0][3], 0.0);
        assert_eq!(got[1][3], 0.0);
    }

    /// Every compiled path gives the same bits, and the in-place op is the slice function.
    #[test]
    fn every_path_and_the_tensor_op_agree() {
        let xs = inputs();
        let mut portable = xs.clone();
        gelu_slice_portable(&mut portable);
        let mut dispatched = xs.clone();
        gelu_slice(&mut dispatched);
        assert_eq!(portable, dispatched);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut v = xs.clone();
            // SAFETY: AVX2 checked just above.
            unsafe { gelu_slice_avx2(&mut v) };
            assert_eq!(v, portable);
        }
        let t = Tensor::new(xs.as_slice(), &Device::Cpu).expect("tensor");
        t.inplace_op1(&GeluErf).expect("in place");
        assert_eq!(t.to_vec1::<f32>().expect("values"), portable);
    }
}
