//! Exact f32 causal self-attention with grouped key/value heads, and its
//! backward: what training runs. (Inference uses attention.rs, which
//! reproduces llama.cpp's f16 numerics over the KV cache; training needs a
//! smooth function whose gradient is the one written here.)
//!
//! All sequences start at position 0. `q` and `out` are [T, H*D], `k` and
//! `v` are [T, Hkv*D]; query head h reads key/value head h / (H / Hkv).

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

/// out = softmax(q k^T * scale + causal mask) v, per head. Returns the
/// log-sum-exp of each softmax row ([H, T]), which the backward reuses.
///
/// Each head is computed with whole-matrix products (the f32 GEMMs of
/// srl-quant): S = Q K^T, P = softmax(S), O = P V. The masked upper triangle
/// is computed and discarded; the GEMM is fast enough that this wins over a
/// triangular loop.
pub fn causal_attention(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    pool: &rayon::ThreadPool,
) -> Vec<f32> {
    let d = s.head_dim;
    let n = q.len() / (s.n_head * d);
    let mut lse = vec![0.0f32; s.n_head * n];
    let mut p = vec![0.0f32; n * n];
    let mut oh = vec![0.0f32; n * d];
    for h in 0..s.n_head {
        let g = s.kv_of(h);
        let (qh, kh) = (gather(q, s.n_head, h, d), gather(k, s.n_head_kv, g, d));
        softmax_rows(s, &qh, &kh, n, &mut p, &mut lse[h * n..(h + 1) * n], pool);
        oh.fill(0.0);
        mm_nn(&p, &gather(v, s.n_head_kv, g, d), n, d, n, &mut oh, pool);
        scatter(&oh, out, s.n_head, h, d);
    }
    lse
}

/// Backward of [`causal_attention`]: from the inputs, the output, its
/// log-sum-exp rows and the output's gradient, adds the gradients of q, k
/// and v into `dq`, `dk`, `dv`. With P recomputed from S and the saved
/// log-sum-exp: dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO * O)),
/// dQ = dS K * scale, dK = dS^T Q * scale.
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
    let d = s.head_dim;
    let n = q.len() / (s.n_head * d);
    let scale = s.scale();
    let (mut p, mut dp) = (vec![0.0f32; n * n], vec![0.0f32; n * n]);
    let (mut t_in, mut t_out) = (vec![0.0f32; d * n], vec![0.0f32; d * n]);
    let mut g_buf = vec![0.0f32; n * d];
    for h in 0..s.n_head {
        let g = s.kv_of(h);
        let (qh, kh, vh) = (
            gather(q, s.n_head, h, d),
            gather(k, s.n_head_kv, g, d),
            gather(v, s.n_head_kv, g, d),
        );
        let (oh, doh) = (gather(out, s.n_head, h, d), gather(dout, s.n_head, h, d));
        let lse_h = &lse[h * n..(h + 1) * n];
        // P from S and the saved log-sum-exp.
        mm_nt(&qh, &kh, n, n, d, &mut p, pool);
        for (t, row) in p.chunks_exact_mut(n).enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x = if j <= t {
                    (*x * scale - lse_h[t]).exp()
                } else {
                    0.0
                };
            }
        }
        // dV = P^T dO, as dV^T [D, T] = dO^T P.
        transpose(&doh, n, d, &mut t_in);
        t_out.fill(0.0);
        mm_nn(&t_in, &p, d, n, n, &mut t_out, pool);
        scatter_add_transposed(&t_out, dv, s.n_head_kv, g, d);
        // dP = dO V^T, then dS in place.
        mm_nt(&doh, &vh, n, n, d, &mut dp, pool);
        for t in 0..n {
            let delta = dot(&doh[t * d..(t + 1) * d], &oh[t * d..(t + 1) * d]);
            let (pr, dr) = (&p[t * n..(t + 1) * n], &mut dp[t * n..(t + 1) * n]);
            for (x, &pj) in dr.iter_mut().zip(pr) {
                *x = pj * (*x - delta) * scale;
            }
        }
        // dQ = dS K
        g_buf.fill(0.0);
        mm_nn(&dp, &kh, n, d, n, &mut g_buf, pool);
        scatter_add(&g_buf, dq, s.n_head, h, d);
        // dK = dS^T Q, as dK^T [D, T] = Q^T dS.
        transpose(&qh, n, d, &mut t_in);
        t_out.fill(0.0);
        mm_nn(&t_in, &dp, d, n, n, &mut t_out, pool);
        scatter_add_transposed(&t_out, dk, s.n_head_kv, g, d);
    }
}

/// P = softmax(Q K^T * scale) with the causal mask, row by row; the rows'
/// log-sum-exp into `lse`.
fn softmax_rows(
    s: &Heads,
    qh: &[f32],
    kh: &[f32],
    n: usize,
    p: &mut [f32],
    lse: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    mm_nt(qh, kh, n, n, s.head_dim, p, pool);
    let scale = s.scale();
    for (t, row) in p.chunks_exact_mut(n).enumerate() {
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
        lse[t] = m + z.ln();
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
