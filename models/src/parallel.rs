//! The element-wise steps of a pass (norms, RoPE, SwiGLU, residual sums),
//! training's and inference's, split over the pool by whole rows, so that no
//! thread waits while one computes them. Each row is computed as the serial
//! function computes it: the results do not depend on the thread count.

use crate::layers::mlp::swiglu;
use crate::layers::norm::{rms_norm, rms_norm_backward, rms_norm_in_place};
use crate::layers::rope::{apply_rope, apply_rope_backward, RopeStyle};
use rayon::prelude::*;

/// Elements per task, rounded down to whole rows (at least one row).
const TASK_FLOATS: usize = 32 * 1024;

fn rows_per_task(row: usize) -> usize {
    (TASK_FLOATS / row.max(1)).max(1) * row.max(1)
}

/// [`rms_norm`] of each row of x ([T, C]) into y, rows split over `pool`.
pub(crate) fn rms_norm_par(
    x: &[f32],
    w: &[f32],
    eps: f32,
    y: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    let step = rows_per_task(w.len());
    pool.install(|| {
        x.par_chunks(step)
            .zip(y.par_chunks_mut(step))
            .for_each(|(x, y)| rms_norm(x, w, eps, y))
    });
}

/// [`rms_norm_in_place`] of each row of x (rows of `w.len()`: a token's
/// heads when w is a per-head norm), rows split over `pool`.
pub(crate) fn rms_norm_in_place_par(x: &mut [f32], w: &[f32], eps: f32, pool: &rayon::ThreadPool) {
    let step = rows_per_task(w.len());
    pool.install(|| {
        x.par_chunks_mut(step)
            .for_each(|x| rms_norm_in_place(x, w, eps))
    });
}

/// [`rms_norm_backward`] (dx += ...), rows split over `pool`.
pub(crate) fn rms_norm_backward_par(
    x: &[f32],
    w: &[f32],
    eps: f32,
    dy: &[f32],
    dx: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    let step = rows_per_task(w.len());
    pool.install(|| {
        x.par_chunks(step)
            .zip(dy.par_chunks(step))
            .zip(dx.par_chunks_mut(step))
            .for_each(|((x, dy), dx)| rms_norm_backward(x, w, eps, dy, dx))
    });
}

/// [`apply_rope`] of x ([T, n_heads * head_dim], token t rotated by
/// `table[t * head_dim / 2..]`), token rows split over `pool`.
pub(crate) fn rope_par(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    table: &[(f32, f32)],
    style: RopeStyle,
    pool: &rayon::ThreadPool,
) {
    rows_with_table_par(x, n_heads * head_dim, head_dim, table, pool, |x, t| {
        apply_rope(x, n_heads, head_dim, t, style)
    });
}

/// [`apply_rope_backward`] of dx, token rows split over `pool` (as
/// [`rope_par`]).
pub(crate) fn rope_backward_par(
    dx: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    table: &[(f32, f32)],
    style: RopeStyle,
    pool: &rayon::ThreadPool,
) {
    rows_with_table_par(dx, n_heads * head_dim, head_dim, table, pool, |x, t| {
        apply_rope_backward(x, n_heads, head_dim, t, style)
    });
}

/// `f(rows, their part of table)` over tasks of whole rows of x (`row`
/// floats each, `head_dim / 2` table entries per row).
fn rows_with_table_par(
    x: &mut [f32],
    row: usize,
    head_dim: usize,
    table: &[(f32, f32)],
    pool: &rayon::ThreadPool,
    f: impl Fn(&mut [f32], &[(f32, f32)]) + Sync,
) {
    let rows = rows_per_task(row) / row.max(1);
    pool.install(|| {
        x.par_chunks_mut(rows * row)
            .zip(table.par_chunks(rows * head_dim / 2))
            .for_each(|(x, table)| f(x, table))
    });
}

/// out = silu(gate) * up element-wise ([`swiglu`] of a copy of gate, which
/// is kept), split over `pool`.
pub(crate) fn swiglu_into_par(gate: &[f32], up: &[f32], out: &mut [f32], pool: &rayon::ThreadPool) {
    pool.install(|| {
        out.par_chunks_mut(TASK_FLOATS)
            .zip(gate.par_chunks(TASK_FLOATS).zip(up.par_chunks(TASK_FLOATS)))
            .for_each(|(o, (g, u))| {
                o.copy_from_slice(g);
                swiglu(o, u)
            })
    });
}

/// `buf` as `len` zeros (as [`crate::buffers::zeroed`]), filled over `pool`.
pub(crate) fn zeroed_par<'a>(
    buf: &'a mut Vec<f32>,
    len: usize,
    pool: &rayon::ThreadPool,
) -> &'a mut [f32] {
    buf.resize(len, 0.0);
    let out = &mut buf[..len];
    pool.install(|| out.par_chunks_mut(TASK_FLOATS).for_each(|c| c.fill(0.0)));
    out
}

/// out = gelu(gate) * up in f32 ([`crate::layers::mlp::geglu_into`]), split
/// over `pool`.
pub(crate) fn geglu_into_par(gate: &[f32], up: &[f32], out: &mut [f32], pool: &rayon::ThreadPool) {
    let step = rows_per_task(1);
    pool.install(|| {
        out.par_chunks_mut(step)
            .zip(gate.par_chunks(step).zip(up.par_chunks(step)))
            .for_each(|(o, (g, u))| crate::layers::mlp::geglu_into(g, u, o))
    });
}

/// gate = act(gate) * up element-wise ([`swiglu`] or [`geglu`]), split
/// over `pool`.
pub(crate) fn gated_par(
    gate: &mut [f32],
    up: &[f32],
    ff: crate::families::FeedForward,
    pool: &rayon::ThreadPool,
) {
    match ff {
        crate::families::FeedForward::SwiGlu => swiglu_par(gate, up, pool),
        crate::families::FeedForward::GeGlu => {
            let step = rows_per_task(1);
            pool.install(|| {
                gate.par_chunks_mut(step)
                    .zip(up.par_chunks(step))
                    .for_each(|(g, u)| crate::layers::mlp::geglu(g, u))
            });
        }
    }
}

/// gate = silu(gate) * up element-wise ([`swiglu`]), split over `pool`.
pub(crate) fn swiglu_par(gate: &mut [f32], up: &[f32], pool: &rayon::ThreadPool) {
    pool.install(|| {
        gate.par_chunks_mut(TASK_FLOATS)
            .zip(up.par_chunks(TASK_FLOATS))
            .for_each(|(g, u)| swiglu(g, u))
    });
}

/// y += x element-wise, split over `pool`.
pub(crate) fn add_par(y: &mut [f32], x: &[f32], pool: &rayon::ThreadPool) {
    pool.install(|| {
        y.par_chunks_mut(TASK_FLOATS)
            .zip(x.par_chunks(TASK_FLOATS))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y += x;
                }
            })
    });
}

/// y += s * x element-wise, split over `pool`.
pub(crate) fn axpy_par(s: f32, x: &[f32], y: &mut [f32], pool: &rayon::ThreadPool) {
    pool.install(|| {
        y.par_chunks_mut(TASK_FLOATS)
            .zip(x.par_chunks(TASK_FLOATS))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y += s * x;
                }
            })
    });
}
