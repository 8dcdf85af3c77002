//! Causal self-attention with grouped key/value heads over the f16 KV cache.
//!
//! Two numerics, chosen as llama.cpp's CPU flash attention chooses them, so
//! greedy decoding reproduces llama.cpp's tokens on numerically touchy models:
//! - calls with fewer than [`TILED_MIN_TOKENS`] query tokens (decoding, short
//!   prompts): the query is rounded to f16, each score is an f16 dot product
//!   accumulated in ggml's lane order, softmax is online, and the weighted sum
//!   of V is accumulated *in f16* (rounded after every position);
//! - longer prompts: f32 queries, scores and accumulator, softmax online per
//!   tile of 64 cache positions (ggml's tiled path).

use half::f16;
use rayon::prelude::*;

/// Largest head dimension supported (checked when a config is validated).
pub const MAX_HEAD_DIM: usize = 1024;

/// From this many query tokens on, llama.cpp switches to its tiled f32 path
/// (ggml-cpu's GGML_FA_TILE_Q).
pub const TILED_MIN_TOKENS: usize = 64;

/// Shapes for one call.
pub struct AttentionShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Position of the first query token.
    pub pos0: usize,
}

/// out[t, h*D..] = softmax(q_t . K[0..=pos0+t] * scale) V for every query
/// token t and head h. `q` and `out` are [T, H*D]; `k`/`v` are the layer's
/// cache rows [positions, n_head_kv*D] already holding this call's tokens.
pub fn attention(
    s: &AttentionShape,
    q: &[f32],
    k: &[f16],
    v: &[f16],
    out: &mut [f32],
    pool: &rayon::ThreadPool,
) {
    let d = s.head_dim;
    let qdim = s.n_head * d;
    let n_tokens = q.len() / qdim;
    let f16_path = n_tokens < TILED_MIN_TOKENS;
    let fast = has_fma_f16c();
    pool.install(|| {
        out.par_chunks_mut(d).enumerate().for_each(|(i, o)| {
            let (t, h) = (i / s.n_head, i % s.n_head);
            let head = Head {
                d,
                kvdim: s.n_head_kv * d,
                off: (h / (s.n_head / s.n_head_kv)) * d,
                n_pos: s.pos0 + t + 1,
                scale: 1.0 / (d as f32).sqrt(),
            };
            let qh = &q[t * qdim + h * d..t * qdim + (h + 1) * d];
            if f16_path {
                if fast {
                    // SAFETY: the CPU has the features (checked above).
                    unsafe { attend_f16_acc_fma(&head, qh, k, v, o) }
                } else {
                    attend_f16_acc(&head, qh, k, v, o)
                }
            } else if fast {
                // SAFETY: as above.
                unsafe { attend_f32_fma(&head, qh, k, v, o) }
            } else {
                attend_f32(&head, qh, k, v, o)
            }
        })
    });
}

fn has_fma_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One query head against the cache.
struct Head {
    d: usize,
    /// Row length of the cache (n_head_kv * D).
    kvdim: usize,
    /// Offset of this head's kv head within a cache row.
    off: usize,
    /// Positions to attend to.
    n_pos: usize,
    scale: f32,
}

/// The f16 dot product of ggml_vec_dot_f16 on AVX2: four 8-lane fused
/// accumulators over steps of 32, reduced pairwise, the tail added in f64.
#[inline(always)]
fn dot_f16_ggml(q: &[f32], k: &[f16]) -> f32 {
    let n = q.len();
    let np = n & !31;
    let mut acc = [[0.0f32; 8]; 4];
    let mut i = 0;
    while i < np {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, x) in a.iter_mut().enumerate() {
                let idx = i + j * 8 + l;
                *x = q[idx].mul_add(k[idx].to_f32(), *x);
            }
        }
        i += 32;
    }
    let mut sum = 0.0f64;
    if np > 0 {
        let mut x0 = [0.0f32; 8];
        for l in 0..8 {
            let a = acc[0][l] + acc[2][l];
            let b = acc[1][l] + acc[3][l];
            x0[l] = a + b;
        }
        let t: [f32; 4] = std::array::from_fn(|l| x0[l] + x0[l + 4]);
        sum = ((t[0] + t[1]) + (t[2] + t[3])) as f64;
    }
    for idx in np..n {
        sum += (q[idx] * k[idx].to_f32()) as f64;
    }
    sum as f32
}

/// ggml's one-chunk flash attention for F16 K/V: online softmax with the V
/// accumulator held in f16.
#[inline(always)]
fn attend_f16_acc_body(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    let d = h.d;
    let mut qbuf = [0.0f32; MAX_HEAD_DIM];
    let qh = &mut qbuf[..d];
    for (dst, &x) in qh.iter_mut().zip(q) {
        *dst = f16::from_f32(x).to_f32();
    }
    let mut accbuf = [f16::ZERO; MAX_HEAD_DIM];
    let acc = &mut accbuf[..d];
    let mut m = f32::NEG_INFINITY;
    let mut sum = 0.0f32;
    for p in 0..h.n_pos {
        let row = p * h.kvdim + h.off;
        let sc = dot_f16_ggml(qh, &k[row..row + d]) * h.scale;
        let mut ms = 1.0f32;
        let mut vs = 1.0f32;
        if sc > m {
            let old = m;
            m = sc;
            ms = (old - m).exp();
            for a in acc.iter_mut() {
                *a = f16::from_f32(a.to_f32() * ms);
            }
        } else {
            vs = (sc - m).exp();
        }
        for (a, &x) in acc.iter_mut().zip(&v[row..row + d]) {
            *a = f16::from_f32(x.to_f32().mul_add(vs, a.to_f32()));
        }
        // GCC contracts ggml's `S = S*ms + vs` into one fused multiply-add.
        sum = sum.mul_add(ms, vs);
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (x, a) in o.iter_mut().zip(acc.iter()) {
        *x = a.to_f32() * inv;
    }
}

fn attend_f16_acc(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    attend_f16_acc_body(h, q, k, v, o)
}

/// The same, compiled with hardware FMA and F16C (what llama.cpp uses).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_f16_acc_fma(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    attend_f16_acc_body(h, q, k, v, o)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn attend_f16_acc_fma(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    attend_f16_acc_body(h, q, k, v, o)
}

/// KV positions per tile of llama.cpp's tiled path (GGML_FA_TILE_KV).
const KV_TILE: usize = 64;

/// llama.cpp's tiled flash attention for long prompts, one query row: f32
/// query, scores as sequential fused dot products, softmax online per tile
/// of 64 cache positions (tile sums in f64, exp by ggml's polynomial), V
/// accumulated in f32 by sequential fused multiply-adds.
#[inline(always)]
fn attend_tiled_body(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    use crate::mlp::ggml_expf;
    let d = h.d;
    let mut m = f32::NEG_INFINITY;
    let mut sum = 0.0f32;
    o.fill(0.0);
    let mut kq = [0.0f32; KV_TILE];
    let mut tile0 = 0;
    while tile0 < h.n_pos {
        let n = (h.n_pos - tile0).min(KV_TILE);
        for (j, s) in kq.iter_mut().enumerate() {
            if j < n {
                let row = (tile0 + j) * h.kvdim + h.off;
                let mut acc = 0.0f32;
                for (a, b) in q.iter().zip(&k[row..row + d]) {
                    acc = b.to_f32().mul_add(*a, acc);
                }
                *s = acc * h.scale;
            } else {
                *s = f32::NEG_INFINITY;
            }
        }
        let tile_max = kq.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let m_new = m.max(tile_max);
        if m_new > m {
            let ms = (m - m_new).exp();
            for x in o.iter_mut() {
                *x *= ms;
            }
            sum *= ms;
        }
        m = m_new;
        // ggml_vec_soft_max_f32: exp in groups of 8, each group summed as a tree.
        let mut tile_sum = 0.0f64;
        for g in kq.chunks_exact_mut(8) {
            for x in g.iter_mut() {
                *x = ggml_expf(*x - m);
            }
            let l: [f32; 4] = std::array::from_fn(|i| g[i] + g[i + 4]);
            tile_sum += ((l[0] + l[2]) + (l[1] + l[3])) as f64;
        }
        sum = (sum as f64 + tile_sum) as f32;
        for (j, &p) in kq.iter().enumerate().take(n) {
            let row = (tile0 + j) * h.kvdim + h.off;
            for (x, y) in o.iter_mut().zip(&v[row..row + d]) {
                *x = y.to_f32().mul_add(p, *x);
            }
        }
        tile0 += KV_TILE;
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for x in o.iter_mut() {
        *x *= inv;
    }
}

fn attend_f32(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    attend_tiled_body(h, q, k, v, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_f32_fma(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    attend_tiled_body(h, q, k, v, o)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn attend_f32_fma(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    attend_tiled_body(h, q, k, v, o)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both numerics agree with a plain softmax attention within f16 precision.
    #[test]
    fn paths_agree_with_naive_softmax() {
        let d = 64;
        let n = 20;
        let f = |i: usize, s: f32| (i as f32 * s).sin() * 0.7;
        let q: Vec<f32> = (0..d).map(|i| f(i, 0.37)).collect();
        let k: Vec<f16> = (0..n * d)
            .map(|i| f16::from_f32(f(i, 0.11) * 3.0))
            .collect();
        let v: Vec<f16> = (0..n * d).map(|i| f16::from_f32(f(i, 0.07))).collect();
        let h = Head {
            d,
            kvdim: d,
            off: 0,
            n_pos: n,
            scale: 1.0 / 8.0,
        };
        let scores: Vec<f32> = (0..n)
            .map(|p| {
                q.iter()
                    .zip(&k[p * d..(p + 1) * d])
                    .map(|(a, b)| a * b.to_f32())
                    .sum::<f32>()
                    / 8.0
            })
            .collect();
        let mx = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let z: f32 = scores.iter().map(|s| (s - mx).exp()).sum();
        let want: Vec<f32> = (0..d)
            .map(|j| {
                (0..n)
                    .map(|p| (scores[p] - mx).exp() / z * v[p * d + j].to_f32())
                    .sum()
            })
            .collect();
        let mut a = vec![0.0; d];
        let mut b = vec![0.0; d];
        attend_f16_acc(&h, &q, &k, &v, &mut a);
        attend_f32(&h, &q, &k, &v, &mut b);
        for j in 0..d {
            assert!(
                (a[j] - want[j]).abs() < 2e-3,
                "f16 path {j}: {} vs {}",
                a[j],
                want[j]
            );
            assert!(
                (b[j] - want[j]).abs() < 1e-5,
                "f32 path {j}: {} vs {}",
                b[j],
                want[j]
            );
        }
        if has_fma_f16c() {
            let mut c = vec![0.0; d];
            unsafe { attend_f16_acc_fma(&h, &q, &k, &v, &mut c) };
            assert_eq!(a, c, "hardware FMA path equals the portable one");
        }
    }
}
