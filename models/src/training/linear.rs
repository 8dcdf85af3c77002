//! A linear layer in training: `y = x W^T + b + s * (drop(x) A^T) B^T`, with
//! W read in place from the model file (f32 activations against dequantized
//! rows, so the loss is smooth in x) and A, B the trained f32 matrices. The
//! backward adds `dy W` and the LoRA branch's input gradient into dx and the
//! A/B gradients into the gradient adapter.
//!
//! Dropout masks are a hash of (seed, layer, target, element), so the
//! recomputation in the backward pass sees the same mask without storing it.

use super::scratch::{sized, zeroed, LoraBufs, WeightGradBufs};
use crate::lora_params::{mix64, LoraParams, LoraTensor, Target};
use crate::parallel::axpy_par;
use crate::transformer::{Linear, Model};
use srl_quant::{gemm_f32_nn, gemm_f32_nt, transpose_f32, LowRank, TransposedTerm};

/// The adapter a pass trains (or only applies), and its dropout.
#[derive(Clone, Copy)]
pub(crate) struct LoraPass<'a> {
    pub params: Option<&'a LoraParams>,
    /// Some(seed) when dropout is active (training with dropout > 0).
    pub dropout_seed: Option<u64>,
}

impl LoraPass<'_> {
    fn tensor(&self, layer: usize, target: Target) -> Option<&LoraTensor> {
        self.params?.get(layer, target)
    }

    /// The dropout mask of (layer, target), when dropout is active: as
    /// (key, keep scale, threshold); element i is dropped where
    /// `mix64(key ^ i) >> 11 < threshold`.
    fn mask(&self, layer: usize, target: Target) -> Option<(u64, f32, u64)> {
        let (Some(seed), Some(p)) = (self.dropout_seed, self.params) else {
            return None;
        };
        let rate = p.config.dropout;
        if rate <= 0.0 {
            return None;
        }
        let key = mix64(seed ^ mix64(((layer as u64) << 8) | target as u64));
        let threshold = (rate as f64 * (1u64 << 53) as f64) as u64;
        Some((key, 1.0 / (1.0 - rate), threshold))
    }

    /// drop(x) for the LoRA branch of (layer, target): x itself without
    /// dropout, else the masked copy written into `buf`.
    fn dropped<'x>(
        &self,
        layer: usize,
        target: Target,
        x: &'x [f32],
        buf: &'x mut Vec<f32>,
    ) -> &'x [f32] {
        match self.mask(layer, target) {
            None => x,
            Some(mask) => {
                let out = sized(buf, x.len());
                out.copy_from_slice(x);
                apply_mask(mask, out);
                out
            }
        }
    }

    /// Applies the mask of (layer, target) to `x` in place (the identity
    /// without dropout).
    fn drop_in_place(&self, layer: usize, target: Target, x: &mut [f32]) {
        if let Some(mask) = self.mask(layer, target) {
            apply_mask(mask, x);
        }
    }
}

fn apply_mask((key, keep_scale, threshold): (u64, f32, u64), x: &mut [f32]) {
    for (i, v) in x.iter_mut().enumerate() {
        *v = if mix64(key ^ i as u64) >> 11 < threshold {
            0.0
        } else {
            *v * keep_scale
        };
    }
}

/// The base product `y = x W^T` through the file's weights.
pub(crate) fn base_product(
    model: &Model,
    lin: &Linear,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    let w = lin.matrix(&model.files);
    srl_quant::matmul_dequantized(&w, x, n_tokens, y, pool);
}

/// Forward of one trained linear layer into `y` ([T, rows], overwritten);
/// with an adapter, `s drop(x) A^T` ([T, r]) into `mid` for the backward.
/// The branch `mid B^T` is computed inside the base product (r more terms
/// of each output's chain), with no pass or buffer of its own.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_forward(
    model: &Model,
    lin: &Linear,
    layer: usize,
    target: Target,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    mid: &mut Vec<f32>,
    dropped: &mut Vec<f32>,
    lora: LoraPass,
    pool: &rayon::ThreadPool,
) {
    if let Some(t) = lora.tensor(layer, target) {
        let p = lora.params.expect("tensor implies params");
        let (r, s) = (p.config.rank, p.config.scale());
        let xd = lora.dropped(layer, target, x, dropped);
        let mid = sized(mid, n_tokens * r);
        gemm_f32_nt(xd, &t.a, n_tokens, r, t.cols, mid, pool);
        mid.iter_mut().for_each(|v| *v *= s);
        let term = LowRank {
            left: mid,
            right: &t.b,
            rank: r,
        };
        let w = lin.matrix(&model.files);
        srl_quant::matmul_dequantized_plus(&w, x, n_tokens, y, term, pool);
    } else {
        base_product(model, lin, x, n_tokens, y, pool);
        mid.clear();
    }
    if let Some(b) = &lin.bias {
        for row in y.chunks_exact_mut(lin.rows) {
            for (y, b) in row.iter_mut().zip(b) {
                *y += b;
            }
        }
    }
}

/// One layer of a [`linears_backward`]: (linear, target, dy, and the
/// `mid` its forward left).
pub(crate) type LayerGrad<'a> = (&'a Linear, Target, &'a [f32], &'a [f32]);

/// Backward of [`linear_forward`] for the layers `parts` of block `layer`
/// that read the same input x (q, k, v; gate, up; or one layer): adds each
/// adapter tensor's A/B gradients into `grads` and, when `dx` is given,
/// `Σ dy W + drop'(s dy B A)` into it.
///
/// The input gradient is one product ([`input_gradient`]); the A/B
/// gradients, small products that would each wait on the other threads,
/// run beside it on the pool.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linears_backward(
    model: &Model,
    layer: usize,
    x: &[f32],
    n_tokens: usize,
    parts: &[LayerGrad],
    dx: Option<&mut [f32]>,
    lora: LoraPass,
    grads: &mut LoraParams,
    bufs: &mut LoraBufs,
    pool: &rayon::ThreadPool,
) {
    let LoraBufs {
        dmid, out, weight, ..
    } = bufs;
    for &(_, target, dy, _) in parts {
        lora_dmid(
            layer,
            target,
            n_tokens,
            dy,
            lora,
            &mut dmid[target as usize],
            pool,
        );
    }
    let dmid = &*dmid;
    pool.join(
        || {
            if let Some(dx) = dx {
                input_gradient(model, layer, parts, n_tokens, dx, lora, dmid, out, pool);
            }
        },
        || {
            for &(_, target, dy, mid) in parts {
                let dm = &dmid[target as usize];
                lora_weight_grads(
                    layer, target, x, n_tokens, dy, mid, dm, lora, grads, weight, pool,
                );
            }
        },
    );
}

/// `dmid = s dy B` of (layer, target) (nothing without an adapter tensor
/// there): the branch's gradient before A.
fn lora_dmid(
    layer: usize,
    target: Target,
    n_tokens: usize,
    dy: &[f32],
    lora: LoraPass,
    dmid: &mut Vec<f32>,
    pool: &rayon::ThreadPool,
) {
    let Some(t) = lora.tensor(layer, target) else {
        return;
    };
    let p = lora.params.expect("tensor implies params");
    let (r, s) = (p.config.rank, p.config.scale());
    let dmid = zeroed(dmid, n_tokens * r);
    gemm_f32_nn(dy, &t.b, n_tokens, r, t.rows, dmid, pool);
    dmid.iter_mut().for_each(|v| *v *= s);
}

/// Adds dB = dy^T mid and dA = dmid^T drop(x) of (layer, target) into
/// `grads` (nothing without an adapter tensor there).
#[allow(clippy::too_many_arguments)]
fn lora_weight_grads(
    layer: usize,
    target: Target,
    x: &[f32],
    n_tokens: usize,
    dy: &[f32],
    mid: &[f32],
    dmid: &[f32],
    lora: LoraPass,
    grads: &mut LoraParams,
    bufs: &mut WeightGradBufs,
    pool: &rayon::ThreadPool,
) {
    let Some(t) = lora.tensor(layer, target) else {
        return;
    };
    let r = lora.params.expect("tensor implies params").config.rank;
    let (rows, cols) = (t.rows, t.cols);
    assert_eq!(mid.len(), n_tokens * r, "the forward's s drop(x) A^T");
    let g = grads
        .get_mut(layer, target)
        .expect("gradients have the adapter's shape");
    let WeightGradBufs {
        midt,
        dmidt,
        dbt,
        dropped,
    } = bufs;
    // dB += dy^T mid (mid holds s drop(x) A^T), as dB^T [r, rows] =
    // mid^T [r, T] dy [T, rows].
    let midt = sized(midt, r * n_tokens);
    transpose_f32(mid, n_tokens, r, midt);
    let dbt = zeroed(dbt, r * rows);
    gemm_f32_nn(midt, dy, r, rows, n_tokens, dbt, pool);
    for (o, gb) in g.b.chunks_exact_mut(r).enumerate() {
        for (j, v) in gb.iter_mut().enumerate() {
            *v += dbt[j * rows + o];
        }
    }
    // dA += dmid^T drop(x)
    let dmidt = sized(dmidt, r * n_tokens);
    transpose_f32(dmid, n_tokens, r, dmidt);
    let xd = lora.dropped(layer, target, x, dropped);
    gemm_f32_nn(dmidt, xd, r, cols, n_tokens, &mut g.a, pool);
}

/// `dx += Σ dy W + d(drop(x))` over the layers `parts` of `layer`, with
/// d(drop(x)) = `dmid A` through the dropout mask. Without dropout every
/// term is one chain per output, in the order of `parts` (each layer's
/// base, then its branch), in one pass over dx.
#[allow(clippy::too_many_arguments)]
fn input_gradient(
    model: &Model,
    layer: usize,
    parts: &[LayerGrad],
    n_tokens: usize,
    dx: &mut [f32],
    lora: LoraPass,
    dmid: &[Vec<f32>],
    out: &mut Vec<f32>,
    pool: &rayon::ThreadPool,
) {
    let branch = |target: Target| {
        let t = lora.tensor(layer, target)?;
        let rank = lora.params.expect("tensor implies params").config.rank;
        Some((t, rank))
    };
    let mut terms = Vec::with_capacity(2 * parts.len());
    let mut masked = Vec::new();
    for &(lin, target, dy, _) in parts {
        terms.push(TransposedTerm {
            w: lin.matrix(&model.files),
            dy,
        });
        if let Some((t, rank)) = branch(target) {
            let term = LowRank {
                left: &dmid[target as usize],
                right: &t.a,
                rank,
            };
            match lora.mask(layer, target) {
                None => terms.push(term.transposed(t.cols)),
                Some(_) => masked.push((target, term)),
            }
        }
    }
    srl_quant::matmul_transposed_sum(&terms, n_tokens, dx, pool);
    // With dropout: d(drop(x)) = mask(dmid A), each added on its own.
    for (target, term) in masked {
        let cols = dx.len() / n_tokens;
        let dxd = zeroed(out, n_tokens * cols);
        srl_quant::matmul_transposed_sum(&[term.transposed(cols)], n_tokens, dxd, pool);
        lora.drop_in_place(layer, target, dxd);
        axpy_par(1.0, dxd, dx, pool);
    }
}
