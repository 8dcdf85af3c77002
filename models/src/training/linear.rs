//! A linear layer in training: `y = x W^T + b + s * (drop(x) A^T) B^T`, with
//! W read in place from the model file (f32 activations against dequantized
//! rows, so the loss is smooth in x) and A, B the trained f32 matrices. The
//! backward adds `dy W` and the LoRA branch's input gradient into dx and the
//! A/B gradients into the gradient adapter.
//!
//! Dropout masks are a hash of (seed, layer, target, element), so the
//! recomputation in the backward pass sees the same mask without storing it.

use crate::lora_params::{mix64, LoraParams, LoraTensor, Target};
use crate::transformer::{Linear, Model};
use srl_quant::{gemm_f32_nn, gemm_f32_nt, transpose_f32};

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

    /// drop(x) for the LoRA branch of (layer, target): x itself without dropout.
    fn dropped<'x>(
        &self,
        layer: usize,
        target: Target,
        x: &'x [f32],
    ) -> std::borrow::Cow<'x, [f32]> {
        let (Some(seed), Some(p)) = (self.dropout_seed, self.params) else {
            return x.into();
        };
        let rate = p.config.dropout;
        if rate <= 0.0 {
            return x.into();
        }
        let key = mix64(seed ^ mix64(((layer as u64) << 8) | target as u64));
        let keep_scale = 1.0 / (1.0 - rate);
        let threshold = (rate as f64 * (1u64 << 53) as f64) as u64;
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                if mix64(key ^ i as u64) >> 11 < threshold {
                    0.0
                } else {
                    v * keep_scale
                }
            })
            .collect::<Vec<f32>>()
            .into()
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

/// Forward of one trained linear layer into `y` ([T, rows], overwritten).
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_forward(
    model: &Model,
    lin: &Linear,
    layer: usize,
    target: Target,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    lora: LoraPass,
    pool: &rayon::ThreadPool,
) {
    base_product(model, lin, x, n_tokens, y, pool);
    if let Some(t) = lora.tensor(layer, target) {
        let r = lora.params.expect("tensor implies params").config.rank;
        let s = lora.params.expect("tensor implies params").config.scale();
        let xd = lora.dropped(layer, target, x);
        let mid = mul_bt(&xd, &t.a, n_tokens, t.cols, r, pool);
        let out = mul_bt(&mid, &t.b, n_tokens, r, t.rows, pool);
        for (y, o) in y.iter_mut().zip(&out) {
            *y += s * o;
        }
    }
    if let Some(b) = &lin.bias {
        for row in y.chunks_exact_mut(lin.rows) {
            for (y, b) in row.iter_mut().zip(b) {
                *y += b;
            }
        }
    }
}

/// Backward of [`linear_forward`]: adds the A/B gradients into `grads` and,
/// when `dx` is given, `dy W + drop'(s dy B A)` into it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_backward(
    model: &Model,
    lin: &Linear,
    layer: usize,
    target: Target,
    x: &[f32],
    n_tokens: usize,
    dy: &[f32],
    dx: Option<&mut [f32]>,
    lora: LoraPass,
    grads: &mut LoraParams,
    pool: &rayon::ThreadPool,
) {
    let mut dx = dx;
    if let Some(dx) = dx.as_deref_mut() {
        srl_quant::matmul_transposed(&lin.matrix(&model.files), dy, n_tokens, dx, pool);
    }
    let Some(t) = lora.tensor(layer, target) else {
        return;
    };
    let p = lora.params.expect("tensor implies params");
    let (r, s) = (p.config.rank, p.config.scale());
    let (rows, cols) = (t.rows, t.cols);
    let xd = lora.dropped(layer, target, x);
    let mid = mul_bt(&xd, &t.a, n_tokens, cols, r, pool);
    let g = grads
        .get_mut(layer, target)
        .expect("gradients have the adapter's shape");
    // dB += s * dy^T mid, as dB^T [r, rows] = mid^T [r, T] dy [T, rows].
    let mut midt = vec![0.0f32; r * n_tokens];
    transpose_f32(&mid, n_tokens, r, &mut midt);
    let mut dbt = vec![0.0f32; r * rows];
    gemm_f32_nn(&midt, dy, r, rows, n_tokens, &mut dbt, pool);
    for (o, gb) in g.b.chunks_exact_mut(r).enumerate() {
        for (j, v) in gb.iter_mut().enumerate() {
            *v += s * dbt[j * rows + o];
        }
    }
    // dmid = s * dy B
    let mut dmid = vec![0.0f32; n_tokens * r];
    gemm_f32_nn(dy, &t.b, n_tokens, r, rows, &mut dmid, pool);
    dmid.iter_mut().for_each(|v| *v *= s);
    // dA += dmid^T drop(x)
    let mut dmidt = vec![0.0f32; r * n_tokens];
    transpose_f32(&dmid, n_tokens, r, &mut dmidt);
    gemm_f32_nn(&dmidt, &xd, r, cols, n_tokens, &mut g.a, pool);
    if let Some(dx) = dx {
        // d(drop(x)) = dmid A, then through the mask.
        let mut dxd = vec![0.0f32; n_tokens * cols];
        gemm_f32_nn(&dmid, &t.a, n_tokens, cols, r, &mut dxd, pool);
        let masked = lora.dropped(layer, target, &dxd);
        axpy(1.0, &masked, dx);
    }
}

/// c[T, n] = a[T, k] b^T with b [n, k] (the LoRA products, f32).
fn mul_bt(
    a: &[f32],
    b: &[f32],
    n_tokens: usize,
    k: usize,
    n: usize,
    pool: &rayon::ThreadPool,
) -> Vec<f32> {
    let mut c = vec![0.0f32; n_tokens * n];
    gemm_f32_nt(a, b, n_tokens, n, k, &mut c, pool);
    c
}

#[inline]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
