//! Q3_K: super-blocks of 256 weights in 16 sub-blocks of 16; 3-bit quants
//! (2 low bits plus a high-bit mask) around 4, 6-bit signed sub-block scales
//! under an f16 super-scale: `w = d * (sc_j - 32) * (q - 4)`. Pairs with Q8_K.

use super::k_common::make_q3_quants;
use super::q8_k::BlockQ8K;
use super::{
    as_blocks, as_blocks_mut, block, neon_entry, scalar_gemm, x86_entry, GemmFn, Kernel, VecDotFn,
    QK_K,
};
use crate::fp::{f16_to_f32, f32_to_f16, nearest_int};

/// ggml's `block_q3_K`: element `128h + 32k + l` has low bits
/// `(qs[32h + l] >> 2k) & 3` and high bit `(hmask[l] >> (4h + k)) & 1`
/// (a set bit means no -4 offset).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: [u8; 2],
}
block!(BlockQ3K, 110);

/// The 16 sub-block scales minus 32.
#[inline(always)]
fn scales(b: &BlockQ3K) -> [i8; 16] {
    let mut s = [0i8; 16];
    for (j, s) in s.iter_mut().enumerate() {
        let lo = if j < 8 {
            b.scales[j] & 0x0f
        } else {
            b.scales[j - 8] >> 4
        };
        let hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        *s = (lo | (hi << 4)) as i8 - 32;
    }
    s
}

/// Signed quants in -4..3, element order.
#[inline(always)]
fn unpack(b: &BlockQ3K) -> [i8; QK_K] {
    let mut q = [0i8; QK_K];
    for (e, q) in q.iter_mut().enumerate() {
        let (h, k, l) = (e / 128, (e % 128) / 32, e % 32);
        let low = ((b.qs[32 * h + l] >> (2 * k)) & 3) as i8;
        let high = (b.hmask[l] >> (4 * h + k)) & 1;
        *q = low - if high != 0 { 0 } else { 4 };
    }
    q
}

/// Reference dequantizer (ggml `dequantize_row_q3_K`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in as_blocks::<BlockQ3K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d_all = f16_to_f32(b.d);
        let (sc, q) = (scales(b), unpack(b));
        for (e, y) in y.iter_mut().enumerate() {
            let dl = d_all * sc[e / 16] as f32;
            *y = dl * q[e] as f32;
        }
    }
}

/// Reference quantizer (ggml `quantize_row_q3_K_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(as_blocks_mut::<BlockQ3K>(dst)) {
        let mut l = [0i8; QK_K];
        let mut sc = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..QK_K / 16 {
            sc[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            if sc[j].abs() > amax {
                amax = sc[j].abs();
                max_scale = sc[j];
            }
        }
        b.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for (j, &s) in sc.iter().enumerate() {
                let li = (nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
                if j < 8 {
                    b.scales[j] = (li & 0x0f) as u8;
                } else {
                    b.scales[j - 8] |= ((li & 0x0f) << 4) as u8;
                }
                let li = li >> 4;
                b.scales[j % 4 + 8] |= (li << (2 * (j / 4))) as u8;
            }
            b.d = f32_to_f16(1.0 / iscale);
        } else {
            b.d = f32_to_f16(0.0);
        }
        let scs = scales(b);
        for j in 0..QK_K / 16 {
            let d = f16_to_f32(b.d) * scs[j] as f32;
            if d == 0.0 {
                continue;
            }
            for i in 0..16 {
                let q = nearest_int(x[16 * j + i] / d).clamp(-4, 3);
                l[16 * j + i] = (q + 4) as i8;
            }
        }
        b.hmask = [0; QK_K / 8];
        let (mut m, mut hm) = (0usize, 1u8);
        for lj in l.iter_mut() {
            if *lj > 3 {
                b.hmask[m] |= hm;
                *lj -= 4;
            }
            m += 1;
            if m == QK_K / 8 {
                m = 0;
                hm <<= 1;
            }
        }
        for h in 0..2 {
            for i in 0..32 {
                let q = |k: usize| l[128 * h + 32 * k + i] as u8;
                b.qs[32 * h + i] = q(0) | (q(1) << 2) | (q(2) << 4) | (q(3) << 6);
            }
        }
    }
}

/// Reference dot product with Q8_K (ggml `ggml_vec_dot_q3_K_q8_K_generic`).
pub fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (w, x) = (as_blocks::<BlockQ3K>(w), as_blocks::<BlockQ8K>(x));
    let mut sums = [0.0f32; 8];
    for (bw, bx) in w.iter().zip(x).take(n / QK_K) {
        let (sc, q) = (scales(bw), unpack(bw));
        let mut aux32 = [0i32; 8];
        for e in 0..QK_K {
            aux32[e % 8] += sc[e / 16] as i32 * (q[e] as i32 * bx.q(e));
        }
        let d = f16_to_f32(bw.d) * bx.d();
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
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
    use super::{scales, BlockQ3K};
    use crate::simd::x86::{avx2_gemm, f16_at, hsum_float_8};
    use crate::simd::x86_ktile::{add_scaled, gemm_k, q8k_blocks, KTile};
    use crate::types::{q8_k::BlockQ8K, QK_K};
    use std::arch::x86_64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: reachable only through `Kernel`, which checked the CPU.
        unsafe { vec_dot_avx2(n, w, x) }
    }

    /// ggml `ggml_vec_dot_q3_K_q8_K` (AVX2): the 2 low bits and the missing
    /// high bit (4) multiplied separately and subtracted, scaled products
    /// summed in 8 integer lanes, one f32 FMA per super-block.
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
        const W_BYTES: usize = std::mem::size_of::<BlockQ3K>();
        const X_BYTES: usize = std::mem::size_of::<BlockQ8K>();

        /// [`vec_dot_avx2`]'s steps per (row, token) pair (the same two
        /// saturating `maddubs` and wrapping subtraction), with the row's
        /// bits and scales unpacked once for the N tokens.
        #[inline(always)]
        unsafe fn tile<const N: usize>(
            nb: usize,
            w: *const u8,
            x: *const u8,
            xs: usize,
            out: &mut [f32; N],
        ) {
            let m3 = _mm256_set1_epi8(3);
            let mut acc = [_mm256_setzero_ps(); N];
            for i in 0..nb {
                let bw = &*(w.add(i * Self::W_BYTES) as *const BlockQ3K);
                let bx: [&BlockQ8K; N] = q8k_blocks(x, xs, i);
                let wd = f16_at(bw.d.as_ptr());
                let sc = scales(bw);
                let hbits = _mm256_loadu_si256(bw.hmask.as_ptr() as *const __m256i);
                let mut sumi = [_mm256_setzero_si256(); N];
                for j in 0..QK_K / 128 {
                    let q3bits = _mm256_loadu_si256(bw.qs.as_ptr().add(32 * j) as *const __m256i);
                    let q3l: [__m256i; 4] = std::array::from_fn(|k| {
                        let shift = _mm_cvtsi32_si128(2 * k as i32);
                        _mm256_and_si256(_mm256_srl_epi16(q3bits, shift), m3)
                    });
                    // 4 where the high bit is clear.
                    let q3h: [__m256i; 4] = std::array::from_fn(|k| {
                        let bit = _mm256_set1_epi8((1u8 << (4 * j + k)) as i8);
                        let clear =
                            _mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit), _mm256_setzero_si256());
                        _mm256_and_si256(clear, _mm256_set1_epi8(4))
                    });
                    let scv: [__m256i; 4] = std::array::from_fn(|k| {
                        let s0 = sc[8 * j + 2 * k] as i16;
                        let s1 = sc[8 * j + 2 * k + 1] as i16;
                        _mm256_setr_m128i(_mm_set1_epi16(s0), _mm_set1_epi16(s1))
                    });
                    for t in 0..N {
                        let q8 = bx[t].qs.as_ptr().add(128 * j);
                        let p: [__m256i; 4] = std::array::from_fn(|k| {
                            let q8k = _mm256_loadu_si256(q8.add(32 * k) as *const __m256i);
                            let p16 = _mm256_sub_epi16(
                                _mm256_maddubs_epi16(q3l[k], q8k),
                                _mm256_maddubs_epi16(q3h[k], q8k),
                            );
                            _mm256_madd_epi16(scv[k], p16)
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
    use super::{scales, BlockQ3K};
    use crate::simd::neon::{f16_at, F32x8, I32x8};
    use crate::types::{as_blocks, q8_k::BlockQ8K, QK_K};
    use std::arch::aarch64::*;

    pub(super) fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
        // SAFETY: NEON is baseline on aarch64; lengths are checked inside.
        unsafe { vec_dot_neon(n, w, x) }
    }

    /// The AVX2 kernel lane for lane (so the same bits). The quants are
    /// formed as signed bytes `low - 4 * (high bit clear)` and multiplied
    /// once; AVX2 multiplies both parts and subtracts, the same integers.
    #[inline(always)]
    unsafe fn vec_dot_neon(n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (w, x) = (as_blocks::<BlockQ3K>(w), as_blocks::<BlockQ8K>(x));
        let nb = n / QK_K;
        assert!(w.len() >= nb && x.len() >= nb);
        let m3 = vdupq_n_u8(3);
        let four = vdupq_n_u8(4);
        let mut acc = F32x8::zero();
        for i in 0..nb {
            let (bw, bx) = (&w[i], &x[i]);
            let d = bx.d() * f16_at(bw.d.as_ptr());
            let sc = scales(bw);
            let (h0, h1) = (
                vld1q_u8(bw.hmask.as_ptr()),
                vld1q_u8(bw.hmask.as_ptr().add(16)),
            );
            let mut sumi = I32x8::zero();
            for j in 0..QK_K / 128 {
                let q3 = bw.qs.as_ptr().add(32 * j);
                let (b0, b1) = (vld1q_u8(q3), vld1q_u8(q3.add(16)));
                let q8 = (bx.qs.as_ptr() as *const i8).add(128 * j);
                for k in 0..4 {
                    let shift = vdupq_n_s8(-2 * k as i8);
                    let bit = vdupq_n_u8(1 << (4 * j + k));
                    // 4 where the high bit is clear.
                    let sub0 = vbicq_u8(four, vtstq_u8(h0, bit));
                    let sub1 = vbicq_u8(four, vtstq_u8(h1, bit));
                    let q3l = vsubq_u8(vandq_u8(vshlq_u8(b0, shift), m3), sub0);
                    let q3h = vsubq_u8(vandq_u8(vshlq_u8(b1, shift), m3), sub1);
                    sumi = sumi.add_chunk(
                        vreinterpretq_s8_u8(q3l),
                        vreinterpretq_s8_u8(q3h),
                        q8.add(32 * k),
                        sc[8 * j + 2 * k] as i32,
                        sc[8 * j + 2 * k + 1] as i32,
                    );
                }
            }
            acc = sumi.fma_into(acc, d);
        }
        acc.hsum()
    }
}
