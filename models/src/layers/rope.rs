//! Rotary position embedding, and the one place that knows how GGUF and
//! Hugging Face lay out llama's Q/K rows.
//!
//! llama.cpp's converter permutes llama-arch `attn_q`/`attn_k` rows so that
//! rotation pairs are adjacent (`x[2i], x[2i+1]`, ggml's "normal" rope);
//! Hugging Face keeps pairs half a head apart (`x[i], x[i + D/2]`, "neox").
//! Attention scores are invariant under the same permutation of q and k, so
//! srl runs each file in its own layout ([`RopeStyle`]) without copying
//! weights, and converts rows only when writing files or adapters.

/// Which elements of a head form a rotation pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs `(2i, 2i+1)`: llama-arch GGUF files.
    Interleaved,
    /// Pairs `(i, i + D/2)`: Hugging Face checkpoints, Qwen2 GGUF files.
    Halves,
}

/// cos/sin of every rotation angle for positions `pos0..pos0+T`, computed the
/// way ggml does (angle advanced by repeated multiplication in f32, so values
/// match llama.cpp bit for bit). `factors` ([D/2], Llama 3's `rope_freqs`)
/// divide each pair's angle, as ggml's `freq_factors`. `out` is [T, D/2]
/// pairs of (cos, sin).
pub fn rope_table(
    pos0: usize,
    n_tokens: usize,
    head_dim: usize,
    theta_base: f32,
    factors: Option<&[f32]>,
    out: &mut Vec<(f32, f32)>,
) {
    let half = head_dim / 2;
    out.clear();
    let theta_scale = theta_base.powf(-2.0 / head_dim as f32);
    for t in 0..n_tokens {
        let mut theta = (pos0 + t) as f32;
        for i in 0..half {
            let angle = factors.map_or(theta, |f| theta / f[i]);
            out.push((angle.cos(), angle.sin()));
            theta *= theta_scale;
        }
    }
}

/// The frequency factors of Llama 3's RoPE scaling (`rope_scaling` with
/// `rope_type: llama3` in config.json), as llama.cpp's converter computes
/// them into `rope_freqs.weight`: 1 for wavelengths under
/// `original / high`, `factor` over `original / low`, interpolated between.
pub fn llama3_rope_factors(
    theta_base: f32,
    head_dim: usize,
    factor: f32,
    low: f32,
    high: f32,
    original_context: f32,
) -> Vec<f32> {
    let (low_wavelen, high_wavelen) = (original_context / low, original_context / high);
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / theta_base.powf((2 * i) as f32 / head_dim as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (original_context / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

/// Rotates every head of `x` ([T, n_heads * D]) in place.
pub fn apply_rope(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    table: &[(f32, f32)],
    style: RopeStyle,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("fma") {
        // SAFETY: FMA is present (checked just above).
        unsafe { apply_rope_fma(x, n_heads, head_dim, table, style) };
        return;
    }
    apply_rope_body(x, n_heads, head_dim, table, style)
}

/// The same loop with hardware FMA (mul_add is exact either way; without
/// the feature it is a call into libm per element).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn apply_rope_fma(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    table: &[(f32, f32)],
    style: RopeStyle,
) {
    apply_rope_body(x, n_heads, head_dim, table, style)
}

#[inline(always)]
fn apply_rope_body(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    table: &[(f32, f32)],
    style: RopeStyle,
) {
    let half = head_dim / 2;
    let row = n_heads * head_dim;
    for (t, xt) in x.chunks_exact_mut(row).enumerate() {
        let cs = &table[t * half..(t + 1) * half];
        for head in xt.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = match style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                // ggml computes `x0*cos - x1*sin` and `x0*sin + x1*cos`; GCC
                // contracts each into one fused multiply-add of the first
                // product (bit-exactness with llama.cpp depends on it).
                head[a] = x0.mul_add(c, -(x1 * s));
                head[b] = x0.mul_add(s, x1 * c);
            }
        }
    }
}

/// Backward of [`apply_rope`]: rotates the gradient by the opposite angle
/// (a rotation's transpose is its inverse), in place.
pub fn apply_rope_backward(
    dx: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    table: &[(f32, f32)],
    style: RopeStyle,
) {
    let half = head_dim / 2;
    let row = n_heads * head_dim;
    for (t, xt) in dx.chunks_exact_mut(row).enumerate() {
        let cs = &table[t * half..(t + 1) * half];
        for head in xt.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = match style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (d0, d1) = (head[a], head[b]);
                head[a] = d0 * c + d1 * s;
                head[b] = d1 * c - d0 * s;
            }
        }
    }
}

/// The Hugging Face row that GGUF's llama-arch row `r` of a Q or K weight
/// (or bias) came from. Rows are grouped by head of `head_dim` rows.
pub fn hf_row_of_gguf_row(r: usize, head_dim: usize) -> usize {
    let (head, j) = (r / head_dim, r % head_dim);
    let half = head_dim / 2;
    head * head_dim + (j % 2) * half + j / 2
}

/// The GGUF llama-arch row that Hugging Face row `r` becomes.
pub fn gguf_row_of_hf_row(r: usize, head_dim: usize) -> usize {
    let (head, j) = (r / head_dim, r % head_dim);
    let half = head_dim / 2;
    head * head_dim + 2 * (j % half) + j / half
}

/// Reorders the rows of a row-major matrix (`row_len` elements per row) from
/// GGUF llama-arch layout to Hugging Face layout.
pub fn gguf_rows_to_hf<T: Copy>(src: &[T], row_len: usize, head_dim: usize) -> Vec<T> {
    let mut out = src.to_vec();
    for (r, row) in src.chunks_exact(row_len).enumerate() {
        let dst = hf_row_of_gguf_row(r, head_dim);
        out[dst * row_len..(dst + 1) * row_len].copy_from_slice(row);
    }
    out
}

/// Inverse of [`gguf_rows_to_hf`].
pub fn hf_rows_to_gguf<T: Copy>(src: &[T], row_len: usize, head_dim: usize) -> Vec<T> {
    let mut out = src.to_vec();
    for (r, row) in src.chunks_exact(row_len).enumerate() {
        let dst = gguf_row_of_hf_row(r, head_dim);
        out[dst * row_len..(dst + 1) * row_len].copy_from_slice(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_backward_is_the_transpose() {
        // <R x, d> == <x, R^T d> for random x, d, in both layouts.
        let mut table = Vec::new();
        rope_table(3, 2, 8, 10000.0, None, &mut table);
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let x: Vec<f32> = (0..32)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.1)
                .collect();
            let d: Vec<f32> = (0..32).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect();
            let mut rx = x.clone();
            apply_rope(&mut rx, 2, 8, &table, style);
            let mut rtd = d.clone();
            apply_rope_backward(&mut rtd, 2, 8, &table, style);
            let lhs: f32 = rx.iter().zip(&d).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&rtd).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-5, "{style:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn row_maps_are_inverse() {
        for r in 0..3 * 64 {
            assert_eq!(gguf_row_of_hf_row(hf_row_of_gguf_row(r, 64), 64), r);
        }
        // convert_hf_to_gguf: reshape(n_head, 2, D/2).swapaxes(1, 2): gguf row 1 is hf row D/2.
        assert_eq!(hf_row_of_gguf_row(1, 64), 32);
        assert_eq!(hf_row_of_gguf_row(2, 64), 1);
    }

    /// Rotating GGUF-layout q/k and HF-layout q/k gives the same dot products.
    #[test]
    fn styles_agree_under_permutation() {
        let d = 8;
        let q_hf: Vec<f32> = (0..d).map(|i| (i as f32 * 0.7).sin()).collect();
        let k_hf: Vec<f32> = (0..d).map(|i| (i as f32 * 1.3).cos()).collect();
        let mut q_gg = hf_rows_to_gguf(&q_hf, 1, d);
        let mut k_gg = hf_rows_to_gguf(&k_hf, 1, d);
        let (mut q_hf, mut k_hf) = (q_hf, k_hf);
        let mut tq = Vec::new();
        let mut tk = Vec::new();
        rope_table(5, 1, d, 10000.0, None, &mut tq);
        rope_table(2, 1, d, 10000.0, None, &mut tk);
        apply_rope(&mut q_hf, 1, d, &tq, RopeStyle::Halves);
        apply_rope(&mut k_hf, 1, d, &tk, RopeStyle::Halves);
        apply_rope(&mut q_gg, 1, d, &tq, RopeStyle::Interleaved);
        apply_rope(&mut k_gg, 1, d, &tk, RopeStyle::Interleaved);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!((dot(&q_hf, &k_hf) - dot(&q_gg, &k_gg)).abs() < 1e-5);
        assert_eq!(gguf_rows_to_hf(&q_gg, 1, d), q_hf);
    }
}
