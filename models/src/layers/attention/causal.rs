//! Exact f32 causal self-attention with grouped key/value heads, and its
//! backward: what training runs. (Inference uses decode.rs, which
//! reproduces llama.cpp's f16 numerics over the KV cache; training needs a
//! smooth function whose gradient is the one written here.)
//!
//! All sequences start at position 0. `q` and `out` are [T, H*D], `k` and
//! `v` are [T, Hkv*D]; query head h reads key/value head h / (H / Hkv).

use crate::buffers::{sized, zeroed};
use crate::layers::softmax::exp_shifted;
use rayon::prelude::*;
use srl_quant::{
    gemm_f32_nn_serial as mm_nn, gemm_f32_nt_serial as mm_nt, transpose_f32 as transpose,
};

/// Head counts and size.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// A sliding window: query t attends to keys t+1-window..=t only.
    pub window: Option<usize>,
}

impl Heads {
    /// The first key query `t` attends to.
    fn first_key(&self, t: usize) -> usize {
        self.window.map_or(0, |w| (t + 1).saturating_sub(w))
    }
    fn kv_of(&self, h: usize) -> usize {
        h / (self.n_head / self.n_head_kv)
    }
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// Query rows per block: a block of queries ending at row t1 reads keys
/// 0..t1 only, so the masked upper triangle is (almost) never computed.
pub const QUERY_BLOCK: usize = 64;

/// Buffers of [`causal_attention_with`] and [`causal_attention_backward_with`]
/// kept between calls (training holds one): the key/value heads gathered
/// into [T, D] matrices, and the tasks' results.
#[derive(Default)]
pub struct AttentionScratch {
    kv: Vec<f32>,
    parts: Vec<f32>,
    sums: Vec<f32>,
}

/// One thread's temporaries: Q, O and dO of a block ([nb, D] each), two
/// [nb, t1] matrices (P and dP), and a transposed [D, nb] block.
#[derive(Default)]
struct Temps {
    qh: Vec<f32>,
    oh: Vec<f32>,
    doh: Vec<f32>,
    p: Vec<f32>,
    dp: Vec<f32>,
    xt: Vec<f32>,
}

/// An output that parallel tasks write in disjoint parts (each task its own
/// head's columns of its own rows), which no safe split of the slice can
/// express.
struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _out: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks write disjoint elements only (see `slice`).
unsafe impl Send for Disjoint<'_> {}
// SAFETY: as above.
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    fn new(out: &'a mut [f32]) -> Self {
        Disjoint {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _out: std::marker::PhantomData,
        }
    }

    /// `out[start..start + len]`.
    ///
    /// # Safety
    /// No other task reads or writes these elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len, "outside the output");
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }
}

/// The (head, first query) tasks of a pass, the most expensive (latest)
/// blocks first so that threads finish together.
fn tasks(s: &Heads, n: usize, qb: usize) -> Vec<(usize, usize)> {
    let blocks = n.div_ceil(qb);
    (0..blocks)
        .rev()
        .flat_map(|b| (0..s.n_head).map(move |h| (h, b * qb)))
        .collect()
}

/// Splits `buf` (resized to the sum of `lens`) into consecutive slices of
/// those lengths.
fn split_parts<'a>(buf: &'a mut Vec<f32>, lens: &[usize]) -> Vec<&'a mut [f32]> {
    buf.resize(lens.iter().sum(), 0.0);
    let mut rest = buf.as_mut_slice();
    lens.iter()
        .map(|&len| {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            part
        })
        .collect()
}

/// The key and value heads of k and v ([T, Hkv*D]) as [T, D] matrices,
/// one after another (key heads, then value heads), into `buf`.
fn gather_kv<'a>(s: &Heads, k: &[f32], v: &[f32], buf: &'a mut Vec<f32>) -> Vec<&'a [f32]> {
    let (d, hkv) = (s.head_dim, s.n_head_kv);
    let n = k.len() / (hkv * d);
    buf.clear();
    for x in [k, v] {
        for g in 0..hkv {
            gather_into(x, hkv, g, d, buf);
        }
    }
    buf.chunks_exact(n * d).collect()
}

/// out = softmax(q k^T * scale + causal mask) v, per head. Returns the
/// log-sum-exp of each softmax row ([H, T]), which the backward reuses.
///
/// Each (head, block of [`QUERY_BLOCK`] queries) is a task that threads
/// share, computed with matrix products (the f32 GEMMs of srl-quant, on
/// the task's thread): S = Q_b K^T, P = softmax(S), O_b = P V, over the
/// keys the block can see. Every value is computed the same way whatever
/// the thread count.
pub fn causal_attention(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    pool: &rayon::ThreadPool,
) -> Vec<f32> {
    let mut lse = vec![0.0f32; q.len() / s.head_dim];
    let mut scratch = AttentionScratch::default();
    causal_attention_with(
        s,
        q,
        k,
        v,
        out,
        &mut lse,
        None,
        &mut scratch,
        QUERY_BLOCK,
        pool,
    );
    lse
}

/// [`causal_attention`] with the log-sum-exp rows written into `lse`
/// ([H, T]) and buffers kept in `scratch`; `qb` queries per block. With
/// `probs` ([`probs_len`] floats), the softmax probabilities are kept there
/// for the backward, which then need not recompute them.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_with(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
    probs: Option<&mut [f32]>,
    scratch: &mut AttentionScratch,
    qb: usize,
    pool: &rayon::ThreadPool,
) {
    let d = s.head_dim;
    let n = q.len() / (s.n_head * d);
    assert_eq!(out.len(), q.len(), "out is not [T, H*D]");
    assert_eq!(lse.len(), n * s.n_head, "lse is not [H, T]");
    if let Some(p) = &probs {
        assert_eq!(p.len(), probs_len(s, n, qb), "probs is not probs_len long");
    }
    let probs = probs.map(Disjoint::new);
    let kv = gather_kv(s, k, v, &mut scratch.kv);
    let (kh, vh) = kv.split_at(s.n_head_kv);
    let tasks = tasks(s, n, qb);
    let (out, lse) = (Disjoint::new(out), Disjoint::new(lse));
    pool.install(|| {
        tasks
            .par_iter()
            .for_each_init(Temps::default, |tmp, &(h, t0)| {
                let g = s.kv_of(h);
                let t1 = (t0 + qb).min(n);
                let nb = t1 - t0;
                let Temps { qh, oh, p, .. } = tmp;
                qh.clear();
                gather_into(&q[t0 * s.n_head * d..t1 * s.n_head * d], s.n_head, h, d, qh);
                let p = match &probs {
                    // SAFETY: task (h, t0) alone writes its block of probs.
                    Some(kept) => unsafe { kept.slice(probs_at(s, n, qb, h, t0), nb * t1) },
                    None => sized(p, nb * t1),
                };
                // SAFETY: task (h, t0) alone writes lse[h, t0..t1].
                let lse_b = unsafe { lse.slice(h * n + t0, nb) };
                softmax_rows(s, qh, &kh[g][..t1 * d], t0, p, lse_b);
                let oh = zeroed(oh, nb * d);
                mm_nn(p, &vh[g][..t1 * d], nb, d, t1, oh);
                for (i, o) in oh.chunks_exact(d).enumerate() {
                    // SAFETY: task (h, t0) alone writes head h's columns of
                    // rows t0..t1.
                    unsafe { out.slice(((t0 + i) * s.n_head + h) * d, d) }.copy_from_slice(o);
                }
            })
    });
}

/// Backward of [`causal_attention`]: from the inputs, the output, its
/// log-sum-exp rows and the output's gradient, adds the gradients of q, k
/// and v into `dq`, `dk`, `dv`. Per (head, query block) task, with P
/// recomputed from S and the saved log-sum-exp: dV += P^T dO, dP = dO V^T,
/// dS = P (dP - rowsum(dO * O)), dQ = dS K * scale, dK += dS^T Q * scale.
/// The tasks' dK and dV parts are added per head in block order, then the
/// heads in order: the result does not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    let mut scratch = AttentionScratch::default();
    let (g, qb) = ([dq, dk, dv], QUERY_BLOCK);
    causal_attention_backward_with(s, q, k, v, out, lse, None, dout, g, &mut scratch, qb, pool)
}

/// [`causal_attention_backward`] with buffers kept in `scratch`; `qb`
/// queries per block; `grads` are dq, dk and dv; `probs` what the forward
/// kept there, if it did (else P is recomputed from q, k and lse).
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward_with(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    probs: Option<&[f32]>,
    dout: &[f32],
    grads: [&mut [f32]; 3],
    scratch: &mut AttentionScratch,
    qb: usize,
    pool: &rayon::ThreadPool,
) {
    let [dq, dk, dv] = grads;
    let d = s.head_dim;
    let n = q.len() / (s.n_head * d);
    assert_eq!(dq.len(), q.len(), "dq is not [T, H*D]");
    if let Some(p) = probs {
        assert_eq!(p.len(), probs_len(s, n, qb), "probs is not probs_len long");
    }
    let scale = s.scale();
    let AttentionScratch { kv, parts, sums } = scratch;
    let kv = gather_kv(s, k, v, kv);
    let (kh, vh) = kv.split_at(s.n_head_kv);
    let tasks = tasks(s, n, qb);
    // Per task: its parts of dK and dV, transposed ([D, t1] each).
    let lens: Vec<usize> = tasks
        .iter()
        .map(|&(_, t0)| 2 * (t0 + qb).min(n) * d)
        .collect();
    let mut parts = split_parts(parts, &lens);
    let dq_out = Disjoint::new(dq);
    pool.install(|| {
        tasks.par_iter().zip(parts.par_iter_mut()).for_each_init(
            Temps::default,
            |tmp, (&(h, t0), part)| {
                let g = s.kv_of(h);
                let t1 = (t0 + qb).min(n);
                let nb = t1 - t0;
                let rows = t0 * s.n_head * d..t1 * s.n_head * d;
                let Temps {
                    qh,
                    oh,
                    doh,
                    p,
                    dp,
                    xt,
                } = tmp;
                for (x, buf) in [(q, &mut *qh), (out, &mut *oh), (dout, &mut *doh)] {
                    buf.clear();
                    gather_into(&x[rows.clone()], s.n_head, h, d, buf);
                }
                let (kh, vh) = (&kh[g][..t1 * d], &vh[g][..t1 * d]);
                let lse_h = &lse[h * n + t0..h * n + t1];
                let (gkt, gvt) = part.split_at_mut(t1 * d);
                // P of this block: kept by the forward, or from S and the
                // saved log-sum-exp.
                let p: &[f32] = match probs {
                    Some(kept) => &kept[probs_at(s, n, qb, h, t0)..][..nb * t1],
                    None => {
                        let p = sized(p, nb * t1);
                        mm_nt(qh, kh, nb, t1, d, p);
                        for (i, row) in p.chunks_exact_mut(t1).enumerate() {
                            let (t, lo) = (t0 + i, s.first_key(t0 + i));
                            exp_shifted(&mut row[lo..=t], scale, lse_h[i]);
                            row[..lo].fill(0.0);
                            row[t + 1..].fill(0.0);
                        }
                        p
                    }
                };
                // dV[..t1]^T = dO_b^T P
                let xt = sized(xt, d * nb);
                transpose(doh, nb, d, xt);
                gvt.fill(0.0);
                mm_nn(xt, p, d, t1, nb, gvt);
                // dP = dO_b V^T, then dS in place.
                let dp = sized(dp, nb * t1);
                mm_nt(doh, vh, nb, t1, d, dp);
                for i in 0..nb {
                    let delta = dot(&doh[i * d..(i + 1) * d], &oh[i * d..(i + 1) * d]);
                    let (pr, dr) = (&p[i * t1..(i + 1) * t1], &mut dp[i * t1..(i + 1) * t1]);
                    for (x, &pj) in dr.iter_mut().zip(pr) {
                        *x = pj * (*x - delta) * scale;
                    }
                }
                // dQ_b = dS K[..t1], added into dq's rows of head h.
                let gq = zeroed(oh, nb * d);
                mm_nn(dp, kh, nb, d, t1, gq);
                for (i, gr) in gq.chunks_exact(d).enumerate() {
                    // SAFETY: task (h, t0) alone writes head h's columns
                    // of rows t0..t1.
                    add(
                        unsafe { dq_out.slice(((t0 + i) * s.n_head + h) * d, d) },
                        gr,
                    );
                }
                // dK[..t1]^T = Q_b^T dS
                transpose(qh, nb, d, xt);
                gkt.fill(0.0);
                mm_nn(xt, dp, d, t1, nb, gkt);
            },
        )
    });
    // dK and dV: per key/value head and dimension, each query head's parts
    // summed in block order, then the query heads in order.
    let (hkv, blocks) = (s.n_head_kv, n.div_ceil(qb));
    let group = s.n_head / hkv;
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| tasks[i]);
    let parts = &parts;
    for (which, grad) in [dk, dv].into_iter().enumerate() {
        // sums[(g * D + c) * n + t] = Σ_h Σ_b part (dK or dV)[t, c].
        let sums = zeroed(sums, hkv * d * n);
        pool.install(|| {
            sums.par_chunks_mut(n).enumerate().for_each_init(
                || vec![0.0f32; n],
                |head_sum, (gc, sum)| {
                    let (g, c) = (gc / d, gc % d);
                    for h in g * group..(g + 1) * group {
                        head_sum.fill(0.0);
                        for &i in &order[h * blocks..(h + 1) * blocks] {
                            let t1 = (tasks[i].1 + qb).min(n);
                            let part = &parts[i][which * t1 * d..(which + 1) * t1 * d];
                            add(&mut head_sum[..t1], &part[c * t1..(c + 1) * t1]);
                        }
                        add(sum, head_sum);
                    }
                },
            );
            grad.par_chunks_mut(hkv * d)
                .enumerate()
                .for_each(|(t, row)| {
                    for (gc, x) in row.iter_mut().enumerate() {
                        *x += sums[gc * n + t];
                    }
                });
        });
    }
}

/// Floats of the probabilities [`causal_attention_with`] can keep for `n`
/// tokens: per head, each query block's [nb, t1] matrix P.
pub fn probs_len(s: &Heads, n: usize, qb: usize) -> usize {
    s.n_head * blocks_len(n, qb, n.div_ceil(qb))
}

/// Where the P of (head h, block from query t0) starts in the kept probs.
fn probs_at(s: &Heads, n: usize, qb: usize, h: usize, t0: usize) -> usize {
    debug_assert!(h < s.n_head && t0.is_multiple_of(qb));
    h * blocks_len(n, qb, n.div_ceil(qb)) + blocks_len(n, qb, t0 / qb)
}

/// Floats of the first `blocks` query blocks' P matrices of one head.
fn blocks_len(n: usize, qb: usize, blocks: usize) -> usize {
    (0..blocks)
        .map(|b| {
            let t1 = ((b + 1) * qb).min(n);
            (t1 - b * qb) * t1
        })
        .sum()
}

/// P = softmax(Q_b K^T * scale) with the causal mask for query rows
/// t0.. (P is [rows, keys]); the rows' log-sum-exp into `lse`.
fn softmax_rows(s: &Heads, qb: &[f32], kh: &[f32], t0: usize, p: &mut [f32], lse: &mut [f32]) {
    let d = s.head_dim;
    let (rows, keys) = (qb.len() / d, kh.len() / d);
    mm_nt(qb, kh, rows, keys, d, p);
    let scale = s.scale();
    for (i, row) in p.chunks_exact_mut(keys).enumerate() {
        let (t, lo) = (t0 + i, s.first_key(t0 + i));
        // max(x * scale) = max(x) * scale: rounding keeps the order.
        let m = row[lo..=t].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) * scale;
        let z = exp_shifted(&mut row[lo..=t], scale, m) as f32;
        let inv = 1.0 / z;
        row[lo..=t].iter_mut().for_each(|x| *x *= inv);
        row[..lo].fill(0.0);
        row[t + 1..].fill(0.0);
        lse[i] = m + z.ln();
    }
}

/// Appends head `h`'s columns of x ([T, heads*D]) to `out`, row by row
/// (a [T, D] matrix).
fn gather_into(x: &[f32], heads: usize, h: usize, d: usize, out: &mut Vec<f32>) {
    for row in x.chunks_exact(heads * d) {
        out.extend_from_slice(&row[h * d..(h + 1) * d]);
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums so the compiler can vectorise without reassociating.
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

fn add(y: &mut [f32], x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed * 97);
                ((x >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Causal, and within a sliding window of 2 (Gemma 3's local layers).
        for window in [None, Some(2)] {
            gradients_within(window);
        }
    }

    fn gradients_within(window: Option<usize>) {
        let s = Heads {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 8,
            window,
        };
        let n = 5;
        let (q, k, v) = (values(n * 32, 1), values(n * 16, 2), values(n * 16, 3));
        let w = values(n * 32, 4);
        let pool = pool();
        let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
            let mut o = vec![0.0; n * 32];
            causal_attention(&s, q, k, v, &mut o, &pool);
            o.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        let mut o = vec![0.0; n * 32];
        let lse = causal_attention(&s, &q, &k, &v, &mut o, &pool);
        let (mut dq, mut dk, mut dv) = (vec![0.0; n * 32], vec![0.0; n * 16], vec![0.0; n * 16]);
        causal_attention_backward(
            &s, &q, &k, &v, &o, &lse, &w, &mut dq, &mut dk, &mut dv, &pool,
        );
        let h = 1e-2f32;
        let check = |which: usize, grad: &[f32]| {
            for i in 0..grad.len() {
                let mut inputs = [q.clone(), k.clone(), v.clone()];
                inputs[which][i] += h;
                let lp = loss(&inputs[0], &inputs[1], &inputs[2]);
                inputs[which][i] -= 2.0 * h;
                let lm = loss(&inputs[0], &inputs[1], &inputs[2]);
                let fd = (lp - lm) / (2.0 * h as f64);
                assert!(
                    (fd - grad[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                    "input {which} [{i}]: fd {fd} vs {}",
                    grad[i]
                );
            }
        };
        check(0, &dq);
        check(1, &dk);
        check(2, &dv);
    }

    #[test]
    fn query_blocks_give_the_unblocked_results() {
        let s = Heads {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 8,
            window: None,
        };
        let n = 11;
        let (q, k, v) = (values(n * 32, 1), values(n * 16, 2), values(n * 16, 3));
        let dout = values(n * 32, 4);
        let pool = pool();
        // One scratch for every run: what a run leaves there does not
        // change the next.
        let mut scratch = AttentionScratch::default();
        let mut run = |qb: usize, keep: bool| {
            let mut o = vec![0.0; n * 32];
            let mut lse = vec![0.0; n * 4];
            let mut probs = vec![f32::NAN; if keep { probs_len(&s, n, qb) } else { 0 }];
            let kept = keep.then_some(&mut probs[..]);
            causal_attention_with(
                &s,
                &q,
                &k,
                &v,
                &mut o,
                &mut lse,
                kept,
                &mut scratch,
                qb,
                &pool,
            );
            let (mut dq, mut dk, mut dv) =
                (vec![0.0; n * 32], vec![0.0; n * 16], vec![0.0; n * 16]);
            let g = [&mut dq[..], &mut dk[..], &mut dv[..]];
            causal_attention_backward_with(
                &s,
                &q,
                &k,
                &v,
                &o,
                &lse,
                keep.then_some(&probs[..]),
                &dout,
                g,
                &mut scratch,
                qb,
                &pool,
            );
            [o, lse, dq, dk, dv]
        };
        let whole = run(n, false);
        assert_eq!(whole, run(n, false), "the same call gives the same bits");
        for qb in [1, 2, 3, 4, 8, n] {
            // Kept probabilities (the forward's P) or recomputed ones
            // (exp(S - lse)): the same up to rounding.
            for keep in [false, true] {
                for (i, (a, b)) in run(qb, keep).iter().zip(&whole).enumerate() {
                    let diff = a
                        .iter()
                        .zip(b)
                        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(
                        diff < 1e-5,
                        "block {qb}, kept {keep}, output {i}: max |diff| {diff}"
                    );
                }
            }
        }
    }

    #[test]
    fn thread_count_does_not_change_the_results() {
        let s = Heads {
            n_head: 6,
            n_head_kv: 2,
            head_dim: 16,
            window: None,
        };
        let n = 150;
        let (q, k, v) = (values(n * 96, 1), values(n * 32, 2), values(n * 32, 3));
        let dout = values(n * 96, 4);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut o = vec![0.0; n * 96];
            let lse = causal_attention(&s, &q, &k, &v, &mut o, &pool);
            let (mut dq, mut dk, mut dv) =
                (vec![0.0; n * 96], vec![0.0; n * 32], vec![0.0; n * 32]);
            causal_attention_backward(
                &s, &q, &k, &v, &o, &lse, &dout, &mut dq, &mut dk, &mut dv, &pool,
            );
            [o, lse, dq, dk, dv]
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(one == run(threads), "{threads} threads");
        }
    }

    #[test]
    fn first_token_attends_to_itself_only() {
        let s = Heads {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 4,
            window: None,
        };
        let (q, k, v) = (values(8, 1), values(8, 2), values(8, 3));
        let mut o = vec![0.0; 8];
        causal_attention(&s, &q, &k, &v, &mut o, &pool());
        assert_eq!(&o[..4], &v[..4]);
    }
}
