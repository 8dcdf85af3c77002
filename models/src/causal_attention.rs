//! Exact f32 causal self-attention with grouped key/value heads, and its
//! backward: what training runs. (Inference uses attention.rs, which
//! reproduces llama.cpp's f16 numerics over the KV cache; training needs a
//! smooth function whose gradient is the one written here.)
//!
//! All sequences start at position 0. `q` and `out` are [T, H*D], `k` and
//! `v` are [T, Hkv*D]; query head h reads key/value head h / (H / Hkv).

use rayon::prelude::*;

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
pub fn causal_attention(
    s: &Heads,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    pool: &rayon::ThreadPool,
) -> Vec<f32> {
    let d = s.head_dim;
    let (qd, kvd) = (s.n_head * d, s.n_head_kv * d);
    let n = q.len() / qd;
    let per_head: Vec<(Vec<f32>, Vec<f32>)> = pool.install(|| {
        (0..s.n_head)
            .into_par_iter()
            .map(|h| {
                let g = s.kv_of(h);
                let mut o = vec![0.0f32; n * d];
                let mut lse = vec![0.0f32; n];
                let mut p = vec![0.0f32; n];
                for t in 0..n {
                    let qt = &q[t * qd + h * d..t * qd + (h + 1) * d];
                    let mut m = f32::NEG_INFINITY;
                    for j in 0..=t {
                        let sc = dot(qt, &k[j * kvd + g * d..j * kvd + (g + 1) * d]) * s.scale();
                        p[j] = sc;
                        m = m.max(sc);
                    }
                    let mut z = 0.0f32;
                    for pj in &mut p[..=t] {
                        *pj = (*pj - m).exp();
                        z += *pj;
                    }
                    let ot = &mut o[t * d..(t + 1) * d];
                    for (j, &pj) in p[..=t].iter().enumerate() {
                        axpy(pj / z, &v[j * kvd + g * d..j * kvd + (g + 1) * d], ot);
                    }
                    lse[t] = m + z.ln();
                }
                (o, lse)
            })
            .collect()
    });
    let mut lse_all = Vec::with_capacity(s.n_head * n);
    for (h, (o, lse)) in per_head.into_iter().enumerate() {
        for t in 0..n {
            out[t * qd + h * d..t * qd + (h + 1) * d].copy_from_slice(&o[t * d..(t + 1) * d]);
        }
        lse_all.extend(lse);
    }
    lse_all
}

/// Backward of [`causal_attention`]: from the inputs, the output, its
/// log-sum-exp rows and the output's gradient, adds the gradients of q, k
/// and v into `dq`, `dk`, `dv`.
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
    let (qd, kvd) = (s.n_head * d, s.n_head_kv * d);
    let n = q.len() / qd;
    let scale = s.scale();
    let per_head: Vec<[Vec<f32>; 3]> = pool.install(|| {
        (0..s.n_head)
            .into_par_iter()
            .map(|h| {
                let g = s.kv_of(h);
                let (mut gq, mut gk, mut gv) = (
                    vec![0.0f32; n * d],
                    vec![0.0f32; n * d],
                    vec![0.0f32; n * d],
                );
                for t in 0..n {
                    let qt = &q[t * qd + h * d..t * qd + (h + 1) * d];
                    let dot_t = &dout[t * qd + h * d..t * qd + (h + 1) * d];
                    let delta = dot(dot_t, &out[t * qd + h * d..t * qd + (h + 1) * d]);
                    let l = lse[h * n + t];
                    for j in 0..=t {
                        let kj = &k[j * kvd + g * d..j * kvd + (g + 1) * d];
                        let vj = &v[j * kvd + g * d..j * kvd + (g + 1) * d];
                        let p = (dot(qt, kj) * scale - l).exp();
                        axpy(p, dot_t, &mut gv[j * d..(j + 1) * d]);
                        let ds = p * (dot(dot_t, vj) - delta) * scale;
                        axpy(ds, kj, &mut gq[t * d..(t + 1) * d]);
                        axpy(ds, qt, &mut gk[j * d..(j + 1) * d]);
                    }
                }
                [gq, gk, gv]
            })
            .collect()
    });
    for (h, [gq, gk, gv]) in per_head.into_iter().enumerate() {
        let g = s.kv_of(h);
        for t in 0..n {
            add(
                &mut dq[t * qd + h * d..t * qd + (h + 1) * d],
                &gq[t * d..(t + 1) * d],
            );
            add(
                &mut dk[t * kvd + g * d..t * kvd + (g + 1) * d],
                &gk[t * d..(t + 1) * d],
            );
            add(
                &mut dv[t * kvd + g * d..t * kvd + (g + 1) * d],
                &gv[t * d..(t + 1) * d],
            );
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

#[inline]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn add(y: &mut [f32], x: &[f32]) {
    axpy(1.0, x, y)
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
