//! A linear layer `y = x W^T + b (+ LoRA terms)` whose weight W stays in the
//! model file, in the two forms the two passes need, side by side:
//!
//! - inference ([`Model::linear`]): the input rows quantized to the
//!   weight's activation type and the type's tiled product; adapters apply
//!   to row ranges (a batch may mix adapters), as llama.cpp's build_lora_mm
//!   orders it;
//! - training ([`linear_forward`], [`linears_backward`]): f32 activations
//!   against dequantized rows (so the loss is smooth in x) and the trained
//!   f32 A and B, with dropout; the backward adds `dy W` and the LoRA
//!   branch's input gradient into dx and the A/B gradients into the
//!   gradient adapter.
//!
//! Dropout masks are a hash of (seed, layer, target, element), so the
//! recomputation in the backward pass sees the same mask without storing it.
//!
//! Shapes: x is [T, cols], y [T, rows]; A [r, cols], B [rows, r].

use crate::buffers::{sized, zeroed};
use crate::error::{ModelError, Result};
use crate::formats::files::{ModelFiles, TensorRef};
use crate::lora::ActiveLora;
use crate::lora_params::{mix64, LoraParams, LoraTensor, Target};
use crate::parallel::axpy_par;
use crate::training::scratch::{LoraBufs, WeightGradBufs};
use crate::transformer::Model;
use srl_quant::{
    gemm_f32_nn, gemm_f32_nt, matmul_grouped, transpose_f32, GgmlType, LowRank,
    QuantizedActivations, TransposedTerm, WeightMatrix,
};
use std::ops::Range;

/// A linear layer `y = x W^T (+ b)` whose weight stays in the file.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: TensorRef,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    pub bias: Option<Vec<f32>>,
    /// Its index among the model's linear layers ([`linear_slot`]): how
    /// adapters find their matrices for it without a lookup by name.
    pub slot: usize,
}

/// The index of a layer's projection among the model's linear layers; the
/// output head comes after every block's ([`output_slot`]).
pub fn linear_slot(layer: usize, target: Target) -> usize {
    layer * Target::ALL.len() + target as usize
}

/// The output head's [`linear_slot`].
pub fn output_slot(n_layer: usize) -> usize {
    n_layer * Target::ALL.len()
}

impl Linear {
    pub(crate) fn load(
        files: &ModelFiles,
        name: &str,
        cols: usize,
        rows: usize,
        bias: bool,
        slot: usize,
    ) -> Result<Linear> {
        let weight = files.require(&format!("{name}.weight"), &[cols, rows])?;
        check_quantizable(files, &weight)?;
        let bias = if bias {
            let b = files.require(&format!("{name}.bias"), &[rows])?;
            Some(files.read_f32(&b)?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            rows,
            cols,
            bias,
            slot,
        })
    }

    pub fn matrix<'a>(&self, files: &'a ModelFiles) -> WeightMatrix<'a> {
        WeightMatrix {
            ty: self.weight.ty,
            rows: self.rows,
            cols: self.cols,
            data: files.bytes(&self.weight),
        }
    }
}

pub(crate) fn check_quantizable(files: &ModelFiles, t: &TensorRef) -> Result<()> {
    if t.ty.row_bytes(t.dims[0]).is_none() {
        return Err(ModelError::format(
            files.path(),
            format!(
                "tensor '{}' rows of {} do not fit {} blocks",
                t.name,
                t.dims[0],
                t.ty.name()
            ),
        ));
    }
    Ok(())
}

// Inference ---------------------------------------------------------------

/// Rows of a batch (a range of its tokens) and the adapters that apply to them.
pub(crate) type LoraRows<'a> = (Range<usize>, &'a [ActiveLora]);

/// The row ranges of sequences of `rows` rows each with `adapters` each,
/// neighbours with the same adapters merged, sequences without any left out.
pub(crate) fn lora_rows<'a>(
    rows: impl Iterator<Item = usize>,
    adapters: &[&'a [ActiveLora]],
) -> Vec<LoraRows<'a>> {
    let mut out: Vec<LoraRows<'a>> = Vec::new();
    let mut r0 = 0;
    for (n, &a) in rows.zip(adapters) {
        if n > 0 && !a.is_empty() {
            match out.last_mut() {
                Some((range, prev)) if range.end == r0 && std::ptr::eq(*prev, a) => range.end += n,
                _ => out.push((r0..r0 + n, a)),
            }
        }
        r0 += n;
    }
    out
}

/// The sizes of the groups (consecutive, summing to the total) that lie in
/// `rows`, which starts and ends on group boundaries, into `out`.
fn groups_within(groups: &[usize], rows: std::ops::Range<usize>, out: &mut Vec<usize>) {
    out.clear();
    let mut r0 = 0;
    for &n in groups {
        if r0 >= rows.start && r0 + n <= rows.end && n > 0 {
            out.push(n);
        }
        r0 += n;
    }
}

/// Scratch of the linear layers: the quantized input, shared by consecutive
/// layers that read the same input (q/k/v, gate/up), and LoRA buffers.
#[derive(Default)]
pub(crate) struct LinearScratch {
    /// Rows per sequence, in order: products give each sequence's rows the
    /// values they get alone (see `srl_quant::matmul_grouped`).
    pub(crate) groups: Vec<usize>,
    /// The part of `groups` a LoRA product's row range covers.
    sub_groups: Vec<usize>,
    act: QuantizedActivations,
    act_ty: Option<GgmlType>,
    lora_act: QuantizedActivations,
    lora_mid: Vec<f32>,
    lora_out: Vec<f32>,
}

impl LinearScratch {
    /// The next layers read a new input.
    pub(crate) fn new_input(&mut self) {
        self.act_ty = None;
    }
}

impl Model {
    /// y = x W^T (+ scale * (x A^T) B^T for each adapter of a row) (+ b),
    /// as llama.cpp's build_lora_mm orders it. x is [T, cols], y [T, rows].
    #[allow(clippy::too_many_arguments)] // the scratch and the row map are the layer's context
    pub(crate) fn linear(
        &self,
        lin: &Linear,
        x: &[f32],
        n_tokens: usize,
        y: &mut [f32],
        sc: &mut LinearScratch,
        lora: &[LoraRows],
        pool: &rayon::ThreadPool,
    ) {
        let w = lin.matrix(&self.files);
        let want = w.ty.vec_dot_type();
        if sc.act_ty != Some(want) {
            sc.act.quantize(want, x, n_tokens, lin.cols, pool);
            sc.act_ty = Some(want);
        }
        matmul_grouped(&w, &sc.act, y, &sc.groups, pool);
        for (rows, adapters) in lora {
            let n = rows.len();
            groups_within(&sc.groups, rows.clone(), &mut sc.sub_groups);
            let x = &x[rows.start * lin.cols..rows.end * lin.cols];
            let y = &mut y[rows.start * lin.rows..rows.end * lin.rows];
            for lora in adapters.iter() {
                let Some((a, b)) = lora.adapter.matrices(lin.slot) else {
                    continue;
                };
                let rank = a.rows;
                sc.lora_act
                    .quantize(a.ty.vec_dot_type(), x, n, lin.cols, pool);
                sized(&mut sc.lora_mid, n * rank);
                matmul_grouped(&a, &sc.lora_act, &mut sc.lora_mid, &sc.sub_groups, pool);
                sc.lora_act
                    .quantize(b.ty.vec_dot_type(), &sc.lora_mid, n, rank, pool);
                sized(&mut sc.lora_out, n * lin.rows);
                matmul_grouped(&b, &sc.lora_act, &mut sc.lora_out, &sc.sub_groups, pool);
                let scale = lora.effective_scale(rank);
                for (o, &d) in y.iter_mut().zip(&sc.lora_out) {
                    *o += d * scale;
                }
            }
        }
        if let Some(b) = &lin.bias {
            for row in y.chunks_exact_mut(lin.rows) {
                add_assign(row, b);
            }
        }
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

// Training ----------------------------------------------------------------

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
