//! Q2_K: super-blocks of 256 weights in 16 sub-blocks of 16; 2-bit quants,
//! 4-bit sub-block scales and mins under f16 super-scales:
//! `w = d * sc_j * q - dmin * m_j`. Pairs with Q8_K.

use super::k_common::make_qkx2_quants;
use super::q8_k::BlockQ8K;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
    QK_K,
};
use crate::fp::{f16_to_f32, f32_to_f16, nearest_int};

/// ggml's `block_q2_K`: `scales[j]` holds scale (low nibble) and min (high)
/// of sub-block j; element `128h + 32k + l` is bits `2k..2k+2` of
/// `qs[32h + l]`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: [u8; 2],
    pub dmin: [u8; 2],
}
block!(BlockQ2K, 84);

#[inline(always)]
fn unpack(b: &BlockQ2K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for (e, q) in q.iter_mut().enumerate() {
        let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
        *q = (b.qs[32 * h + l] >> (2 * k)) & 3;
    }
    q
}

/// Reference dequantizer (ggml `dequantize_row_q2_K`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ2K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, min) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        let q = unpack(b);
        for (e, y) in y.iter_mut().enumerate() {
            let sc = b.scales[e / 16];
            let (dl, ml) = (d * (sc & 0x0f) as f32, min * (sc >> 4) as f32);
            *y = dl * q[e] as f32 - ml;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q2_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ2K>(dst)) {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 16];
        let mut weights = [0.0f32; 16];
        let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            let lj = &mut l[16 * j..16 * j + 16];
            (scales[j], mins[j]) =
                make_qkx2_quants(3, xs, &weights, lj, &mut laux, -0.5, 0.1, 15, true);
            if scales[j] > max_scale {
                max_scale = scales[j];
            }
            if mins[j] > max_min {
                max_min = mins[j];
            }
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for j in 0..QK_K / 16 {
                b.scales[j] = nearest_int(iscale * scales[j]) as u8;
            }
            b.d = f32_to_f16(max_scale / Q4SCALE);
        } else {
            b.scales = [0; QK_K / 16];
            b.d = f32_to_f16(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for j in 0..QK_K / 16 {
                b.scales[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
            }
            b.dmin = f32_to_f16(max_min / Q4SCALE);
        } else {
            b.dmin = f32_to_f16(0.0);
        }
        for j in 0..QK_K / 16 {
            let d = f16_to_f32(b.d) * (b.scales[j] & 0x0f) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = f16_to_f32(b.dmin) * (b.scales[j] >> 4) as f32;
            for i in 0..16 {
                l[16 * j + i] = nearest_int((x[16 * j + i] + dm) / d).clamp(0, 3) as u8;
            }
        }
        for h in 0..2 {
            for i in 0..32 {
                let q = |k: usize| l[128 * h + 32 * k + i];
                b.qs[32 * h + i] = q(0) | (q(1) << 2) | (q(2) << 4) | (q(3) << 6);
            }
        }
    }
}

/// Reference dot product with Q8_K (ggml `ggml_vec_dot_q2_K_q8_K_generic`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ2K>(w), as_blocks::<BlockQ8K>(x));
    let mut sumf = 0.0f32;
    for (bw, bx) in w.iter().zip(x).take(n / QK_K) {
        let q = unpack(bw);
        let summs: i32 = (0..16)
            .map(|j| bx.bsum(j) * (bw.scales[j] >> 4) as i32)
            .sum();
        let dall = bx.d() * f16_to_f32(bw.d);
        let dmin = bx.d() * f16_to_f32(bw.dmin);
        let mut isum = 0i32;
        for j in 0..QK_K / 16 {
            let mut isuml = 0i32;
            for i in 0..16 {
                isuml += bx.q(16 * j + i) * q[16 * j + i] as i32;
            }
            isum += (bw.scales[j] & 0x0f) as i32 * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

x86_entry!(AVX2_VEC_DOT: VecDotFn = x86::vec_dot);
neon_entry!(NEON_VEC_DOT: VecDotFn = neon::vec_dot);
x86_entry!(AVX2_GEMM: GemmFn = x86::gemm);

/// Dot product kernels.
pub const VEC_DOT: Kernel<VecDotFn> = Kernel {
    scalar: vec_dot,
    avx2: AVX2_VEC_DOT,
    neon: NEON_VEC_DOT,
};

/// Tiled matrix product kernels.
pub const GEMM: Option<Kernel<GemmFn>> = Some(Kernel {
    scalar: gemm,
    avx2: AVX2_GEMM,
    neon: None,
});

scalar_gemm!(vec_dot);

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::BlockQ2K;
    use crate::simd::x86::{avx2_gemm, f16_at, hsum_float_8};
    use crate::simd::x86_ktile::{add_scaled, gemm_k, q8k_blocks, KTile};
    use crate::types::{q8_k::BlockQ8K, QK_K};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    /// ggml `ggml_vec_dot_q2_K_q8_K` (AVX2): the min term through the block
    /// sums and the scaled products, each one f32 FMA per super-block.
    ///
    /// Computed by the tile for one token: the tiled product's pairs and
    /// this dot product are the same code.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn vec_dot_avx2(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let nb = n / QK_K;
        assert!(w.len() >= nb * Tile::W_BYTES && x.len() >= nb * Tile::X_BYTES);
        let mut out = [0.0f32];
        Tile::tile::<1>(nb, w.as_ptr(), x.as_ptr(), 0, &mut out);
        out[0]
    }

    avx2_gemm!(gemm_k::<Tile>);

    struct Tile;

    impl KTile for Tile {
        const W_BYTES: usize = std::mem::size_of::<BlockQ2K>();
        const X_BYTES: usize = std::mem::size_of::<BlockQ8K>();

        /// [`vec_dot_avx2`]'s steps per (row, token) pair, with the row's
        /// 2-bit quants, scales and mins unpacked once for the N tokens.
        #[inline(always)]
        unsafe fn tile<const N: usize>(
            nb: usize,
            w: *const u8,
            x: *const u8,
            xs: usize,
            out: &mut [f32; N],
        ) {
            let m3 = _mm256_set1_epi8(3);
            let m4 = _mm_set1_epi8(0x0f);
            let mut acc = [_mm256_setzero_ps(); N];
            for i in 0..nb {
                let bw = &*(w.add(i * Self::W_BYTES) as *const BlockQ2K);
                let bx: [&BlockQ8K; N] = q8k_blocks(x, xs, i);
                let (wd, wdmin) = (f16_at(bw.d.as_ptr()), f16_at(bw.dmin.as_ptr()));
                let mins_and_scales = _mm_loadu_si128(bw.scales.as_ptr() as *const __m128i);
                let mins8 = _mm_and_si128(_mm_srli_epi16(mins_and_scales, 4), m4);
                let mins = _mm256_cvtepi8_epi16(mins8);
                for t in 0..N {
                    let dmin = -bx[t].d() * wdmin;
                    let bsums = _mm256_loadu_si256(bx[t].bsums.as_ptr() as *const __m256i);
                    let prod = _mm256_madd_epi16(mins, bsums);
                    acc[t] =
                        _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc[t]);
                }
                let mut sumi = [_mm256_setzero_si256(); N];
                for j in 0..QK_K / 128 {
                    let q2bits = _mm256_loadu_si256(bw.qs.as_ptr().add(32 * j) as *const __m256i);
                    let (q2, sc): ([__m256i; 4], [__m256i; 4]) = (
                        std::array::from_fn(|k| {
                            _mm256_and_si256(
                                _mm256_srl_epi16(q2bits, _mm_cvtsi32_si128(2 * k as i32)),
                                m3,
                            )
                        }),
                        std::array::from_fn(|k| {
                            let s0 = (bw.scales[8 * j + 2 * k] & 0x0f) as i16;
                            let s1 = (bw.scales[8 * j + 2 * k + 1] & 0x0f) as i16;
                            _mm256_setr_m128i(_mm_set1_epi16(s0), _mm_set1_epi16(s1))
                        }),
                    );
                    for t in 0..N {
                        let q8 = bx[t].qs.as_ptr().add(128 * j);
                        let p: [__m256i; 4] = std::array::from_fn(|k| {
                            let q8k = _mm256_loadu_si256(q8.add(32 * k) as *const __m256i);
                            _mm256_madd_epi16(sc[k], _mm256_maddubs_epi16(q2[k], q8k))
                        });
                        let p01 = _mm256_add_epi32(p[0], p[1]);
                        let p23 = _mm256_add_epi32(p[2], p[3]);
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p01, p23));
                    }
                }
                add_scaled(&mut acc, &bx, wd, &sumi);
            }
            for t in 0..N {
                out[t] = hsum_float_8(acc[t]);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::BlockQ2K;
    use crate::simd::neon::{f16_at, load_bsums, madd_s16, F32x8, I32x8};
    use crate::types::{as_blocks, q8_k::BlockQ8K, QK_K};
    use std::arch::aarch64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: NEON is baseline on aarch64; lengths are checked inside.
        unsafe { vec_dot_neon(n, w, x) }
    }

    /// The AVX2 kernel lane for lane (so the same bits): per super-block one
    /// FMA of the min term, then one of the scaled products.
    #[inline(always)]
    unsafe fn vec_dot_neon(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (w, x) = (as_blocks::<BlockQ2K>(w), as_blocks::<BlockQ8K>(x));
        let nb = n / QK_K;
        assert!(w.len() >= nb && x.len() >= nb);
        let m3 = vdupq_n_u8(3);
        let mut acc = F32x8::zero();
        for i in 0..nb {
            let (bw, bx) = (&w[i], &x[i]);
            let d = bx.d() * f16_at(bw.d.as_ptr());
            let dmin = -bx.d() * f16_at(bw.dmin.as_ptr());
            let mins = vshrq_n_u8(vld1q_u8(bw.scales.as_ptr()), 4);
            let (bs_lo, bs_hi) = load_bsums(bx.bsums.as_ptr());
            let prod = I32x8 {
                lo: madd_s16(vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins))), bs_lo),
                hi: madd_s16(vreinterpretq_s16_u16(vmovl_high_u8(mins)), bs_hi),
            };
            acc = prod.fma_into(acc, dmin);

            let mut sumi = I32x8::zero();
            for j in 0..QK_K / 128 {
                let q2 = bw.qs.as_ptr().add(32 * j);
                let (b0, b1) = (vld1q_u8(q2), vld1q_u8(q2.add(16)));
                let q8 = (bx.qs.as_ptr() as *const i8).add(128 * j);
                for k in 0..4 {
                    let shift = vdupq_n_s8(-2 * k as i8);
                    let q2l = vandq_u8(vshlq_u8(b0, shift), m3);
                    let q2h = vandq_u8(vshlq_u8(b1, shift), m3);
                    let s0 = (bw.scales[8 * j + 2 * k] & 0x0f) as i32;
                    let s1 = (bw.scales[8 * j + 2 * k + 1] & 0x0f) as i32;
                    sumi = sumi.add_chunk(
                        vreinterpretq_s8_u8(q2l),
                        vreinterpretq_s8_u8(q2h),
                        q8.add(32 * k),
                        s0,
                        s1,
                    );
                }
            }
            acc = sumi.fma_into(acc, d);
        }
        acc.hsum()
    }
}
