//! Q5_K: as Q4_K with a fifth bit per quant: `w = d * sc_j * q - dmin * m_j`,
//! q in 0..32. Pairs with Q8_K.

use super::k_common::get_scale_min_k4;
use super::q4_k::{pack_super, requantize, sub_scales};
use super::q8_k::BlockQ8K;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
    QK_K,
};
use crate::fp::{f16_to_f32, f32_to_f16};

/// ggml's `block_q5_K`: low nibbles as in Q4_K; bit 4 of element `64c + l`
/// is bit `2c` of `qh[l]`, of element `64c + 32 + l` bit `2c + 1`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
block!(BlockQ5K, 176);

/// The 5-bit quants of a block in element order.
#[inline(always)]
fn unpack(b: &BlockQ5K) -> [u8; QK_K] {
    let mut q = [0u8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let lo = b.qs[32 * c + l];
            let hi = b.qh[l] >> (2 * c);
            q[64 * c + l] = (lo & 0x0f) | ((hi & 1) << 4);
            q[64 * c + 32 + l] = (lo >> 4) | (((hi >> 1) & 1) << 4);
        }
    }
    q
}

/// Reference dequantizer (ggml `dequantize_row_q5_K`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ5K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, min) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        let q = unpack(b);
        for j in 0..QK_K / 32 {
            let (sc, m) = get_scale_min_k4(j, &b.scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            for i in 0..32 {
                y[32 * j + i] = d1 * q[32 * j + i] as f32 - m1;
            }
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q5_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ5K>(dst)) {
        let mut l = [0u8; QK_K];
        let (scales, mins) = sub_scales(x, 31, -0.5, 15, &mut l);
        let (d, dmin) = pack_super(&scales, &mins, &mut b.scales);
        b.d = f32_to_f16(d);
        b.dmin = f32_to_f16(dmin);
        requantize(x, b.d, b.dmin, &b.scales, 31, &mut l);
        b.qh = [0; QK_K / 8];
        let (mut m1, mut m2) = (1u8, 2u8);
        for c in 0..4 {
            for j in 0..32 {
                let mut l1 = l[64 * c + j];
                if l1 > 15 {
                    l1 -= 16;
                    b.qh[j] |= m1;
                }
                let mut l2 = l[64 * c + 32 + j];
                if l2 > 15 {
                    l2 -= 16;
                    b.qh[j] |= m2;
                }
                b.qs[32 * c + j] = l1 | (l2 << 4);
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

/// Reference dot product with Q8_K (ggml `ggml_vec_dot_q5_K_q8_K_generic`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ5K>(w), as_blocks::<BlockQ8K>(x));
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (bw, bx) in w.iter().zip(x).take(n / QK_K) {
        let q = unpack(bw);
        let mut aux32 = [0i32; 8];
        let mut sumi = 0i32;
        for j in 0..QK_K / 32 {
            let (sc, m) = get_scale_min_k4(j, &bw.scales);
            for i in 0..32 {
                let e = 32 * j + i;
                aux32[i % 8] += sc as i32 * (q[e] as i32 * bx.q(e));
            }
            sumi += (bx.bsum(2 * j) + bx.bsum(2 * j + 1)) * m as i32;
        }
        let d = f16_to_f32(bw.d) * bx.d();
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
        let dmin = f16_to_f32(bw.dmin) * bx.d();
        sumf -= dmin * sumi as f32;
    }
    for s in sums {
        sumf += s;
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
    use super::BlockQ5K;
    use crate::simd::x86::{avx2_gemm, f16_at, hsum_float_8};
    use crate::simd::x86_ktile::{add_scaled, gemm_k, q8k_blocks, KTile};
    use crate::types::q4_k::scales_mins;
    use crate::types::{q8_k::BlockQ8K, QK_K};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    /// ggml `ggml_vec_dot_q5_K_q8_K` (AVX2): as Q4_K with the fifth bits
    /// added from `qh`; the min term is summed as a scalar.
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
        const W_BYTES: usize = std::mem::size_of::<BlockQ5K>();
        const X_BYTES: usize = std::mem::size_of::<BlockQ8K>();

        /// [`vec_dot_avx2`]'s steps per (row, token) pair, with the row's
        /// scales, mins and 5-bit quants unpacked once for the N tokens.
        #[inline(always)]
        unsafe fn tile<const N: usize>(
            nb: usize,
            w: *const u8,
            x: *const u8,
            xs: usize,
            out: &mut [f32; N],
        ) {
            let m4 = _mm256_set1_epi8(0x0f);
            let mut acc = [_mm256_setzero_ps(); N];
            let mut summs = [0.0f32; N];
            for i in 0..nb {
                let bw = &*(w.add(i * Self::W_BYTES) as *const BlockQ5K);
                let bx: [&BlockQ8K; N] = q8k_blocks(x, xs, i);
                let (wd, wdmin) = (f16_at(bw.d.as_ptr()), f16_at(bw.dmin.as_ptr()));
                let (sc, mn) = scales_mins(&bw.scales);
                let mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(mn.as_ptr() as *const __m128i));
                for t in 0..N {
                    let dmin = -bx[t].d() * wdmin;
                    let q8sums = _mm256_loadu_si256(bx[t].bsums.as_ptr() as *const __m256i);
                    let q8s = _mm_hadd_epi16(
                        _mm256_castsi256_si128(q8sums),
                        _mm256_extracti128_si256(q8sums, 1),
                    );
                    let prod = _mm_madd_epi16(mins, q8s);
                    let zero = _mm_setzero_si128();
                    let hsum = _mm_hadd_epi32(_mm_hadd_epi32(prod, zero), zero);
                    summs[t] = dmin.mul_add(_mm_cvtsi128_si32(hsum) as f32, summs[t]);
                }
                let hbits = _mm256_loadu_si256(bw.qh.as_ptr() as *const __m256i);
                let q5 = bw.qs.as_ptr();
                let mut sumi = [_mm256_setzero_si256(); N];
                for j in 0..QK_K / 64 {
                    let scale_0 = _mm256_set1_epi16(sc[2 * j] as i16);
                    let scale_1 = _mm256_set1_epi16(sc[2 * j + 1] as i16);
                    let q5bits = _mm256_loadu_si256(q5.add(32 * j) as *const __m256i);
                    let bit0 = _mm256_and_si256(hbits, _mm256_set1_epi8(1 << (2 * j)));
                    let bit1 =
                        _mm256_and_si256(hbits, _mm256_set1_epi8((2 << (2 * j)) as u8 as i8));
                    // Each set bit becomes 16 in its byte.
                    let zero = _mm256_setzero_si256();
                    let sixteen = _mm256_set1_epi8(16);
                    let hi0 = _mm256_andnot_si256(_mm256_cmpeq_epi8(bit0, zero), sixteen);
                    let hi1 = _mm256_andnot_si256(_mm256_cmpeq_epi8(bit1, zero), sixteen);
                    let q5_0 = _mm256_add_epi8(_mm256_and_si256(q5bits, m4), hi0);
                    let q5_1 =
                        _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4), hi1);
                    for t in 0..N {
                        let q8 = bx[t].qs.as_ptr();
                        let q8_0 = _mm256_loadu_si256(q8.add(64 * j) as *const __m256i);
                        let q8_1 = _mm256_loadu_si256(q8.add(64 * j + 32) as *const __m256i);
                        let p16_0 = _mm256_madd_epi16(scale_0, _mm256_maddubs_epi16(q5_0, q8_0));
                        let p16_1 = _mm256_madd_epi16(scale_1, _mm256_maddubs_epi16(q5_1, q8_1));
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p16_0, p16_1));
                    }
                }
                add_scaled(&mut acc, &bx, wd, &sumi);
            }
            for t in 0..N {
                out[t] = hsum_float_8(acc[t]) + summs[t];
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::BlockQ5K;
    use crate::simd::neon::{f16_at, mins_by_sums32, nibbles, F32x8, I32x8};
    use crate::types::q4_k::scales_mins;
    use crate::types::{as_blocks, q8_k::BlockQ8K, QK_K};
    use std::arch::aarch64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: NEON is baseline on aarch64; lengths are checked inside.
        unsafe { vec_dot_neon(n, w, x) }
    }

    /// The AVX2 kernel lane for lane (so the same bits), including its
    /// scalar min term (integer sum of the 4 lanes, then one scalar FMA).
    #[inline(always)]
    unsafe fn vec_dot_neon(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (w, x) = (as_blocks::<BlockQ5K>(w), as_blocks::<BlockQ8K>(x));
        let nb = n / QK_K;
        assert!(w.len() >= nb && x.len() >= nb);
        let sixteen = vdupq_n_u8(16);
        let mut acc = F32x8::zero();
        let mut summs = 0.0f32;
        for i in 0..nb {
            let (bw, bx) = (&w[i], &x[i]);
            let d = bx.d() * f16_at(bw.d.as_ptr());
            let dmin = -bx.d() * f16_at(bw.dmin.as_ptr());
            let (sc, mn) = scales_mins(&bw.scales);
            let prod = mins_by_sums32(&mn, bx.bsums.as_ptr());
            summs = dmin.mul_add(vaddvq_s32(prod) as f32, summs);

            let (hb0, hb1) = (vld1q_u8(bw.qh.as_ptr()), vld1q_u8(bw.qh.as_ptr().add(16)));
            let (q5, q8) = (bw.qs.as_ptr(), bx.qs.as_ptr() as *const i8);
            let mut sumi = I32x8::zero();
            for j in 0..QK_K / 64 {
                let (l0, h0) = nibbles(q5.add(32 * j));
                let (l1, h1) = nibbles(q5.add(32 * j + 16));
                // Each set fifth bit becomes 16 in its byte.
                let (bit0, bit1) = (vdupq_n_u8(1 << (2 * j)), vdupq_n_u8(2 << (2 * j)));
                let fifth = |h: uint8x16_t, bit| vandq_u8(vtstq_u8(h, bit), sixteen);
                let l0 = vreinterpretq_s8_u8(vorrq_u8(l0, fifth(hb0, bit0)));
                let l1 = vreinterpretq_s8_u8(vorrq_u8(l1, fifth(hb1, bit0)));
                let h0 = vreinterpretq_s8_u8(vorrq_u8(h0, fifth(hb0, bit1)));
                let h1 = vreinterpretq_s8_u8(vorrq_u8(h1, fifth(hb1, bit1)));
                let (s_0, s_1) = (sc[2 * j] as i32, sc[2 * j + 1] as i32);
                sumi = sumi.add_chunk(l0, l1, q8.add(64 * j), s_0, s_0);
                sumi = sumi.add_chunk(h0, h1, q8.add(64 * j + 32), s_1, s_1);
            }
            acc = sumi.fma_into(acc, d);
        }
        acc.hsum() + summs
    }
}
