//! Causal self-attention with grouped key/value heads over the KV cache.
//!
//! Queries are rounded to f16 and dotted with the f16 keys in f32, as
//! llama.cpp's CPU flash attention does; softmax is computed online (one pass
//! over the cache), accumulating V in f32.

use half::f16;
use rayon::prelude::*;

/// Largest head dimension supported (checked when a config is validated).
pub const MAX_HEAD_DIM: usize = 1024;

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
    let kvdim = s.n_head_kv * d;
    let group = s.n_head / s.n_head_kv;
    let scale = 1.0 / (d as f32).sqrt();
    pool.install(|| {
        out.par_chunks_mut(d).enumerate().for_each(|(i, o)| {
            let (t, h) = (i / s.n_head, i % s.n_head);
            let kvh = h / group;
            let mut qbuf = [0.0f32; MAX_HEAD_DIM];
            let qh = &mut qbuf[..d];
            for (dst, &x) in qh
                .iter_mut()
                .zip(&q[t * qdim + h * d..t * qdim + (h + 1) * d])
            {
                *dst = f16::from_f32(x).to_f32();
            }
            let n_pos = s.pos0 + t + 1;
            let mut m = f32::NEG_INFINITY;
            let mut sum = 0.0f32;
            o.fill(0.0);
            for p in 0..n_pos {
                let kr = &k[p * kvdim + kvh * d..p * kvdim + (kvh + 1) * d];
                let mut dot = 0.0f32;
                for (a, b) in qh.iter().zip(kr) {
                    dot += a * b.to_f32();
                }
                let sc = dot * scale;
                let (ms, vs) = if sc > m {
                    let ms = (m - sc).exp();
                    m = sc;
                    (ms, 1.0)
                } else {
                    (1.0, (sc - m).exp())
                };
                let vr = &v[p * kvdim + kvh * d..p * kvdim + (kvh + 1) * d];
                if ms != 1.0 {
                    for x in o.iter_mut() {
                        *x *= ms;
                    }
                }
                for (x, y) in o.iter_mut().zip(vr) {
                    *x += y.to_f32() * vs;
                }
                sum = sum * ms + vs;
            }
            let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
            for x in o.iter_mut() {
                *x *= inv;
            }
        })
    });
}
