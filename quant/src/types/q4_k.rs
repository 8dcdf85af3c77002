//! Q4_K: super-blocks of 256 weights in 8 sub-blocks of 32; 4-bit quants,
//! 6-bit sub-block scales and mins under f16 super-scales:
//! `w = d * sc_j * q - dmin * m_j`. Pairs with Q8_K.

use super::k_common::{get_scale_min_k4, make_qkx2_quants, pack_scale_min_k4};
use super::q8_k::BlockQ8K;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
    QK_K,
};
use crate::fp::{f16_to_f32, f32_to_f16, nearest_int};

/// ggml's `block_q4_K`. Quants come in 4 chunks of 64: `qs[32c + l]` holds
/// element `64c + l` (low nibble) and `64c + 32 + l` (high nibble).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}
block!(BlockQ4K, 144);

/// Reference dequantizer (ggml `dequantize_row_q4_K`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ4K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let (d, min) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
        for c in 0..4 {
            let (sc1, m1) = get_scale_min_k4(2 * c, &b.scales);
            let (sc2, m2) = get_scale_min_k4(2 * c + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let q = &b.qs[32 * c..32 * c + 32];
            let y = &mut y[64 * c..64 * c + 64];
            for l in 0..32 {
                y[l] = d1 * (q[l] & 0x0f) as f32 - m1;
                y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q4_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ4K>(dst)) {
        let mut l = [0u8; QK_K];
        let (scales, mins) = sub_scales(x, 15, -1.0, 20, &mut l);
        let (d, dmin) = pack_super(&scales, &mins, &mut b.scales);
        b.d = f32_to_f16(d);
        b.dmin = f32_to_f16(dmin);
        requantize(x, b.d, b.dmin, &b.scales, 15, &mut l);
        for c in 0..4 {
            for i in 0..32 {
                b.qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
            }
        }
    }
}

/// Per sub-block of 32: weights `sqrt(mean x^2) + |x|`, then
/// `make_qkx2_quants`. Returns (scales, mins); levels go to `l`.
pub(crate) fn sub_scales(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    l: &mut [u8; QK_K],
) -> ([f32; 8], [f32; 8]) {
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let mut laux = [0u8; 32];
    let mut weights = [0.0f32; 32];
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let lj = &mut l[32 * j..32 * j + 32];
        (scales[j], mins[j]) =
            make_qkx2_quants(nmax, xs, &weights, lj, &mut laux, rmin, 0.1, nstep, false);
    }
    (scales, mins)
}

/// Quantizes the sub-block scales and mins to 6 bits under two super-scales;
/// writes the packed bytes, returns `(d, dmin)` before f16 rounding.
pub(crate) fn pack_super(scales: &[f32; 8], mins: &[f32; 8], packed: &mut [u8; 12]) -> (f32, f32) {
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    *packed = pack_scale_min_k4(&ls, &lm);
    (max_scale / 63.0, max_min / 63.0)
}

/// Final levels from the stored (f16) scales; sub-blocks whose scale is zero
/// keep the levels `make_qkx2_quants` chose, as in ggml.
pub(crate) fn requantize(
    x: &[f32],
    d: [u8; 2],
    dmin: [u8; 2],
    packed: &[u8; 12],
    nmax: i32,
    l: &mut [u8; QK_K],
) {
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, packed);
        let d = f16_to_f32(d) * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = f16_to_f32(dmin) * m as f32;
        for i in 0..32 {
            l[32 * j + i] = nearest_int((x[32 * j + i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
}

/// Reference dot product with Q8_K activations (ggml
/// `ggml_vec_dot_q4_K_q8_K_generic`: integer sums per sub-block, 8 float
/// lanes, mins through the activation's 16-element sums).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ4K>(w), as_blocks::<BlockQ8K>(x));
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (bw, bx) in w.iter().zip(x).take(n / QK_K) {
        let (sc, mn) = scales_mins(&bw.scales);
        let scales = sc.map(|s| s as i32);
        let mins = mn.map(|m| m as i32);
        let mut aux32 = [0i32; 8];
        for j in 0..QK_K / 32 {
            let c = j / 2;
            let shift = 4 * (j % 2);
            for i in 0..32 {
                let q = ((bw.qs[32 * c + i] >> shift) & 0x0f) as i32;
                aux32[i % 8] += scales[j] * (q * bx.q(32 * j + i));
            }
        }
        let sumi: i32 = (0..16).map(|j| bx.bsum(j) * mins[j / 2]).sum();
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

/// Scales and mins of a Q4_K/Q5_K block as two 8-byte arrays.
#[inline(always)]
pub(crate) fn scales_mins(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        (sc[j], mn[j]) = get_scale_min_k4(j, packed);
    }
    (sc, mn)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{scales_mins, BlockQ4K};
    use crate::simd::x86::{avx2_gemm, f16_at, hsum_float_8};
    use crate::simd::x86_ktile::{add_scaled, gemm_k, q8k_blocks, KTile};
    use crate::types::{q8_k::BlockQ8K, QK_K};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    /// ggml `ggml_vec_dot_q4_K_q8_K` (AVX2): per super-block, scaled 16-bit
    /// products summed in 8 integer lanes, one f32 FMA; mins through the
    /// activation's block sums in 4 f32 lanes.
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
        const W_BYTES: usize = std::mem::size_of::<BlockQ4K>();
        const X_BYTES: usize = std::mem::size_of::<BlockQ8K>();

        /// [`vec_dot_avx2`]'s steps per (row, token) pair, with the row's
        /// scales, mins and nibbles unpacked once for the N tokens.
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
            let mut acc_m = [_mm_setzero_ps(); N];
            for i in 0..nb {
                let bw = &*(w.add(i * Self::W_BYTES) as *const BlockQ4K);
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
                    acc_m[t] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[t]);
                }
                let q4 = bw.qs.as_ptr();
                let mut sumi = [_mm256_setzero_si256(); N];
                for j in 0..QK_K / 64 {
                    let scale_l = _mm256_set1_epi16(sc[2 * j] as i16);
                    let scale_h = _mm256_set1_epi16(sc[2 * j + 1] as i16);
                    let q4bits = _mm256_loadu_si256(q4.add(32 * j) as *const __m256i);
                    let q4l = _mm256_and_si256(q4bits, m4);
                    let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
                    for t in 0..N {
                        let q8 = bx[t].qs.as_ptr();
                        let q8l = _mm256_loadu_si256(q8.add(64 * j) as *const __m256i);
                        let q8h = _mm256_loadu_si256(q8.add(64 * j + 32) as *const __m256i);
                        let p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
                        let p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p16l, p16h));
                    }
                }
                add_scaled(&mut acc, &bx, wd, &sumi);
            }
            for t in 0..N {
                let mut m = acc_m[t];
                m = _mm_add_ps(m, _mm_movehl_ps(m, m));
                m = _mm_add_ss(m, _mm_movehdup_ps(m));
                out[t] = hsum_float_8(acc[t]) + _mm_cvtss_f32(m);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{scales_mins, BlockQ4K};
    use crate::simd::neon::{f16_at, mins_by_sums32, nibbles, F32x8, I32x8};
    use crate::types::{as_blocks, q8_k::BlockQ8K, QK_K};
    use std::arch::aarch64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: NEON is baseline on aarch64; lengths are checked inside.
        unsafe { vec_dot_neon(n, w, x) }
    }

    /// The AVX2 kernel lane for lane (so the same bits), including its
    /// 4-lane min accumulator and that accumulator's horizontal sum.
    #[inline(always)]
    unsafe fn vec_dot_neon(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (w, x) = (as_blocks::<BlockQ4K>(w), as_blocks::<BlockQ8K>(x));
        let nb = n / QK_K;
        assert!(w.len() >= nb && x.len() >= nb);
        let mut acc = F32x8::zero();
        let mut acc_m = vdupq_n_f32(0.0);
        for i in 0..nb {
            let (bw, bx) = (&w[i], &x[i]);
            let d = bx.d() * f16_at(bw.d.as_ptr());
            let dmin = -bx.d() * f16_at(bw.dmin.as_ptr());
            let (sc, mn) = scales_mins(&bw.scales);
            let prod = mins_by_sums32(&mn, bx.bsums.as_ptr());
            acc_m = vfmaq_f32(acc_m, vdupq_n_f32(dmin), vcvtq_f32_s32(prod));

            let (q4, q8) = (bw.qs.as_ptr(), bx.qs.as_ptr() as *const i8);
            let mut sumi = I32x8::zero();
            for j in 0..QK_K / 64 {
                let (l0, h0) = nibbles(q4.add(32 * j));
                let (l1, h1) = nibbles(q4.add(32 * j + 16));
                let (s_l, s_h) = (sc[2 * j] as i32, sc[2 * j + 1] as i32);
                let (l0, l1) = (vreinterpretq_s8_u8(l0), vreinterpretq_s8_u8(l1));
                let (h0, h1) = (vreinterpretq_s8_u8(h0), vreinterpretq_s8_u8(h1));
                sumi = sumi.add_chunk(l0, l1, q8.add(64 * j), s_l, s_l);
                sumi = sumi.add_chunk(h0, h1, q8.add(64 * j + 32), s_h, s_h);
            }
            acc = sumi.fma_into(acc, d);
        }
        // x86: movehl + add, then movehdup + add_ss.
        let m = (vgetq_lane_f32(acc_m, 0) + vgetq_lane_f32(acc_m, 2))
            + (vgetq_lane_f32(acc_m, 1) + vgetq_lane_f32(acc_m, 3));
        acc.hsum() + m
    }
}
