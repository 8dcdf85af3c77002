//! The prompt path of decode attention: llama.cpp's tiled flash attention
//! for calls of [`super::decode::TILED_MIN_TOKENS`] query tokens or more, with f32
//! queries, scores and accumulators and softmax online per tile of 64 cache
//! positions, so long prompts give llama.cpp's numbers.

use super::decode::{has_fma_f16c, window_start, Head, Heads, SeqRows};
use half::f16;
use rayon::prelude::*;

/// One long segment: f32 tiles as llama.cpp's prompt path.
pub(super) fn attention_tiled(
    heads: &Heads,
    seg: &SeqRows,
    q: &[f32],
    out: &mut [f32],
    window: Option<usize>,
    pool: &rayon::ThreadPool,
) {
    let d = heads.head_dim;
    let qdim = heads.n_head * d;
    let n_tokens = q.len() / qdim;
    let (k, v) = (seg.k.contiguous(), seg.v.contiguous());
    let (k, v) = (&k[..], &v[..]);
    let fast = has_fma_f16c();
    // The tiled path reads K transposed to f32, [kv head][D][positions], as
    // ggml packs its K tiles; built once per call and shared by all heads.
    let n_total = seg.pos0 + n_tokens;
    let stride = n_total.div_ceil(KV_TILE) * KV_TILE;
    let tiled_simd = fast && d.is_multiple_of(8);
    let kt: Vec<f32> = if tiled_simd {
        let kvdim = heads.n_head_kv * d;
        let mut kt = vec![0.0f32; heads.n_head_kv * d * stride];
        for p in 0..n_total {
            for (c, x) in k[p * kvdim..(p + 1) * kvdim].iter().enumerate() {
                kt[c * stride + p] = x.to_f32();
            }
        }
        kt
    } else {
        Vec::new()
    };
    let pos0 = seg.pos0;
    let group = heads.n_head / heads.n_head_kv;
    // Tasks of `sub` query heads that share a kv head (one token), the
    // largest divisor of the group up to TILED_GROUP: they read each K and V
    // tile once.
    let sub = (1..=group.min(TILED_GROUP))
        .rev()
        .find(|s| group.is_multiple_of(*s))
        .unwrap_or(1);
    pool.install(|| {
        out.par_chunks_mut(sub * d).enumerate().for_each(|(i, o)| {
            let (t, h0) = (i / (heads.n_head / sub), (i % (heads.n_head / sub)) * sub);
            let (g, nh) = (h0 / group, sub);
            let head = Head {
                d,
                kvdim: heads.n_head_kv * d,
                off: g * d,
                start: window_start(pos0 + t + 1, window),
                n_pos: pos0 + t + 1,
                scale: heads.score_scale(),
            };
            let qh = &q[t * qdim + h0 * d..t * qdim + (h0 + nh) * d];
            if tiled_simd {
                let kth = &kt[head.off * stride..(head.off + d) * stride];
                // SAFETY: the CPU has the features (checked above).
                unsafe {
                    match nh {
                        // G x B accumulators (+ B loads) fit the 16 registers.
                        4 => attend_tiled_group_avx2::<4, 2>(&head, qh, kth, stride, v, o),
                        3 => attend_tiled_group_avx2::<3, 2>(&head, qh, kth, stride, v, o),
                        2 => attend_tiled_group_avx2::<2, 4>(&head, qh, kth, stride, v, o),
                        _ => attend_tiled_group_avx2::<1, 8>(&head, qh, kth, stride, v, o),
                    }
                }
            } else {
                for (qh, o) in qh.chunks(d).zip(o.chunks_mut(d)) {
                    attend_f32(&head, qh, k, v, o)
                }
            }
        })
    });
}

/// Most query heads one task of the tiled path computes together (their
/// accumulators stay in registers).
const TILED_GROUP: usize = 4;

/// KV positions per tile of llama.cpp's tiled path (GGML_FA_TILE_KV).
pub(super) const KV_TILE: usize = 64;

/// llama.cpp's tiled flash attention for long prompts, one query row: f32
/// query, scores as sequential fused dot products, softmax online per tile
/// of 64 cache positions (tile sums in f64, exp by ggml's polynomial), V
/// accumulated in f32 by sequential fused multiply-adds.
#[inline(always)]
fn attend_tiled_body(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    use crate::layers::exp::ggml_expf;
    let d = h.d;
    let mut m = f32::NEG_INFINITY;
    let mut sum = 0.0f32;
    o.fill(0.0);
    let mut kq = [0.0f32; KV_TILE];
    let mut tile0 = 0;
    while tile0 < h.n_pos {
        let n = (h.n_pos - tile0).min(KV_TILE);
        if tile0 + n <= h.start {
            // Every position of the tile is before the window: ggml skips it.
            tile0 += KV_TILE;
            continue;
        }
        for (j, s) in kq.iter_mut().enumerate() {
            if j < n && tile0 + j >= h.start {
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

pub(super) fn attend_f32(h: &Head, q: &[f32], k: &[f16], v: &[f16], o: &mut [f32]) {
    attend_tiled_body(h, q, k, v, o)
}

/// llama.cpp's tiled flash attention for long prompts with AVX2/FMA
/// intrinsics (head dims that are multiples of 8), the operations of
/// [`attend_tiled_body`] in its order: scores of 8 positions at a time from K
/// transposed (`kt`: [D][stride] for this kv head, zero beyond the last
/// position), V accumulated 8 channels at a time. It computes `G` query
/// heads of one token that share the kv head (`q` and `o` hold them one
/// after another): each K tile is loaded once for the G score rows and each
/// V row widened once for the G accumulators, B vectors at a time. Every head takes exactly its
/// steps alone (per score lane a sequential fused dot product over D, per
/// channel fused adds in position order), so each head's values are the
/// portable code's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn attend_tiled_group_avx2<const G: usize, const B: usize>(
    h: &Head,
    q: &[f32],
    kt: &[f32],
    stride: usize,
    v: &[f16],
    o: &mut [f32],
) {
    use std::arch::x86_64::*;
    let d = h.d;
    debug_assert_eq!(q.len(), G * d);
    let mut m = [f32::NEG_INFINITY; G];
    let mut sum = [0.0f32; G];
    o.fill(0.0);
    let vp = v.as_ptr() as *const u16;
    let mut kq = [[0.0f32; KV_TILE]; G];
    let mut tile0 = 0;
    while tile0 < h.n_pos {
        let n = (h.n_pos - tile0).min(KV_TILE);
        if tile0 + n <= h.start {
            // Every position of the tile is before the window: ggml skips it.
            tile0 += KV_TILE;
            continue;
        }
        let blocks = n.div_ceil(8);
        let sc = _mm256_set1_ps(h.scale);
        // Scores, B blocks of 8 positions at a time for all G heads.
        for b0 in (0..KV_TILE / 8).step_by(B) {
            let nb = blocks.saturating_sub(b0).min(B);
            let mut acc = [[_mm256_setzero_ps(); B]; G];
            if nb > 0 {
                for dk in 0..d {
                    let base = kt.as_ptr().add(dk * stride + tile0 + b0 * 8);
                    let kv: [__m256; B] = std::array::from_fn(|b| {
                        if b < nb {
                            _mm256_loadu_ps(base.add(b * 8))
                        } else {
                            _mm256_setzero_ps()
                        }
                    });
                    for (j, a) in acc.iter_mut().enumerate() {
                        let qb = _mm256_set1_ps(*q.get_unchecked(j * d + dk));
                        for (b, a) in a.iter_mut().enumerate().take(nb) {
                            *a = _mm256_fmadd_ps(kv[b], qb, *a);
                        }
                    }
                }
            }
            for (j, a) in acc.iter().enumerate() {
                for (b, a) in a.iter().enumerate() {
                    let x = if b < nb {
                        _mm256_mul_ps(*a, sc)
                    } else {
                        _mm256_set1_ps(f32::NEG_INFINITY)
                    };
                    _mm256_storeu_ps(kq[j].as_mut_ptr().add((b0 + b) * 8), x);
                }
            }
        }
        for j in 0..G {
            let kq = &mut kq[j];
            for s in kq.iter_mut().skip(n) {
                *s = f32::NEG_INFINITY;
            }
            // Positions before the window are masked.
            for s in kq.iter_mut().take(h.start.saturating_sub(tile0)) {
                *s = f32::NEG_INFINITY;
            }
            let oj = &mut o[j * d..(j + 1) * d];
            let tile_max = kq.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let m_new = m[j].max(tile_max);
            if m_new > m[j] {
                let ms = (m[j] - m_new).exp();
                for x in oj.iter_mut() {
                    *x *= ms;
                }
                sum[j] *= ms;
            }
            m[j] = m_new;
            let mut tile_sum = 0.0f64;
            let mv = _mm256_set1_ps(m[j]);
            for g in kq.chunks_exact_mut(8) {
                let e = crate::layers::exp::ggml_expf_avx2(_mm256_sub_ps(
                    _mm256_loadu_ps(g.as_ptr()),
                    mv,
                ));
                _mm256_storeu_ps(g.as_mut_ptr(), e);
                let l: [f32; 4] = std::array::from_fn(|i| g[i] + g[i + 4]);
                tile_sum += ((l[0] + l[2]) + (l[1] + l[3])) as f64;
            }
            sum[j] = (sum[j] as f64 + tile_sum) as f32;
        }
        // V: channels in register blocks of 8 * B for all G heads,
        // positions in order.
        for c0 in (0..d).step_by(8 * B) {
            let nc = ((d - c0) / 8).min(B);
            let mut ov = [[_mm256_setzero_ps(); B]; G];
            for (j, ov) in ov.iter_mut().enumerate() {
                for (i, r) in ov.iter_mut().enumerate().take(nc) {
                    *r = _mm256_loadu_ps(o.as_ptr().add(j * d + c0 + i * 8));
                }
            }
            // p indexes every head's probabilities and the V rows alike.
            #[allow(clippy::needless_range_loop)]
            for p in 0..n {
                let row = (tile0 + p) * h.kvdim + h.off + c0;
                let x: [__m256; B] = std::array::from_fn(|i| {
                    if i < nc {
                        _mm256_cvtph_ps(_mm_loadu_si128(vp.add(row + i * 8) as *const __m128i))
                    } else {
                        _mm256_setzero_ps()
                    }
                });
                for (j, ov) in ov.iter_mut().enumerate() {
                    let pv = _mm256_set1_ps(kq[j][p]);
                    for (i, r) in ov.iter_mut().enumerate().take(nc) {
                        *r = _mm256_fmadd_ps(x[i], pv, *r);
                    }
                }
            }
            for (j, ov) in ov.iter().enumerate() {
                for (i, r) in ov.iter().enumerate().take(nc) {
                    _mm256_storeu_ps(o.as_mut_ptr().add(j * d + c0 + i * 8), *r);
                }
            }
        }
        tile0 += KV_TILE;
    }
    for j in 0..G {
        let inv = if sum[j] == 0.0 { 0.0 } else { 1.0 / sum[j] };
        for x in o[j * d..(j + 1) * d].iter_mut() {
            *x *= inv;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn attend_tiled_group_avx2<const G: usize, const B: usize>(
    h: &Head,
    q: &[f32],
    kt: &[f32],
    stride: usize,
    v: &[f16],
    o: &mut [f32],
) {
    let _ = (h, q, kt, stride, v, o);
    unreachable!("the tiled AVX2 kernel is only chosen on x86-64")
}
