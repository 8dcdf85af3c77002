//! Exact f32 causal self-attention with grouped key/value heads, and its
//! backward: what training runs. (Inference uses attention.rs, which
//! reproduces llama.cpp's f16 numerics over the KV cache; training needs a
//! smooth function whose gradient is the one written here.)
//!
//! All sequences start at position 0. `q` and `out` are [T, H*D], `k` and
//! `v` are [T, Hkv*D]; query head h reads key/value head h / (H / Hkv).

use rayon::prelude::*;
use srl_quant::{gemm_f32_nn as mm_nn, gemm_f32_nt as mm_nt, transpose_f32 as transpose};

/// Head counts and size.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

impl Heads {
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

/// out = softmax(q k^T * scale + causal mask) v, per head. Returns the
/// log-sum-exp of each softmax row ([H, T]), which the backward reuses.
///
/// Each head is computed with matrix products (the f32 GEMMs of srl-quant)
/// a block of [`QUERY_BLOCK`] queries at a time: S = Q_b K^T, P =
/// softmax(S), O_b = P V, over the keys the block can see.
pub fn causal_attention(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    pool: &rayon::ThreadPool,
) -> Vec<f32> {
    causal_attention_blocked(s, q, k, v, out, QUERY_BLOCK, pool)
}

fn causal_attention_blocked(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    qb: usize,
    pool: &rayon::ThreadPool,
) -> Vec<f32> {
    let d = s.head_dim;
    let n = q.len() / (s.n_head * d);
    // Heads in parallel (the products inside join the same pool).
    let heads: Vec<(Vec<f32>, Vec<f32>)> = pool.install(|| {
        (0..s.n_head)
            .into_par_iter()
            .map(|h| {
                let g = s.kv_of(h);
                let (qh, kh, vh) = (
                    gather(q, s.n_head, h, d),
                    gather(k, s.n_head_kv, g, d),
                    gather(v, s.n_head_kv, g, d),
                );
                let mut p = vec![0.0f32; qb.min(n) * n];
                let mut oh = vec![0.0f32; n * d];
                let mut lse = vec![0.0f32; n];
                for t0 in (0..n).step_by(qb) {
                    let t1 = (t0 + qb).min(n);
                    let (nb, pb) = (t1 - t0, &mut p[..(t1 - t0) * t1]);
                    softmax_rows(
                        s,
                        &qh[t0 * d..t1 * d],
                        &kh[..t1 * d],
                        t0,
                        pb,
                        &mut lse[t0..t1],
                        pool,
                    );
                    mm_nn(pb, &vh[..t1 * d], nb, d, t1, &mut oh[t0 * d..t1 * d], pool);
                }
                (oh, lse)
            })
            .collect()
    });
    let mut lse_all = Vec::with_capacity(s.n_head * n);
    for (h, (oh, lse)) in heads.into_iter().enumerate() {
        scatter(&oh, out, s.n_head, h, d);
        lse_all.extend(lse);
    }
    lse_all
}

/// Backward of [`causal_attention`]: from the inputs, the output, its
/// log-sum-exp rows and the output's gradient, adds the gradients of q, k
/// and v into `dq`, `dk`, `dv`. Per query block, with P recomputed from S
/// and the saved log-sum-exp: dV += P^T dO, dP = dO V^T,
/// dS = P (dP - rowsum(dO * O)), dQ = dS K * scale, dK += dS^T Q * scale.
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
    causal_attention_backward_blocked(s, q, k, v, out, lse, dout, dq, dk, dv, QUERY_BLOCK, pool)
}

#[allow(clippy::too_many_arguments)]
fn causal_attention_backward_blocked(
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
    qb: usize,
    pool: &rayon::ThreadPool,
) {
    let d = s.head_dim;
    let n = q.len() / (s.n_head * d);
    let scale = s.scale();
    let m = qb.min(n);
    // Heads in parallel (the products inside join the same pool); each
    // returns its dQ [T, D] and dK^T, dV^T [D, T].
    let heads: Vec<[Vec<f32>; 3]> = pool.install(|| {
        (0..s.n_head)
            .into_par_iter()
            .map(|h| {
                let g = s.kv_of(h);
                let (qh, kh, vh) = (
                    gather(q, s.n_head, h, d),
                    gather(k, s.n_head_kv, g, d),
                    gather(v, s.n_head_kv, g, d),
                );
                let (oh, doh) = (gather(out, s.n_head, h, d), gather(dout, s.n_head, h, d));
                let lse_h = &lse[h * n..(h + 1) * n];
                let (mut p, mut dp) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
                let mut t_in = vec![0.0f32; d * m];
                let mut t_out = vec![0.0f32; d * n];
                let (mut gq, mut gk_t, mut gv_t) = (
                    vec![0.0f32; n * d],
                    vec![0.0f32; d * n],
                    vec![0.0f32; d * n],
                );
                for t0 in (0..n).step_by(qb) {
                    let t1 = (t0 + qb).min(n);
                    let nb = t1 - t0;
                    let (pb, dpb) = (&mut p[..nb * t1], &mut dp[..nb * t1]);
                    // P of this block from S and the saved log-sum-exp.
                    mm_nt(&qh[t0 * d..t1 * d], &kh[..t1 * d], nb, t1, d, pb, pool);
                    for (i, row) in pb.chunks_exact_mut(t1).enumerate() {
                        let t = t0 + i;
                        for (j, x) in row.iter_mut().enumerate() {
                            *x = if j <= t {
                                (*x * scale - lse_h[t]).exp()
                            } else {
                                0.0
                            };
                        }
                    }
                    // dV[..t1] += P^T dO_b, as dV^T [D, t1] += dO_b^T P.
                    let tb = &mut t_in[..d * nb];
                    transpose(&doh[t0 * d..t1 * d], nb, d, tb);
                    let to = &mut t_out[..d * t1];
                    to.fill(0.0);
                    mm_nn(tb, pb, d, t1, nb, to, pool);
                    add_columns(&mut gv_t, n, to, t1);
                    // dP = dO_b V^T, then dS in place.
                    mm_nt(&doh[t0 * d..t1 * d], &vh[..t1 * d], nb, t1, d, dpb, pool);
                    for i in 0..nb {
                        let t = t0 + i;
                        let delta = dot(&doh[t * d..(t + 1) * d], &oh[t * d..(t + 1) * d]);
                        let (pr, dr) = (&pb[i * t1..(i + 1) * t1], &mut dpb[i * t1..(i + 1) * t1]);
                        for (x, &pj) in dr.iter_mut().zip(pr) {
                            *x = pj * (*x - delta) * scale;
                        }
                    }
                    // dQ_b = dS K[..t1]
                    mm_nn(dpb, &kh[..t1 * d], nb, d, t1, &mut gq[t0 * d..t1 * d], pool);
                    // dK[..t1] += dS^T Q_b, as dK^T [D, t1] += Q_b^T dS.
                    transpose(&qh[t0 * d..t1 * d], nb, d, tb);
                    to.fill(0.0);
                    mm_nn(tb, dpb, d, t1, nb, to, pool);
                    add_columns(&mut gk_t, n, to, t1);
                }
                [gq, gk_t, gv_t]
            })
            .collect()
    });
    for (h, [gq, gk_t, gv_t]) in heads.into_iter().enumerate() {
        let g = s.kv_of(h);
        scatter_add(&gq, dq, s.n_head, h, d);
        scatter_add_transposed(&gk_t, dk, s.n_head_kv, g, d);
        scatter_add_transposed(&gv_t, dv, s.n_head_kv, g, d);
    }
}

/// dst[c, ..w] += src[c, ..w] for dst [D, n] and src [D, w] (w <= n).
fn add_columns(dst: &mut [f32], n: usize, src: &[f32], w: usize) {
    for (drow, srow) in dst.chunks_exact_mut(n).zip(src.chunks_exact(w)) {
        add(&mut drow[..w], srow);
    }
}

/// P = softmax(Q_b K^T * scale) with the causal mask for query rows
/// t0.. (P is [rows, keys]); the rows' log-sum-exp into `lse`.
fn softmax_rows(
    s: &Heads,
    qb: &[f32],
    kh: &[f32],
    t0: usize,
    p: &mut [f32],
    lse: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    let d = s.head_dim;
    let (rows, keys) = (qb.len() / d, kh.len() / d);
    mm_nt(qb, kh, rows, keys, d, p, pool);
    let scale = s.scale();
    for (i, row) in p.chunks_exact_mut(keys).enumerate() {
        let t = t0 + i;
        let mut m = f32::NEG_INFINITY;
        for x in &mut row[..=t] {
            *x *= scale;
            m = m.max(*x);
        }
        let mut z = 0.0f32;
        for x in &mut row[..=t] {
            *x = (*x - m).exp();
            z += *x;
        }
        let inv = 1.0 / z;
        row[..=t].iter_mut().for_each(|x| *x *= inv);
        row[t + 1..].fill(0.0);
        lse[i] = m + z.ln();
    }
}

/// Head `h`'s columns of x ([T, heads*D]) as a [T, D] matrix.
fn gather(x: &[f32], heads: usize, h: usize, d: usize) -> Vec<f32> {
    x.chunks_exact(heads * d)
        .flat_map(|row| &row[h * d..(h + 1) * d])
        .copied()
        .collect()
}

fn scatter(src: &[f32], x: &mut [f32], heads: usize, h: usize, d: usize) {
    for (row, s) in x.chunks_exact_mut(heads * d).zip(src.chunks_exact(d)) {
        row[h * d..(h + 1) * d].copy_from_slice(s);
    }
}

fn scatter_add(src: &[f32], x: &mut [f32], heads: usize, h: usize, d: usize) {
    for (row, s) in x.chunks_exact_mut(heads * d).zip(src.chunks_exact(d)) {
        add(&mut row[h * d..(h + 1) * d], s);
    }
}

/// x[t, h*D + c] += src_t[c, t] for src_t [D, T].
fn scatter_add_transposed(src_t: &[f32], x: &mut [f32], heads: usize, h: usize, d: usize) {
    let n = src_t.len() / d;
    for (t, row) in x.chunks_exact_mut(heads * d).enumerate() {
        for (c, v) in row[h * d..(h + 1) * d].iter_mut().enumerate() {
            *v += src_t[c * n + t];
        }
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
        let s = Heads {
            n_head: 4,
            n_head_kv: 2,
            head_dim: 8,
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
        };
        let n = 11;
        let (q, k, v) = (values(n * 32, 1), values(n * 16, 2), values(n * 16, 3));
        let dout = values(n * 32, 4);
        let pool = pool();
        let run = |qb: usize| {
            let mut o = vec![0.0; n * 32];
            let lse = causal_attention_blocked(&s, &q, &k, &v, &mut o, qb, &pool);
            let (mut dq, mut dk, mut dv) =
                (vec![0.0; n * 32], vec![0.0; n * 16], vec![0.0; n * 16]);
            causal_attention_backward_blocked(
                &s, &q, &k, &v, &o, &lse, &dout, &mut dq, &mut dk, &mut dv, qb, &pool,
            );
            [o, lse, dq, dk, dv]
        };
        let whole = run(n);
        for qb in [1, 2, 3, 4, 8] {
            for (i, (a, b)) in run(qb).iter().zip(&whole).enumerate() {
                let diff = a
                    .iter()
                    .zip(b)
                    .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(diff < 1e-5, "block {qb}, output {i}: max |diff| {diff}");
            }
        }
    }

    #[test]
    fn first_token_attends_to_itself_only() {
        let s = Heads {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 4,
        };
        let (q, k, v) = (values(8, 1), values(8, 2), values(8, 3));
        let mut o = vec![0.0; 8];
        causal_attention(&s, &q, &k, &v, &mut o, &pool());
        assert_eq!(&o[..4], &v[..4]);
    }
}
