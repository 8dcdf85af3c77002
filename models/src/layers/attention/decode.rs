//! Causal self-attention with grouped key/value heads over the f16 KV cache.
//!
//! Two numerics, chosen as llama.cpp's CPU flash attention chooses them, so
//! greedy decoding reproduces llama.cpp's tokens on numerically touchy models:
//! - calls with fewer than [`TILED_MIN_TOKENS`] query tokens (decoding, short
//!   prompts): the query is rounded to f16, each score is an f16 dot product
//!   accumulated in ggml's lane order, softmax is online, and the weighted sum
//!   of V is accumulated *in f16* (rounded after every position);
//! - longer prompts: f32 queries, scores and accumulator, softmax online per
//!   tile of 64 cache positions (ggml's tiled path, in [`super::tiled`]).

use super::tiled::attention_tiled;
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
    let heads = Heads {
        n_head: s.n_head,
        n_head_kv: s.n_head_kv,
        head_dim: s.head_dim,
        q_scaled: false,
    };
    let n = q.len() / (s.n_head * s.head_dim);
    let rows = |_: usize| SeqRows {
        pos0: s.pos0,
        n,
        k: CacheRows {
            shared: &[],
            own: k,
        },
        v: CacheRows {
            shared: &[],
            own: v,
        },
    };
    attention_segments(&heads, 1, &rows, q, out, None, pool)
}

/// Head counts and size, shared by every sequence of a batch.
pub struct Heads {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// The queries come already scaled by 1/sqrt(D), as Gemma's graph
    /// scales them before attention (which then scales by 1): the f16
    /// rounding of a scaled query differs where its elements are tiny.
    pub q_scaled: bool,
}

impl Heads {
    /// The factor of q . k.
    pub(super) fn score_scale(&self) -> f32 {
        if self.q_scaled {
            1.0
        } else {
            1.0 / (self.head_dim as f32).sqrt()
        }
    }
}

/// One sequence of [`attention_segments`]: where its query tokens are and
/// its layer's cache rows (holding its new tokens already).
#[derive(Clone, Copy)]
pub struct SeqRows<'a> {
    /// Position of the first query token.
    pub pos0: usize,
    /// Query tokens.
    pub n: usize,
    pub k: CacheRows<'a>,
    pub v: CacheRows<'a>,
}

/// A layer's K or V cache rows ([positions, n_head_kv*D]), the first ones
/// possibly in a prompt's cache shared by several samples: positions covered
/// by `shared` are read there, the others from `own` (at the same offsets).
#[derive(Clone, Copy)]
pub struct CacheRows<'a> {
    pub shared: &'a [f16],
    pub own: &'a [f16],
}

impl<'a> CacheRows<'a> {
    /// Element `i` of the rows' layout (row p at p * n_head_kv*D) lives at
    /// this pointer.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> *const f16 {
        if i < self.shared.len() {
            self.shared[i..].as_ptr()
        } else {
            self.own[i..].as_ptr()
        }
    }

    /// The `len` elements from `i` (one head's part of a row; a row never
    /// straddles the shared and own parts).
    #[inline(always)]
    fn slice(&self, i: usize, len: usize) -> &'a [f16] {
        if i < self.shared.len() {
            &self.shared[i..i + len]
        } else {
            &self.own[i..i + len]
        }
    }

    /// All rows in one slice (copied only when some are shared): for the
    /// tiled path of long prompts, which reads them as one array.
    pub(super) fn contiguous(&self) -> std::borrow::Cow<'a, [f16]> {
        if self.shared.is_empty() {
            std::borrow::Cow::Borrowed(self.own)
        } else {
            let mut all = self.own.to_vec();
            all[..self.shared.len()].copy_from_slice(self.shared);
            std::borrow::Cow::Owned(all)
        }
    }
}

/// [`attention`] for several sequences at once (a batched decode step).
/// The short segments (the f16 path) are one parallel loop over (sequence,
/// token, kv head) tasks, each computing the query heads that share that kv
/// head in one pass over the cache: one dispatch per layer instead of one
/// per sequence, and each K/V row widened once per group instead of once per
/// head. Every head's arithmetic is unchanged, so the values are too.
/// `q` and `out` are [T, H*D] with the sequences' rows one after another;
/// `seq(i)` describes sequence i of `n_seqs`. Nothing is allocated per call
/// (the tasks are the chunks of `out`, their sequence found by a scan of
/// the few sequences).
pub fn attention_segments<'a>(
    heads: &Heads,
    n_seqs: usize,
    seq: &(dyn Fn(usize) -> SeqRows<'a> + Sync),
    q: &[f32],
    out: &mut [f32],
    window: Option<usize>,
    pool: &rayon::ThreadPool,
) {
    let d = heads.head_dim;
    let qdim = heads.n_head * d;
    let group = heads.n_head / heads.n_head_kv;
    let head = |pos0: usize, t: usize, kv_head: usize| Head {
        d,
        kvdim: heads.n_head_kv * d,
        off: kv_head * d,
        start: window_start(pos0 + t + 1, window),
        n_pos: pos0 + t + 1,
        scale: heads.score_scale(),
    };
    // Long sequences: the tiled path, one at a time.
    let (mut t0, mut short) = (0, 0);
    for i in 0..n_seqs {
        let r = seq(i);
        let rows = t0 * qdim..(t0 + r.n) * qdim;
        if r.n >= TILED_MIN_TOKENS {
            attention_tiled(heads, &r, &q[rows.clone()], &mut out[rows], window, pool);
        } else {
            short += r.n;
        }
        t0 += r.n;
    }
    if short == 0 {
        return;
    }
    // Short ones: a task per (token, kv head); query heads g*group.. share
    // kv head g, so [T, kv head] chunks of group*D are contiguous in q and
    // out alike.
    let fast = has_fma_f16c();
    let threads = pool.current_num_threads();
    let task = |(i, (o, qg)): (usize, (&mut [f32], &[f32]))| {
        let (mut t, g) = (i / heads.n_head_kv, i % heads.n_head_kv);
        let mut s = 0;
        let mut r = seq(s);
        while t >= r.n {
            t -= r.n;
            s += 1;
            r = seq(s);
        }
        if r.n >= TILED_MIN_TOKENS {
            return;
        }
        let h = head(r.pos0, t, g);
        match kv_chunk_size(r.n, h.n_pos, threads) {
            Some(chunk) => attend_split(&h, qg, r.k, r.v, o, chunk, fast),
            None => {
                SPLIT_SCRATCH.with_borrow_mut(|sc| {
                    let stats = crate::buffers::sized(&mut sc.stats, qg.len() / d);
                    attend_group_raw(&h, qg, r.k, r.v, o, stats, fast);
                    normalize(o, d, stats);
                });
            }
        }
    };
    let n_rows = t0 * qdim;
    pool.install(|| {
        out[..n_rows]
            .par_chunks_mut(group * d)
            .zip(q[..n_rows].par_chunks(group * d))
            .enumerate()
            .for_each(task)
    });
}

pub(super) fn has_fma_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The first position a query at position `n_pos - 1` attends to: all of
/// them, or the last `window` (llama.cpp masks a key when the query's
/// position minus its own reaches the window).
pub(super) fn window_start(n_pos: usize, window: Option<usize>) -> usize {
    window.map_or(0, |w| n_pos.saturating_sub(w))
}

/// One query head against the cache.
pub(super) struct Head {
    pub(super) d: usize,
    /// Row length of the cache (n_head_kv * D).
    pub(super) kvdim: usize,
    /// Offset of this head's kv head within a cache row.
    pub(super) off: usize,
    /// Positions to attend to: `start..n_pos` (start is past 0 in a
    /// sliding window, see [`window_start`], and in one chunk of a split
    /// cache, see [`kv_chunk_size`]).
    pub(super) start: usize,
    pub(super) n_pos: usize,
    pub(super) scale: f32,
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
/// accumulator held in f16. Leaves the accumulator (widened to f32, not yet
/// divided by the sum) in `o` and returns (running maximum, sum): a
/// chunk's partial result.
#[inline(always)]
fn attend_f16_acc_body(
    h: &Head,
    q: &[f32],
    k: CacheRows,
    v: CacheRows,
    o: &mut [f32],
) -> (f32, f32) {
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
    for p in h.start..h.n_pos {
        let row = p * h.kvdim + h.off;
        let sc = dot_f16_ggml(qh, k.slice(row, d)) * h.scale;
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
        for (a, &x) in acc.iter_mut().zip(v.slice(row, d)) {
            *a = f16::from_f32(x.to_f32().mul_add(vs, a.to_f32()));
        }
        // GCC contracts ggml's `S = S*ms + vs` into one fused multiply-add.
        sum = sum.mul_add(ms, vs);
    }
    for (x, a) in o.iter_mut().zip(acc.iter()) {
        *x = a.to_f32();
    }
    (m, sum)
}

/// One head's attention over its positions (the portable path).
#[cfg(test)]
fn attend_f16_acc(h: &Head, q: &[f32], k: CacheRows, v: CacheRows, o: &mut [f32]) {
    let stats = attend_f16_acc_body(h, q, k, v, o);
    normalize(o, h.d, &[stats]);
}

/// Divides each head's accumulator by its sum (ggml: `V /= S`, 0 for an
/// empty sum).
fn normalize(o: &mut [f32], d: usize, stats: &[(f32, f32)]) {
    for (oh, &(_, sum)) in o.chunks_mut(d).zip(stats) {
        let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
        for x in oh.iter_mut() {
            *x *= inv;
        }
    }
}

/// The partial results of the query heads in `q` (sharing one kv head)
/// over `h`'s positions: accumulators into `o`, (max, sum) into `stats`.
fn attend_group_raw(
    h: &Head,
    q: &[f32],
    k: CacheRows,
    v: CacheRows,
    o: &mut [f32],
    stats: &mut [(f32, f32)],
    fast: bool,
) {
    if fast {
        // SAFETY: `fast` says the CPU has the features.
        unsafe { attend_f16_group_fma_raw(h, q, k, v, o, stats) }
    } else {
        for ((q, o), st) in q.chunks(h.d).zip(o.chunks_mut(h.d)).zip(stats.iter_mut()) {
            *st = attend_f16_acc_body(h, q, k, v, o);
        }
    }
}

/// The chunk length of llama.cpp's split cache, or None when it does not
/// split. For one query token, ggml-cpu splits the cache view among its
/// threads once the view holds 512 positions; the view is the cache padded
/// to a multiple of 256 (at least 256), so the split starts at the 257th
/// position and its chunks, ceil(view / threads) long, end at fixed
/// positions. Each chunk's partial result is merged in order (see
/// [`attend_split`]). srl splits as llama.cpp does with as many threads as
/// its own pool has, so that the two agree at the same thread count (a
/// longer cache's results, in both, depend on it).
fn kv_chunk_size(query_tokens: usize, n_pos: usize, threads: usize) -> Option<usize> {
    let view = n_pos.div_ceil(256).max(1) * 256;
    (query_tokens == 1 && view >= 512 && threads > 1).then(|| view.div_ceil(threads))
}

/// Attention over a cache split in chunks of `chunk` positions, merged as
/// ggml's `flash_attn_ext_reduce_partials` merges them: per head, in chunk
/// order, skipping empty ones, V = V * e^(M - M') + V_c * e^(M_c - M') with
/// libm's expf (GCC fuses the first product into the sum, and S alike),
/// then V / S.
fn attend_split(
    h: &Head,
    q: &[f32],
    k: CacheRows,
    v: CacheRows,
    o: &mut [f32],
    chunk: usize,
    fast: bool,
) {
    let (d, g) = (h.d, q.len() / h.d);
    SPLIT_SCRATCH.with_borrow_mut(|sc| {
        let part = crate::buffers::sized(&mut sc.part, g * d);
        let stats = crate::buffers::sized(&mut sc.stats, g);
        let total = crate::buffers::sized(&mut sc.total, g);
        total.fill((f32::NEG_INFINITY, 0.0));
        o.fill(0.0);
        for c0 in (0..h.n_pos).step_by(chunk) {
            // Positions before the window are masked: a chunk holding none
            // of the others is empty (skipped).
            let (start, end) = (c0.max(h.start), (c0 + chunk).min(h.n_pos));
            if start >= end {
                continue;
            }
            let hc = Head {
                start,
                n_pos: end,
                ..*h
            };
            attend_group_raw(&hc, q, k, v, part, stats, fast);
            for j in 0..g {
                let (mc, sc) = stats[j];
                if sc == 0.0 {
                    continue;
                }
                let (m, s) = total[j];
                let m_new = m.max(mc);
                let (s_old, s_new) = ((m - m_new).exp(), (mc - m_new).exp());
                let (oj, pj) = (&mut o[j * d..(j + 1) * d], &part[j * d..(j + 1) * d]);
                for (x, &y) in oj.iter_mut().zip(pj) {
                    *x = x.mul_add(s_old, y * s_new);
                }
                total[j] = (m_new, s.mul_add(s_old, sc * s_new));
            }
        }
        normalize(o, d, total);
    });
}

/// Buffers of the split path and the stats of every call, kept per thread.
#[derive(Default)]
struct SplitScratch {
    part: Vec<f32>,
    stats: Vec<(f32, f32)>,
    total: Vec<(f32, f32)>,
}

thread_local! {
    static SPLIT_SCRATCH: std::cell::RefCell<SplitScratch> =
        std::cell::RefCell::new(SplitScratch::default());
}

/// The one-chunk path with AVX2/FMA/F16C intrinsics, operation for operation
/// what ggml-cpu does on such a CPU (head dims that are multiples of 32), for
/// the query heads that share one kv head (`q` and `o` hold them one after
/// another): each cache row is widened to f32 once for the whole group, and
/// the exponentials of the online softmax, whose arguments are known once
/// the scores are, are computed eight at a time by glibc's own algorithm
/// ([`crate::layers::exp`]). Every head takes exactly the steps it takes alone
/// (widening an f16 is exact), so its values are the portable code's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_f16_group_fma_raw(
    h: &Head,
    q: &[f32],
    k: CacheRows,
    v: CacheRows,
    o: &mut [f32],
    stats: &mut [(f32, f32)],
) {
    use std::arch::x86_64::*;
    const RNE: i32 = _MM_FROUND_TO_NEAREST_INT;
    let d = h.d;
    if !d.is_multiple_of(32) {
        for ((q, o), st) in q.chunks(d).zip(o.chunks_mut(d)).zip(stats.iter_mut()) {
            *st = attend_f16_acc_body(h, q, k, v, o);
        }
        return;
    }
    let g = q.len() / d;
    let (p0, n) = (h.start, h.n_pos - h.start);
    // This thread's buffers, taken for the call (none allocated once warm).
    let mut scratch = DECODE_SCRATCH.take();
    let DecodeScratch {
        qr,
        e,
        rises,
        acc,
        sum,
    } = &mut scratch;
    // Per head: the query rounded to f16.
    let qr = crate::buffers::sized(qr, g * d);
    for (dst, src) in qr.chunks_exact_mut(8).zip(q.chunks_exact(8)) {
        let x = _mm256_loadu_ps(src.as_ptr());
        _mm256_storeu_ps(dst.as_mut_ptr(), _mm256_cvtph_ps(_mm256_cvtps_ph::<RNE>(x)));
    }
    let mut row_f32 = [0.0f32; MAX_HEAD_DIM];
    let widen = |row_f32: &mut [f32; MAX_HEAD_DIM], src: *const u16| {
        for i in (0..d).step_by(8) {
            let x = _mm_loadu_si128(src.add(i) as *const __m128i);
            _mm256_storeu_ps(row_f32.as_mut_ptr().add(i), _mm256_cvtph_ps(x));
        }
    };
    // 1. Scores (head j's at e[j * n + p]).
    let e = crate::buffers::sized(e, g * n);
    for p in 0..n {
        widen(&mut row_f32, k.at((p0 + p) * h.kvdim + h.off) as *const u16);
        for j in 0..g {
            let qj = qr.as_ptr().add(j * d);
            // ggml_vec_dot_f16: four fused accumulators, then a pairwise
            // reduction.
            let mut s0 = _mm256_setzero_ps();
            let mut s1 = _mm256_setzero_ps();
            let mut s2 = _mm256_setzero_ps();
            let mut s3 = _mm256_setzero_ps();
            for i in (0..d).step_by(32) {
                let kf = |o: usize| _mm256_loadu_ps(row_f32.as_ptr().add(i + o));
                let qf = |o: usize| _mm256_loadu_ps(qj.add(i + o));
                s0 = _mm256_fmadd_ps(kf(0), qf(0), s0);
                s1 = _mm256_fmadd_ps(kf(8), qf(8), s1);
                s2 = _mm256_fmadd_ps(kf(16), qf(16), s2);
                s3 = _mm256_fmadd_ps(kf(24), qf(24), s3);
            }
            let x0 = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
            let t0 = _mm_add_ps(_mm256_castps256_ps128(x0), _mm256_extractf128_ps::<1>(x0));
            let t1 = _mm_hadd_ps(t0, t0);
            e[j * n + p] = _mm_cvtss_f32(_mm_hadd_ps(t1, t1)) * h.scale;
        }
    }
    // 2. The online softmax's running maximum decides, per position, which
    // exponential it takes: of (old max - score) when the score raises the
    // maximum (rescaling the accumulator), else of (score - max). Known in
    // advance, they are computed together.
    let rises = crate::buffers::sized(rises, g * n);
    for j in 0..g {
        let mut m = f32::NEG_INFINITY;
        for p in 0..n {
            let sc = e[j * n + p];
            rises[j * n + p] = sc > m;
            if sc > m {
                e[j * n + p] = m - sc;
                m = sc;
            } else {
                e[j * n + p] = sc - m;
            }
        }
        stats[j].0 = m;
    }
    crate::layers::exp::exp_in_place(e);
    // 3. The f16 accumulators over V, position by position.
    let acc = crate::buffers::zeroed(acc, g * d);
    let sum = crate::buffers::zeroed(sum, g);
    for p in 0..n {
        widen(&mut row_f32, v.at((p0 + p) * h.kvdim + h.off) as *const u16);
        for j in 0..g {
            let aj = acc.as_mut_ptr().add(j * d);
            let (mut ms, mut vs) = (1.0f32, 1.0f32);
            if rises[j * n + p] {
                ms = e[j * n + p];
                let vms = _mm256_set1_ps(ms);
                for i in (0..d).step_by(8) {
                    let a = _mm256_cvtph_ps(_mm_loadu_si128(aj.add(i) as *const __m128i));
                    let r = _mm256_cvtps_ph::<RNE>(_mm256_mul_ps(a, vms));
                    _mm_storeu_si128(aj.add(i) as *mut __m128i, r);
                }
            } else {
                vs = e[j * n + p];
            }
            let vvs = _mm256_set1_ps(vs);
            for i in (0..d).step_by(8) {
                let a = _mm256_cvtph_ps(_mm_loadu_si128(aj.add(i) as *const __m128i));
                let x = _mm256_loadu_ps(row_f32.as_ptr().add(i));
                let r = _mm256_cvtps_ph::<RNE>(_mm256_fmadd_ps(x, vvs, a));
                _mm_storeu_si128(aj.add(i) as *mut __m128i, r);
            }
            // GCC contracts ggml's `S = S*ms + vs` into one fused multiply-add.
            sum[j] = sum[j].mul_add(ms, vs);
        }
    }
    for j in 0..g {
        stats[j].1 = sum[j];
        for (x, &a) in o[j * d..(j + 1) * d]
            .iter_mut()
            .zip(&acc[j * d..(j + 1) * d])
        {
            *x = f16::from_bits(a).to_f32();
        }
    }
    DECODE_SCRATCH.set(scratch);
}

/// [`attend_f16_group_fma_raw`], divided by the sums (the tests' entry).
#[cfg(all(target_arch = "x86_64", test))]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_f16_group_fma(h: &Head, q: &[f32], k: CacheRows, v: CacheRows, o: &mut [f32]) {
    let mut stats = vec![(0.0, 0.0); q.len() / h.d];
    attend_f16_group_fma_raw(h, q, k, v, o, &mut stats);
    normalize(o, h.d, &stats);
}

/// Buffers of [`attend_f16_group_fma`], kept per thread: a decode step runs
/// thousands of its tasks, each of which would otherwise allocate five.
#[cfg(target_arch = "x86_64")]
#[derive(Default)]
struct DecodeScratch {
    qr: Vec<f32>,
    e: Vec<f32>,
    rises: Vec<bool>,
    acc: Vec<u16>,
    sum: Vec<f32>,
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    static DECODE_SCRATCH: std::cell::Cell<DecodeScratch> =
        std::cell::Cell::new(DecodeScratch::default());
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn attend_f16_group_fma_raw(
    h: &Head,
    q: &[f32],
    k: CacheRows,
    v: CacheRows,
    o: &mut [f32],
    stats: &mut [(f32, f32)],
) {
    for ((q, o), st) in q.chunks(h.d).zip(o.chunks_mut(h.d)).zip(stats.iter_mut()) {
        *st = attend_f16_acc_body(h, q, k, v, o);
    }
}

#[cfg(all(not(target_arch = "x86_64"), test))]
unsafe fn attend_f16_group_fma(h: &Head, q: &[f32], k: CacheRows, v: CacheRows, o: &mut [f32]) {
    for (q, o) in q.chunks(h.d).zip(o.chunks_mut(h.d)) {
        attend_f16_acc(h, q, k, v, o)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tiled::{attend_f32, attend_tiled_group_avx2, KV_TILE};
    use super::*;

    fn rows(x: &[f16]) -> CacheRows<'_> {
        CacheRows {
            shared: &[],
            own: x,
        }
    }

    /// The portable decode path (CPUs without FMA/F16C, aarch64) reads a
    /// shared prompt cache in place: the same values as one contiguous cache,
    /// whatever the own cache holds under the shared rows.
    /// llama.cpp's split of a one-token step's cache: from the 257th
    /// position (the view padded to 512), in ceil(view / threads) chunks.
    #[test]
    fn kv_split_follows_llamacpp_view() {
        assert_eq!(kv_chunk_size(1, 1, 2), None);
        assert_eq!(kv_chunk_size(1, 256, 2), None);
        assert_eq!(kv_chunk_size(1, 257, 2), Some(256));
        assert_eq!(kv_chunk_size(1, 1000, 2), Some(512));
        assert_eq!(kv_chunk_size(1, 1025, 3), Some(427));
        assert_eq!(kv_chunk_size(1, 1000, 1), None);
        assert_eq!(kv_chunk_size(2, 1000, 2), None);
    }

    /// Split in chunks, the merged result stays the softmax-weighted mean
    /// (within the f16 accumulator's rounding), and one chunk is exactly
    /// the unsplit path.
    #[test]
    fn split_cache_merges_to_the_same_attention() {
        let (d, kvdim, n_pos) = (64, 64, 700);
        let val = |i: usize| f16::from_f32(((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8);
        let k: Vec<f16> = (0..n_pos * kvdim).map(val).collect();
        let v: Vec<f16> = (0..n_pos * kvdim).map(|i| val(i + 13)).collect();
        let q: Vec<f32> = (0..2 * d).map(|i| (i as f32 * 0.31).cos()).collect();
        let h = Head {
            d,
            kvdim,
            off: 0,
            start: 0,
            n_pos,
            scale: 0.125,
        };
        let fast = has_fma_f16c();
        let mut whole = vec![0.0; 2 * d];
        let mut stats = vec![(0.0, 0.0); 2];
        attend_group_raw(&h, &q, rows(&k), rows(&v), &mut whole, &mut stats, fast);
        normalize(&mut whole, d, &stats);
        let mut one = vec![0.0; 2 * d];
        attend_split(&h, &q, rows(&k), rows(&v), &mut one, n_pos, fast);
        assert_eq!(one, whole);
        for chunk in [512, 256, 100] {
            let mut got = vec![0.0; 2 * d];
            attend_split(&h, &q, rows(&k), rows(&v), &mut got, chunk, fast);
            let err = got
                .iter()
                .zip(&whole)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 2e-3, "chunk {chunk}: {err}");
            assert_ne!(
                got, whole,
                "chunk {chunk}: the split must change the rounding"
            );
        }
    }

    #[test]
    fn portable_path_reads_shared_prefix_in_place() {
        let (d, kvdim, n_pos) = (64, 128, 41);
        let val = |i: usize| f16::from_f32(((i * 7919) % 263) as f32 / 131.0 - 1.0);
        let k: Vec<f16> = (0..n_pos * kvdim).map(val).collect();
        let v: Vec<f16> = (0..n_pos * kvdim).map(|i| val(i + 5)).collect();
        let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
        let h = Head {
            d,
            kvdim,
            off: d,
            start: 0,
            n_pos,
            scale: 0.125,
        };
        let mut want = vec![0.0; d];
        attend_f16_acc(&h, &q, rows(&k), rows(&v), &mut want);
        let split = 17 * kvdim;
        let (mut own_k, mut own_v) = (k.clone(), v.clone());
        own_k[..split].fill(f16::from_f32(9.0));
        own_v[..split].fill(f16::from_f32(-9.0));
        let kr = CacheRows {
            shared: &k[..split],
            own: &own_k,
        };
        let vr = CacheRows {
            shared: &v[..split],
            own: &own_v,
        };
        let mut got = vec![0.0; d];
        attend_f16_acc(&h, &q, kr, vr, &mut got);
        assert_eq!(want, got);
    }

    /// The AVX2 kernels compute exactly the portable code's values, over
    /// head sizes, offsets, lengths and value ranges.
    #[test]
    fn simd_paths_are_bit_identical_to_portable() {
        if !has_fma_f16c() {
            return;
        }
        let mut seed = 0x1234_5678u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for &(d, n_kv_heads, n_pos, amp) in &[
            (64, 3, 1, 1.0),
            (64, 3, 37, 4.0),
            (128, 2, 200, 20.0),
            (32, 1, 90, 0.1),
            (96, 2, 130, 8.0),
        ] {
            let kvdim = d * n_kv_heads;
            let q: Vec<f32> = (0..d).map(|_| rnd() * amp).collect();
            let k: Vec<f16> = (0..n_pos * kvdim)
                .map(|_| f16::from_f32(rnd() * amp))
                .collect();
            let v: Vec<f16> = (0..n_pos * kvdim).map(|_| f16::from_f32(rnd())).collect();
            for off in 0..n_kv_heads {
                let h = Head {
                    d,
                    kvdim,
                    off: off * d,
                    start: 0,
                    n_pos,
                    scale: 1.0 / (d as f32).sqrt(),
                };
                let (mut a, mut b) = (vec![0.0; d], vec![0.0; d]);
                attend_f16_acc(&h, &q, rows(&k), rows(&v), &mut a);
                unsafe { attend_f16_group_fma(&h, &q, rows(&k), rows(&v), &mut b) };
                assert_eq!(a, b, "f16 path d={d} n_pos={n_pos}");
                // The first positions read from a shared prompt cache.
                let split = (n_pos / 2) * kvdim;
                let garbage: Vec<f16> = (0..n_pos * kvdim).map(|_| f16::from_f32(9.0)).collect();
                let mut own = k.clone();
                own[..split].copy_from_slice(&garbage[..split]);
                let mut own_v = v.clone();
                own_v[..split].copy_from_slice(&garbage[..split]);
                let mut c = vec![0.0; d];
                let kr = CacheRows {
                    shared: &k[..split],
                    own: &own,
                };
                let vr = CacheRows {
                    shared: &v[..split],
                    own: &own_v,
                };
                unsafe { attend_f16_group_fma(&h, &q, kr, vr, &mut c) };
                assert_eq!(a, c, "f16 path, shared prefix, d={d} n_pos={n_pos}");
                // Three query heads sharing this kv head, in one pass.
                let q3: Vec<f32> = (0..3 * d)
                    .map(|i| q[i % d] * (1.0 + (i / d) as f32))
                    .collect();
                let mut want = vec![0.0; 3 * d];
                for (qh, o) in q3.chunks(d).zip(want.chunks_mut(d)) {
                    attend_f16_acc(&h, qh, rows(&k), rows(&v), o);
                }
                let mut got = vec![0.0; 3 * d];
                unsafe { attend_f16_group_fma(&h, &q3, rows(&k), rows(&v), &mut got) };
                assert_eq!(want, got, "grouped f16 path d={d} n_pos={n_pos}");
                let (mut a, mut b) = (vec![0.0; d], vec![0.0; d]);
                attend_f32(&h, &q, &k, &v, &mut a);
                let stride = n_pos.div_ceil(KV_TILE) * KV_TILE;
                let mut kt = vec![0.0f32; d * stride];
                for p in 0..n_pos {
                    for c in 0..d {
                        kt[c * stride + p] = k[p * kvdim + off * d + c].to_f32();
                    }
                }
                unsafe { attend_tiled_group_avx2::<1, 8>(&h, &q, &kt, stride, &v, &mut b) };
                assert_eq!(a, b, "tiled path d={d} n_pos={n_pos}");
                // Three query heads in one pass: each as alone.
                let mut want = vec![0.0; 3 * d];
                for (qh, o) in q3.chunks(d).zip(want.chunks_mut(d)) {
                    attend_f32(&h, qh, &k, &v, o);
                }
                let mut got = vec![0.0; 3 * d];
                unsafe { attend_tiled_group_avx2::<3, 2>(&h, &q3, &kt, stride, &v, &mut got) };
                assert_eq!(want, got, "grouped tiled path d={d} n_pos={n_pos}");
            }
        }
    }

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
            start: 0,
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
        attend_f16_acc(&h, &q, rows(&k), rows(&v), &mut a);
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
            let (kr, vr) = (
                CacheRows {
                    shared: &[],
                    own: &k,
                },
                CacheRows {
                    shared: &[],
                    own: &v,
                },
            );
            unsafe { attend_f16_group_fma(&h, &q, kr, vr, &mut c) };
            assert_eq!(a, c, "the AVX2 path equals the portable one bit for bit");
        }
    }
}
