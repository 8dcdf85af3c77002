//! x86-64 AVX2/FMA/F16C building blocks shared by the block types.
//!
//! The helpers are `#[inline(always)]` and only ever called from functions
//! compiled with `#[target_feature(enable = "avx2,fma,f16c")]`, into which
//! they inline. Their numerics copy ggml-cpu's x86 code (same integer sums,
//! same 8-lane float accumulation, same horizontal sum) so results match
//! llama.cpp's closely.

use std::arch::x86_64::*;

/// Reads an f16 at `p` (unaligned) and widens it to f32 with F16C.
#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    let h = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// 16 bytes at `p` as 32 nibbles: byte j < 16 is the low nibble of `p[j]`,
/// byte 16 + j its high nibble (ggml `bytes_from_nibbles_32`).
#[inline(always)]
pub(crate) unsafe fn nibbles32(p: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(p as *const __m128i);
    let bytes = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
    _mm256_and_si256(bytes, _mm256_set1_epi8(0x0f))
}

/// 32 bits at `p` spread to 32 bytes: byte i is 0xFF if bit i is set, else 0
/// (ggml `bytes_from_bits_32`).
#[inline(always)]
pub(crate) unsafe fn bits32(p: *const u8) -> __m256i {
    let x32 = (p as *const u32).read_unaligned();
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x32 as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// Unsigned bytes `ax` times signed bytes `sy`, summed in groups of four
/// into 8 f32 lanes (lane k covers bytes 4k..4k+3).
#[inline(always)]
pub(crate) unsafe fn mul_sum_us8_pairs_float(ax: __m256i, sy: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
}

/// Signed bytes times signed bytes, as [`mul_sum_us8_pairs_float`].
#[inline(always)]
pub(crate) unsafe fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs_float(ax, sy)
}

/// Sum of 8 f32 lanes in ggml's order (`hsum_float_8`).
#[inline(always)]
pub(crate) unsafe fn hsum_float_8(x: __m256) -> f32 {
    let mut res = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

/// Sum of 8 i32 lanes.
#[inline(always)]
pub(crate) unsafe fn hsum_i32_8(a: __m256i) -> i32 {
    let sum128 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    let hi64 = _mm_unpackhi_epi64(sum128, sum128);
    let sum64 = _mm_add_epi32(hi64, sum128);
    let hi32 = _mm_shuffle_epi32(sum64, 0b10_11_00_01);
    _mm_cvtsi128_si32(_mm_add_epi32(sum64, hi32))
}

/// A 32-element block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) paired with its
/// 32-element activation type (Q8_0 or Q8_1), described for the generic
/// dot-product and tile kernels below.
pub(crate) trait TileKernel {
    /// Bytes per weight block.
    const W_BYTES: usize;
    /// Bytes per activation block.
    const X_BYTES: usize;
    /// Whether blocks carry a min (`_1` types): adds `m_w * s_x` per block.
    const HAS_MIN: bool;
    /// Whether the weight bytes are signed ([`Self::dot`] is then
    /// [`mul_sum_i8_pairs_float`], which the packed path splits so that
    /// `|w|` is computed once per block).
    const SIGNED: bool;
    /// Weight block at `p`: 32 quants as bytes, scale d, min m (or 0).
    unsafe fn load_w(p: *const u8) -> (__m256i, f32, f32);
    /// Activation block at `p`: 32 signed bytes, scale d, s = d*sum (or 0).
    unsafe fn load_x(p: *const u8) -> (__m256i, f32, f32);
    /// 8 lanes of partial integer dot products as f32.
    unsafe fn dot(w: __m256i, x: __m256i) -> __m256;
}

/// Q8_0 activations: `d: f16, qs: [i8; 32]`.
#[inline(always)]
pub(crate) unsafe fn load_q8_0(p: *const u8) -> (__m256i, f32, f32) {
    (
        _mm256_loadu_si256(p.add(2) as *const __m256i),
        f16_at(p),
        0.0,
    )
}

/// Q8_1 activations: `d: f16, s: f16, qs: [i8; 32]`.
#[inline(always)]
pub(crate) unsafe fn load_q8_1(p: *const u8) -> (__m256i, f32, f32) {
    (
        _mm256_loadu_si256(p.add(4) as *const __m256i),
        f16_at(p),
        f16_at(p.add(2)),
    )
}

/// Dot product of `n` elements, ggml-cpu's AVX2 numerics: per block
/// `acc = fma(d_w * d_x, q, acc)` over 8 lanes, `summs += m_w * s_x`, then
/// `hsum(acc) + summs`.
#[inline(always)]
pub(crate) unsafe fn vec_dot_blocks<K: TileKernel>(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / 32;
    debug_assert!(w.len() >= nb * K::W_BYTES && x.len() >= nb * K::X_BYTES);
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for i in 0..nb {
        let (qw, dw, mw) = K::load_w(wp.add(i * K::W_BYTES));
        let (qx, dx, sx) = K::load_x(xp.add(i * K::X_BYTES));
        let q = K::dot(qw, qx);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), q, acc);
        if K::HAS_MIN {
            summs = mw.mul_add(sx, summs);
        }
    }
    hsum_float_8(acc) + summs
}

/// Software prefetch of the weights the next tile will read, spread over
/// the blocks of this one: when decoding, a tile reads several rows at once
/// and the hardware prefetcher alone keeps fewer bytes in flight than one
/// sequential stream would.
#[derive(Clone, Copy)]
struct Prefetch {
    ptr: *const u8,
    lines_per_block: usize,
}

impl Prefetch {
    const NONE: Prefetch = Prefetch {
        ptr: std::ptr::null(),
        lines_per_block: 0,
    };

    /// Prefetch `bytes` from `ptr` over `nb` block steps.
    fn new(ptr: *const u8, bytes: usize, nb: usize) -> Prefetch {
        Prefetch {
            ptr,
            lines_per_block: bytes.div_ceil(64).div_ceil(nb.max(1)),
        }
    }

    #[inline(always)]
    unsafe fn step(self, k: usize) {
        for i in 0..self.lines_per_block {
            // Prefetching never faults, so the address may lie past the end.
            let p = self.ptr.wrapping_add((k * self.lines_per_block + i) * 64);
            _mm_prefetch(p as *const i8, _MM_HINT_T0);
        }
    }
}

/// One `RM x RN` tile: `y[t*ys + r] = dot(w row r, x row t)`, each weight
/// block loaded once and used for `RN` tokens. Per (r, t) the operations are
/// exactly those of [`vec_dot_blocks`], so results are bit-identical.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<K: TileKernel, const RM: usize, const RN: usize>(
    nb: usize,
    w: *const u8,
    ws: usize,
    x: *const u8,
    xs: usize,
    y: *mut f32,
    ys: usize,
    prefetch: Prefetch,
) {
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    let mut summs = [[0.0f32; RN]; RM];
    for k in 0..nb {
        prefetch.step(k);
        let mut qw = [_mm256_setzero_si256(); RM];
        let mut dw = [0.0f32; RM];
        let mut mw = [0.0f32; RM];
        for r in 0..RM {
            (qw[r], dw[r], mw[r]) = K::load_w(w.add(r * ws + k * K::W_BYTES));
        }
        for t in 0..RN {
            let (qx, dx, sx) = K::load_x(x.add(t * xs + k * K::X_BYTES));
            for r in 0..RM {
                let q = K::dot(qw[r], qx);
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * dx), q, acc[r][t]);
                if K::HAS_MIN {
                    summs[r][t] = mw[r].mul_add(sx, summs[r][t]);
                }
            }
        }
    }
    for r in 0..RM {
        for t in 0..RN {
            *y.add(t * ys + r) = hsum_float_8(acc[r][t]) + summs[r][t];
        }
    }
}

/// Tiled product over `nr` weight rows and `nt` activation rows (see
/// [`crate::types::GemmFn`]), in `RM x RN` tiles with 1-wide edges.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_blocks<
    K: TileKernel,
    const RM: usize,
    const RN: usize,
    const RM1: usize,
>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    x: &[u8],
    xs: usize,
    nt: usize,
    y: *mut f32,
    ys: usize,
) {
    let nb = n / 32;
    if nr == 0 || nt == 0 {
        return;
    }
    assert!(w.len() >= (nr - 1) * ws + nb * K::W_BYTES);
    assert!(x.len() >= (nt - 1) * xs + nb * K::X_BYTES);
    let (wp, xp, yp) = (w.as_ptr(), x.as_ptr(), y);
    if nt == 1 {
        // Decoding: RM1 rows per tile share each activation block load.
        let r_full = nr - nr % RM1;
        let mut r = 0;
        while r < r_full {
            let pf = Prefetch::new(wp.wrapping_add((r + RM1) * ws), RM1 * ws, nb);
            tile::<K, RM1, 1>(nb, wp.add(r * ws), ws, xp, xs, yp.add(r), ys, pf);
            r += RM1;
        }
        while r < nr {
            tile::<K, 1, 1>(
                nb,
                wp.add(r * ws),
                ws,
                xp,
                xs,
                yp.add(r),
                ys,
                Prefetch::NONE,
            );
            r += 1;
        }
        return;
    }
    if nt >= RN {
        return gemm_packed::<K, RM, RN>(nb, wp, ws, nr, xp, xs, nt, yp, ys);
    }
    let r_full = nr - nr % RM;
    let t_full = nt - nt % RN;
    let mut r = 0;
    while r < r_full {
        let mut t = 0;
        while t < t_full {
            tile::<K, RM, RN>(
                nb,
                wp.add(r * ws),
                ws,
                xp.add(t * xs),
                xs,
                yp.add(t * ys + r),
                ys,
                Prefetch::NONE,
            );
            t += RN;
        }
        while t < nt {
            tile::<K, RM, 1>(
                nb,
                wp.add(r * ws),
                ws,
                xp.add(t * xs),
                xs,
                yp.add(t * ys + r),
                ys,
                Prefetch::NONE,
            );
            t += 1;
        }
        r += RM;
    }
    while r < nr {
        let mut t = 0;
        while t < t_full {
            tile::<K, 1, RN>(
                nb,
                wp.add(r * ws),
                ws,
                xp.add(t * xs),
                xs,
                yp.add(t * ys + r),
                ys,
                Prefetch::NONE,
            );
            t += RN;
        }
        while t < nt {
            tile::<K, 1, 1>(
                nb,
                wp.add(r * ws),
                ws,
                xp.add(t * xs),
                xs,
                yp.add(t * ys + r),
                ys,
                Prefetch::NONE,
            );
            t += 1;
        }
        r += 1;
    }
}

/// A weight block unpacked once per job for all the job's tokens: the 32
/// quants as bytes (what [`TileKernel::load_w`] returns), d and m as f32.
///
/// `d` is stored broadcast to all 8 lanes so that the tile multiplies it by
/// the activation scale with one vector op reading memory (a scalar field
/// invites the compiler to multiply scalars and broadcast, one op more).
#[repr(C, align(32))]
#[derive(Clone, Copy)]
struct Unpacked {
    q: __m256i,
    /// `|q|` for signed types.
    a: __m256i,
    d: __m256,
    m: f32,
}

/// Per-thread buffers of the packed path, kept between calls so that
/// prompt processing does not allocate per matrix product.
#[derive(Default)]
struct Scratch {
    w: Vec<Unpacked>,
    s: Vec<f32>,
    summs: Vec<f32>,
    dx: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Batched product (T > 1) of `nr` rows by `nt >= RN` tokens. The
/// activations' scales (and `s = d * sum` for `_1` types) are read once into
/// f32 arrays; then, `RM` rows at a time, the rows' blocks are unpacked into
/// a buffer that stays in L1, their `m_w * s_x` sums are computed for all
/// tokens in one vectorised pass (lane t repeats the scalar FMA chain of
/// token t), and `RM x RN` tiles over all tokens only load, multiply and
/// accumulate. Unpacking a row group rather than the whole job keeps the
/// buffer small however many rows a job has (a decode step of a few
/// sequences runs whole matrices as one job). Per (r, t) the arithmetic is
/// that of [`vec_dot_blocks`], so results are bit-identical.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_packed<K: TileKernel, const RM: usize, const RN: usize>(
    nb: usize,
    wp: *const u8,
    ws: usize,
    nr: usize,
    xp: *const u8,
    xs: usize,
    nt: usize,
    yp: *mut f32,
    ys: usize,
) {
    // The work runs outside `with`'s closure: closures do not inherit
    // `#[target_feature]`, and the intrinsics would not inline there. The
    // thread-local outlives this call, so the pointer stays valid.
    let cell: *const std::cell::RefCell<Scratch> = SCRATCH.with(|c| c as *const _);
    let mut local = None;
    // Not re-entrant in practice (no rayon calls below); fall back to a fresh
    // buffer rather than panic if it ever is.
    let mut guard = (*cell).try_borrow_mut().ok();
    let scratch = match guard.as_deref_mut() {
        Some(s) => s,
        None => local.insert(Scratch::default()),
    };
    let ntp = nt.next_multiple_of(8);
    let zero = Unpacked {
        q: _mm256_setzero_si256(),
        a: _mm256_setzero_si256(),
        d: _mm256_setzero_ps(),
        m: 0.0,
    };
    scratch.w.clear();
    scratch.w.resize(RM * nb, zero);
    scratch.summs.clear();
    scratch.summs.resize(RM * ntp, 0.0);
    if K::HAS_MIN {
        // s of token t, block k at s[k * ntp + t] (padding lanes stay 0).
        scratch.s.clear();
        scratch.s.resize(nb * ntp, 0.0);
        for t in 0..nt {
            for k in 0..nb {
                scratch.s[k * ntp + t] = K::load_x(xp.add(t * xs + k * K::X_BYTES)).2;
            }
        }
    }
    // Activation scales as f32, token t's at dx[t * nb..].
    scratch.dx.clear();
    scratch.dx.resize(nt * nb, 0.0);
    for t in 0..nt {
        for k in 0..nb {
            scratch.dx[t * nb + k] = K::load_x(xp.add(t * xs + k * K::X_BYTES)).1;
        }
    }
    let dxp = scratch.dx.as_ptr();
    let sp = scratch.s.as_ptr();
    let up = scratch.w.as_mut_ptr();
    let smp = scratch.summs.as_mut_ptr();
    let t_full = nt - nt % RN;
    let mut r0 = 0;
    while r0 < nr {
        let rows = RM.min(nr - r0);
        // The next group's rows are fetched while this one is unpacked, one
        // cache line per block step: with few tokens (a decode step) the
        // tiles are short, and the hardware prefetcher alone leaves a large
        // matrix waiting on memory (Q8_0 output head at 8 tokens: 9% faster).
        let next = wp.wrapping_add((r0 + RM) * ws);
        let lines = (RM * ws).div_ceil(64);
        for r in 0..rows {
            for k in 0..nb {
                let i = r * nb + k;
                if i < lines {
                    // Prefetching never faults: past the end is harmless.
                    _mm_prefetch(next.wrapping_add(i * 64) as *const i8, _MM_HINT_T0);
                }
                let (q, d, m) = K::load_w(wp.add((r0 + r) * ws + k * K::W_BYTES));
                let d = _mm256_set1_ps(d);
                let a = _mm256_sign_epi8(q, q);
                *up.add(r * nb + k) = Unpacked { q, a, d, m };
            }
            if K::HAS_MIN {
                for t0 in (0..ntp).step_by(8) {
                    let mut acc = _mm256_setzero_ps();
                    for k in 0..nb {
                        let m = _mm256_set1_ps((*up.add(r * nb + k)).m);
                        acc = _mm256_fmadd_ps(m, _mm256_loadu_ps(sp.add(k * ntp + t0)), acc);
                    }
                    _mm256_storeu_ps(smp.add(r * ntp + t0), acc);
                }
            }
        }
        let mut t = 0;
        while t < nt {
            let x = (xp.add(t * xs), dxp.add(t * nb));
            let full = t < t_full;
            if rows == RM {
                let (y, s) = (yp.add(t * ys + r0), smp.add(t));
                if full {
                    tile_packed::<K, RM, RN>(nb, up, x, xs, y, ys, s, ntp);
                } else {
                    tile_packed::<K, RM, 1>(nb, up, x, xs, y, ys, s, ntp);
                }
            } else {
                for r in 0..rows {
                    let (w, y, s) = (
                        up.add(r * nb),
                        yp.add(t * ys + r0 + r),
                        smp.add(r * ntp + t),
                    );
                    if full {
                        tile_packed::<K, 1, RN>(nb, w, x, xs, y, ys, s, ntp);
                    } else {
                        tile_packed::<K, 1, 1>(nb, w, x, xs, y, ys, s, ntp);
                    }
                }
            }
            t += if full { RN } else { 1 };
        }
        r0 += rows;
    }
}

/// One `RM x RN` tile over unpacked weights `w` (row r at `w + r * nb`);
/// `summs` holds the precomputed min terms (row r, token t at
/// `summs[r * ss + t]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_packed<K: TileKernel, const RM: usize, const RN: usize>(
    nb: usize,
    w: *const Unpacked,
    (x, dx): (*const u8, *const f32),
    xs: usize,
    y: *mut f32,
    ys: usize,
    summs: *const f32,
    ss: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    for k in 0..nb {
        let mut qx = [_mm256_setzero_si256(); RN];
        for t in 0..RN {
            qx[t] = K::load_x(x.add(t * xs + k * K::X_BYTES)).0;
        }
        for r in 0..RM {
            let u = &*w.add(r * nb + k);
            for t in 0..RN {
                let q = if K::SIGNED {
                    mul_sum_us8_pairs_float(u.a, _mm256_sign_epi8(qx[t], u.q))
                } else {
                    K::dot(u.q, qx[t])
                };
                // The activation scale is broadcast from memory per pair:
                // keeping RN broadcasts in registers would spill accumulators.
                let d = _mm256_mul_ps(u.d, _mm256_broadcast_ss(&*dx.add(t * nb + k)));
                acc[r][t] = _mm256_fmadd_ps(d, q, acc[r][t]);
            }
        }
    }
    for r in 0..RM {
        for t in 0..RN {
            *y.add(t * ys + r) = hsum_float_8(acc[r][t]) + *summs.add(r * ss + t);
        }
    }
}

/// `avx2_gemm!(kernel::<...>)`: defines `gemm`, a [`crate::types::GemmFn`]
/// running the generic tiled `kernel` (called with the GemmFn's arguments)
/// compiled for AVX2+FMA+F16C. It is only reachable through a
/// [`crate::Kernel`], which checks the CPU first.
macro_rules! avx2_gemm {
    ($($kernel:tt)+) => {
        /// # Safety
        /// As [`crate::types::GemmFn`]; the CPU check is done by `Kernel`.
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn gemm(
            n: usize,
            w: &[u8],
            ws: usize,
            nr: usize,
            x: &[u8],
            xs: usize,
            nt: usize,
            y: *mut f32,
            ys: usize,
        ) {
            #[target_feature(enable = "avx2,fma,f16c")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn inner(
                n: usize,
                w: &[u8],
                ws: usize,
                nr: usize,
                x: &[u8],
                xs: usize,
                nt: usize,
                y: *mut f32,
                ys: usize,
            ) {
                $($kernel)+(n, w, ws, nr, x, xs, nt, y, ys)
            }
            inner(n, w, ws, nr, x, xs, nt, y, ys)
        }
    };
}
pub(crate) use avx2_gemm;

/// Defines the safe AVX2 entries `vec_dot` and `gemm` of a 32-element block
/// type from its [`TileKernel`] and tile shape. The entries are only
/// reachable through a [`crate::Kernel`], which checks the CPU first.
macro_rules! block32_entries {
    ($k:ty, $rm:literal, $rn:literal, $rm1:literal) => {
        pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn inner(n: usize, w: &[u8], x: &[u8]) -> f32 {
                $crate::simd::x86::vec_dot_blocks::<$k>(n, w, x)
            }
            // SAFETY: reachable only through `Kernel`, which checked the CPU.
            unsafe { inner(n, w, x) }
        }

        $crate::simd::x86::avx2_gemm!($crate::simd::x86::gemm_blocks::<$k, $rm, $rn, $rm1>);
    };
}
pub(crate) use block32_entries;

/// Q8_0 (`WITH_SUM = false`) or Q8_1 (`true`) activation quantizer, ggml-cpu's
/// AVX2 `quantize_row_q8_0` / `quantize_row_q8_1`: `id = 127 / amax`, round
/// half to even, saturating packs; Q8_1 adds `s = fp16(d * sum(q))`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q8_from_float<const WITH_SUM: bool>(src: &[f32], dst: &mut [u8]) {
    let bytes = if WITH_SUM { 36 } else { 34 };
    let nb = src.len() / 32;
    assert!(dst.len() >= nb * bytes);
    let sign_bit = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for i in 0..nb {
        let x = src.as_ptr().add(i * 32);
        let y = dst.as_mut_ptr().add(i * bytes);
        let mut v0 = _mm256_loadu_ps(x);
        let mut v1 = _mm256_loadu_ps(x.add(8));
        let mut v2 = _mm256_loadu_ps(x.add(16));
        let mut v3 = _mm256_loadu_ps(x.add(24));
        let mut max_abs = _mm256_andnot_ps(sign_bit, v0);
        max_abs = _mm256_max_ps(max_abs, _mm256_andnot_ps(sign_bit, v1));
        max_abs = _mm256_max_ps(max_abs, _mm256_andnot_ps(sign_bit, v2));
        max_abs = _mm256_max_ps(max_abs, _mm256_andnot_ps(sign_bit, v3));
        let mut max4 = _mm_max_ps(
            _mm256_extractf128_ps(max_abs, 1),
            _mm256_castps256_ps128(max_abs),
        );
        max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4));
        let max_scalar = _mm_cvtss_f32(max4);

        let d = max_scalar / 127.0;
        let id = if max_scalar != 0.0 {
            127.0 / max_scalar
        } else {
            0.0
        };
        let dh = _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(d), 0), 0) as u16;
        (y as *mut u16).write_unaligned(dh);
        let mul = _mm256_set1_ps(id);
        v0 = _mm256_round_ps(
            _mm256_mul_ps(v0, mul),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        v1 = _mm256_round_ps(
            _mm256_mul_ps(v1, mul),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        v2 = _mm256_round_ps(
            _mm256_mul_ps(v2, mul),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        v3 = _mm256_round_ps(
            _mm256_mul_ps(v3, mul),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let mut i0 = _mm256_cvtps_epi32(v0);
        let i1 = _mm256_cvtps_epi32(v1);
        let mut i2 = _mm256_cvtps_epi32(v2);
        let i3 = _mm256_cvtps_epi32(v3);
        let qs = if WITH_SUM {
            let sum = hsum_i32_8(_mm256_add_epi32(
                _mm256_add_epi32(i0, i1),
                _mm256_add_epi32(i2, i3),
            ));
            let s = d * sum as f32;
            let sh = _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(s), 0), 0) as u16;
            (y.add(2) as *mut u16).write_unaligned(sh);
            y.add(4)
        } else {
            y.add(2)
        };
        i0 = _mm256_packs_epi32(i0, i1);
        i2 = _mm256_packs_epi32(i2, i3);
        i0 = _mm256_packs_epi16(i0, i2);
        i0 = _mm256_permutevar8x32_epi32(i0, perm);
        _mm256_storeu_si256(qs as *mut __m256i, i0);
    }
}

/// ggml's `GGML_F32x8_REDUCE` over four 8-lane accumulators.
#[inline(always)]
pub(crate) unsafe fn reduce4(s: [__m256; 4]) -> f32 {
    let s0 = _mm256_add_ps(s[0], s[2]);
    let s1 = _mm256_add_ps(s[1], s[3]);
    let s0 = _mm256_add_ps(s0, s1);
    let t0 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    let t1 = _mm_hadd_ps(t0, t0);
    _mm_cvtss_f32(_mm_hadd_ps(t1, t1))
}

/// Dot product of two float rows of `n` elements, each 8 elements loaded by
/// `load(row, i)`, ggml's `ggml_vec_dot_f32/f16` structure: 4 accumulators
/// over steps of 32, then [`reduce4`]. Returns the sum and how many elements
/// it covered; the caller adds the leftovers.
#[inline(always)]
pub(crate) unsafe fn dot_lanes(
    n: usize,
    w: *const u8,
    x: *const u8,
    load: impl Fn(*const u8, usize) -> __m256,
) -> (f32, usize) {
    let np = n & !31;
    let mut sum = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < np {
        for (j, s) in sum.iter_mut().enumerate() {
            *s = _mm256_fmadd_ps(load(w, i + 8 * j), load(x, i + 8 * j), *s);
        }
        i += 32;
    }
    (reduce4(sum), np)
}

/// A float element type (F32, F16 or BF16) as the float tile kernels read it.
pub(crate) trait FloatKernel {
    /// Bytes per element.
    const BYTES: usize;
    /// The type's AVX2 dot product (ggml's), for shapes tinyBLAS declines.
    const VEC_DOT: crate::types::VecDotFn;
    /// Elements `i..i + 8` of the row at `p`, widened to f32.
    unsafe fn load8(p: *const u8, i: usize) -> __m256;
}

/// A kernel table's AVX2 entry (always present for the float types on
/// x86-64), as a constant.
const fn avx2_or_scalar(k: crate::Kernel<crate::types::VecDotFn>) -> crate::types::VecDotFn {
    match k.avx2 {
        Some(f) => f,
        None => k.scalar,
    }
}

/// F32 rows.
pub(crate) struct F32Rows;
impl FloatKernel for F32Rows {
    const BYTES: usize = 4;
    const VEC_DOT: crate::types::VecDotFn = avx2_or_scalar(crate::types::f32::VEC_DOT);
    #[inline(always)]
    unsafe fn load8(p: *const u8, i: usize) -> __m256 {
        _mm256_loadu_ps((p as *const f32).add(i))
    }
}

/// F16 rows, widened with F16C.
pub(crate) struct F16Rows;
impl FloatKernel for F16Rows {
    const BYTES: usize = 2;
    const VEC_DOT: crate::types::VecDotFn = avx2_or_scalar(crate::types::f16::VEC_DOT);
    #[inline(always)]
    unsafe fn load8(p: *const u8, i: usize) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.add(2 * i) as *const __m128i))
    }
}

/// BF16 rows: the top halves of f32s.
pub(crate) struct Bf16Rows;
impl FloatKernel for Bf16Rows {
    const BYTES: usize = 2;
    const VEC_DOT: crate::types::VecDotFn = avx2_or_scalar(crate::types::bf16::VEC_DOT);
    #[inline(always)]
    unsafe fn load8(p: *const u8, i: usize) -> __m256 {
        let h = _mm_loadu_si128(p.add(2 * i) as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
    }
}

/// Float dot product with llamafile's tinyBLAS numerics (what llama.cpp
/// uses for F32/F16/BF16 products of several tokens on AVX2 when `n % 8 ==
/// 0`): one 8-lane FMA accumulator, then [`hsum_float_8`]. The reference
/// [`float_gemm`] is tested against.
#[cfg(test)]
#[inline(always)]
pub(crate) unsafe fn dot8<F: FloatKernel>(n: usize, w: *const u8, x: *const u8) -> f32 {
    debug_assert!(n.is_multiple_of(8));
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < n {
        acc = _mm256_fmadd_ps(F::load8(w, i), F::load8(x, i), acc);
        i += 8;
    }
    hsum_float_8(acc)
}

/// One `RM x RN` tile of [`dot8`] products.
#[inline(always)]
unsafe fn float_tile<F: FloatKernel, const RM: usize, const RN: usize>(
    n: usize,
    w: *const u8,
    ws: usize,
    x: *const u8,
    xs: usize,
    y: *mut f32,
    ys: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); RN]; RM];
    let mut i = 0;
    while i < n {
        let mut wv = [_mm256_setzero_ps(); RM];
        for r in 0..RM {
            wv[r] = F::load8(w.add(r * ws), i);
        }
        for t in 0..RN {
            let xv = F::load8(x.add(t * xs), i);
            for r in 0..RM {
                acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
            }
        }
        i += 8;
    }
    for r in 0..RM {
        for t in 0..RN {
            *y.add(t * ys + r) = hsum_float_8(acc[r][t]);
        }
    }
}

/// The float types' tiled product (see [`crate::types::GemmFn`]): tinyBLAS
/// numerics ([`float_gemm`]) where `n % 8 == 0`, else `F`'s dot product per
/// pair (llamafile's sgemm declines those shapes).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn float_gemm_or_dots<F: FloatKernel>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    x: &[u8],
    xs: usize,
    nt: usize,
    y: *mut f32,
    ys: usize,
) {
    if n.is_multiple_of(8) {
        float_gemm::<F, 4, 3>(n, w, ws, nr, x, xs, nt, y, ys)
    } else {
        crate::types::gemm_with(F::VEC_DOT, n, w, ws, nr, x, xs, nt, y, ys)
    }
}

/// Tiled float product (see [`crate::types::GemmFn`]) with [`dot8`]
/// numerics; requires `n % 8 == 0`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn float_gemm<F: FloatKernel, const RM: usize, const RN: usize>(
    n: usize,
    w: &[u8],
    ws: usize,
    nr: usize,
    x: &[u8],
    xs: usize,
    nt: usize,
    y: *mut f32,
    ys: usize,
) {
    assert!(n.is_multiple_of(8));
    if nr == 0 || nt == 0 {
        return;
    }
    assert!(w.len() >= (nr - 1) * ws + n * F::BYTES);
    assert!(x.len() >= (nt - 1) * xs + n * F::BYTES);
    if F::BYTES == 2 && nt >= RN {
        // Several tokens: widen this job's rows and tokens to f32 once (the
        // conversions are exact), so the tiles do loads and FMAs only.
        let cell: *const std::cell::RefCell<FloatScratch> = FLOAT_SCRATCH.with(|c| c as *const _);
        let mut local = None;
        let mut guard = (*cell).try_borrow_mut().ok();
        let scratch = match guard.as_deref_mut() {
            Some(s) => s,
            None => local.insert(FloatScratch::default()),
        };
        widen::<F>(n, w.as_ptr(), ws, nr, &mut scratch.w);
        widen::<F>(n, x.as_ptr(), xs, nt, &mut scratch.x);
        let (wb, xb) = (bytemuck_f32(&scratch.w), bytemuck_f32(&scratch.x));
        return float_gemm::<F32Rows, RM, RN>(n, wb, n * 4, nr, xb, n * 4, nt, y, ys);
    }
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let (r_full, t_full) = (nr - nr % RM, nt - nt % RN);
    let mut r = 0;
    while r < nr {
        let mut t = 0;
        while t < nt {
            let (wr, xt, yo) = (wp.add(r * ws), xp.add(t * xs), y.add(t * ys + r));
            match (r < r_full, t < t_full) {
                (true, true) => float_tile::<F, RM, RN>(n, wr, ws, xt, xs, yo, ys),
                (true, false) => float_tile::<F, RM, 1>(n, wr, ws, xt, xs, yo, ys),
                (false, true) => float_tile::<F, 1, RN>(n, wr, ws, xt, xs, yo, ys),
                (false, false) => float_tile::<F, 1, 1>(n, wr, ws, xt, xs, yo, ys),
            }
            t += if t < t_full { RN } else { 1 };
        }
        r += if r < r_full { RM } else { 1 };
    }
}

/// Per-thread buffers of the widened float path.
#[derive(Default)]
struct FloatScratch {
    w: Vec<f32>,
    x: Vec<f32>,
}

thread_local! {
    static FLOAT_SCRATCH: std::cell::RefCell<FloatScratch> =
        std::cell::RefCell::new(FloatScratch::default());
}

/// `rows` rows of `n` elements at `p` (stride `stride` bytes) widened into
/// `out` as `[rows, n]` f32.
#[inline(always)]
unsafe fn widen<F: FloatKernel>(
    n: usize,
    p: *const u8,
    stride: usize,
    rows: usize,
    out: &mut Vec<f32>,
) {
    out.clear();
    out.resize(rows * n, 0.0);
    for r in 0..rows {
        let mut i = 0;
        while i < n {
            _mm256_storeu_ps(
                out.as_mut_ptr().add(r * n + i),
                F::load8(p.add(r * stride), i),
            );
            i += 8;
        }
    }
}

/// An f32 slice as its bytes.
fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte may be read; the length is
    // the slice's size in bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float tiles (direct, and widened to f32 first for 2-byte types)
    /// give each pair [`dot8`]'s bits, over tile edges.
    #[test]
    fn float_gemm_equals_dot8_per_pair() {
        if !crate::SimdLevel::Avx2.available() {
            return;
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn check<F: FloatKernel>(bytes: &[u8], name: &str) {
            let n = 48;
            let row = n * F::BYTES;
            for (nr, nt) in [(7, 2), (7, 5), (4, 3), (1, 1)] {
                let (w, x) = (&bytes[..nr * row], &bytes[nr * row..(nr + nt) * row]);
                let mut y = vec![f32::NAN; nr * nt];
                float_gemm::<F, 4, 3>(n, w, row, nr, x, row, nt, y.as_mut_ptr(), nr);
                for t in 0..nt {
                    for r in 0..nr {
                        let want = dot8::<F>(n, w[r * row..].as_ptr(), x[t * row..].as_ptr());
                        assert_eq!(
                            y[t * nr + r].to_bits(),
                            want.to_bits(),
                            "{name} {nr}x{nt} r={r} t={t}"
                        );
                    }
                }
            }
        }
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let bytes: Vec<u8> = (0..12 * 48 * 4)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Keep exponents moderate: every other byte (the high byte
                // of a 16-bit value) in a narrow range.
                if i % 2 == 1 {
                    0x3c ^ (s as u8 & 0x83)
                } else {
                    s as u8
                }
            })
            .collect();
        let floats: Vec<u8> = (0..12 * 48)
            .flat_map(|i| (((i * 37 % 101) as f32 - 50.0) / 7.0).to_le_bytes())
            .collect();
        unsafe {
            check::<F16Rows>(&bytes, "f16");
            check::<Bf16Rows>(&bytes, "bf16");
            check::<F32Rows>(&floats, "f32");
        }
    }
}
